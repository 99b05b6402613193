/* CPU matrix products on oneDNN's sgemm, with weights kept in fp32 or in the checkpoint's bf16.
 * bf16 weights are widened to fp32 block by block inside the product, so the arithmetic is the
 * fp32 reference path's (bf16 -> fp32 is exact) while only half the bytes cross the memory bus:
 * a decode step streams every weight once, so this halves its time. */
#ifndef QASR_CPU_GEMM_H
#define QASR_CPU_GEMM_H

#include <stddef.h>
#include <stdint.h>

/* Row-major C [M][N] = alpha op(A) op(B) + beta C, op 'N' (as is) or 'T' (transposed). */
void sgemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda,
           const float *B, int ldb, float beta, float *C, int ldc);

/* out [M][N] (= or, with accumulate, +=) x [M][K] w^T (+ bias [N] if not NULL),
 * w [N][K] in fp32 (w_bf16 == 0) or bf16 (w_bf16 == 1). */
void gemm_xwt(float *out, const float *x, const void *w, int w_bf16, const float *bias, int M,
              int K, int N, int accumulate);

/* Widen n bf16 values to fp32. */
void widen_bf16(float *dst, const uint16_t *src, size_t n);

#endif
