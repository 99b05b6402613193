#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char last_error[QASR_ERR_LEN];
static const char *program = "qasr";

/* A message longer than the buffer keeps its start and its end (where the reason usually is,
 * after a long path) around a "[...]". */
static void store(const char *msg, size_t n)
{
    static const char cut[] = " [...] ";
    if (n < QASR_ERR_LEN) {
        memcpy(last_error, msg, n + 1);
        return;
    }
    const size_t keep = QASR_ERR_LEN - sizeof cut, head = keep / 2, tail = keep - head;
    memcpy(last_error, msg, head);
    memcpy(last_error + head, cut, sizeof cut - 1);
    memcpy(last_error + head + sizeof cut - 1, msg + n - tail, tail);
    last_error[QASR_ERR_LEN - 1] = '\0';
}

/* The formatted message, then ": <rest>" when rest is given. */
static void vstore(const char *rest, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    const int len = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    const size_t p = rest ? strlen(rest) + 2 : 0, n = (size_t)MAX(len, 0);
    char *msg = malloc(n + p + 1);
    if (!msg) { /* no memory even for the message: keep what fits */
        vsnprintf(last_error, sizeof last_error, fmt, ap);
        return;
    }
    vsnprintf(msg, n + 1, fmt, ap);
    if (rest) sprintf(msg + n, ": %s", rest);
    store(msg, n + p);
    free(msg);
}

int qasr_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vstore(NULL, fmt, ap);
    va_end(ap);
    return -1;
}

int qasr_fail_prefix(const char *fmt, ...)
{
    char *old = strdup(last_error);
    va_list ap;
    va_start(ap, fmt);
    vstore(old ? old : "", fmt, ap);
    va_end(ap);
    free(old);
    return -1;
}

const char *qasr_last_error(void) { return last_error; }

void qasr_set_program_name(const char *name) { program = name; }

const char *qasr_program_name(void) { return program; }

void qasr_warn(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: warning: ", program);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void qasr_die(int code, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: ", program);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

void qasr_assert_fail(const char *expr, const char *file, int line)
{
    fflush(stdout);
    fprintf(stderr, "%s: internal error: assertion '%s' failed at %s:%d\n", program, expr, file, line);
    abort();
}

static void out_of_memory(size_t n)
{
    fflush(stdout);
    fprintf(stderr, "%s: out of host memory (allocating %zu bytes)\n", program, n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

typedef struct {
    void *p[THREAD_SCRATCH_SLOTS];
    size_t cap[THREAD_SCRATCH_SLOTS];
} scratch_set_t;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_set_free(void *v)
{
    scratch_set_t *s = v;
    for (int i = 0; i < THREAD_SCRATCH_SLOTS; i++) free(s->p[i]);
    free(s);
}

static void scratch_key_make(void)
{
    const int rc = pthread_key_create(&scratch_key, scratch_set_free);
    QASR_ASSERT(rc == 0); /* only fails when the process has used up its keys */
}

void *thread_scratch(int slot, size_t n)
{
    QASR_ASSERT(slot >= 0 && slot < THREAD_SCRATCH_SLOTS);
    pthread_once(&scratch_once, scratch_key_make);
    scratch_set_t *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = xcalloc(1, sizeof *s);
        pthread_setspecific(scratch_key, s);
    }
    if (s->cap[slot] < n) {
        free(s->p[slot]);
        s->p[slot] = xmalloc(n);
        s->cap[slot] = n;
    }
    return s->p[slot];
}

char *read_text_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        qasr_fail("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        qasr_fail("%s: read error", path);
        return NULL;
    }
    buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}

char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                exp--;
            }
            u = sign | (exp << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    union { uint32_t u; float f; } v = { .u = u };
    return v.f;
}
