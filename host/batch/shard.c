/* Sharding (rules in shard.h): "K/N" and the Slurm variables, the greedy split, shard file
 * names, and one task's plan over a loaded manifest. */
#include "shard.h"

#include "util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A decimal number >= 0 filling the whole string (no sign, no spaces): 0, else -1. */
static int parse_count(const char *s, long *out)
{
    if (!s || *s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v > INT_MAX) return -1;
    *out = v;
    return 0;
}

int shard_parse(const char *spec, shard_t *out)
{
    if (!strcmp(spec, "none")) {
        *out = (shard_t){ 0, 0 };
        return 0;
    }
    const char *slash = strchr(spec, '/');
    char k_text[32];
    long k, n;
    if (!slash || (size_t)(slash - spec) >= sizeof k_text)
        return qasr_fail("--shard '%s': expected K/N (this task's index K from 0 to N-1, N shards) or none", spec);
    memcpy(k_text, spec, (size_t)(slash - spec));
    k_text[slash - spec] = '\0';
    if (parse_count(k_text, &k) != 0 || parse_count(slash + 1, &n) != 0)
        return qasr_fail("--shard '%s': K and N must be whole numbers, as in 0/4", spec);
    if (n < 1 || n > SHARD_MAX) return qasr_fail("--shard '%s': N must be from 1 to %d", spec, SHARD_MAX);
    if (k >= n) return qasr_fail("--shard '%s': K must be from 0 to N-1 = %ld (shards count from 0)", spec, n - 1);
    *out = (shard_t){ (int)k, (int)n };
    return 0;
}

/* A Slurm variable as a count: 0 unset (*v = dflt), 1 set, -1 + qasr_fail if not a number. */
static int env_count(const char *name, long dflt, long *v)
{
    const char *s = getenv(name);
    *v = dflt;
    if (!s) return 0;
    if (parse_count(s, v) != 0) return qasr_fail("%s='%s' is not a whole number >= 0; pass --shard K/N", name, s);
    return 1;
}

static int array_shard(long count, shard_t *out, char *why, size_t why_len)
{
    long id, min, max, step;
    if (env_count("SLURM_ARRAY_TASK_ID", -1, &id) != 1 || env_count("SLURM_ARRAY_TASK_MIN", -1, &min) != 1)
        return qasr_fail("SLURM_ARRAY_TASK_COUNT=%ld but SLURM_ARRAY_TASK_ID or SLURM_ARRAY_TASK_MIN is missing or "
                         "not a number; pass --shard K/N", count);
    if (env_count("SLURM_ARRAY_TASK_STEP", 1, &step) < 0 || env_count("SLURM_ARRAY_TASK_MAX", -1, &max) < 0) return -1;
    if (step < 1) step = 1;
    const long last = min + (count - 1) * step;
    if (count > SHARD_MAX || id < min || (id - min) % step || id > last || (max >= 0 && max != last))
        return qasr_fail("job array task %ld of %ld tasks from %ld to %ld (step %ld) is not in a regular range "
                         "(--array=A-B or A-B:S), so its index does not give a shard; pass --shard K/N to each task",
                         id, count, min, max < 0 ? last : max, step);
    *out = (shard_t){ (int)((id - min) / step), (int)count };
    snprintf(why, why_len, "SLURM_ARRAY_TASK_ID=%ld, SLURM_ARRAY_TASK_MIN=%ld, SLURM_ARRAY_TASK_STEP=%ld, "
             "SLURM_ARRAY_TASK_COUNT=%ld", id, min, step, count);
    return 1;
}

int shard_from_env(shard_t *out, char *why, size_t why_len)
{
    long count, ntasks, procid;
    *out = (shard_t){ 0, 0 };
    if (env_count("SLURM_ARRAY_TASK_COUNT", 0, &count) < 0) return -1;
    if (count > 1) return array_shard(count, out, why, why_len);
    if (env_count("SLURM_NTASKS", 0, &ntasks) < 0) return -1;
    if (ntasks <= 1) return 0;
    if (!getenv("SLURM_STEP_ID"))
        return qasr_fail("SLURM_NTASKS=%ld, but this is the job's batch script, not one of its tasks (no "
                         "SLURM_STEP_ID): start qasr-batch with srun so that each task takes its shard, or pass "
                         "--shard K/N (--shard none: the whole manifest)", ntasks);
    if (env_count("SLURM_PROCID", -1, &procid) != 1 || procid >= ntasks || ntasks > SHARD_MAX)
        return qasr_fail("SLURM_NTASKS=%ld but SLURM_PROCID is missing or not in 0..%ld; pass --shard K/N", ntasks,
                         ntasks - 1);
    *out = (shard_t){ (int)procid, (int)ntasks };
    snprintf(why, why_len, "SLURM_PROCID=%ld, SLURM_NTASKS=%ld", procid, ntasks);
    return 1;
}

/* ---- the split ---- */

typedef struct {
    int64_t w;
    const char *id;
    size_t i;
} ranked_t;

static int heaviest_first(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->w != y->w) return x->w > y->w ? -1 : 1;
    const int c = strcmp(x->id, y->id); /* strcmp compares bytes as unsigned char */
    if (c) return c;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Weights are >= 0; a sum that would pass INT64_MAX stays there (sparse files can claim any size). */
static int64_t add_weight(int64_t a, int64_t b)
{
    int64_t s;
    return __builtin_add_overflow(a, b, &s) ? INT64_MAX : s;
}

/* Min-heap of shard indices by (load, index): the top is the shard the next item goes to. */
static int lighter(const int64_t *load, int a, int b) { return load[a] < load[b] || (load[a] == load[b] && a < b); }

static void sift_down(int *heap, int n, const int64_t *load, int i)
{
    for (;;) {
        int best = i, l = 2 * i + 1, r = l + 1;
        if (l < n && lighter(load, heap[l], heap[best])) best = l;
        if (r < n && lighter(load, heap[r], heap[best])) best = r;
        if (best == i) return;
        int t = heap[i];
        heap[i] = heap[best];
        heap[best] = t;
        i = best;
    }
}

void shard_assign(const int64_t *weights, const char *const *ids, size_t n, int n_shards, int *shard_of,
                  int64_t *loads)
{
    QASR_ASSERT(n_shards >= 1);
    ranked_t *r = xmalloc(MAX(1, n) * sizeof *r);
    for (size_t i = 0; i < n; i++) r[i] = (ranked_t){ weights[i], ids[i], i };
    qsort(r, n, sizeof *r, heaviest_first);
    int64_t *load = xcalloc((size_t)n_shards, sizeof *load);
    int *heap = xmalloc((size_t)n_shards * sizeof *heap);
    for (int s = 0; s < n_shards; s++) heap[s] = s; /* all loads 0: index order is a valid heap */
    for (size_t j = 0; j < n; j++) {
        const int s = heap[0];
        shard_of[r[j].i] = s;
        load[s] = add_weight(load[s], r[j].w);
        sift_down(heap, n_shards, load, 0); /* only the top grew */
    }
    if (loads) memcpy(loads, load, (size_t)n_shards * sizeof *loads);
    free(heap);
    free(load);
    free(r);
}

/* ---- file names ---- */

char *shard_output_path(const char *output, shard_t s)
{
    if (s.n == 0 || !strcmp(output, "-")) return xstrdup(output);
    const char *base = strrchr(output, '/');
    base = base ? base + 1 : output;
    const char *dot = strrchr(base, '.');
    const size_t stem = dot && dot > base ? (size_t)(dot - output) : strlen(output);
    char tag[48];
    const int t = snprintf(tag, sizeof tag, ".%d-of-%d", s.k, s.n);
    char *out = xmalloc(strlen(output) + (size_t)t + 1);
    memcpy(out, output, stem);
    memcpy(out + stem, tag, (size_t)t);
    strcpy(out + stem + t, output + stem);
    return out;
}

int shard_from_output_path(const char *path, shard_t *out)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    /* the last ".K-of-N" followed by "." or the end */
    for (const char *p = base + strlen(base); p > base; p--) {
        if (p[-1] != '.') continue;
        int k, n, len;
        if (sscanf(p, "%d-of-%d%n", &k, &n, &len) == 2 && (p[len] == '.' || !p[len]) && *p >= '0' &&
            *p <= '9' && k >= 0 && k < n && n <= SHARD_MAX) {
            *out = (shard_t){ k, n };
            return 1;
        }
    }
    return 0;
}

/* ---- one task's plan ---- */

/* Manifest durations in ms when every entry has one (1), else file sizes (0). */
static int entry_weights(const manifest_t *m, int64_t *w)
{
    int all = 1;
    for (size_t i = 0; i < m->n_entries && all; i++) all = m->entries[i].duration >= 0;
    for (size_t i = 0; i < m->n_entries; i++) {
        struct stat st;
        if (all)
            w[i] = llround(m->entries[i].duration * 1000.0);
        else
            w[i] = stat(m->entries[i].path, &st) == 0 ? (int64_t)st.st_size : 0;
    }
    return all;
}

shard_plan_t *shard_plan_new(const char *spec, const manifest_t *m)
{
    shard_plan_t *p = xcalloc(1, sizeof *p);
    p->n_entries = p->n_mine = m->n_entries;
    int rc = spec ? shard_parse(spec, &p->shard) : shard_from_env(&p->shard, p->why, sizeof p->why);
    if (rc < 0) {
        free(p);
        return NULL;
    }
    if (spec) snprintf(p->why, sizeof p->why, "--shard %s", spec);
    if (p->shard.n == 0) return p;
    int64_t *w = xmalloc(MAX(1, m->n_entries) * sizeof *w);
    const char **ids = xmalloc(MAX(1, m->n_entries) * sizeof *ids);
    for (size_t i = 0; i < m->n_entries; i++) ids[i] = m->entries[i].id;
    p->by_duration = entry_weights(m, w);
    p->shard_of = xmalloc(MAX(1, m->n_entries) * sizeof *p->shard_of);
    shard_assign(w, ids, m->n_entries, p->shard.n, p->shard_of, NULL);
    p->mine = xcalloc(MAX(1, m->n_entries), 1);
    p->n_mine = 0;
    for (size_t i = 0; i < m->n_entries; i++) {
        p->mine[i] = p->shard_of[i] == p->shard.k;
        p->n_mine += p->mine[i];
        p->weight_mine = add_weight(p->weight_mine, p->mine[i] ? w[i] : 0);
        p->weight_total = add_weight(p->weight_total, w[i]);
    }
    free(ids);
    free(w);
    return p;
}

int shard_plan_has(const shard_plan_t *p, size_t i) { return !p->mine || p->mine[i]; }

void shard_plan_describe(const shard_plan_t *p, char *buf, size_t n)
{
    if (p->shard.n == 0) {
        snprintf(buf, n, "not sharded: all %zu entries", p->n_entries);
        return;
    }
    if (p->by_duration)
        snprintf(buf, n, "shard %d/%d (from %s): %zu of %zu entries, %.2f of %.2f h of audio", p->shard.k, p->shard.n,
                 p->why, p->n_mine, p->n_entries, p->weight_mine / 3.6e6, p->weight_total / 3.6e6);
    else
        snprintf(buf, n, "shard %d/%d (from %s): %zu of %zu entries, %.3f of %.3f GB of audio files (balanced by "
                 "file size: not every manifest entry has a duration)", p->shard.k, p->shard.n, p->why, p->n_mine,
                 p->n_entries, p->weight_mine / 1e9, p->weight_total / 1e9);
}

void shard_plan_free(shard_plan_t *p)
{
    if (!p) return;
    free(p->mine);
    free(p->shard_of);
    free(p);
}
