/* host/batch/subtitles.c: the file names made from ids, and writing a file.
 * Input: a mode byte (bits 0-1: srt, vtt, txt; bits 2-4: how many cues), 4 bytes of cue times
 * per cue, then up to 16 ids separated by NULs (the cue texts are ids too).
 * Properties: every path, from subtitles_path or subtitles_paths, is under the directory, with
 * no empty, "." or ".." component, and ends in ".<format>"; subtitles_paths gives distinct paths,
 * NULL only for an id that contains "entry" (one built to look like a numbered name); a written
 * file is at its path (its temporary is gone) and holds the cues in the format's layout. */
#include "fuzz.h"

#include "subtitles.h"
#include "util.h"

static void check_path(const char *path, const char *dir, const char *format)
{
    const size_t d = strlen(dir), n = strlen(path), f = strlen(format);
    FUZZ_CHECK(strncmp(path, dir, d) == 0 && path[d] == '/');
    FUZZ_CHECK(n > d + 1 + f + 1 && path[n - f - 1] == '.' && strcmp(path + n - f, format) == 0);
    for (const char *c = path + d + 1;;) { /* each component */
        const char *e = strchr(c, '/');
        const size_t len = e ? (size_t)(e - c) : strlen(c);
        FUZZ_CHECK(len > 0 && !(len == 1 && c[0] == '.') && !(len == 2 && c[0] == '.' && c[1] == '.'));
        if (!e) break;
        c = e + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const formats[] = { "srt", "vtt", "txt", "srt" };
    const int mode = fuzz_u8(&data, &size);
    const char *format = formats[mode & 3];
    const int n_cues = mode >> 2 & 7;
    cue_t cues[8];
    for (int i = 0; i < n_cues; i++) { /* up to 50 days, in order */
        cues[i].start = i ? cues[i - 1].end : 0;
        cues[i].end = cues[i].start + fuzz_u32(&data, &size) / 1000.0;
    }
    fuzz_part_t part[16];
    const size_t n = fuzz_split(data, size, "\0", 1, part, 16);
    char *ids[16];
    int has_entry = 0;
    for (size_t i = 0; i < n; i++) {
        ids[i] = fuzz_strndup(part[i].p, part[i].n);
        has_entry |= strstr(ids[i], "entry") != NULL;
    }
    char *dir = fuzz_path("subs");

    char **paths = subtitles_paths(dir, (const char *const *)ids, n, format);
    for (size_t i = 0; i < n; i++) {
        char *one = subtitles_path(dir, ids[i], format);
        check_path(one, dir, format);
        free(one);
        if (!paths[i]) {
            FUZZ_CHECK(has_entry);
            continue;
        }
        check_path(paths[i], dir, format);
        for (size_t k = 0; k < i; k++) FUZZ_CHECK(!paths[k] || strcmp(paths[k], paths[i]) != 0);
    }

    if (paths[0]) {
        for (int i = 0; i < n_cues; i++) cues[i].text = ids[(size_t)i % n];
        if (subtitles_write(paths[0], format, cues, n_cues) == 0) {
            size_t len;
            char *text = fuzz_read(paths[0], &len);
            FUZZ_CHECK(text);
            char *tmp = malloc(strlen(paths[0]) + 8);
            sprintf(tmp, "%s.tmp", paths[0]);
            FUZZ_CHECK(access(tmp, F_OK) != 0);
            free(tmp);
            if (!strcmp(format, "vtt")) FUZZ_CHECK(strncmp(text, "WEBVTT\n\n", 8) == 0);
            if (!strcmp(format, "srt") && n_cues) FUZZ_CHECK(strncmp(text, "1\n00:00:00,000 --> ", 19) == 0);
            if (!strcmp(format, "txt")) FUZZ_CHECK(len >= 1 && text[len - 1] == '\n');
            free(text);
        } else {
            FUZZ_CHECK(qasr_last_error()[0]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(paths[i]);
        free(ids[i]);
    }
    free(paths);
    free(dir);
    fuzz_clear();
    return 0;
}
