#include "cpu_gemm.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Three regimes by the number of rows M of x (bench/bench_gemm.c measures them):
 *  - M <= DOT_ROWS with bf16 weights: hand-written dot products that read each weight once;
 *    the product is bound by DRAM bandwidth (one decoding sequence).
 *  - M < SKINNY_ROWS: independent weight-row blocks, one thread per block, each computing
 *    W_block x^T with a single-threaded sgemm. oneDNN handles this tall-skinny form 2-3x better
 *    than the short-wide x W^T (measured at M = 8..64, N = 4096, K = 1024).
 *  - larger M: one threaded sgemm per large block of widened weights. */
#define DOT_ROWS 4
#define SKINNY_ROWS 256
/* fp32 elements of one widened weight block in the skinny path: 1 MB stays in L2. */
#define BLOCK_ELEMS (256 * 1024)
/* fp32 elements widened at a time in the large path (32 MB). */
#define BIG_BLOCK_ELEMS (8 * 1024 * 1024)

void sgemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda,
           const float *B, int ldb, float beta, float *C, int ldc)
{
    dnnl_status_t st = dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    QASR_ASSERT(st == dnnl_success);
}

void widen_bf16(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const uint32_t u = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &u, sizeof u); /* vectorises to shifts; no aliasing questions */
    }
}

/* o[m][n] (=|+=) sum_k x[m][k] w[n][k] (+ b[n]) for M <= DOT_ROWS, w bf16. DOT_NR weight rows
 * at a time, widened DOT_KC columns at a time into an L1-resident buffer reused for every row
 * of x, with the rows DOT_PF ahead prefetched. Streaming one row at a time reached 10 GB/s
 * here; this reaches 17-19 GB/s (oneDNN's fp32 gemv: 24-27 GB/s of twice the bytes). */
#define DOT_NR 8
#define DOT_KC 512
#define DOT_PF 16 /* rows ahead to prefetch */
static void xwt_dot_bf16(float *o, const float *x, const uint16_t *w, const float *b, int M, int K,
                         int N, int accumulate)
{
#pragma omp parallel
    {
        float buf[DOT_NR][DOT_KC];
#pragma omp for schedule(static)
        for (int n0 = 0; n0 < N; n0 += DOT_NR) {
            const int nr = MIN(DOT_NR, N - n0);
            float acc[DOT_ROWS][DOT_NR] = { { 0 } };
            for (int k0 = 0; k0 < K; k0 += DOT_KC) {
                const int kc = MIN(DOT_KC, K - k0);
                for (int i = 0; i < DOT_NR; i++) {
                    const uint16_t *src = w + (size_t)(n0 + MIN(i, nr - 1)) * K + k0;
                    if (n0 + i + DOT_PF < N)
                        for (int j = 0; j < kc; j += 32) __builtin_prefetch(src + (size_t)DOT_PF * K + j);
                    widen_bf16(buf[i], src, kc);
                }
                for (int m = 0; m < M; m++) {
                    const float *xm = x + (size_t)m * K + k0;
                    for (int i = 0; i < DOT_NR; i += 4) {
                        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
                        for (int k = 0; k < kc; k++) {
                            a0 += xm[k] * buf[i][k];
                            a1 += xm[k] * buf[i + 1][k];
                            a2 += xm[k] * buf[i + 2][k];
                            a3 += xm[k] * buf[i + 3][k];
                        }
                        acc[m][i] += a0, acc[m][i + 1] += a1, acc[m][i + 2] += a2, acc[m][i + 3] += a3;
                    }
                }
            }
            for (int m = 0; m < M; m++)
                for (int i = 0; i < nr; i++) {
                    float *om = o + (size_t)m * N + n0 + i;
                    *om = (accumulate ? *om : 0.0f) + (b ? b[n0 + i] : 0.0f) + acc[m][i];
                }
        }
    }
}

static void xwt_skinny(float *o, const float *x, const void *w, int w_bf16, const float *b,
                       int M, int K, int N, int accumulate)
{
    const int NB = MIN(512, MAX(16, BLOCK_ELEMS / K / 16 * 16)), n_blocks = CEIL_DIV(N, NB);
#pragma omp parallel
    {
        float *wb = w_bf16 ? thread_scratch(0, (size_t)NB * K * sizeof(float)) : NULL;
        float *t = thread_scratch(1, (size_t)NB * M * sizeof(float)); /* [nb][M] */
#pragma omp for schedule(dynamic, 1)
        for (int blk = 0; blk < n_blocks; blk++) {
            const int n0 = blk * NB, nb = MIN(NB, N - n0);
            const float *wf;
            if (w_bf16) {
                widen_bf16(wb, (const uint16_t *)w + (size_t)n0 * K, (size_t)nb * K);
                wf = wb;
            } else {
                wf = (const float *)w + (size_t)n0 * K;
            }
            sgemm('N', 'T', nb, M, K, 1.0f, wf, K, x, K, 0.0f, t, M);
            for (int m = 0; m < M; m++) {
                float *orow = o + (size_t)m * N + n0;
                for (int i = 0; i < nb; i++)
                    orow[i] = (accumulate ? orow[i] : 0.0f) + (b ? b[n0 + i] : 0.0f) + t[(size_t)i * M + m];
            }
        }
    }
}

static void xwt_large(float *o, const float *x, const void *w, int w_bf16, const float *b,
                      int M, int K, int N, int accumulate)
{
    float beta = accumulate ? 1.0f : 0.0f;
    if (b) { /* fold the bias into C and let sgemm accumulate onto it */
#pragma omp parallel for
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) o[(size_t)m * N + n] = (accumulate ? o[(size_t)m * N + n] : 0.0f) + b[n];
        beta = 1.0f;
    }
    if (!w_bf16) {
        sgemm('N', 'T', M, N, K, 1.0f, x, K, w, K, beta, o, N);
        return;
    }
    const int NB = MIN(N, MAX(1, BIG_BLOCK_ELEMS / K));
    float *wb = thread_scratch(0, (size_t)NB * K * sizeof(float));
    for (int n0 = 0; n0 < N; n0 += NB) {
        const int nb = MIN(NB, N - n0);
        const uint16_t *src = (const uint16_t *)w + (size_t)n0 * K;
#pragma omp parallel for
        for (int i = 0; i < nb; i++) widen_bf16(wb + (size_t)i * K, src + (size_t)i * K, K);
        sgemm('N', 'T', M, nb, K, 1.0f, x, K, wb, K, beta, o + n0, N);
    }
}

void gemm_xwt(float *out, const float *x, const void *w, int w_bf16, const float *bias, int M,
              int K, int N, int accumulate)
{
    if (w_bf16 && M <= DOT_ROWS)
        xwt_dot_bf16(out, x, w, bias, M, K, N, accumulate);
    else if (M < SKINNY_ROWS)
        xwt_skinny(out, x, w, w_bf16, bias, M, K, N, accumulate);
    else
        xwt_large(out, x, w, w_bf16, bias, M, K, N, accumulate);
}
