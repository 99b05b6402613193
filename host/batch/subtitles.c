#include "subtitles.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

int subtitles_format_ok(const char *f)
{
    return f && (!strcmp(f, "srt") || !strcmp(f, "vtt") || !strcmp(f, "txt"));
}

char *subtitles_path(const char *dir, const char *id, const char *format)
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
    if (dot && dot > (slash ? slash : rel)) *dot = '\0'; /* replace the extension */
    char *file = xmalloc(strlen(rel) + strlen(format) + 2);
    sprintf(file, "%s.%s", rel, format);
    char *path = path_join(dir, file);
    free(rel);
    free(file);
    return path;
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

int subtitles_write(const char *dir, const char *id, const char *format, const cue_t *cues, int n)
{
    char *path = subtitles_path(dir, id, format);
    char *tmp = xmalloc(strlen(path) + 8);
    sprintf(tmp, "%s.tmp", path);
    int rc = mkdirs(path);
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
        if (fclose(f) != 0 || rename(tmp, path) != 0) rc = qasr_fail("cannot write %s: %s", path, strerror(errno));
    }
    free(tmp);
    free(path);
    return rc;
}
