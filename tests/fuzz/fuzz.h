/* Shared by the harnesses of tests/fuzz: the libFuzzer entry point, the property check, splitting
 * one input into several files or strings, and a scratch directory for the parsers that read
 * files. Each harness is built twice: with libFuzzer (fuzz_<name>, -DQASR_FUZZ=ON) and with
 * replay.c (fuzz_replay_<name>, the unit test that runs the seeds and regressions). */
#ifndef QASR_FUZZ_H
#define QASR_FUZZ_H

#include <errno.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property of the code under test does not hold: say which and abort, which libFuzzer reports
 * as a crash (saving the input) and the replay as a failed test. The message also goes through
 * the sanitizers' report when they are linked in: run.sh closes the harnesses' stderr to keep
 * the parsers' own messages out of its logs, and only libFuzzer's and the sanitizers' output
 * still reaches them. */
extern void __sanitizer_report_error_summary(const char *summary) __attribute__((weak));

static inline void fuzz_fail(const char *file, int line, const char *cond)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s:%d: property does not hold: %s", file, line, cond);
    fprintf(stderr, "%s\n", msg);
    if (__sanitizer_report_error_summary) __sanitizer_report_error_summary(msg);
    abort();
}

#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond);                                 \
    } while (0)

/* The files of one input are separated by this line (seeds stay readable; libFuzzer learns the
 * separator from the memmem below). Strings that cannot hold a NUL are separated by NULs. */
#define FUZZ_SEP "\n=====\n"

typedef struct {
    const char *p;
    size_t n;
} fuzz_part_t;

/* Split data at each sep into at most max parts (the last keeps the rest, separators included);
 * the number of parts, at least 1. */
static inline size_t fuzz_split(const uint8_t *data, size_t size, const char *sep, size_t sep_len,
                                fuzz_part_t *parts, size_t max)
{
    const char *p = (const char *)data, *end = p + size;
    size_t n = 0;
    while (n + 1 < max) {
        const char *s = memmem(p, (size_t)(end - p), sep, sep_len);
        if (!s) break;
        parts[n++] = (fuzz_part_t){ p, (size_t)(s - p) };
        p = s + sep_len;
    }
    parts[n++] = (fuzz_part_t){ p, (size_t)(end - p) };
    return n;
}

/* A NUL-terminated malloc'd copy of n bytes. */
static inline char *fuzz_strndup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static inline int fuzz_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0) remove(path);
    return 0;
}

static char fuzz_dir_path[4096];

/* Remove everything under the scratch directory, not the directory itself. */
static inline void fuzz_clear(void)
{
    if (fuzz_dir_path[0]) nftw(fuzz_dir_path, fuzz_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void fuzz_remove_dir(void)
{
    fuzz_clear();
    rmdir(fuzz_dir_path);
}

/* This process's scratch directory, made on first use under $TMPDIR (else /tmp) and removed at
 * exit (an input that crashes leaves it behind: run.sh points TMPDIR into a directory of its own
 * that it removes). */
static inline const char *fuzz_dir(void)
{
    if (!fuzz_dir_path[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/qasr-fuzz-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(fuzz_dir_path)) {
            fprintf(stderr, "cannot create %s: %s\n", fuzz_dir_path, strerror(errno));
            exit(1);
        }
        atexit(fuzz_remove_dir);
    }
    return fuzz_dir_path;
}

/* dir/name, malloc'd. */
static inline char *fuzz_path(const char *name)
{
    const char *dir = fuzz_dir();
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    if (!p) abort();
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* Write n bytes to the scratch file name; its path (malloc'd). Exits when it cannot: the harness
 * cannot run at all then, which is no finding. */
static inline char *fuzz_write(const char *name, const void *p, size_t n)
{
    char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return path;
}

/* Read a whole scratch file (malloc'd, NUL-terminated), its length in *n; NULL if absent. */
static inline char *fuzz_read(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (len + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    if (!buf) abort();
    fclose(f);
    buf[len] = '\0';
    *n = len;
    return buf;
}

/* Little-endian integers from the front of the input (zero past its end). */
static inline uint32_t fuzz_u32(const uint8_t **data, size_t *size)
{
    uint32_t v = 0;
    for (int i = 0; i < 4 && *size; i++, (*data)++, (*size)--) v |= (uint32_t)**data << (8 * i);
    return v;
}

static inline uint8_t fuzz_u8(const uint8_t **data, size_t *size)
{
    if (!*size) return 0;
    (*size)--;
    return *(*data)++;
}

#endif
