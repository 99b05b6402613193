/* Timing the precision plan's candidates (contract in cpu_plan_measure.h).
 *
 * What runs is what the backend would run: gemm_xwt on plain bf16 weights (fp32), oneDNN's
 * matmul on weights packed as bf16_weight_pack packs them, and on plain weights; the conv stem's
 * im2col + sgemm against oneDNN's bf16 convolution. The weights are synthetic (values do not
 * change the speed) but of the model's shapes, and a decode step streams every weight from
 * memory, so products cycle through copies filling an arena several times the size of a big
 * last-level cache: a matrix timed from cache would flatter the bytes-bound row counts. A matrix
 * larger than CAP_ELEMS (an LM head) is timed on its first rows, its time scaled to all of them.
 * Cost: per shape, row class and candidate, one warm-up call (oneDNN makes its primitive) and
 * calls for MIN_SECONDS: about 0.5-1 s for a model's 11 shapes, once per machine (cached). */
#include "cpu_plan_measure.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_conv.h"
#include "cpu_conv_dnnl.h"
#include "cpu_gemm.h"
#include "cpu_gemm_bf16.h"
#include "util.h"

#define ARENA_ELEMS ((size_t)96 << 20) /* 192 MB of bf16 weights cycled through */
#define CAP_ELEMS ((size_t)8 << 20)    /* a matrix timed on up to 16 MB of it */
#define MAX_WINDOWS 64
#define MIN_SECONDS 0.005
#define MAX_REPS 200

typedef struct {
    bf16_gemm_t *g;
    int run, M, K, N, n_win;
    uint16_t *win[MAX_WINDOWS];
    bf16_weight_t *h[MAX_WINDOWS]; /* the windows as oneDNN reads them (plain or packed) */
    const float *x;
    float *out;
} product_t;

static void product(const product_t *q, int i)
{
    if (q->run == RUN_FP32)
        gemm_xwt(q->out, q->x, q->win[i], 1, NULL, q->M, q->K, q->N, 0);
    else
        gemm_bf16_xwt(q->g, q->out, q->x, q->h[i], NULL, q->M, 0);
}

/* seconds per product: one warm-up, then calls cycling the windows for MIN_SECONDS */
static double time_product(const product_t *q)
{
    product(q, 0);
    const double t0 = now_seconds();
    int reps = 0;
    double el;
    do product(q, ++reps % q->n_win);
    while ((el = now_seconds() - t0) < MIN_SECONDS && reps < MAX_REPS);
    return el / reps;
}

static void fill(float *x, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.1f; /* normal floats: no denormal stalls */
    }
}

/* the rows of m timed */
static int timed_rows(const plan_matrix_t *m)
{
    return (size_t)m->N * m->K > CAP_ELEMS ? MIN(m->N, MAX(64, (int)(CAP_ELEMS / m->K) / 64 * 64)) : m->N;
}

static void time_matrix(plan_matrix_t *m, bf16_gemm_t *g, uint16_t *arena, const float *x, float *out)
{
    const int K = m->K, Nm = timed_rows(m);
    const double scale = (double)m->N / Nm;
    const size_t elems = (size_t)Nm * K;
    product_t q = { .g = g, .K = K, .N = Nm, .x = x, .out = out };
    q.n_win = (int)MIN(MAX_WINDOWS, MAX(1, ARENA_ELEMS / elems));
    for (int i = 0; i < q.n_win; i++) q.win[i] = arena + i * elems;
    for (int run = 0; run < N_RUNS; run++) {
        q.run = run;
        for (int i = 0; i < q.n_win; i++) /* packing rearranges the arena's values: no matter */
            q.h[i] = run == RUN_BF16_PACKED ? bf16_weight_pack(g, q.win[i], Nm, K, 1)
                   : run == RUN_BF16_PLAIN  ? bf16_weight_plain(q.win[i], Nm, K) : NULL;
        int ok = 1;
        for (int i = 0; i < q.n_win; i++) ok &= run == RUN_FP32 || q.h[i] != NULL;
        for (int c = 0; c < N_ROW_CLASSES; c++) {
            q.M = plan_class_rows[c];
            m->t[c][run] = ok ? time_product(&q) * scale : 0; /* no memory to pack: not a candidate */
        }
        for (int i = 0; i < q.n_win; i++) bf16_weight_free(q.h[i]);
    }
}

static double time_conv(const cpu_plan_t *p, int bf16)
{
    const int C = p->conv_cin, N = p->conv_n, H = p->conv_hin, W = p->conv_win;
    const size_t n_in = (size_t)C * N * H * W, n_out = (size_t)C * N * ((H - 1) / 2 + 1) * ((W - 1) / 2 + 1);
    float *in = xmalloc(n_in * sizeof *in), *out = xmalloc(n_out * sizeof *out);
    float *k = xmalloc((size_t)C * C * 9 * sizeof *k), *b = xmalloc(C * sizeof *b);
    fill(in, n_in, 1), fill(k, (size_t)C * C * 9, 2), fill(b, C, 3);
    conv_bf16_t *cv = bf16 ? conv3x3s2_bf16_new(k) : NULL;
    void *work = bf16 ? xmalloc(conv3x3s2_bf16_work_bytes(cv, C, C, N, H, W) + 64)
                      : xmalloc(conv3x3s2_fp32_work(C, N, H, W) * sizeof(float));
    double el = 0;
    int reps = 0;
    for (int r = -1; r < MAX_REPS && el < MIN_SECONDS; r++) {
        const double t0 = now_seconds();
        if (bf16)
            conv3x3s2_gelu_bf16(cv, out, in, b, C, C, N, H, W, (void *)(((uintptr_t)work + 63) / 64 * 64));
        else
            conv3x3s2_gelu_fp32(out, in, k, b, C, C, N, H, W, work);
        if (r >= 0) el += now_seconds() - t0, reps++; /* r = -1: the warm-up */
    }
    conv3x3s2_bf16_free(cv);
    free(work), free(in), free(out), free(k), free(b);
    return el / reps;
}

void plan_measure(cpu_plan_t *p, void *ctx)
{
    bf16_gemm_t *g = ctx;
    int Kmax = 1, Nmax = 1;
    for (int i = 0; i < p->n; i++) Kmax = MAX(Kmax, p->m[i].K), Nmax = MAX(Nmax, timed_rows(&p->m[i]));
    const int M = plan_class_rows[N_ROW_CLASSES - 1];
    uint16_t *arena = xmalloc(ARENA_ELEMS * sizeof *arena);
    float *x = xmalloc((size_t)M * Kmax * sizeof *x), *out = xmalloc((size_t)M * Nmax * sizeof *out);
    fill(x, (size_t)M * Kmax, 4);
    {
        float tmp[1024];
        for (size_t i = 0; i < ARENA_ELEMS; i += 1024) { /* weights: bf16 of normal floats */
            fill(tmp, 1024, (uint32_t)i);
            for (int j = 0; j < 1024; j++) arena[i + j] = f32_to_bf16(tmp[j]);
        }
    }
    for (int i = 0; i < p->n; i++) time_matrix(&p->m[i], g, arena, x, out);
    p->conv_t[0] = time_conv(p, 0);
    p->conv_t[1] = time_conv(p, 1);
    free(arena), free(x), free(out);
}
