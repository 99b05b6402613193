/* Sharding: K/N parsing, the Slurm environment rules, the greedy split (a hand-worked case,
 * ties by id in byte order, determinism under reordering, every item in exactly one shard,
 * balance within the largest weight), shard file names, and plans over real manifests (by
 * duration, by file size, an unstat-able file, the same split for a re-sorted manifest). */
#include "manifest.h"
#include "shard.h"
#include "util.h"

#include "test.h"

#include <stdint.h>
#include <stdlib.h>

static const char *tmp_dir;

/* ---- K/N ---- */

static void test_parse(void)
{
    shard_t s = { -1, -1 };
    CHECK_INT_EQ(shard_parse("0/1", &s), 0);
    CHECK(s.k == 0 && s.n == 1);
    CHECK_INT_EQ(shard_parse("3/4", &s), 0);
    CHECK(s.k == 3 && s.n == 4);
    CHECK_INT_EQ(shard_parse("999999/1000000", &s), 0);
    CHECK(s.k == 999999 && s.n == 1000000);
    CHECK_INT_EQ(shard_parse("none", &s), 0);
    CHECK(s.n == 0);
    static const char *const bad[] = { "", "4/4", "5/4", "-1/4", "1/0", "0/0", "a/4", "1/4x", " 1/4", "1/ 4",
                                       "1/", "/4", "1//4", "+1/4", "1/+4", "1", "1-of-4", "0/1000001",
                                       "99999999999999999999/4", "None", "1.0/4" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = (shard_t){ 7, 7 };
        const int rc = shard_parse(bad[i], &s);
        CHECK_INT_EQ(rc, -1);
        CHECK(s.k == 7 && s.n == 7); /* untouched on error */
        CHECK(strstr(qasr_last_error(), "--shard") != NULL);
        if (rc != -1) fprintf(stderr, "  accepted bad spec '%s'\n", bad[i]);
    }
    shard_parse("4/4", &s);
    CHECK(strstr(qasr_last_error(), "0 to N-1 = 3") != NULL);
    shard_parse("1/0", &s);
    CHECK(strstr(qasr_last_error(), "from 1 to") != NULL);
}

/* ---- the Slurm environment ---- */

static void clear_slurm(void)
{
    static const char *const vars[] = { "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
                                        "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_COUNT", "SLURM_NTASKS",
                                        "SLURM_PROCID", "SLURM_STEP_ID" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

/* An array task as sbatch --array sets it. */
static void set_array(const char *id, const char *min, const char *max, const char *step, const char *count)
{
    clear_slurm();
    setenv("SLURM_ARRAY_TASK_ID", id, 1);
    setenv("SLURM_ARRAY_TASK_MIN", min, 1);
    if (max) setenv("SLURM_ARRAY_TASK_MAX", max, 1);
    if (step) setenv("SLURM_ARRAY_TASK_STEP", step, 1);
    setenv("SLURM_ARRAY_TASK_COUNT", count, 1);
}

/* shard_from_env returns rc with shard k/n (when rc == 1). */
static void check_env(int rc_want, int k, int n, const char *why_has)
{
    shard_t s;
    char why[256] = "";
    const int rc = shard_from_env(&s, why, sizeof why);
    CHECK_INT_EQ(rc, rc_want);
    if (rc_want == 1) {
        CHECK_INT_EQ(s.k, k);
        CHECK_INT_EQ(s.n, n);
    }
    if (rc_want == 0) CHECK_INT_EQ(s.n, 0);
    const char *text = rc_want < 0 ? qasr_last_error() : why;
    CHECK(!why_has || strstr(text, why_has) != NULL);
    if (why_has && !strstr(text, why_has)) fprintf(stderr, "  \"%s\" lacks \"%s\"\n", text, why_has);
}

static void test_env(void)
{
    clear_slurm();
    check_env(0, 0, 0, NULL); /* not in Slurm */
    set_array("5", "4", "7", "1", "4"); /* --array=4-7, task 5 */
    check_env(1, 1, 4, "SLURM_ARRAY_TASK_ID=5");
    set_array("6", "0", "6", "2", "4"); /* --array=0-6:2: 0 2 4 6 */
    check_env(1, 3, 4, "SLURM_ARRAY_TASK_STEP=2");
    set_array("2", "0", NULL, NULL, "3"); /* no MAX, no STEP: step 1 */
    check_env(1, 2, 3, NULL);
    set_array("3", "0", "7", "1", "3"); /* --array=0,3,7 (seen in Slurm 22.05: step 1, max 7) */
    check_env(-1, 0, 0, "--shard K/N");
    set_array("7", "0", "7", "1", "3");
    check_env(-1, 0, 0, "not in a regular range");
    set_array("3", "0", "6", "2", "4"); /* an id off the step */
    check_env(-1, 0, 0, "--shard");
    set_array("x", "0", "3", "1", "4");
    check_env(-1, 0, 0, "SLURM_ARRAY_TASK_ID");
    set_array("1", "0", "3", "1", "4x");
    check_env(-1, 0, 0, "SLURM_ARRAY_TASK_COUNT='4x'");
    set_array("0", "0", "0", "1", "1"); /* a one-task array is not sharded */
    check_env(0, 0, 0, NULL);

    clear_slurm(); /* srun -n 4: task 2 */
    setenv("SLURM_NTASKS", "4", 1);
    setenv("SLURM_PROCID", "2", 1);
    setenv("SLURM_STEP_ID", "0", 1);
    check_env(1, 2, 4, "SLURM_PROCID=2, SLURM_NTASKS=4");
    setenv("SLURM_PROCID", "4", 1);
    check_env(-1, 0, 0, "SLURM_PROCID");
    unsetenv("SLURM_PROCID");
    check_env(-1, 0, 0, "SLURM_PROCID");
    setenv("SLURM_PROCID", "0", 1); /* the batch script of an sbatch -n 4 job: one process, not 4 */
    unsetenv("SLURM_STEP_ID");
    check_env(-1, 0, 0, "srun");
    setenv("SLURM_NTASKS", "1", 1);
    check_env(0, 0, 0, NULL);
    set_array("1", "0", "2", "1", "3"); /* an array task inside an -n 2 job: the array decides */
    setenv("SLURM_NTASKS", "2", 1);
    setenv("SLURM_PROCID", "0", 1);
    check_env(1, 1, 3, "ARRAY");
    clear_slurm();
}

/* ---- the split ---- */

static void test_assign_by_hand(void)
{
    /* LPT over 2 shards: 5 -> 0, 4 -> 1, 3 (c) -> 1 (4 < 5), 3 (d) -> 0 (5 < 7), 2 -> 1 (7 < 8). */
    const int64_t w[] = { 3, 2, 5, 3, 4 };
    const char *ids[] = { "c", "e", "a", "d", "b" };
    int got[5];
    int64_t loads[2];
    shard_assign(w, ids, 5, 2, got, loads);
    const int want[] = { 1, 1, 0, 0, 1 };
    for (int i = 0; i < 5; i++) CHECK_INT_EQ(got[i], want[i]);
    CHECK_INT_EQ(loads[0], 8);
    CHECK_INT_EQ(loads[1], 9);

    /* Equal weights: by id in byte order ("B" < "a" < "z" < "é"), alternating from shard 0. */
    const int64_t one[] = { 1, 1, 1, 1 };
    const char *ids2[] = { "z", "\xc3\xa9", "a", "B" };
    int got2[4];
    shard_assign(one, ids2, 4, 2, got2, NULL);
    CHECK_INT_EQ(got2[3], 0); /* B */
    CHECK_INT_EQ(got2[2], 1); /* a */
    CHECK_INT_EQ(got2[0], 0); /* z */
    CHECK_INT_EQ(got2[1], 1); /* é */

    /* More shards than items: one each, lowest indices first; the rest empty. */
    const int64_t w3[] = { 10, 30, 20 };
    const char *ids3[] = { "x", "y", "z" };
    int got3[3];
    int64_t loads3[5];
    shard_assign(w3, ids3, 3, 5, got3, loads3);
    CHECK(got3[1] == 0 && got3[2] == 1 && got3[0] == 2);
    CHECK(loads3[3] == 0 && loads3[4] == 0);

    shard_assign(NULL, NULL, 0, 3, NULL, loads3); /* nothing to split */
    CHECK(loads3[0] == 0 && loads3[1] == 0 && loads3[2] == 0);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_assign_random(void)
{
    enum { N_ITEMS = 5000 };
    int64_t *w = xmalloc(N_ITEMS * sizeof *w), *w2 = xmalloc(N_ITEMS * sizeof *w2);
    const char **ids = xmalloc(N_ITEMS * sizeof *ids), **ids2 = xmalloc(N_ITEMS * sizeof *ids2);
    char (*names)[16] = xmalloc(N_ITEMS * sizeof *names);
    int *got = xmalloc(N_ITEMS * sizeof *got), *got2 = xmalloc(N_ITEMS * sizeof *got2);
    size_t *perm = xmalloc(N_ITEMS * sizeof *perm);
    static const int shard_counts[] = { 1, 2, 3, 7, 64, 1000, 6000 };
    for (size_t t = 0; t < sizeof shard_counts / sizeof shard_counts[0]; t++) {
        const int n = shard_counts[t];
        int64_t wmax = 0, total = 0;
        for (int i = 0; i < N_ITEMS; i++) {
            /* durations in ms from 0.5 s to 20 min, heavy-tailed, with many exact ties */
            w[i] = (int64_t)(rnd() % 4 == 0 ? 500 + rnd() % 1200000 : 1000 * (1 + rnd() % 30));
            snprintf(names[i], sizeof names[i], "utt%05d", i);
            ids[i] = names[i];
            wmax = MAX(wmax, w[i]);
            total += w[i];
        }
        int64_t *loads = xcalloc((size_t)n, sizeof *loads);
        shard_assign(w, ids, N_ITEMS, n, got, loads);
        /* every item in exactly one shard, and the loads are its items' weights */
        int64_t *sum = xcalloc((size_t)n, sizeof *sum), lo = INT64_MAX, hi = 0, all = 0;
        int in_range = 1;
        for (int i = 0; i < N_ITEMS; i++) {
            in_range &= got[i] >= 0 && got[i] < n;
            if (got[i] >= 0 && got[i] < n) sum[got[i]] += w[i];
        }
        CHECK(in_range);
        int loads_match = 1;
        for (int k = 0; k < n; k++) {
            loads_match &= sum[k] == loads[k];
            lo = MIN(lo, sum[k]);
            hi = MAX(hi, sum[k]);
            all += sum[k];
        }
        CHECK(loads_match);
        CHECK_INT_EQ(all, total);
        /* LPT: when the heaviest shard took its last item it was the lightest */
        CHECK(hi - lo <= wmax);
        if (hi - lo > wmax) fprintf(stderr, "  %d shards: max %lld - min %lld > largest %lld\n", n, (long long)hi,
                                    (long long)lo, (long long)wmax);
        /* the same items in another order: each id lands in the same shard */
        for (int i = 0; i < N_ITEMS; i++) perm[i] = (size_t)i;
        for (int i = N_ITEMS - 1; i > 0; i--) {
            size_t j = rnd() % (uint64_t)(i + 1), x = perm[i];
            perm[i] = perm[j];
            perm[j] = x;
        }
        for (int i = 0; i < N_ITEMS; i++) {
            w2[i] = w[perm[i]];
            ids2[i] = ids[perm[i]];
        }
        shard_assign(w2, ids2, N_ITEMS, n, got2, NULL);
        int same = 1;
        for (int i = 0; i < N_ITEMS; i++) same &= got2[i] == got[perm[i]];
        CHECK(same);
        free(sum);
        free(loads);
    }
    free(perm);
    free(got2);
    free(got);
    free(names);
    free(ids2);
    free(ids);
    free(w2);
    free(w);
}

/* ---- file names ---- */

static void check_name(const char *output, int k, int n, const char *want)
{
    char *got = shard_output_path(output, (shard_t){ k, n });
    CHECK_STR_EQ(got, want);
    shard_t s;
    if (n > 0 && strcmp(output, "-")) {
        CHECK_INT_EQ(shard_from_output_path(got, &s), 1);
        CHECK(s.k == k && s.n == n);
    }
    free(got);
}

static void test_names(void)
{
    check_name("results.jsonl", 1, 4, "results.1-of-4.jsonl");
    check_name("out/results.jsonl", 0, 3, "out/results.0-of-3.jsonl");
    check_name("results", 2, 3, "results.2-of-3");
    check_name("run.d/results", 0, 2, "run.d/results.0-of-2");
    check_name("/a.b/c.tar.gz", 9, 10, "/a.b/c.tar.9-of-10.gz");
    check_name(".hidden", 0, 2, ".hidden.0-of-2");
    check_name("-", 1, 4, "-");
    check_name("results.jsonl", 0, 0, "results.jsonl");
    shard_t s;
    CHECK_INT_EQ(shard_from_output_path("results.jsonl", &s), 0);
    CHECK_INT_EQ(shard_from_output_path("results.4-of-4.jsonl", &s), 0);
    CHECK_INT_EQ(shard_from_output_path("results.1-of-4x.jsonl", &s), 0);
    CHECK_INT_EQ(shard_from_output_path("dir.1-of-4/results.jsonl", &s), 0);
    CHECK_INT_EQ(shard_from_output_path("results.1-of-4.jsonl.tmp", &s), 1);
}

/* ---- plans over manifests ---- */

static const char *write_tmp(const char *name, const char *text, size_t pad)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    char *buf = xcalloc(1, strlen(text) + pad + 1);
    strcpy(buf, text);
    memset(buf + strlen(text), 'x', pad);
    test_write_file(path, buf, strlen(text) + pad);
    free(buf);
    return path;
}

static manifest_t *load(const char *name, const char *text)
{
    manifest_t *m = manifest_load(write_tmp(name, text, 0), MANIFEST_TSV);
    if (!m) {
        fprintf(stderr, "%s\n", qasr_last_error());
        exit(1);
    }
    return m;
}

/* shard of each id in the plans k/n for every k; every entry in exactly one */
static void shards_of(const manifest_t *m, int n, int *out)
{
    for (size_t i = 0; i < m->n_entries; i++) out[i] = -1;
    for (int k = 0; k < n; k++) {
        char spec[32];
        snprintf(spec, sizeof spec, "%d/%d", k, n);
        shard_plan_t *p = shard_plan_new(spec, m);
        CHECK(p != NULL);
        if (!p) return;
        size_t mine = 0;
        for (size_t i = 0; i < m->n_entries; i++) {
            if (!shard_plan_has(p, i)) continue;
            CHECK(out[i] == -1);
            out[i] = k;
            mine++;
        }
        CHECK_INT_EQ(mine, p->n_mine);
        shard_plan_free(p);
    }
    for (size_t i = 0; i < m->n_entries; i++) CHECK(out[i] >= 0);
}

static int shard_of_id(const manifest_t *m, const int *of, const char *id)
{
    for (size_t i = 0; i < m->n_entries; i++)
        if (!strcmp(m->entries[i].id, id)) return of[i];
    return -1;
}

static void test_plans(void)
{
    /* durations everywhere: weights are ms; LPT by hand: c 30 -> 0, b 20 -> 1, d 12 -> 1 (20 < 30),
     * a 10 -> 0 (30 < 32), e 1 -> 1 (32 < 40) */
    manifest_t *m = load("d.tsv", "path\tid\tduration\na.wav\ta\t10\nb.wav\tb\t20\nc.wav\tc\t30\n"
                                  "d.wav\td\t12.0004\ne.wav\te\t1\n");
    int of[8];
    shards_of(m, 2, of);
    CHECK(of[0] == 0 && of[1] == 1 && of[2] == 0 && of[3] == 1 && of[4] == 1);
    shard_plan_t *p = shard_plan_new("1/2", m);
    CHECK(p && p->by_duration && p->n_mine == 3 && p->weight_mine == 33000 && p->weight_total == 73000);
    char msg[512];
    shard_plan_describe(p, msg, sizeof msg);
    CHECK(strstr(msg, "shard 1/2 (from --shard 1/2): 3 of 5 entries") != NULL);
    CHECK(strstr(msg, "h of audio") != NULL);
    shard_plan_free(p);

    /* the same entries in another order and with other line numbers: the same split */
    manifest_t *m2 = load("d2.tsv", "# re-sorted\npath\tduration\tid\n\ne.wav\t1\te\nd.wav\t12.0004\td\n"
                                    "b.wav\t20\tb\na.wav\t10\ta\nc.wav\t30\tc\n");
    int of2[8];
    shards_of(m2, 2, of2);
    int same = 1;
    for (size_t i = 0; i < m->n_entries; i++) same &= shard_of_id(m2, of2, m->entries[i].id) == of[i];
    CHECK(same);
    manifest_free(m2);
    manifest_free(m);

    /* one duration missing: file sizes (3000, 1000, 2000 bytes; gone.wav cannot be stat'ed: 0) */
    write_tmp("big.wav", "", 3000);
    write_tmp("small.wav", "", 1000);
    write_tmp("mid.wav", "", 2000);
    m = load("s.tsv", "path\tid\tduration\nsmall.wav\tsmall\t100\nbig.wav\tbig\t1\nmid.wav\tmid\t\n"
                      "gone.wav\tgone\t5\n");
    shards_of(m, 2, of); /* big -> 0, mid -> 1, small -> 1 (2000 < 3000), gone (0) -> 0 (a tie) */
    CHECK(of[0] == 1 && of[1] == 0 && of[2] == 1 && of[3] == 0);
    p = shard_plan_new("0/2", m);
    CHECK(p && !p->by_duration && p->weight_mine == 3000 && p->weight_total == 6000);
    shard_plan_describe(p, msg, sizeof msg);
    CHECK(strstr(msg, "file size") != NULL);
    shard_plan_free(p);

    /* not sharded: every entry is this task's */
    p = shard_plan_new("none", m);
    CHECK(p && p->shard.n == 0 && p->n_mine == m->n_entries && shard_plan_has(p, 3));
    shard_plan_free(p);
    CHECK(shard_plan_new("2/2", m) == NULL);
    clear_slurm();
    p = shard_plan_new(NULL, m); /* from the (empty) environment */
    CHECK(p && p->shard.n == 0);
    shard_plan_free(p);
    set_array("1", "0", "1", "1", "2");
    p = shard_plan_new(NULL, m);
    CHECK(p && p->shard.k == 1 && p->shard.n == 2 && p->n_mine == 2 && strstr(p->why, "SLURM_ARRAY_TASK_ID=1"));
    shard_plan_free(p);
    clear_slurm();
    manifest_free(m);
}

int main(void)
{
    tmp_dir = test_tmp_dir("shard");
    test_parse();
    test_env();
    test_assign_by_hand();
    test_assign_random();
    test_names();
    test_plans();
    return test_result("test_shard");
}
