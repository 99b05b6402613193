/* The measured precision plan kept per machine: the timings of auto (cpu_plan.h) in a small text
 * file under the user's cache directory, one file per key, the key naming everything the timings
 * depend on (CPU model, the ISA oneDNN uses, oneDNN's version, threads, the model's shapes), so
 * that a shared home directory serves different machines and models side by side. A file that
 * is missing, of another key, truncated or malformed is measured over; one that cannot be
 * written is gone without: neither fails a run. */
#ifndef QASR_CPU_PLAN_CACHE_H
#define QASR_CPU_PLAN_CACHE_H

#include <stddef.h>

#include "cpu_plan.h"

/* The cache directory: $QASR_CACHE_DIR (empty or "off": no cache), else $XDG_CACHE_HOME/qasr,
 * else $HOME/.cache/qasr. 0, or -1 when there is to be no cache. */
int plan_cache_dir(char *buf, size_t n);

/* The key of p's shapes on this machine (one line). */
void plan_cache_key(const cpu_plan_t *p, int threads, const char *isa, char *buf, size_t n);

/* The file of key in dir: dir/cpu-plan-<64-bit hash of the key>.txt. */
void plan_cache_path(const char *dir, const char *key, char *buf, size_t n);

/* p's timings from path when it holds them for key, every shape of p included: 0; else -1 and
 * p is as it was. */
int plan_cache_read(cpu_plan_t *p, const char *path, const char *key);

/* p's timings into path (dir created if missing) through a temporary file renamed over it, so a
 * reader never sees half a file. 0, or -1 + qasr_fail(). */
int plan_cache_write(const cpu_plan_t *p, const char *dir, const char *path, const char *key);

/* auto: the timings from the cache (dir NULL: none), else from measure() (then written to the
 * cache), then plan_decide. p->source says which, and why a cache was not written. */
typedef void (*plan_measure_fn)(cpu_plan_t *p, void *ctx);
void plan_auto(cpu_plan_t *p, const char *dir, const char *key, plan_measure_fn measure, void *ctx);

#endif
