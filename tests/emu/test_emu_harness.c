/* Harness test: correct CUDA kernels (tests/emu/harness_kernels.cu) give exact or
 * within-one-ulp results in the emulation, whatever the fiber order (ctest runs this in forward,
 * reversed and shuffled order). `test_emu_harness --bench` also prints the cost of one barrier
 * per GPU thread. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"
#include "../test.h"
#include "harness_kernels.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void test_reduce(int n, int block)
{
    float *h_x = malloc((size_t)n * sizeof(float));
    long long exact = 0;
    for (int i = 0; i < n; i++) {
        h_x[i] = (float)((long long)i * 7919 % 7 - 3);
        exact += (long long)h_x[i];
    }
    h_x[n - 1] = 5.0f; /* the unique maximum sits in the partial last block */
    exact += 5 - ((long long)(n - 1) * 7919 % 7 - 3);
    float *d_x, *d_sum, *d_max_cas;
    int *d_max_int;
    float zero = 0.0f, minus_inf = -INFINITY;
    int int_min = -2147483647 - 1;
    CHECK(cudaMalloc((void **)&d_x, (size_t)n * sizeof(float)) == cudaSuccess);
    CHECK(cudaMalloc((void **)&d_sum, sizeof(float)) == cudaSuccess);
    CHECK(cudaMalloc((void **)&d_max_int, sizeof(int)) == cudaSuccess);
    CHECK(cudaMalloc((void **)&d_max_cas, sizeof(float)) == cudaSuccess);
    CHECK(cudaMemcpy(d_x, h_x, (size_t)n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(d_sum, &zero, sizeof zero, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(d_max_int, &int_min, sizeof int_min, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(d_max_cas, &minus_inf, sizeof minus_inf, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(emu_block_reduce(d_x, n, block, d_sum, d_max_int, d_max_cas, 0) == cudaSuccess);
    float sum, max_cas;
    int max_int;
    CHECK(cudaMemcpy(&sum, d_sum, sizeof sum, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(cudaMemcpy(&max_int, d_max_int, sizeof max_int, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(cudaMemcpy(&max_cas, d_max_cas, sizeof max_cas, cudaMemcpyDeviceToHost) == cudaSuccess);
    /* Integers below 2^24 add exactly in any order. */
    CHECK_INT_EQ((long long)sum, exact);
    CHECK(sum == (float)exact);
    CHECK_INT_EQ(max_int, 5);
    CHECK(max_cas == 5.0f);
    cudaFree(d_x);
    cudaFree(d_sum);
    cudaFree(d_max_int);
    cudaFree(d_max_cas);
    free(h_x);
}

/* Largest error in units of the bf16 spacing at the reference value. */
static double softmax_max_ulps(int rows, int cols, int threads)
{
    size_t n = (size_t)rows * cols;
    uint16_t *h_x = malloc(n * 2), *h_y = malloc(n * 2);
    for (size_t i = 0; i < n; i++) h_x[i] = f32_to_bf16(4.0f * sinf(0.37f * (float)i) + 0.001f * (float)(i % 97));
    uint16_t *d_x, *d_y;
    CHECK(cudaMalloc((void **)&d_x, n * 2) == cudaSuccess);
    CHECK(cudaMalloc((void **)&d_y, n * 2) == cudaSuccess);
    CHECK(cudaMemcpy(d_x, h_x, n * 2, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(emu_softmax_bf16(d_x, d_y, rows, cols, threads, 1, 0) == cudaSuccess);
    CHECK(cudaMemcpy(h_y, d_y, n * 2, cudaMemcpyDeviceToHost) == cudaSuccess);
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        const uint16_t *x = h_x + (size_t)r * cols;
        double m = -INFINITY, s = 0;
        for (int c = 0; c < cols; c++) m = fmax(m, bf16_to_f32(x[c]));
        for (int c = 0; c < cols; c++) s += exp(bf16_to_f32(x[c]) - m);
        for (int c = 0; c < cols; c++) {
            double ref = exp(bf16_to_f32(x[c]) - m) / s;
            double ulp = ldexp(1.0, ilogb(ref) - 7);
            double err = fabs(bf16_to_f32(h_y[(size_t)r * cols + c]) - ref) / ulp;
            if (!(err <= worst)) worst = err; /* NaN propagates */
        }
    }
    cudaFree(d_x);
    cudaFree(d_y);
    free(h_x);
    free(h_y);
    return worst;
}

static void test_softmax(void)
{
    CHECK(softmax_max_ulps(16, 4096, 256) <= 1.0);
    CHECK(softmax_max_ulps(3, 1000, 128) <= 1.0);
    /* 16384 fp32 + scratch = 64.1 KiB of dynamic shared memory: rejected without the opt-in
     * (and the error is not sticky)... */
    uint16_t *d;
    CHECK(cudaMalloc((void **)&d, 16384 * 2) == cudaSuccess);
    CHECK_INT_EQ(emu_softmax_bf16(d, d, 1, 16384, 512, 0, 0), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaGetLastError(), cudaSuccess);
    cudaFree(d);
    /* ...and correct with it. */
    CHECK(softmax_max_ulps(4, 16384, 512) <= 1.0);
}

static void test_poison(void)
{
    float *d_out;
    uint32_t h_out[64];
    CHECK(cudaMalloc((void **)&d_out, sizeof h_out) == cudaSuccess);
    CHECK(emu_read_unwritten_shared(d_out, 0) == cudaSuccess);
    CHECK(cudaMemcpy(h_out, d_out, sizeof h_out, cudaMemcpyDeviceToHost) == cudaSuccess);
    int static_poisoned = 0, dynamic_poisoned = 0;
    for (int i = 0; i < 32; i++) {
        static_poisoned += h_out[i] == 0xffffffffu;
        dynamic_poisoned += h_out[32 + i] == 0xffffffffu;
    }
    CHECK_INT_EQ(dynamic_poisoned, 32);
    if (emu_static_shared_poisoned()) CHECK_INT_EQ(static_poisoned, 32);
    else printf("static __shared__ poisoning is off in this build (ASan, or not clang)\n");
    cudaFree(d_out);
}

static void test_intrinsics(int threads)
{
    int *d_out, *h = malloc((size_t)threads * EMU_INTRINSIC_RESULTS * sizeof(int));
    CHECK(cudaMalloc((void **)&d_out, (size_t)threads * EMU_INTRINSIC_RESULTS * sizeof(int)) == cudaSuccess);
    CHECK(emu_intrinsics(d_out, threads, 0) == cudaSuccess);
    CHECK(cudaMemcpy(h, d_out, (size_t)threads * EMU_INTRINSIC_RESULTS * sizeof(int), cudaMemcpyDeviceToHost) ==
          cudaSuccess);
    int count5 = 0, bad = 0;
    for (int t = 0; t < threads; t++) count5 += t % 5 == 0;
    for (int t = 0; t < threads; t++) {
        int lane = t % 32, warp = t / 32, base = warp * 32;
        int src11 = (lane & 16) | ((lane + 5) & 15);
        int expect[EMU_INTRINSIC_RESULTS] = {
            (int)0x49249249u, 1, 0, 1, 496, -7 - warp, 93, 0xf0, 0xff, 0,
            base + 3, base + src11, lane ? t - 1 : t, lane % 8 + 2 < 8 ? t + 2 : t, lane >= 16 ? t - 16 : t,
            count5, 1, 1, lane ^ 1, lane < 31 ? t + 1 : t,
        };
        for (int j = 0; j < EMU_INTRINSIC_RESULTS; j++) {
            if (h[t * EMU_INTRINSIC_RESULTS + j] != expect[j] && bad++ < 10)
                fprintf(stderr, "thread %d result %d: %d, expected %d\n", t, j, h[t * EMU_INTRINSIC_RESULTS + j],
                        expect[j]);
        }
    }
    CHECK_INT_EQ(bad, 0);
    cudaFree(d_out);
    free(h);
}

/* ns per GPU thread per barrier: the emulation's unit cost. */
static void bench_barriers(void)
{
    float *d_sink;
    CHECK(cudaMalloc((void **)&d_sink, sizeof(float)) == cudaSuccess);
    static const int sizes[] = {32, 256, 1024};
    for (int kind = 0; kind < 2; kind++)
        for (int s = 0; s < 3; s++) {
            int threads = sizes[s], iters = (1 << 21) / threads;
            double t0 = now();
            CHECK(emu_barrier_bench(threads, iters, kind, d_sink, 0) == cudaSuccess);
            CHECK(cudaDeviceSynchronize() == cudaSuccess);
            printf("%-16s %4d threads: %5.1f ns per thread and barrier\n", kind ? "__shfl_xor_sync" : "__syncthreads",
                   threads, (now() - t0) * 1e9 / ((double)threads * iters));
        }
    cudaFree(d_sink);
}

int main(int argc, char **argv)
{
    test_reduce(1 << 18 | 37, 1024);
    test_reduce(30011, 256);
    test_softmax();
    test_poison();
    test_intrinsics(64);
    test_intrinsics(96);
    if (argc > 1 && !strcmp(argv[1], "--bench")) bench_barriers();
    return test_result("test_emu_harness");
}
