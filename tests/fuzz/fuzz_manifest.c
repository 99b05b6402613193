/* host/batch/manifest.c: manifest_load on the input as a file.
 * Input: a mode byte, then the manifest. Mode bits 0-1: the format asked for (auto, tsv, jsonl,
 * list); bit 2: the file is named m.jsonl (which auto takes for JSONL) rather than m.txt.
 * Properties: a failure leaves a message naming the manifest; a loaded manifest has at least one
 * entry, a format, ids that are valid UTF-8 and unique, non-empty paths resolved against the
 * manifest's directory (absolute here), durations unknown or within [0, MANIFEST_MAX_DURATION], entries and
 * problems in line order, each problem message naming the manifest and its line. */
#include "fuzz.h"

#include "id_map.h"
#include "manifest.h"
#include "utf8.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const manifest_format_t formats[] = { MANIFEST_AUTO, MANIFEST_TSV, MANIFEST_JSONL, MANIFEST_LIST };
    const int mode = fuzz_u8(&data, &size);
    const manifest_format_t asked = formats[mode & 3];
    char *path = fuzz_write(mode & 4 ? "m.jsonl" : "m.txt", data, size);
    manifest_t *m = manifest_load(path, asked);
    if (!m) {
        FUZZ_CHECK(strncmp(qasr_last_error(), path, strlen(path)) == 0);
    } else {
        FUZZ_CHECK(m->n_entries >= 1 && m->format != MANIFEST_AUTO);
        if (asked != MANIFEST_AUTO) FUZZ_CHECK(m->format == asked);
        id_map_t *ids = id_map_new();
        int prev_line = 0;
        for (size_t i = 0; i < m->n_entries; i++) {
            const manifest_entry_t *e = &m->entries[i];
            FUZZ_CHECK(e->id && utf8_valid(e->id, strlen(e->id)));
            FUZZ_CHECK(!id_map_add(ids, e->id, (int)i));
            FUZZ_CHECK(e->path && e->path[0] == '/'); /* absolute, or resolved against the scratch dir */
            FUZZ_CHECK(e->duration == -1 || (e->duration >= 0 && e->duration <= MANIFEST_MAX_DURATION));
            FUZZ_CHECK(!e->language || e->language[0]);
            FUZZ_CHECK(!e->context || e->context[0]);
            FUZZ_CHECK(e->line > prev_line);
            prev_line = e->line;
        }
        id_map_free(ids);
        prev_line = 0;
        for (size_t i = 0; i < m->n_problems; i++) {
            const manifest_problem_t *p = &m->problems[i];
            char prefix[4200];
            snprintf(prefix, sizeof prefix, "%s:%d: ", path, p->line);
            FUZZ_CHECK(p->line > prev_line && strncmp(p->message, prefix, strlen(prefix)) == 0);
            prev_line = p->line;
        }
        manifest_free(m);
    }
    free(path);
    fuzz_clear();
    return 0;
}
