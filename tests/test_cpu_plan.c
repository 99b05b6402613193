/* --precision auto's plan (cpu_plan.c, cpu_plan_cache.c): the decision from injected timings
 * (this machine may have no native bf16, so nothing real to time), the model's shapes, the cache
 * file (round trip, another key, every truncation, corrupt values, an unwritable directory, the
 * directory's environment variables), measuring only on a miss, and the backend's auto on this
 * CPU. */
#include <stdlib.h>
#include <unistd.h>

#include "backend_cpu.h"
#include "cpu_gemm_bf16.h"
#include "cpu_plan.h"
#include "cpu_plan_cache.h"
#include "test.h"
#include "util.h"

/* a model's dimensions (the 0.6B's, with a 1024-wide encoder so that one shape is shared) */
static model_config_t config(void)
{
    model_config_t c;
    memset(&c, 0, sizeof c);
    c.n_mels = 128, c.enc_d = 1024, c.enc_layers = 2, c.enc_heads = 16, c.enc_head_dim = 64, c.enc_ffn = 4096;
    c.enc_out = 1024, c.conv_ch = 480, c.n_window = 50, c.n_window_infer = 800, c.max_source_positions = 1500;
    c.vocab = 151936, c.dec_hidden = 1024, c.dec_inter = 3072, c.dec_layers = 2, c.dec_heads = 16;
    c.dec_kv_heads = 8, c.dec_head_dim = 128, c.head_rows = 151936;
    return c;
}

/* every shape timed alike: per row class fp32, packed bf16, plain bf16 */
static void set_all(cpu_plan_t *p, const double t[N_ROW_CLASSES][N_RUNS])
{
    for (int i = 0; i < p->n; i++) memcpy(p->m[i].t, t, sizeof p->m[i].t);
}

/* The machine (AVX512-BF16, no AMX): oneDNN's bf16 faster only at a row, the bf16 conv
 * faster; AMX: bf16 faster everywhere; a CPU where fp32 wins throughout; ties and gaps. */
static void test_decide(void)
{
    const model_config_t c = config();
    cpu_plan_t p;
    plan_shapes(&p, &c);
    CHECK_INT_EQ(p.n, 9); /* 5 encoder shapes, 5 decoder ones, 4096x1024 (fc1, qkv) in both */
    const plan_matrix_t *sq = plan_find(&p, 4096, 1024), *head = plan_find(&p, 151936, 1024);
    CHECK(sq && sq->roles == (ROLE_ENC | ROLE_DEC));
    CHECK(plan_find(&p, 1024, 1024) && plan_find(&p, 1024, 1024)->roles == ROLE_ENC);
    CHECK(head && head->roles == ROLE_DEC);
    CHECK(plan_find(&p, 1024, 480 * 16) && plan_find(&p, 1024, 480 * 16)->roles == ROLE_ENC);
    CHECK(plan_find(&p, 3072, 1024) && plan_find(&p, 6144, 1024) && plan_find(&p, 1024, 3072));
    CHECK(plan_find(&p, 7, 7) == NULL);
    CHECK_INT_EQ(p.conv_cin, 480);
    CHECK_INT_EQ(p.conv_hin, 64);
    CHECK_INT_EQ(p.conv_win, 50);

    CHECK_INT_EQ(plan_row_class(1), ROWS_FEW);
    CHECK_INT_EQ(plan_row_class(4), ROWS_FEW);
    CHECK_INT_EQ(plan_row_class(5), ROWS_SOME);
    CHECK_INT_EQ(plan_row_class(63), ROWS_SOME);
    CHECK_INT_EQ(plan_row_class(64), ROWS_MANY);
    CHECK_INT_EQ(plan_row_class(5000), ROWS_MANY);

    const double avx512[N_ROW_CLASSES][N_RUNS] = { { 2.0, 1.0, 1.5 }, { 3.0, 4.0, 5.0 }, { 10, 14, 16 } };
    set_all(&p, avx512);
    p.conv_t[0] = 1.3, p.conv_t[1] = 1.0;
    plan_decide(&p);
    for (int i = 0; i < p.n; i++) {
        CHECK_INT_EQ(p.m[i].pack, 0);
        CHECK_INT_EQ(p.m[i].run[ROWS_FEW], RUN_BF16_PLAIN);
        CHECK_INT_EQ(p.m[i].run[ROWS_SOME], RUN_FP32);
        CHECK_INT_EQ(p.m[i].run[ROWS_MANY], RUN_FP32);
    }
    CHECK_INT_EQ(p.any_bf16, 1);
    CHECK_INT_EQ(p.kv_bf16, 0);
    CHECK_INT_EQ(p.conv_bf16, 1);

    const double amx[N_ROW_CLASSES][N_RUNS] = { { 2.0, 1.0, 1.5 }, { 3.0, 1.0, 2.0 }, { 10, 3, 9 } };
    set_all(&p, amx);
    plan_decide(&p);
    for (int i = 0; i < p.n; i++) {
        CHECK_INT_EQ(p.m[i].pack, 1);
        for (int k = 0; k < N_ROW_CLASSES; k++) CHECK_INT_EQ(p.m[i].run[k], RUN_BF16_PACKED);
    }
    CHECK_INT_EQ(p.kv_bf16, 1);
    CHECK_INT_EQ(p.any_bf16, 1);

    /* packed faster at many rows only, plain never: fp32 at few rows keeps the weights plain */
    const double split[N_ROW_CLASSES][N_RUNS] = { { 1.0, 2.0, 3.0 }, { 3.0, 4.0, 5.0 }, { 10, 3, 12 } };
    set_all(&p, split);
    plan_decide(&p);
    for (int i = 0; i < p.n; i++) {
        CHECK_INT_EQ(p.m[i].pack, 0);
        for (int k = 0; k < N_ROW_CLASSES; k++) CHECK_INT_EQ(p.m[i].run[k], RUN_FP32);
    }
    CHECK_INT_EQ(p.any_bf16, 0);
    CHECK_INT_EQ(p.kv_bf16, 0);

    /* fp32 everywhere, ties included (a tie is the reference's), and missing timings lose */
    const double fp32[N_ROW_CLASSES][N_RUNS] = { { 1.0, 1.0, 1.0 }, { 3.0, 0.0, 0.0 }, { 10, 11, -1 } };
    set_all(&p, fp32);
    p.conv_t[0] = 1.0, p.conv_t[1] = 1.0;
    plan_decide(&p);
    for (int i = 0; i < p.n; i++)
        for (int k = 0; k < N_ROW_CLASSES; k++) CHECK_INT_EQ(p.m[i].run[k], RUN_FP32);
    CHECK_INT_EQ(p.any_bf16, 0);
    CHECK_INT_EQ(p.conv_bf16, 0);
    p.conv_t[0] = 0, p.conv_t[1] = 1.0; /* fp32 not timed: bf16 is not faster than nothing */
    plan_decide(&p);
    CHECK_INT_EQ(p.conv_bf16, 0);

    /* the KV cache follows the decoder alone: bf16 there with an fp32 encoder-only shape */
    set_all(&p, amx);
    plan_matrix_t *enc_only = (plan_matrix_t *)plan_find(&p, 3072, 1024);
    memcpy(enc_only->t, fp32, sizeof enc_only->t);
    plan_decide(&p);
    CHECK_INT_EQ(enc_only->pack, 0);
    CHECK_INT_EQ(p.kv_bf16, 1);
    /* and fp32 where one decoder shape is not bf16 throughout */
    memcpy(((plan_matrix_t *)head)->t, avx512, sizeof head->t);
    plan_decide(&p);
    CHECK_INT_EQ(head->run[ROWS_FEW], RUN_BF16_PLAIN);
    CHECK_INT_EQ(p.kv_bf16, 0);

    /* uniform plans: forced precisions */
    plan_uniform(&p, 0);
    CHECK(!p.any_bf16 && !p.kv_bf16 && !p.conv_bf16 && !p.other_bf16 && !p.m[0].pack && p.m[0].run[0] == RUN_FP32);
    plan_uniform(&p, 1);
    CHECK(p.any_bf16 && p.kv_bf16 && p.conv_bf16 && p.other_bf16 && p.m[0].pack && p.m[0].run[2] == RUN_BF16_PACKED);

    char buf[4096];
    set_all(&p, avx512);
    plan_decide(&p);
    snprintf(p.source, sizeof p.source, "test");
    plan_describe(&p, buf, sizeof buf);
    CHECK(strstr(buf, "precision plan (test)") != NULL);
    CHECK(strstr(buf, "151936 x 1024   (decoder): 1-4 rows bf16 (plain weights)") != NULL);
    char small[40];
    plan_describe(&p, small, sizeof small); /* cut short, still a string */
    CHECK(strlen(small) == sizeof small - 1 && !strcmp(small + sizeof small - 4, "..."));
}

/* ---- the cache ---- */

static int measured;
static const double *injected; /* [N_ROW_CLASSES][N_RUNS] for every shape */

static void fake_measure(cpu_plan_t *p, void *ctx)
{
    measured++;
    CHECK(ctx == &measured);
    set_all(p, (const double(*)[N_RUNS])injected);
    p->conv_t[0] = 2.0, p->conv_t[1] = 1.0;
}

static char *read_all(const char *path, size_t *n)
{
    char *s = read_text_file(path, n);
    if (!s) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    return s;
}

static void test_cache(void)
{
    const char *dir = test_tmp_dir("cpu_plan");
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", dir);
    CHECK(system(cmd) == 0);
    const model_config_t c = config();
    cpu_plan_t p, q;
    plan_shapes(&p, &c);
    char key[1024], other[1024], path[4200];
    plan_cache_key(&p, 2, "AVX512-BF16", key, sizeof key);
    plan_cache_key(&p, 3, "AVX512-BF16", other, sizeof other);
    CHECK(strcmp(key, other) != 0 && strstr(key, "threads=2") && strstr(key, "onednn=") && strstr(key, "151936x1024"));
    CHECK(!strchr(key, '\n'));
    plan_cache_path(dir, key, path, sizeof path);
    char other_path[4200];
    plan_cache_path(dir, other, other_path, sizeof other_path);
    CHECK(strcmp(path, other_path) != 0); /* one file per key */

    /* round trip */
    for (int i = 0; i < p.n; i++)
        for (int k = 0; k < N_ROW_CLASSES; k++)
            for (int r = 0; r < N_RUNS; r++) p.m[i].t[k][r] = 1e-4 * (i + 1) + 1e-6 * k + 1e-8 * r + 1.234567e-9;
    p.conv_t[0] = 0.0123, p.conv_t[1] = 0.0098;
    CHECK_INT_EQ(plan_cache_write(&p, dir, path, key), 0);
    plan_shapes(&q, &c);
    CHECK_INT_EQ(plan_cache_read(&q, path, key), 0);
    for (int i = 0; i < p.n; i++)
        for (int k = 0; k < N_ROW_CLASSES; k++)
            for (int r = 0; r < N_RUNS; r++) CHECK_NEAR(q.m[i].t[k][r], p.m[i].t[k][r], 0, 1e-8);
    CHECK_NEAR(q.conv_t[1], 0.0098, 0, 1e-8);

    /* another key: a miss, nothing changed; so is a prefix of the key */
    plan_shapes(&q, &c);
    CHECK_INT_EQ(plan_cache_read(&q, path, other), -1);
    CHECK(q.m[0].t[0][0] == 0);
    key[strlen(key) - 1] = '\0';
    CHECK_INT_EQ(plan_cache_read(&q, path, key), -1);
    plan_cache_key(&p, 2, "AVX512-BF16", key, sizeof key);
    /* another model's shapes: a miss */
    model_config_t c2 = c;
    c2.dec_inter = 6144;
    cpu_plan_t r;
    plan_shapes(&r, &c2);
    CHECK_INT_EQ(plan_cache_read(&r, path, key), -1);

    /* every truncation is a miss */
    size_t n;
    char *whole = read_all(path, &n);
    char cut[4200];
    snprintf(cut, sizeof cut, "%s/cut.txt", dir);
    int misses = 0;
    for (size_t len = 0; len < n; len++) {
        test_write_file(cut, whole, len);
        plan_shapes(&q, &c);
        misses += plan_cache_read(&q, cut, key) == -1;
    }
    CHECK_INT_EQ(misses, (long long)n);

    /* corrupt values, lines, bytes: misses */
    const char *bad[][2] = { { "conv 0.0123", "conv nan" }, { "conv 0.0123", "conv -1" }, { "conv 0.0123", "conv x" },
                             { "matrix 1024 1024", "matrix 1024 1025" }, { "end", "fin" },
                             { "qasr cpu precision plan 1", "qasr cpu precision plan 2" }, { "\nmatrix", "\nmatrix 1 2 3\nmatrix" },
                             { "conv 0.0123 0.0098", "conv 0.0123 0.0098 7" } };
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        char *at = strstr(whole, bad[b][0]);
        CHECK(at != NULL);
        if (!at) continue;
        char *s = xmalloc(n + 64);
        const size_t pre = (size_t)(at - whole);
        memcpy(s, whole, pre);
        strcpy(s + pre, bad[b][1]);
        strcat(s, at + strlen(bad[b][0]));
        test_write_file(cut, s, strlen(s));
        plan_shapes(&q, &c);
        CHECK_INT_EQ(plan_cache_read(&q, cut, key), -1);
        free(s);
    }
    test_write_file(cut, "\0\0\xff garbage", 11);
    CHECK_INT_EQ(plan_cache_read(&q, cut, key), -1);
    CHECK_INT_EQ(plan_cache_read(&q, "/nonexistent/dir/file", key), -1);
    free(whole);

    /* a directory that cannot be made (below a file): an error, nothing written, no crash */
    char under_file[4300];
    snprintf(under_file, sizeof under_file, "%s/sub", cut);
    char upath[4400];
    plan_cache_path(under_file, key, upath, sizeof upath);
    CHECK_INT_EQ(plan_cache_write(&p, under_file, upath, key), -1);
    CHECK(strstr(qasr_last_error(), "cannot create") != NULL);

    /* the flow: measure on a miss and keep it; a hit measures nothing; a corrupt file or another
     * key measures again; no cache or an unwritable one measures and decides all the same */
    const double avx512[N_ROW_CLASSES][N_RUNS] = { { 2.0, 1.0, 1.5 }, { 3.0, 4.0, 5.0 }, { 10, 14, 16 } };
    injected = &avx512[0][0];
    char fdir[4200];
    snprintf(fdir, sizeof fdir, "%s/flow/nested", dir);
    measured = 0;
    plan_shapes(&q, &c);
    plan_auto(&q, fdir, key, fake_measure, &measured);
    CHECK_INT_EQ(measured, 1);
    CHECK(strstr(q.source, "measured") && strstr(q.source, "kept in"));
    CHECK(q.m[0].run[ROWS_FEW] == RUN_BF16_PLAIN && q.m[0].run[ROWS_MANY] == RUN_FP32 && q.conv_bf16 && !q.kv_bf16);
    plan_shapes(&q, &c);
    plan_auto(&q, fdir, key, fake_measure, &measured);
    CHECK_INT_EQ(measured, 1);
    CHECK(strstr(q.source, "cached in") != NULL);
    CHECK(q.m[0].run[ROWS_FEW] == RUN_BF16_PLAIN && q.m[0].run[ROWS_MANY] == RUN_FP32 && q.conv_bf16 && !q.kv_bf16);
    plan_shapes(&q, &c);
    plan_auto(&q, fdir, other, fake_measure, &measured);
    CHECK_INT_EQ(measured, 2);
    char fpath[4300];
    plan_cache_path(fdir, key, fpath, sizeof fpath);
    test_write_file(fpath, "qasr cpu precision plan 1\nkey ", 30);
    plan_shapes(&q, &c);
    plan_auto(&q, fdir, key, fake_measure, &measured);
    CHECK_INT_EQ(measured, 3);
    plan_shapes(&q, &c);
    plan_auto(&q, fdir, key, fake_measure, &measured); /* rewritten whole */
    CHECK_INT_EQ(measured, 3);
    plan_shapes(&q, &c);
    plan_auto(&q, NULL, key, fake_measure, &measured);
    CHECK_INT_EQ(measured, 4);
    CHECK(strstr(q.source, "no cache") && q.m[0].run[ROWS_FEW] == RUN_BF16_PLAIN);
    plan_shapes(&q, &c);
    plan_auto(&q, under_file, key, fake_measure, &measured);
    CHECK_INT_EQ(measured, 5);
    CHECK(strstr(q.source, "not kept") && q.m[0].run[ROWS_FEW] == RUN_BF16_PLAIN);

    /* where the cache is */
    char d[4096];
    setenv("QASR_CACHE_DIR", "off", 1);
    CHECK_INT_EQ(plan_cache_dir(d, sizeof d), -1);
    setenv("QASR_CACHE_DIR", "", 1);
    CHECK_INT_EQ(plan_cache_dir(d, sizeof d), -1);
    setenv("QASR_CACHE_DIR", "/x/y", 1);
    CHECK(plan_cache_dir(d, sizeof d) == 0 && !strcmp(d, "/x/y"));
    unsetenv("QASR_CACHE_DIR");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    CHECK(plan_cache_dir(d, sizeof d) == 0 && !strcmp(d, "/xdg/qasr"));
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/u", 1);
    CHECK(plan_cache_dir(d, sizeof d) == 0 && !strcmp(d, "/home/u/.cache/qasr"));
    unsetenv("HOME");
    CHECK_INT_EQ(plan_cache_dir(d, sizeof d), -1);
}

/* The backend's auto on this CPU: without native bf16 fp32 throughout, measuring nothing (no
 * cache file appears); with it, a plan measured and kept. */
static void test_backend_auto(void)
{
    const char *dir = test_tmp_dir("cpu_plan_backend");
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", dir);
    CHECK(system(cmd) == 0);
    setenv("QASR_CACHE_DIR", dir, 1);
    const model_config_t c = config();
    const backend_params_t bp = { .threads = 2, .n_mels = 128, .precision = "auto", .config = &c };
    backend_ref_t bk;
    CHECK_INT_EQ(backend_cpu_kind.create(&bk, &bp), 0);
    const char *plan = bk.ops->plan(bk.be), *isa;
    printf("  %s\n  %s\n", bk.ops->describe(bk.be), plan);
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q cpu-plan", dir);
    if (!bf16_gemm_native(&isa)) {
        CHECK(strstr(plan, "no native bf16") != NULL);
        CHECK(strstr(bk.ops->describe(bk.be), "fp32 matrix products") != NULL);
        CHECK(system(cmd) != 0);
    } else {
        CHECK(strstr(plan, "measured") != NULL);
        CHECK(system(cmd) == 0);
    }
    CHECK_INT_EQ(bk.ops->kv_elem_bytes(bk.be), strstr(plan, "KV cache bf16") ? 2 : 4);
    bk.ops->destroy(bk.be);
    const backend_params_t forced = { .threads = 2, .n_mels = 128, .precision = "fp32", .config = &c };
    CHECK_INT_EQ(backend_cpu_kind.create(&bk, &forced), 0);
    CHECK(strstr(bk.ops->plan(bk.be), "precision plan (--precision fp32): conv stem fp32, KV cache fp32") != NULL);
    bk.ops->destroy(bk.be);
    unsetenv("QASR_CACHE_DIR");
}

int main(void)
{
    test_decide();
    test_cache();
    test_backend_auto();
    return test_result("test_cpu_plan");
}
