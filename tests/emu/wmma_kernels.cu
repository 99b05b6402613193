/* Kernels that use nvcuda::wmma (16x16x16, bf16 inputs, fp32 accumulators) the way CUDA allows,
 * plus two that break its rules on purpose (test_emu_wmma.c). The same file builds with nvcc
 * (compile check) and with the host compiler against the emulation (cuda/emu/wmma.h). */
#include "../../cuda/common.cuh"

#include <type_traits>

#include "wmma_kernels.h"

using namespace nvcuda;

/* One warp per 16x16 tile of D; the block's 2 warps take neighbouring tiles along N. */
template <bool A_COL, bool B_COL>
__global__ void wmma_gemm_kernel(const bf16 *A, const bf16 *B, const float *C, float *D, int N, int K, int lda,
                                 int ldb, int ldc, int ldd, int d_col, float scale, float bias)
{
    typedef typename std::conditional<A_COL, wmma::col_major, wmma::row_major>::type LA;
    typedef typename std::conditional<B_COL, wmma::col_major, wmma::row_major>::type LB;
    int warp = threadIdx.x / 32;
    int m0 = blockIdx.y * 16, n0 = (blockIdx.x * 2 + warp) * 16;
    if (n0 < N) { /* warp-uniform: a whole warp skips or takes part */
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::load_matrix_sync(acc, C + (size_t)m0 * ldc + n0, ldc, wmma::mem_row_major);
        for (int k0 = 0; k0 < K; k0 += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, LA> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, LB> b;
            wmma::load_matrix_sync(a, A_COL ? A + (size_t)k0 * lda + m0 : A + (size_t)m0 * lda + k0, lda);
            wmma::load_matrix_sync(b, B_COL ? B + (size_t)n0 * ldb + k0 : B + (size_t)k0 * ldb + n0, ldb);
            wmma::mma_sync(acc, a, b, acc);
        }
        for (int i = 0; i < acc.num_elements; i++) acc.x[i] = acc.x[i] * scale + bias;
        if (d_col)
            wmma::store_matrix_sync(D + (size_t)n0 * ldd + m0, acc, ldd, wmma::mem_col_major);
        else
            wmma::store_matrix_sync(D + (size_t)m0 * ldd + n0, acc, ldd, wmma::mem_row_major);
    }
}

template <bool A_COL, bool B_COL>
static void launch_gemm(const uint16_t *A, const uint16_t *B, const float *C, float *D, int M, int N, int K, int lda,
                        int ldb, int ldc, int ldd, int d_col, float scale, float bias)
{
    dim3 grid(CEIL_DIV(N / 16, 2), M / 16);
    CUEMU_LAUNCH(grid, 64, 0, 0, wmma_gemm_kernel<A_COL, B_COL>)((const bf16 *)A, (const bf16 *)B, C, D, N, K, lda,
                                                                 ldb, ldc, ldd, d_col, scale, bias);
}

extern "C" cudaError_t emu_wmma_gemm(const uint16_t *A, const uint16_t *B, const float *C, float *D, int M, int N,
                                     int K, int lda, int ldb, int ldc, int ldd, int a_col, int b_col, int d_col,
                                     float scale, float bias)
{
    if (a_col && b_col) launch_gemm<true, true>(A, B, C, D, M, N, K, lda, ldb, ldc, ldd, d_col, scale, bias);
    else if (a_col) launch_gemm<true, false>(A, B, C, D, M, N, K, lda, ldb, ldc, ldd, d_col, scale, bias);
    else if (b_col) launch_gemm<false, true>(A, B, C, D, M, N, K, lda, ldb, ldc, ldd, d_col, scale, bias);
    else launch_gemm<false, false>(A, B, C, D, M, N, K, lda, ldb, ldc, ldd, d_col, scale, bias);
    return cudaGetLastError();
}

/* Shared tiles padded to 72 bf16 (144 bytes) and 36 floats per row: ldm above 16, every
 * fragment pointer 32-byte aligned. */
#define SH_LD 72
#define SH_LDC 36

__global__ void wmma_gemm_shared_kernel(const bf16 *A, const bf16 *B, float *D, int N, int K)
{
    __shared__ __align__(32) bf16 As[32 * SH_LD]; /* 32 rows of A, row-major */
    __shared__ __align__(32) bf16 Bs[32 * SH_LD]; /* 32 columns of B, col-major */
    __shared__ __align__(32) float Cs[32 * SH_LDC];
    int tid = threadIdx.x, warp = tid / 32;
    int m0 = blockIdx.y * 32, n0 = blockIdx.x * 32;
    for (int i = tid; i < 32 * K; i += blockDim.x) {
        int r = i / K, k = i % K;
        As[r * SH_LD + k] = A[(size_t)(m0 + r) * K + k];
        Bs[r * SH_LD + k] = B[(size_t)(n0 + r) * K + k];
    }
    __syncthreads();
    int wm = warp / 2, wn = warp % 2;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc, neg;
    wmma::fill_fragment(acc, 0.0f);
    wmma::fill_fragment(neg, 0.0f);
    for (int k0 = 0; k0 < K; k0 += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
        wmma::load_matrix_sync(a, As + wm * 16 * SH_LD + k0, SH_LD);
        wmma::load_matrix_sync(b, Bs + wn * 16 * SH_LD + k0, SH_LD);
        wmma::mma_sync(acc, a, b, acc);
        /* element-wise on an input fragment right after the product: (-A) B into neg */
        for (int i = 0; i < a.num_elements; i++) a.x[i] = -a.x[i];
        wmma::mma_sync(neg, a, b, neg);
    }
    /* element-wise between two accumulators (same type, same layout): exactly A B again */
    for (int i = 0; i < acc.num_elements; i++) acc.x[i] = 0.5f * (acc.x[i] - neg.x[i]);
    wmma::store_matrix_sync(Cs + wm * 16 * SH_LDC + wn * 16, acc, SH_LDC, wmma::mem_row_major);
    __syncthreads();
    for (int i = tid; i < 32 * 32; i += blockDim.x)
        D[(size_t)(m0 + i / 32) * N + n0 + i % 32] = Cs[(i / 32) * SH_LDC + i % 32];
}

extern "C" cudaError_t emu_wmma_gemm_shared(const uint16_t *A, const uint16_t *B, float *D, int M, int N, int K)
{
    CUEMU_LAUNCH(dim3(N / 32, M / 32), 128, 0, 0, wmma_gemm_shared_kernel)((const bf16 *)A, (const bf16 *)B, D, N, K);
    return cudaGetLastError();
}

__global__ void wmma_assume_layout_kernel(const bf16 *A, const bf16 *B, float *D)
{
    int lane = threadIdx.x % 32;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(a, A, 16);
    wmma::load_matrix_sync(b, B, 16);
    wmma::fill_fragment(acc, 0.0f);
    wmma::mma_sync(acc, a, b, acc);
    for (int i = 0; i < acc.num_elements; i++) D[lane * 8 + i] = acc.x[i]; /* the wrong assumption */
}

extern "C" cudaError_t emu_wmma_assume_layout(const uint16_t *A, const uint16_t *B, float *D)
{
    CUEMU_LAUNCH(1, 32, 0, 0, wmma_assume_layout_kernel)((const bf16 *)A, (const bf16 *)B, D);
    return cudaGetLastError();
}

__global__ void wmma_unsynced_load_kernel(const bf16 *A, const bf16 *B, float *D)
{
    __shared__ __align__(32) bf16 T[256];
    int lane = threadIdx.x % 32;
    /* a scattered order: a vectorised copy (32-byte AVX accesses) would escape the instrumentation */
    if (lane == 0)
        for (int i = 0; i < 256; i++) T[i * 37 & 255] = A[i * 37 & 255];
    /* missing __syncwarp(): load_matrix_sync does not order the other lanes after lane 0 */
    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(a, T, 16);
    wmma::load_matrix_sync(b, B, 16);
    wmma::fill_fragment(acc, 0.0f);
    wmma::mma_sync(acc, a, b, acc);
    wmma::store_matrix_sync(D, acc, 16, wmma::mem_row_major);
}

extern "C" cudaError_t emu_wmma_unsynced_load(const uint16_t *A, const uint16_t *B, float *D)
{
    CUEMU_LAUNCH(1, 32, 0, 0, wmma_unsynced_load_kernel)((const bf16 *)A, (const bf16 *)B, D);
    return cudaGetLastError();
}
