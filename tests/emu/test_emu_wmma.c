/* WMMA in the emulation (cuda/emu/wmma.h): kernels using nvcuda::wmma as CUDA allows
 * (tests/emu/wmma_kernels.cu) against a naive GEMM on random bf16 data, whatever the fiber order
 * (ctest runs this forward, reversed and shuffled): tile counts, row/col-major a and b, ldm above
 * 16, several K steps, C loaded from memory, D stored in both layouts, an element-wise op on the
 * accumulator, fragments loaded from and stored to shared memory. Code that assumes a fragment
 * layout must get a different result, and a load of data another lane wrote without a
 * __syncwarp must be reported by the race detector. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "../test.h"
#include "capture_stderr.h"
#include "wmma_kernels.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * 0x1p-53) * 2.0f - 1.0f;
}

static uint16_t *random_bf16(size_t n)
{
    uint16_t *h = malloc(n * 2);
    for (size_t i = 0; i < n; i++) h[i] = f32_to_bf16(uniform());
    return h;
}

static void *to_device(const void *h, size_t bytes)
{
    void *d;
    CHECK(cudaMalloc(&d, bytes) == cudaSuccess);
    CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
    return d;
}

/* Elements of D that differ from the naive product by more than fp32 summation error. */
static int gemm_mismatches(int M, int N, int K, int a_col, int b_col, int d_col, float scale, float bias)
{
    int lda = (a_col ? M : K) + 8, ldb = (b_col ? K : N) + 8, ldc = N + 4, ldd = (d_col ? M : N) + 4;
    size_t na = (size_t)(a_col ? K : M) * lda, nb = (size_t)(b_col ? N : K) * ldb;
    size_t nc = (size_t)M * ldc, nd = (size_t)(d_col ? N : M) * ldd;
    uint16_t *A = random_bf16(na), *B = random_bf16(nb);
    float *C = malloc(nc * 4), *D = malloc(nd * 4);
    for (size_t i = 0; i < nc; i++) C[i] = uniform();
    void *dA = to_device(A, na * 2), *dB = to_device(B, nb * 2), *dC = to_device(C, nc * 4), *dD;
    CHECK(cudaMalloc(&dD, nd * 4) == cudaSuccess);
    CHECK(cudaMemset(dD, 0, nd * 4) == cudaSuccess);
    CHECK(emu_wmma_gemm(dA, dB, dC, dD, M, N, K, lda, ldb, ldc, ldd, a_col, b_col, d_col, scale, bias) ==
          cudaSuccess);
    CHECK(cudaMemcpy(D, dD, nd * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    int bad = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = C[(size_t)m * ldc + n];
            for (int k = 0; k < K; k++)
                s += (double)bf16_to_f32(A[a_col ? (size_t)k * lda + m : (size_t)m * lda + k]) *
                     bf16_to_f32(B[b_col ? (size_t)n * ldb + k : (size_t)k * ldb + n]);
            double want = s * scale + bias;
            double got = D[d_col ? (size_t)n * ldd + m : (size_t)m * ldd + n];
            if (!(fabs(got - want) <= 1e-5 * (K + 1) * (1 + fabs(want)))) {
                if (bad < 3)
                    fprintf(stderr, "gemm %dx%dx%d a_col %d b_col %d d_col %d: D(%d,%d) = %g, want %g\n", M, N, K,
                            a_col, b_col, d_col, m, n, got, want);
                bad++;
            }
        }
    /* The padding between leading dimensions is never written. */
    for (int m = 0; m < (d_col ? N : M); m++)
        for (int j = d_col ? M : N; j < ldd; j++) bad += D[(size_t)m * ldd + j] != 0.0f;
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dC);
    cudaFree(dD);
    free(A);
    free(B);
    free(C);
    free(D);
    return bad;
}

static void test_gemm(void)
{
    static const int shapes[][3] = {{16, 16, 16}, {48, 32, 64}, {32, 48, 32}};
    for (int s = 0; s < 3; s++)
        for (int layouts = 0; layouts < 8; layouts++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            CHECK_INT_EQ(gemm_mismatches(M, N, K, layouts & 1, layouts >> 1 & 1, layouts >> 2, 1.0f, 0.0f), 0);
        }
    /* The element-wise epilogue on the accumulator fragment. */
    CHECK_INT_EQ(gemm_mismatches(32, 32, 48, 0, 1, 0, 0.125f, -0.5f), 0);
    CHECK_INT_EQ(gemm_mismatches(32, 32, 48, 1, 0, 1, -3.0f, 2.0f), 0);
}

static void test_gemm_shared(int M, int N, int K)
{
    size_t na = (size_t)M * K, nb = (size_t)N * K, nd = (size_t)M * N;
    uint16_t *A = random_bf16(na), *B = random_bf16(nb);
    float *D = malloc(nd * 4);
    void *dA = to_device(A, na * 2), *dB = to_device(B, nb * 2), *dD;
    CHECK(cudaMalloc(&dD, nd * 4) == cudaSuccess);
    CHECK(emu_wmma_gemm_shared(dA, dB, dD, M, N, K) == cudaSuccess);
    CHECK(cudaMemcpy(D, dD, nd * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    int bad = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)bf16_to_f32(A[(size_t)m * K + k]) * bf16_to_f32(B[(size_t)n * K + k]);
            bad += !(fabs(D[(size_t)m * N + n] - s) <= 1e-5 * (K + 1) * (1 + fabs(s)));
        }
    CHECK_INT_EQ(bad, 0);
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dD);
    free(A);
    free(B);
    free(D);
}

/* Reading x[i] as row-major element lane * 8 + i must give a different matrix: most elements
 * land elsewhere (a permutation that fixes many would let layout bugs through). */
static void test_layout_hidden(void)
{
    uint16_t *A = random_bf16(256), *B = random_bf16(256);
    float D[256];
    void *dA = to_device(A, 512), *dB = to_device(B, 512), *dD;
    CHECK(cudaMalloc(&dD, 1024) == cudaSuccess);
    CHECK(emu_wmma_assume_layout(dA, dB, dD) == cudaSuccess);
    CHECK(cudaMemcpy(D, dD, 1024, cudaMemcpyDeviceToHost) == cudaSuccess);
    int wrong = 0;
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            double s = 0;
            for (int k = 0; k < 16; k++) s += (double)bf16_to_f32(A[m * 16 + k]) * bf16_to_f32(B[k * 16 + n]);
            wrong += !(fabs(D[m * 16 + n] - s) <= 1e-4 * (1 + fabs(s)));
        }
    fprintf(stderr, "layout-assuming code: %d of 256 elements wrong\n", wrong);
    CHECK(wrong >= 240);
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dD);
    free(A);
    free(B);
}

/* The wmma collectives do not order memory between lanes: the race detector reports the load
 * of lane 0's shared-memory writes (and the launch fails), in every fiber order. */
static void test_unsynced_load(void)
{
    const char *rc = getenv("CUEMU_RACECHECK");
    if (!rc || strcmp(rc, "1")) return;
    uint16_t *A = random_bf16(256), *B = random_bf16(256);
    void *dA = to_device(A, 512), *dB = to_device(B, 512), *dD;
    CHECK(cudaMalloc(&dD, 1024) == cudaSuccess);
    capture_begin();
    CHECK(emu_wmma_unsynced_load(dA, dB, dD) == cudaSuccess);
    cudaError_t e = cudaDeviceSynchronize();
    const char *report = capture_end();
    CHECK(e == cudaErrorLaunchFailure);
    CHECK(strstr(report, "kernel wmma_unsynced_load_kernel") != NULL);
    CHECK(strstr(report, "data race on shared memory") != NULL);
    CHECK(strstr(report, "no __syncthreads or __syncwarp between them") != NULL);
    /* both accesses named at kernel lines (the load's, not wmma.h's) */
    CHECK(strstr(report, "read at wmma_kernels.cu:") != NULL);
    CHECK(strstr(report, "write at wmma_kernels.cu:") != NULL);
    CHECK(cudaDeviceReset() == cudaSuccess);
    free(A);
    free(B);
}

/* CUDA's preconditions are checked: a fragment pointer 32-byte aligned, ldm a multiple of 16
 * bytes. Each violation fails the launch (sticky, hence the reset) with the reason. */
static void test_preconditions(void)
{
    static const struct {
        int a_offset, lda;
        const char *why;
    } cases[] = {{8, 24, "pointer not 256-bit aligned"}, {0, 20, "ldm not a multiple of 16 bytes"}};
    for (int i = 0; i < 2; i++) {
        uint16_t *A = random_bf16(16 * 24 + 8), *B = random_bf16(256);
        float C[256] = {0};
        void *dA = to_device(A, (16 * 24 + 8) * 2), *dB = to_device(B, 512), *dC = to_device(C, 1024), *dD;
        CHECK(cudaMalloc(&dD, 1024) == cudaSuccess);
        capture_begin();
        CHECK(emu_wmma_gemm((uint16_t *)dA + cases[i].a_offset, dB, dC, dD, 16, 16, 16, cases[i].lda, 16, 16, 16, 0,
                            0, 0, 1.0f, 0.0f) == cudaSuccess);
        cudaError_t e = cudaDeviceSynchronize();
        const char *report = capture_end();
        CHECK(e == cudaErrorLaunchFailure);
        CHECK(strstr(report, "nvcuda::wmma::load_matrix_sync") != NULL);
        CHECK(strstr(report, cases[i].why) != NULL);
        CHECK(cudaDeviceReset() == cudaSuccess);
        free(A);
        free(B);
    }
}

int main(void)
{
    test_gemm();
    test_gemm_shared(64, 64, 64);
    test_gemm_shared(32, 96, 16);
    test_layout_hidden();
    test_preconditions();
    test_unsynced_load(); /* last: it poisons the device until the reset */
    return test_result("test_emu_wmma");
}
