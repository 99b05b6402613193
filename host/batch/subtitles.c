#include "subtitles.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "id_map.h"
#include "util.h"

int subtitles_format_ok(const char *f)
{
    return f && (!strcmp(f, "srt") || !strcmp(f, "vtt") || !strcmp(f, "txt"));
}

/* The path for id (see subtitles_path); keep_ext: the id's extension stays ("a.wav" -> a.wav.srt);
 * entry > 0: ".entryN" is added before the format's extension. */
static char *build_path(const char *dir, const char *id, const char *format, int keep_ext, size_t entry)
{
    size_t n = strlen(id);
    char *rel = xmalloc(2 * n + 8), *o = rel;
    for (const char *p = id; *p;) { /* component by component */
        while (*p == '/') p++;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0) break;
        if (len == 1 && p[0] == '.') {
            /* "." adds nothing */
        } else {
            if (o > rel) *o++ = '/';
            if (len == 2 && p[0] == '.' && p[1] == '.') {
                memcpy(o, "__", 2); /* never climb out of dir */
                o += 2;
            } else {
                memcpy(o, p, len);
                o += len;
            }
        }
        p += len;
    }
    if (o == rel) *o++ = '_';
    *o = '\0';
    char *slash = strrchr(rel, '/'), *dot = strrchr(rel, '.');
    if (!keep_ext && dot && dot > (slash ? slash : rel)) *dot = '\0'; /* replace the extension */
    char *file = xmalloc(strlen(rel) + strlen(format) + 32);
    if (entry) sprintf(file, "%s.entry%zu.%s", rel, entry, format);
    else sprintf(file, "%s.%s", rel, format);
    char *path = path_join(dir, file);
    free(rel);
    free(file);
    return path;
}

char *subtitles_path(const char *dir, const char *id, const char *format)
{
    return build_path(dir, id, format, 0, 0);
}

/* Marks in clash[i] the paths that another entry's path equals. Returns how many. */
static size_t find_clashes(char *const *paths, size_t n, unsigned char *clash)
{
    id_map_t *seen = id_map_new();
    size_t n_clash = 0;
    for (size_t i = 0; i < n; i++) {
        clash[i] = 0;
        if (!paths[i]) continue;
        int *first = id_map_add(seen, paths[i], (int)i);
        if (first) clash[*first] = clash[i] = 1;
    }
    for (size_t i = 0; i < n; i++) n_clash += clash[i];
    id_map_free(seen);
    return n_clash;
}

char **subtitles_paths(const char *dir, const char *const *ids, size_t n, const char *format)
{
    char **paths = xmalloc(MAX(1, n) * sizeof *paths);
    unsigned char *clash = xmalloc(MAX(1, n));
    for (size_t i = 0; i < n; i++) paths[i] = build_path(dir, ids[i], format, 0, 0);
    for (int stage = 1; stage <= 3 && find_clashes(paths, n, clash); stage++)
        for (size_t i = 0; i < n; i++) {
            if (!clash[i]) continue;
            free(paths[i]);
            paths[i] = stage < 3 ? build_path(dir, ids[i], format, 1, stage == 2 ? i + 1 : 0) : NULL;
        }
    free(clash);
    return paths;
}

static int mkdirs(char *path) /* parents of path */
{
    for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        int rc = mkdir(path, 0777);
        int err = errno;
        *s = '/';
        if (rc != 0 && err != EEXIST) return qasr_fail("cannot create directory for %s: %s", path, strerror(err));
    }
    return 0;
}

static void timestamp(FILE *f, double t, char sep)
{
    long ms = (long)(t * 1000 + 0.5);
    fprintf(f, "%02ld:%02ld:%02ld%c%03ld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, sep, ms % 1000);
}

int subtitles_write(const char *path, const char *format, const cue_t *cues, int n)
{
    char *tmp = xmalloc(strlen(path) + 8);
    sprintf(tmp, "%s.tmp", path);
    int rc = mkdirs(tmp); /* the same parents as path */
    FILE *f = rc == 0 ? fopen(tmp, "w") : NULL;
    if (rc == 0 && !f) rc = qasr_fail("cannot write %s: %s", tmp, strerror(errno));
    if (f) {
        if (!strcmp(format, "vtt")) fputs("WEBVTT\n\n", f);
        for (int i = 0; i < n; i++) {
            if (!strcmp(format, "txt")) {
                fprintf(f, "%s%s", i ? " " : "", cues[i].text);
                continue;
            }
            const char sep = !strcmp(format, "srt") ? ',' : '.';
            if (sep == ',') fprintf(f, "%d\n", i + 1);
            timestamp(f, cues[i].start, sep);
            fputs(" --> ", f);
            timestamp(f, cues[i].end, sep);
            fprintf(f, "\n%s\n\n", cues[i].text);
        }
        if (!strcmp(format, "txt")) fputc('\n', f);
        const int bad = ferror(f);
        if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
            rc = qasr_fail("cannot write %s: %s", path, strerror(bad && !errno ? EIO : errno));
            unlink(tmp); /* nothing half-written left behind */
        }
    }
    free(tmp);
    return rc;
}
