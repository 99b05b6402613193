/* host/batch/merge.c, qasr-merge: merge_run on a manifest and shard outputs from the input.
 * Input: a mode byte, then the manifest (any format, named manifest.txt) and up to 3 result
 * files, separated by FUZZ_SEP lines. Mode bit 0 names the result files as qasr-batch names shard
 * outputs (results.K-of-N.jsonl, so that missing entries are traced to their shards), else
 * in.K.jsonl.
 * Properties: the exit code is 2 exactly when the manifest does not load; otherwise the output
 * holds, in manifest order, one line for each manifest id that has a complete line (a JSON object
 * with that string "id") in some input, copied byte for byte from an input, a success where the
 * id has one; the code is 5 when an id has no line, 0 only when every id has exactly one line and
 * no input line was an error, a duplicate, foreign or unreadable, else 1. */
#include "fuzz.h"

#include "id_map.h"
#include "jsonl.h"
#include "manifest.h"
#include "merge.h"
#include "util.h"

typedef struct {
    int lines, ok; /* complete lines with this id in the inputs, successes among them */
} seen_t;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int mode = fuzz_u8(&data, &size);
    fuzz_part_t part[4];
    const int n_inputs = (int)fuzz_split(data, size, FUZZ_SEP, strlen(FUZZ_SEP), part, 4) - 1;
    char *manifest = fuzz_write("manifest.txt", part[0].p, part[0].n);
    char *inputs[3];
    for (int f = 0; f < n_inputs; f++) {
        char name[64];
        if (mode & 1) snprintf(name, sizeof name, "results.%d-of-%d.jsonl", f, n_inputs);
        else snprintf(name, sizeof name, "in.%d.jsonl", f);
        inputs[f] = fuzz_write(name, part[1 + f].p, part[1 + f].n);
    }
    char *output = fuzz_path("merged.jsonl");
    const merge_opts_t o = { .manifest = manifest, .manifest_format = "auto",
                             .inputs = (const char *const *)inputs, .n_inputs = n_inputs, .output = output };
    const int code = merge_run(&o);

    manifest_t *m = manifest_load(manifest, MANIFEST_AUTO);
    FUZZ_CHECK((code == MERGE_USAGE) == !m);
    if (m) {
        FUZZ_CHECK(code == MERGE_OK || code == MERGE_SOME_FAILED || code == MERGE_INCOMPLETE);
        /* What the inputs hold for each manifest id. */
        id_map_t *index = id_map_new();
        for (size_t i = 0; i < m->n_entries; i++) id_map_add(index, m->entries[i].id, (int)i);
        seen_t *seen = calloc(m->n_entries ? m->n_entries : 1, sizeof *seen);
        int odd = 0;
        for (int f = 0; f < n_inputs; f++) {
            const char *p = part[1 + f].p, *end = p + part[1 + f].n;
            while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                cJSON *j = nl ? jsonl_parse_object(p, (size_t)(nl - p)) : NULL;
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
                const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
                const int *e = cJSON_IsString(id) ? id_map_find(index, id->valuestring) : NULL;
                if (e) {
                    const int ok = !err || cJSON_IsNull(err);
                    odd |= seen[*e].lines++ > 0 || !ok;
                    seen[*e].ok += ok;
                } else {
                    odd = 1; /* unreadable, incomplete or foreign */
                }
                cJSON_Delete(j);
                p = nl ? nl + 1 : end;
            }
        }
        size_t out_n;
        char *out = fuzz_read(output, &out_n);
        FUZZ_CHECK(out);
        const char *p = out, *end = out + out_n;
        int missing = 0;
        for (size_t i = 0; i < m->n_entries; i++) {
            if (!seen[i].lines) {
                missing = 1;
                continue;
            }
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            FUZZ_CHECK(nl);
            cJSON *j = jsonl_parse_object(p, (size_t)(nl - p));
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
            const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
            FUZZ_CHECK(cJSON_IsString(id) && strcmp(id->valuestring, m->entries[i].id) == 0);
            FUZZ_CHECK((!err || cJSON_IsNull(err)) == (seen[i].ok > 0));
            cJSON_Delete(j);
            /* copied byte for byte: the line is a line of some input */
            const size_t n = (size_t)(nl - p) + 1;
            int found = 0;
            for (int f = 0; f < n_inputs && !found; f++)
                for (const char *q = part[1 + f].p, *qe = q + part[1 + f].n; q && q + n <= qe && !found;) {
                    found = memcmp(q, p, n) == 0;
                    q = memchr(q, '\n', (size_t)(qe - q));
                    if (q) q++;
                }
            FUZZ_CHECK(found);
            p = nl + 1;
        }
        FUZZ_CHECK(p == end);
        FUZZ_CHECK(code == (missing ? MERGE_INCOMPLETE : odd ? MERGE_SOME_FAILED : MERGE_OK));
        free(out);
        free(seen);
        id_map_free(index);
        manifest_free(m);
    }
    for (int f = 0; f < n_inputs; f++) free(inputs[f]);
    free(manifest);
    free(output);
    fuzz_clear();
    return 0;
}
