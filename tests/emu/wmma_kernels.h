/* C launchers of the WMMA test kernels (tests/emu/wmma_kernels.cu): each returns
 * cudaGetLastError() after queueing its kernel on stream 0. Matrices are bf16 (uint16_t) inputs
 * and float accumulators; M, N, K are multiples of 16, leading dimensions multiples of 8 (bf16) or
 * 4 (float) elements. */
#ifndef QASR_EMU_WMMA_KERNELS_H
#define QASR_EMU_WMMA_KERNELS_H

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* D = scale * (A B + C) + bias, one warp per 16x16 tile of D, accumulating over K in steps of 16.
 * A is M x K, element (m, k) at A[m * lda + k] (a_col: A[k * lda + m]); B is K x N, (k, n) at
 * B[k * ldb + n] (b_col: B[n * ldb + k]); C is M x N row-major (ldc); D row-major (ldd) or, with
 * d_col, D[n * ldd + m]. scale and bias are applied element-wise to the accumulator fragment. */
cudaError_t emu_wmma_gemm(const uint16_t *A, const uint16_t *B, const float *C, float *D, int M, int N, int K,
                          int lda, int ldb, int ldc, int ldd, int a_col, int b_col, int d_col, float scale,
                          float bias);
/* The same product (row-major A, col-major B, no C) staged through shared memory: each block of
 * 4 warps copies a 32 x K strip of A and a K x 32 strip of B into padded shared tiles, the warps
 * load their fragments from there and store their tile to shared memory, and all threads copy
 * the 32 x 32 result out. D is row-major M x N (ld N). K <= 64. The warps also negate each a
 * fragment after its product and accumulate (-A) B, and return (A B - (-A) B) / 2: element-wise
 * operations on input fragments and between accumulators. */
cudaError_t emu_wmma_gemm_shared(const uint16_t *A, const uint16_t *B, float *D, int M, int N, int K);
/* Wrong on purpose: one 16x16x16 product whose lanes write their accumulator elements as if
 * lane l held row-major elements l * 8 + i (D[l * 8 + i] = x[i]). */
cudaError_t emu_wmma_assume_layout(const uint16_t *A, const uint16_t *B, float *D);
/* Wrong on purpose: lane 0 copies the 16x16 row-major A to shared memory alone and the warp loads
 * it from there with no __syncwarp in between (the race detector must report it); D = A B, all
 * 16x16 row-major. */
cudaError_t emu_wmma_unsynced_load(const uint16_t *A, const uint16_t *B, float *D);

#ifdef __cplusplus
}
#endif

#endif
