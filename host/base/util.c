#include "util.h"

#include "utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* What a file that is not a regular file is, for the message. */
static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode)    ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO (named pipe)"
           : S_ISSOCK(mode) ? "a socket"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
                            : "not a regular file";
}

int open_regular_file(const char *path, const char *what, size_t *size_out)
{
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        qasr_fail("%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        qasr_fail("%s: is %s, not %s", path, file_kind(st.st_mode), what);
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (size_out) *size_out = (size_t)st.st_size;
    return fd;
}

char *read_file(const char *path, size_t *len_out)
{
    size_t size;
    const int fd = open_regular_file(path, "a regular file", &size);
    if (fd < 0) return NULL;
    /* the size fstat gave, plus one byte to see the file grow while it is read */
    char *buf = xmalloc(size + 2);
    size_t len = 0;
    ssize_t got = 1;
    while (len < size + 1 && (got = read(fd, buf + len, size + 1 - len)) != 0) {
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) break;
        len += (size_t)got;
    }
    const int err = errno;
    close(fd);
    if (got < 0 || len != size) {
        free(buf);
        if (got < 0) qasr_fail("%s: read error: %s", path, strerror(err));
        else qasr_fail("%s: changed while read (%zu bytes, then %zu)", path, size, len);
        return NULL;
    }
    buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}

char *read_text_file(const char *path, size_t *len_out)
{
    size_t len;
    char *buf = read_file(path, &len);
    if (!buf) return NULL;
    /* JSON (RFC 8259) and merges.txt are UTF-8; a NUL would end the text early for parsers */
    const char *nul = memchr(buf, '\0', len);
    const size_t valid = utf8_valid_prefix(buf, len);
    if (nul || valid < len) {
        if (nul) qasr_fail("%s: a NUL byte at offset %td: not a text file", path, nul - buf);
        else qasr_fail("%s: not UTF-8 text (an invalid byte sequence at offset %zu)", path, valid);
        free(buf);
        return NULL;
    }
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
