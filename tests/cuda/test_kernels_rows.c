/* Row and element-wise kernels (norm.cu, act.cu, rows.cu), run on the CUDA emulation, against
 * the CPU backend's ops (host/cpu/backend_cpu.c) on identical bf16-valued inputs.
 *
 * Tolerances: the CPU reference is fp32 throughout; a kernel rounds to bf16 (8 significant bits,
 * unit roundoff u = 2^-8) at each rounding point of the official bf16 model, so k roundings allow
 * |got - ref| <= ((1 + u)^k - 1) |ref|, plus FP32 (1e-5 relative) for fp32 arithmetic that is
 * not bit-identical on both sides (accumulation order of row statistics, rsqrtf against
 * 1 / sqrtf, erff/expf against the CPU's polynomial versions). An absolute term appears only
 * where the op can cancel (LayerNorm's + b) or where the CPU's erf has an absolute error bound
 * (GELU); each is derived at its case. Copies and argmax must match exactly.
 * add_layernorm and add_rmsnorm are checked in their two steps: the sum against fp32 (one
 * rounding), the norm against the CPU's norm of the sum the kernel kept.
 * Shapes cover 1 row, odd widths (scalar paths), even widths (bf16x2 paths), widths that are not
 * multiples of the block or of 32, and misaligned (odd-element) views. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cuda/kernels/kernels.h"
#include "backend.h"
#include "util.h"
#include "../test.h"
#include "kernel_test.h"

#define FP32 1e-5   /* fp32 arithmetic that differs between the two sides, relative */

/* ---------------- helpers ---------------- */

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static float frand(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(xorshift64(&rng_state) >> 11) * 0x1p-53);
}

/* ---------------- norms ---------------- */

static void layernorm_case(int rows, int D, size_t offset)
{
    const size_t n = (size_t)rows * D;
    float *x = rand_bf16(n, -1.5f, 2.5f), *w = rand_bf16(D, 0.5f, 1.5f), *b = rand_bf16(D, -0.5f, 0.5f);
    float *want = ref.ops->scratch(ref.be, n), *got = ref.ops->scratch(ref.be, n);
    ref.ops->layernorm(ref.be, want, x, ref_weight(w, D), ref_weight(b, D), rows, D, 1e-5f);
    bf16_t *dx = to_dev(x, n, offset), *dw = to_dev(w, D, offset), *db = to_dev(b, D, offset);
    bf16_t *dout = dev_nan(n, offset);
    CHECK_INT_EQ(cuda_layernorm(dout, dx, dw, db, rows, D, 1e-5f, stream), cudaSuccess);
    from_dev(got, dout, n);
    char what[96];
    snprintf(what, sizeof what, "layernorm rows=%d D=%d%s", rows, D, offset ? " (unaligned)" : "");
    /* one rounding; (x - mean) inv w reaches |4 * 1.5| and + b cancels: fp32 noise is
     * FP32 * 8 absolute */
    compare(what, got, want, n, FP32 * 8, roundings(1));
    dev_free(dx, offset); dev_free(dw, offset); dev_free(db, offset); dev_free(dout, offset);
    ref.ops->scratch_release(ref.be, 0);
}

/* In place (out == x), as the backend may call it. */
static void rmsnorm_case(int rows, int D, int in_place)
{
    const size_t n = (size_t)rows * D;
    float *x = rand_bf16(n, -3.0f, 3.0f), *w = rand_bf16(D, 0.5f, 1.5f);
    float *want = ref.ops->scratch(ref.be, n), *got = ref.ops->scratch(ref.be, n);
    ref.ops->rmsnorm(ref.be, want, x, ref_weight(w, D), rows, D, 1e-6f);
    bf16_t *dx = to_dev(x, n, 0), *dw = to_dev(w, D, 0);
    bf16_t *dout = in_place ? dx : dev_nan(n, 0);
    CHECK_INT_EQ(cuda_rmsnorm(dout, dx, dw, rows, D, 1e-6f, stream), cudaSuccess);
    from_dev(got, dout, n);
    char what[96];
    snprintf(what, sizeof what, "rmsnorm rows=%d D=%d%s", rows, D, in_place ? " (in place)" : "");
    /* two roundings (the normalised value, then the product with w: MODEL.md 6.2) */
    compare(what, got, want, n, 0, roundings(2) + FP32);
    dev_free(dx, 0); dev_free(dw, 0);
    if (!in_place) dev_free(dout, 0);
    ref.ops->scratch_release(ref.be, 0);
}

/* x += delta, then out = layernorm(x) (out == delta: aliased, as the encoder calls it);
 * offset 1: the scalar path. */
static void add_layernorm_case(int rows, int D, int alias, size_t offset)
{
    const size_t n = (size_t)rows * D;
    float *x = rand_bf16(n, -1.5f, 2.5f), *delta = rand_bf16(n, -1.0f, 1.0f);
    float *w = rand_bf16(D, 0.5f, 1.5f), *b = rand_bf16(D, -0.5f, 0.5f);
    float *want_x = ref.ops->scratch(ref.be, n), *want = ref.ops->scratch(ref.be, n);
    float *got_x = ref.ops->scratch(ref.be, n), *got = ref.ops->scratch(ref.be, n);
    for (size_t i = 0; i < n; i++) want_x[i] = x[i] + delta[i];
    bf16_t *dx = to_dev(x, n, offset), *dd = to_dev(delta, n, offset);
    bf16_t *dw = to_dev(w, D, offset), *db = to_dev(b, D, offset), *dout = alias ? dd : dev_nan(n, offset);
    CHECK_INT_EQ(cuda_add_layernorm(dout, dx, dd, dw, db, rows, D, 1e-5f, stream), cudaSuccess);
    from_dev(got_x, dx, n);
    from_dev(got, dout, n);
    char what[96];
    snprintf(what, sizeof what, "add_layernorm rows=%d D=%d%s%s: the sum", rows, D, alias ? " (out = delta)" : "",
             offset ? " (unaligned)" : "");
    compare(what, got_x, want_x, n, 0, roundings(1)); /* rounded once more: the bf16 residual stream */
    /* the norm of the sum the kernel kept: as layernorm_case */
    ref.ops->layernorm(ref.be, want, got_x, ref_weight(w, D), ref_weight(b, D), rows, D, 1e-5f);
    snprintf(what, sizeof what, "add_layernorm rows=%d D=%d: the norm", rows, D);
    compare(what, got, want, n, FP32 * 8, roundings(1));
    dev_free(dx, offset); dev_free(dd, offset); dev_free(dw, offset); dev_free(db, offset);
    if (!alias) dev_free(dout, offset);
    ref.ops->scratch_release(ref.be, 0);
}

/* x += delta, then out = rmsnorm(x) (out == delta: aliased, as the decoder calls it; norm 0: the
 * add alone); offset 1: the scalar path. */
static void add_rmsnorm_case(int rows, int D, int alias, int norm, size_t offset)
{
    const size_t n = (size_t)rows * D;
    float *x = rand_bf16(n, -3.0f, 3.0f), *delta = rand_bf16(n, -1.0f, 1.0f), *w = rand_bf16(D, 0.5f, 1.5f);
    float *want_x = ref.ops->scratch(ref.be, n), *want = ref.ops->scratch(ref.be, n);
    float *got_x = ref.ops->scratch(ref.be, n), *got = ref.ops->scratch(ref.be, n);
    memcpy(want_x, x, n * sizeof *x);
    ref.ops->add_rmsnorm(ref.be, NULL, want_x, delta, NULL, rows, D, 1e-6f);
    bf16_t *dx = to_dev(x, n, offset), *dd = to_dev(delta, n, offset), *dw = norm ? to_dev(w, D, offset) : NULL;
    bf16_t *dout = !norm ? NULL : alias ? dd : dev_nan(n, offset);
    CHECK_INT_EQ(cuda_add_rmsnorm(dout, dx, dd, dw, rows, D, 1e-6f, stream), cudaSuccess);
    from_dev(got_x, dx, n);
    char what[96];
    snprintf(what, sizeof what, "add_rmsnorm rows=%d D=%d%s%s%s: the sum", rows, D, alias ? " (out = delta)" : "",
             norm ? "" : " (add only)", offset ? " (unaligned)" : "");
    compare(what, got_x, want_x, n, 0, roundings(1)); /* rounded once: the bf16 residual stream */
    if (norm) {
        /* the norm of the sum the kernel kept: two roundings, as rmsnorm */
        ref.ops->rmsnorm(ref.be, want, got_x, ref_weight(w, D), rows, D, 1e-6f);
        from_dev(got, dout, n);
        snprintf(what, sizeof what, "add_rmsnorm rows=%d D=%d: the norm", rows, D);
        compare(what, got, want, n, 0, roundings(2) + FP32);
    } else {
        from_dev(got, dd, n); /* delta untouched */
        compare("add_rmsnorm (add only): delta unchanged", got, delta, n, 0, 0);
    }
    dev_free(dx, offset); dev_free(dd, offset);
    if (dw) dev_free(dw, offset);
    if (dout && !alias) dev_free(dout, offset);
    ref.ops->scratch_release(ref.be, 0);
}

/* ---------------- activations ---------------- */

static void gelu_case(size_t n, size_t offset)
{
    float *x = rand_bf16(n, -6.0f, 6.0f);
    float *want = ref.ops->scratch(ref.be, n), *got = ref.ops->scratch(ref.be, n);
    memcpy(want, x, n * sizeof *x);
    ref.ops->gelu(ref.be, want, n);
    bf16_t *dx = to_dev(x, n, offset);
    CHECK_INT_EQ(cuda_gelu(dx, (int64_t)n, stream), cudaSuccess);
    from_dev(got, dx, n);
    char what[96];
    snprintf(what, sizeof what, "gelu n=%zu%s", n, offset ? " (unaligned)" : "");
    /* one rounding; the CPU's erf is within 1.5e-7 absolute, so its GELU within
     * 0.5 * 6 * 1.5e-7 = 4.5e-7 absolute on [-6, 6] */
    compare(what, got, want, n, 4.5e-7, roundings(1) + FP32);
    dev_free(dx, offset);
    ref.ops->scratch_release(ref.be, 0);
}

static void swiglu_case(int rows, int Dff, size_t offset)
{
    const size_t n = (size_t)rows * Dff;
    float *gu = rand_bf16(2 * n, -8.0f, 8.0f);
    float *want = ref.ops->scratch(ref.be, n), *got = ref.ops->scratch(ref.be, n);
    ref.ops->swiglu(ref.be, want, gu, rows, Dff);
    bf16_t *dgu = to_dev(gu, 2 * n, offset), *dout = dev_nan(n, offset);
    CHECK_INT_EQ(cuda_swiglu(dout, dgu, rows, Dff, stream), cudaSuccess);
    from_dev(got, dout, n);
    char what[96];
    snprintf(what, sizeof what, "swiglu rows=%d Dff=%d%s", rows, Dff, offset ? " (unaligned)" : "");
    /* two roundings: silu(gate), then the product with up (MODEL.md 12.8) */
    compare(what, got, want, n, 0, roundings(2) + FP32);
    dev_free(dgu, offset); dev_free(dout, offset);
    ref.ops->scratch_release(ref.be, 0);
}

/* ---------------- embed, gather ---------------- */

static void rand_ids(int *ids, int n, int rows)
{
    for (int i = 0; i < n; i++) ids[i] = (int)frand(0.0f, (float)rows) % rows;
    ids[0] = rows - 1; /* the last row is reached */
}

static void embed_case(int vocab, int n, int D, size_t offset)
{
    /* the table is a weight, as the CPU embed op requires (bf16 matrix kept as bf16) */
    float *h_table = rand_bf16((size_t)vocab * D, -1.0f, 1.0f);
    uint16_t *h_table16 = xmalloc((size_t)vocab * D * sizeof *h_table16);
    for (size_t i = 0; i < (size_t)vocab * D; i++) h_table16[i] = f32_to_bf16(h_table[i]);
    weight_t *table = ref.ops->weight_alloc(ref.be, (size_t)vocab * D, WEIGHT_TABLE, DTYPE_BF16);
    ref.ops->weight_upload(ref.be, table, 0, h_table16, DTYPE_BF16, (size_t)vocab * D);
    int *ids = xmalloc((size_t)n * sizeof *ids);
    rand_ids(ids, n, vocab);
    float *want = ref.ops->scratch(ref.be, (size_t)n * D), *got = ref.ops->scratch(ref.be, (size_t)n * D);
    ref.ops->embed(ref.be, want, table, ref.ops->ints(ref.be, ids, n), n, D);
    /* every third row names its id through the previous step's argmax ids: -(k + 1) for prev[k]
     * (k in reverse row order); the prev entries no row names hold other ids */
    int *coded = xmalloc((size_t)n * sizeof *coded), *prev = xmalloc((size_t)n * sizeof *prev);
    for (int r = 0; r < n; r++) {
        const int k = n - 1 - r;
        coded[r] = r % 3 == 1 ? -(k + 1) : ids[r];
        prev[k] = r % 3 == 1 ? ids[r] : (ids[r] + 1) % vocab;
    }
    bf16_t *dtable = to_dev(h_table, (size_t)vocab * D, offset), *dout = dev_nan((size_t)n * D, offset);
    int *dids = ints_to_dev(coded, n), *dprev = ints_to_dev(prev, n);
    CHECK_INT_EQ(cuda_embed(dout, dtable, dids, dprev, n, D, stream), cudaSuccess);
    from_dev(got, dout, (size_t)n * D);
    char what[96];
    snprintf(what, sizeof what, "embed vocab=%d n=%d D=%d%s", vocab, n, D, offset ? " (unaligned)" : "");
    compare(what, got, want, (size_t)n * D, 0, 0);
    dev_free(dtable, offset); dev_free(dout, offset); cudaFree(dids); cudaFree(dprev);
    free(h_table16); free(ids); free(coded); free(prev);
    ref.ops->scratch_release(ref.be, 0);
}

static void gather_case(int rows, int n, int D, size_t offset)
{
    float *in = rand_bf16((size_t)rows * D, -1.0f, 1.0f);
    int *idx = xmalloc((size_t)n * sizeof *idx);
    rand_ids(idx, n, rows);
    float *want = ref.ops->scratch(ref.be, (size_t)n * D), *got = ref.ops->scratch(ref.be, (size_t)n * D);
    ref.ops->gather_rows(ref.be, want, in, ref.ops->ints(ref.be, idx, n), n, D);
    bf16_t *din = to_dev(in, (size_t)rows * D, offset), *dout = dev_nan((size_t)n * D, 0);
    int *didx = ints_to_dev(idx, n);
    CHECK_INT_EQ(cuda_gather_rows(dout, din, didx, n, D, stream), cudaSuccess);
    from_dev(got, dout, (size_t)n * D);
    char what[96];
    snprintf(what, sizeof what, "gather_rows rows=%d n=%d D=%d%s", rows, n, D, offset ? " (unaligned)" : "");
    compare(what, got, want, (size_t)n * D, 0, 0);
    dev_free(din, offset); dev_free(dout, 0); cudaFree(didx);
    free(idx);
    ref.ops->scratch_release(ref.be, 0);
}

/* ---------------- argmax ---------------- */

/* Runs the kernel on logits [n][V] (bf16 values) and checks every row against `expect`. */
static void argmax_check(const char *what, const float *logits, int n, int V, size_t offset, const int *expect)
{
    bf16_t *dl = to_dev(logits, (size_t)n * V, offset);
    int *dids = NULL, *got = xmalloc((size_t)n * sizeof *got);
    dids = dev_alloc((size_t)n * sizeof *dids); /* -1 where unwritten */
    const size_t work_bytes = cuda_argmax_work_bytes(n, V);
    void *work = dev_alloc(work_bytes); /* partials: NaN / -1 where unwritten */
    CHECK_INT_EQ(cuda_argmax(dids, dl, n, V, work, work_bytes, stream), cudaSuccess);
    CHECK_INT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(got, dids, (size_t)n * sizeof *got, cudaMemcpyDeviceToHost), cudaSuccess);
    int wrong = 0;
    for (int r = 0; r < n; r++)
        if (got[r] != expect[r] && wrong++ == 0)
            fprintf(stderr, "  %s: row %d: got %d, expected %d\n", what, r, got[r], expect[r]);
    printf("  %-44s %d rows, %d wrong\n", what, n, wrong);
    CHECK(wrong == 0);
    dev_free(dl, offset); cudaFree(dids); cudaFree(work); free(got);
}

/* Random rows (bf16 rounding of a narrow range makes exact ties frequent), with -inf and NaN
 * planted away from index 0 when `plant`; the expectation is the CPU op's. */
static void argmax_case(int n, int V, size_t offset, int plant)
{
    float *l = rand_bf16((size_t)n * V, -4.0f, 4.0f);
    for (int r = 0; r < n; r++) {
        float *row = l + (size_t)r * V;
        if (V >= 3 && plant) {
            row[V / 2] = -INFINITY;
            row[1 + (r % (V - 1))] = NAN; /* never index 0: see argmax_nan_first */
        }
        if (V >= 4 && r % 2 == 1) { /* an exact tie for the maximum, the later copy far away */
            int best = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            row[V - 1] = row[best];
            if (best == V - 1) row[0] = row[best];
        }
    }
    int *want = xmalloc((size_t)n * sizeof *want);
    ref.ops->argmax(ref.be, want, l, n, V);
    char what[96];
    snprintf(what, sizeof what, "argmax n=%d V=%d%s%s", n, V, offset ? " (unaligned)" : "", plant ? "" : " (no NaN)");
    argmax_check(what, l, n, V, offset, want);
    free(want);
    ref.ops->scratch_release(ref.be, 0);
}

/* Exact ties for the maximum across the blocks of the first pass (8192 logits each, in 16-byte
 * words from the row's first 16-byte boundary; the head before it and the tail after the last
 * whole word go to block 0): in two blocks; in the tail and the last block; near the start (the
 * head when the row is unaligned) and in the middle; the maximum alone at the last index (the
 * tail when there is one). Expected indices by construction; the CPU op must agree. */
static void argmax_split(int V, size_t offset)
{
    enum { N = 4 };
    float *l = rand_bf16((size_t)N * V, -4.0f, 4.0f);
    int expect[N], want[N];
    l[0 * V + 8192 + 5] = l[0 * V + 8192 * 2 + 3] = 8.0f;
    expect[0] = 8192 + 5;
    l[1 * V + V - 9] = l[1 * V + V - 1] = 8.0f;
    expect[1] = V - 9;
    l[2 * V + 3] = l[2 * V + V / 2] = 8.0f;
    expect[2] = 3;
    l[3 * V + V - 1] = 8.0f;
    expect[3] = V - 1;
    ref.ops->argmax(ref.be, want, l, N, V);
    for (int r = 0; r < N; r++) CHECK_INT_EQ(want[r], expect[r]);
    char what[96];
    snprintf(what, sizeof what, "argmax ties across blocks V=%d%s", V, offset ? " (unaligned)" : "");
    argmax_check(what, l, N, V, offset, expect);
    ref.ops->scratch_release(ref.be, 0);
}

/* Rows the CPU op cannot judge: its strict ">" scan keeps a NaN at index 0 forever, whereas NaN
 * must never win. Expected values written out. */
static void argmax_special(void)
{
    enum { V = 40, N = 5 };
    float *l = ref.ops->scratch(ref.be, (size_t)N * V);
    for (int i = 0; i < N * V; i++) l[i] = -2.0f;
    int expect[N];
    l[0 * V + 0] = NAN; /* NaN first, then a tie */
    l[0 * V + 7] = l[0 * V + 9] = 1.0f;
    expect[0] = 7;
    for (int v = 0; v < V; v++) l[1 * V + v] = NAN; /* all NaN */
    expect[1] = 0;
    for (int v = 0; v < V; v++) l[2 * V + v] = -INFINITY; /* all -inf */
    expect[2] = 0;
    for (int v = 0; v < V; v++) l[3 * V + v] = v % 2 || v == 0 ? NAN : -INFINITY; /* -inf beats NaN */
    expect[3] = 2;
    l[4 * V + 38] = NAN; /* +inf last, after a NaN */
    l[4 * V + 39] = INFINITY;
    expect[4] = 39;
    argmax_check("argmax NaN / inf rows", l, N, V, 0, expect);
    ref.ops->scratch_release(ref.be, 0);
}

int main(void)
{
    require_device();
    CHECK_INT_EQ(backend_cpu_create(&ref, 1, 128, PRECISION_FP32), 0);
    CHECK_INT_EQ(cudaStreamCreate(&stream), cudaSuccess);

    layernorm_case(1, 1, 0);
    layernorm_case(3, 33, 0);
    layernorm_case(2, 100, 0);
    layernorm_case(5, 896, 0);
    layernorm_case(2, 1024, 1);

    add_layernorm_case(1, 1, 0, 0);
    add_layernorm_case(3, 33, 0, 0);
    add_layernorm_case(5, 896, 1, 0);  /* 0.6B's encoder, as the encoder calls it */
    add_layernorm_case(2, 1024, 1, 0); /* 1.7B's */
    add_layernorm_case(2, 1024, 0, 1);

    rmsnorm_case(1, 1, 0);
    rmsnorm_case(4, 127, 0);
    rmsnorm_case(3, 1024, 0);
    rmsnorm_case(2, 2048, 1);

    add_rmsnorm_case(1, 1, 0, 1, 0);
    add_rmsnorm_case(4, 127, 0, 1, 0);
    add_rmsnorm_case(3, 1024, 1, 1, 0);  /* 0.6B, as the decoder calls it */
    add_rmsnorm_case(2, 2048, 1, 1, 0);  /* 1.7B */
    add_rmsnorm_case(2, 1024, 0, 1, 1);
    add_rmsnorm_case(3, 1024, 0, 0, 0);  /* the last layer: the residual alone */


    gelu_case(1, 0);
    gelu_case(7, 0);
    gelu_case(4096 + 3, 0);
    gelu_case(100, 1);
    gelu_case(2 * 1024 * 256 + 5, 0); /* more pairs than the capped grid has threads: grid-stride */

    swiglu_case(1, 1, 0);
    swiglu_case(3, 37, 0);
    swiglu_case(4, 3072, 0);
    swiglu_case(2, 100, 1);

    embed_case(50, 1, 1, 0);
    embed_case(50, 7, 6, 0);   /* 4-byte words */
    embed_case(50, 9, 64, 0);  /* 16-byte words */
    embed_case(300, 4, 1024, 1);
    gather_case(20, 1, 3, 0);
    gather_case(20, 13, 896, 0);
    gather_case(20, 5, 10, 1);

    argmax_case(1, 1, 0, 1);
    argmax_case(3, 31, 0, 1);
    argmax_case(4, 33, 0, 1);
    argmax_case(6, 1000, 0, 1);
    argmax_case(2, 4097, 0, 1);
    argmax_case(3, 2048, 1, 1);
    argmax_case(1, 151936, 0, 1);   /* the vocabulary: 19 blocks of the first pass */
    argmax_case(3, 151939, 0, 1);   /* V % 8 != 0: each row's head and tail differ */
    argmax_case(2, 8192 * 8 + 1, 1, 0);
    argmax_case(1, 7, 1, 0);        /* head and tail only */
    argmax_case(512, 203, 0, 0);    /* a decode step's batch of rows */
    argmax_split(8192 * 3 + 3, 0);
    argmax_split(8192 * 3, 1);
    argmax_special();

    cudaStreamDestroy(stream);
    ref.ops->destroy(ref.be);
    return test_result("test_kernels_rows");
}
