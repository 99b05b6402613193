/* Small shared helpers: error reporting, assertions, allocation, timing.
 *
 * Errors come in three kinds (see README "Errors"):
 *  - programmer error: QASR_ASSERT, active in release builds, aborts (so does running out of
 *    host memory for the small bookkeeping allocations of xmalloc);
 *  - bad input (file, manifest line, audio) or a resource that fails (a large allocation, a
 *    device): the function records a message with qasr_fail() and returns -1 / NULL; the caller
 *    reports it and carries on with the next input, or gives up cleanly;
 *  - in the commands only (host/cli, host/batch): qasr_die() prints and exits with an exit code.
 *    The library below them never exits the process (scripts/check_layers.py checks it).
 * The message recorded by qasr_fail() is thread-local, like errno. */
#ifndef QASR_UTIL_H
#define QASR_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Longest message kept (a longer one keeps its start and end, see qasr_fail) */
#define QASR_ERR_LEN 2048

#if defined(__GNUC__)
#define QASR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define QASR_NORETURN __attribute__((noreturn))
#else
#define QASR_PRINTF(a, b)
#define QASR_NORETURN
#endif

/* Record an error message for this thread; always returns -1. One longer than QASR_ERR_LEN - 1
 * keeps its start and its end around " [...] ". */
int qasr_fail(const char *fmt, ...) QASR_PRINTF(1, 2);
/* Prefix the current message with more context: "<prefix>: <old message>". Returns -1. */
int qasr_fail_prefix(const char *fmt, ...) QASR_PRINTF(1, 2);
/* The last message recorded on this thread ("" if none). */
const char *qasr_last_error(void);

/* The command's name for messages on stderr ("qasr" unless a command sets its own). */
void qasr_set_program_name(const char *name);
const char *qasr_program_name(void);
/* Print "<program>: warning: <message>" to stderr: something a user should know that fails
 * nothing. */
void qasr_warn(const char *fmt, ...) QASR_PRINTF(1, 2);
/* Print "<program>: <message>" to stderr and exit(code). For the commands only. */
void qasr_die(int code, const char *fmt, ...) QASR_PRINTF(2, 3) QASR_NORETURN;

#define QASR_ASSERT(cond)                                                                  \
    do {                                                                                   \
        if (!(cond)) qasr_assert_fail(#cond, __FILE__, __LINE__);                          \
    } while (0)
void qasr_assert_fail(const char *expr, const char *file, int line) QASR_NORETURN;

/* Allocation that aborts on failure: running out of host memory for bookkeeping is not an
 * error anything could recover from. Large blocks (weights, activations, caches) are the
 * backends' and their failures are returned (backend.h). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Per-thread buffers kept between calls, for hot loops (matrix-product panels, attention
 * blocks): slot k < THREAD_SCRATCH_SLOTS of the calling thread, at least n bytes, contents
 * undefined, freed when the thread exits. A malloc per call would cost a fresh mapping and its
 * page faults every time for blocks above the allocator's mmap threshold. */
#define THREAD_SCRATCH_SLOTS 3
void *thread_scratch(int slot, size_t n);

/* path opened for reading without blocking on it: open(2) of a FIFO waits for a writer and a
 * character device (/dev/zero) never ends, so anything but a regular file is refused with a
 * message naming what it is ("PATH: is a FIFO (named pipe), not WHAT"). The descriptor
 * (blocking again, close-on-exec) and its size, or -1 + qasr_fail(). */
int open_regular_file(const char *path, const char *what, size_t *size_out);

/* Read a whole regular file into a NUL-terminated buffer; NULL + qasr_fail() on error. */
char *read_file(const char *path, size_t *len_out);

/* read_file of UTF-8 text without NUL bytes (JSON, merges.txt): other files are refused. */
char *read_text_file(const char *path, size_t *len_out);

/* dir + "/" + name, malloc'd. */
char *path_join(const char *dir, const char *name);

/* Monotonic wall clock in seconds. */
double now_seconds(void);

/* bf16 <-> fp32. bf16 is the upper half of an IEEE fp32; rounding is round-to-nearest-even. */
static inline float bf16_to_f32(uint16_t h)
{
    union { uint32_t u; float f; } v = { .u = (uint32_t)h << 16 };
    return v.f;
}
static inline uint16_t f32_to_bf16(float f)
{
    union { uint32_t u; float f; } v = { .f = f };
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}
float f16_to_f32(uint16_t h);

#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
