/* The precision plan's cache file (contract in cpu_plan_cache.h). Format, text:
 *   qasr cpu precision plan 1
 *   key <the key>
 *   matrix N K  then per row class the seconds of fp32, bf16 packed, bf16 plain (9 numbers)
 *   conv <fp32 seconds> <bf16 seconds>
 *   end
 * Timings, not choices: the decision is made afresh from them (cpu_plan.c). */
#include "cpu_plan_cache.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <oneapi/dnnl/dnnl.h>

#include "util.h"

#define MAGIC "qasr cpu precision plan 1"
#define LINE 2048

int plan_cache_dir(char *buf, size_t n)
{
    const char *d = getenv("QASR_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (d) {
        if (!*d || !strcmp(d, "off")) return -1;
        snprintf(buf, n, "%s", d);
    } else if (x && *x) {
        snprintf(buf, n, "%s/qasr", x);
    } else if (h && *h) {
        snprintf(buf, n, "%s/.cache/qasr", h);
    } else {
        return -1;
    }
    return 0;
}

static void cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            const char *v = strchr(line, ':') + 1;
            while (*v == ' ' || *v == '\t') v++;
            snprintf(buf, n, "%s", v);
            buf[strcspn(buf, "\r\n")] = '\0';
            break;
        }
    fclose(f);
}

void plan_cache_key(const cpu_plan_t *p, int threads, const char *isa, char *buf, size_t n)
{
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    const dnnl_version_t *v = dnnl_version();
    size_t at = (size_t)snprintf(buf, n, "cpu=%s; isa=%s; onednn=%d.%d.%d %s; threads=%d; conv=%dx%dx%dx%d; shapes=",
                                 cpu, isa, v->major, v->minor, v->patch, v->hash, threads, p->conv_cin, p->conv_n,
                                 p->conv_hin, p->conv_win);
    for (int i = 0; i < p->n && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%dx%d", i ? "," : "", p->m[i].N, p->m[i].K);
}

void plan_cache_path(const char *dir, const char *key, char *buf, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *s = (const unsigned char *)key; *s; s++) h = (h ^ *s) * 1099511628211ull;
    snprintf(buf, n, "%s/cpu-plan-%016llx.txt", dir, (unsigned long long)h);
}

/* a timing as written: finite, >= 0 (0: not measured) */
static int timing_ok(double t) { return isfinite(t) && t >= 0 && t < 1e6; }

int plan_cache_read(cpu_plan_t *p, const char *path, const char *key)
{
    /* only a regular file: a FIFO or device put there must not block or flood the load */
    const int fd = open_regular_file(path, "a cache file", NULL);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        if (fd >= 0) close(fd);
        return -1;
    }
    cpu_plan_t q = *p;
    int seen[PLAN_MAX_MATRICES] = { 0 }, conv = 0, end = 0, ok = 1;
    char line[LINE];
    if (!fgets(line, sizeof line, f) || strcmp(line, MAGIC "\n") != 0) ok = 0;
    if (ok && (!fgets(line, sizeof line, f) || strncmp(line, "key ", 4) != 0 ||
               strlen(line) != strlen(key) + 5 || strncmp(line + 4, key, strlen(key)) != 0 ||
               line[strlen(key) + 4] != '\n'))
        ok = 0;
    while (ok && !end && fgets(line, sizeof line, f)) {
        int N, K, used = 0;
        double t[N_ROW_CLASSES * N_RUNS], a, b;
        if (sscanf(line, "matrix %d %d%n", &N, &K, &used) == 2) {
            const char *s = line + used;
            for (int i = 0; ok && i < N_ROW_CLASSES * N_RUNS; i++) {
                char *e;
                t[i] = strtod(s, &e);
                if (e == s || !timing_ok(t[i])) ok = 0;
                s = e;
            }
            while (*s == ' ') s++;
            const plan_matrix_t *m = plan_find(&q, N, K);
            if (!ok || *s != '\n' || !m) {
                ok = 0;
                break;
            }
            const int i = (int)(m - q.m);
            memcpy(q.m[i].t, t, sizeof t);
            seen[i] = 1;
        } else if (sscanf(line, "conv %lf %lf%n", &a, &b, &used) == 2 && line[used] == '\n' && timing_ok(a) &&
                   timing_ok(b)) {
            q.conv_t[0] = a, q.conv_t[1] = b;
            conv = 1;
        } else if (!strcmp(line, "end\n")) {
            end = 1;
        } else {
            ok = 0;
        }
    }
    fclose(f);
    for (int i = 0; i < q.n; i++) ok &= seen[i];
    if (!ok || !conv || !end) return -1;
    *p = q;
    return 0;
}

static int mkdirs(const char *dir)
{
    char d[4096];
    snprintf(d, sizeof d, "%s", dir);
    for (char *s = d + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(d, 0755) != 0 && errno != EEXIST) return -1;
            *s = '/';
        }
    return mkdir(d, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int plan_cache_write(const cpu_plan_t *p, const char *dir, const char *path, const char *key)
{
    if (mkdirs(dir) != 0) return qasr_fail("cannot create %s: %s", dir, strerror(errno));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return qasr_fail("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, MAGIC "\nkey %s\n", key);
    for (int i = 0; i < p->n; i++) {
        const plan_matrix_t *m = &p->m[i];
        fprintf(f, "matrix %d %d", m->N, m->K);
        for (int c = 0; c < N_ROW_CLASSES; c++)
            for (int r = 0; r < N_RUNS; r++) fprintf(f, " %.9g", m->t[c][r] > 0 ? m->t[c][r] : 0.0);
        fputc('\n', f);
    }
    fprintf(f, "conv %.9g %.9g\nend\n", p->conv_t[0] > 0 ? p->conv_t[0] : 0.0, p->conv_t[1] > 0 ? p->conv_t[1] : 0.0);
    const int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        const int e = errno;
        unlink(tmp);
        return qasr_fail("cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

void plan_auto(cpu_plan_t *p, const char *dir, const char *key, plan_measure_fn measure, void *ctx)
{
    char path[4096] = "";
    if (dir) plan_cache_path(dir, key, path, sizeof path);
    if (dir && plan_cache_read(p, path, key) == 0) {
        snprintf(p->source, sizeof p->source, "auto, timings cached in %.180s", path);
    } else {
        const double t0 = now_seconds();
        measure(p, ctx);
        const double took = now_seconds() - t0;
        if (!dir)
            snprintf(p->source, sizeof p->source, "auto, measured in %.2f s; no cache", took);
        else if (plan_cache_write(p, dir, path, key) == 0)
            snprintf(p->source, sizeof p->source, "auto, measured in %.2f s, kept in %.180s", took, path);
        else
            snprintf(p->source, sizeof p->source, "auto, measured in %.2f s; not kept: %.200s", took, qasr_last_error());
    }
    plan_decide(p);
}
