/* Sharding a manifest over N independent tasks (Slurm array tasks, nodes, or by hand).
 *
 * Every task loads the whole manifest and computes the same split, so no coordination is needed:
 * the weight of an entry is its manifest duration (milliseconds) when every entry has one, else
 * its file size in bytes (an entry whose file cannot be stat'ed weighs 0; its error line is
 * written by whichever shard it lands in). Entries are sorted by weight, heaviest first, ties by
 * id in byte order, and each goes to the shard with the least weight so far (ties: the lowest
 * index): greedy longest-processing-time. The order depends on the entries' content only, never
 * on their lines, so the same manifest gives the same split however it is re-sorted, and weights
 * are integers, so every machine adds them up exactly alike. The heaviest shard exceeds the
 * lightest by at most the largest single weight.
 *
 * Which shard this task is: "--shard K/N" (0 <= K < N), or without it, inside Slurm:
 *  - a job array of more than one task: K = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) /
 *    SLURM_ARRAY_TASK_STEP (step 1 when unset), N = SLURM_ARRAY_TASK_COUNT; an array that is
 *    not a regular range (--array=0,3,7) is refused, since its ids do not map onto 0..N-1;
 *  - else SLURM_NTASKS > 1 in a task started by srun (SLURM_STEP_ID set): K = SLURM_PROCID,
 *    N = SLURM_NTASKS. The batch script of such a job sees SLURM_NTASKS and SLURM_PROCID=0 too
 *    but is one process, not N: refused rather than silently doing shard 0 only;
 *  - else no sharding. "--shard none" turns the detection off. */
#ifndef QASR_SHARD_H
#define QASR_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "manifest.h"

#define SHARD_MAX 1000000 /* N at most this */

typedef struct {
    int k, n; /* this task is shard k of n; n == 0: not sharded */
} shard_t;

/* "K/N" or "none" (n = 0). -1 + qasr_fail() naming the problem. */
int shard_parse(const char *spec, shard_t *out);

/* The shard the Slurm environment implies (rules above): 0 with out->n = 0 when none does,
 * 1 with *out set and why = the variables it came from, -1 + qasr_fail() for an environment
 * that cannot be mapped onto shards. */
int shard_from_env(shard_t *out, char *why, size_t why_len);

/* Greedy LPT (above) of n items over n_shards: shard_of[i] in [0, n_shards). ids break ties
 * (then the index, for equal ids). loads (optional, n_shards): the total weight of each shard. */
void shard_assign(const int64_t *weights, const char *const *ids, size_t n, int n_shards, int *shard_of,
                  int64_t *loads);

/* The output of shard k of n: "results.jsonl" -> "results.k-of-n.jsonl", inserted before the
 * file name's last extension ("results" -> "results.k-of-n"); "-" (stdout) and n == 0 keep
 * the path. malloc'd. */
char *shard_output_path(const char *output, shard_t s);

/* The shard k of n in a file name made by shard_output_path: 1 and *out set, or 0. */
int shard_from_output_path(const char *path, shard_t *out);

/* One task's share of a manifest. */
typedef struct {
    shard_t shard;
    char why[256];          /* "--shard 1/4", or the Slurm variables it came from */
    unsigned char *mine;    /* [n_entries]: 1 for this shard's entries; NULL when not sharded */
    int *shard_of;          /* [n_entries]: every entry's shard; NULL when not sharded */
    size_t n_entries, n_mine;
    int by_duration;        /* weights are manifest durations in ms; else file sizes in bytes */
    int64_t weight_mine, weight_total;
} shard_plan_t;

/* spec: the --shard argument, or NULL to look at the Slurm environment. Computes the split of
 * m (n_mine = n_entries when not sharded). NULL + qasr_fail() for a bad spec or environment. */
shard_plan_t *shard_plan_new(const char *spec, const manifest_t *m);
/* Whether entry i is this task's. */
int shard_plan_has(const shard_plan_t *p, size_t i);
/* "shard 1/4 (from --shard 1/4): 25 of 100 entries, 2.31 of 9.20 h of audio" */
void shard_plan_describe(const shard_plan_t *p, char *buf, size_t n);
void shard_plan_free(shard_plan_t *p);

#endif
