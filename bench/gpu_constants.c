/* Measures, on the GPU it runs on, the quantities behind the performance model's constants
 * (bench/gpu_constants.tsv, bench/gpu_model.py) and prints them as rows of that table, kind
 * "measured", so that the first real run replaces the assumptions (scripts/gpu-check.sh, step
 * "constants", turns the rates into fractions of the datasheet peaks):
 *
 *   hbm_bw            B/s     a streaming copy kernel, 1 GiB read and 1 GiB written per launch
 *   tc_bf16_large     FLOP/s  cublasGemmEx bf16 in, fp32 compute, 8192 x 8192 x 8192
 *   tc_bf16_small     FLOP/s  the same at 64 rows x 4096 x 4096 (a decode step's shape class)
 *   fp32_fma          FLOP/s  a kernel of 8 independent fp32 FMA chains per thread
 *   kernel_overhead   s       GPU time per empty kernel, launched back to back (events)
 *   launch_host       s       host time per cudaLaunchKernel of an empty kernel
 *   library_host      s       host time per small cublasGemmEx
 *   sync_latency      s       host time of cudaStreamSynchronize on an idle stream after an empty kernel
 *   copy_latency      s       host time of a 4-byte pinned cudaMemcpyAsync + sync, less sync_latency
 *   pcie_bw           B/s     256 MiB host to device from pageable memory
 *   pcie_bw_pinned    B/s     256 MiB host to device from cudaMallocHost memory
 *
 *   gpu_constants [--device N] [--quick] [--gpu NAME]
 *
 * --quick: tiny sizes and few repetitions (the emulated test of the program's plumbing; its
 * figures mean nothing). Exit 0, 1 when a CUDA call failed (named on stderr), 77 with no device. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu_constants_kernels.h"

static int failed;

static int ok_cuda(cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return 1;
    fprintf(stderr, "gpu_constants: %s: %s\n", what, cudaGetErrorString(e));
    failed = 1;
    return 0;
}

static int ok_blas(cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS) return 1;
    fprintf(stderr, "gpu_constants: %s: cuBLAS status %d\n", what, (int)s);
    failed = 1;
    return 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seconds of GPU time between two events recorded around the work. */
static double gpu_seconds(cudaEvent_t a, cudaEvent_t b)
{
    float ms = 0;
    if (!ok_cuda(cudaEventSynchronize(b), "cudaEventSynchronize") || !ok_cuda(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime"))
        return -1;
    return 1e-3 * ms;
}

static const char *gpu_name = "gpu";

static void row(const char *name, double value, const char *unit, const char *how)
{
    printf("%s\t%s\t%.4g\t%s\tmeasured\tbench/gpu_constants.c: %s\n", gpu_name, name, value, unit, how);
}

typedef struct {
    cudaStream_t s;
    cudaEvent_t a, b;
    int quick;
} bench_t;

static void hbm_bw(const bench_t *B)
{
    const size_t bytes = B->quick ? (size_t)1 << 16 : (size_t)1 << 30;
    void *src = NULL, *dst = NULL;
    if (ok_cuda(cudaMalloc(&src, bytes), "cudaMalloc") && ok_cuda(cudaMalloc(&dst, bytes), "cudaMalloc") &&
        ok_cuda(cudaMemsetAsync(src, 1, bytes, B->s), "cudaMemsetAsync") &&
        ok_cuda(gc_stream_copy(dst, src, bytes, 4096, B->s), "stream copy (warm-up)")) {
        const int reps = B->quick ? 2 : 20;
        ok_cuda(cudaEventRecord(B->a, B->s), "cudaEventRecord");
        for (int i = 0; i < reps; i++) ok_cuda(gc_stream_copy(dst, src, bytes, 4096, B->s), "stream copy");
        ok_cuda(cudaEventRecord(B->b, B->s), "cudaEventRecord");
        const double t = gpu_seconds(B->a, B->b);
        char how[96];
        snprintf(how, sizeof how, "stream copy kernel, %zu MiB read and written, %d times", bytes >> 20, reps);
        if (t > 0) row("hbm_bw", 2.0 * bytes * reps / t, "B/s", how);
    }
    cudaFree(src);
    cudaFree(dst);
}

/* FLOP/s of C [m x n] = A [m x k] B [k x n], bf16 in, fp32 compute, bf16 out */
static void gemm_rate(const bench_t *B, cublasHandle_t h, int m, int n, int k, const char *name)
{
    char how[128];
    snprintf(how, sizeof how, "cublasGemmEx bf16 in, fp32 compute, %d x %d x %d", m, n, k);
    void *a = NULL, *b = NULL, *c = NULL;
    const float one = 1.0f, zero = 0.0f;
    if (ok_cuda(cudaMalloc(&a, (size_t)m * k * 2), "cudaMalloc") && ok_cuda(cudaMalloc(&b, (size_t)k * n * 2), "cudaMalloc") &&
        ok_cuda(cudaMalloc(&c, (size_t)m * n * 2), "cudaMalloc") &&
        ok_cuda(cudaMemsetAsync(a, 0, (size_t)m * k * 2, B->s), "cudaMemsetAsync") &&
        ok_cuda(cudaMemsetAsync(b, 0, (size_t)k * n * 2, B->s), "cudaMemsetAsync")) {
        const int reps = B->quick ? 1 : 20;
        for (int i = -1; i < reps && !failed; i++) { /* i = -1: warm-up (heuristics, workspace) */
            if (i == 0) ok_cuda(cudaEventRecord(B->a, B->s), "cudaEventRecord");
            ok_blas(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, b, CUDA_R_16BF, n, a, CUDA_R_16BF, k, &zero,
                                 c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT), "cublasGemmEx");
        }
        ok_cuda(cudaEventRecord(B->b, B->s), "cudaEventRecord");
        const double t = gpu_seconds(B->a, B->b);
        if (t > 0) row(name, 2.0 * m * n * (double)k * reps / t, "FLOP/s", how);
    }
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
}

static void fp32_rate(const bench_t *B)
{
    const int blocks = B->quick ? 2 : 132 * 16, iters = B->quick ? 4 : 4096;
    float *out = NULL;
    if (ok_cuda(cudaMalloc((void **)&out, (size_t)blocks * 256 * sizeof(float)), "cudaMalloc") &&
        ok_cuda(gc_fma(out, blocks, iters, B->s), "fma (warm-up)")) {
        ok_cuda(cudaEventRecord(B->a, B->s), "cudaEventRecord");
        ok_cuda(gc_fma(out, blocks, iters, B->s), "fma");
        ok_cuda(cudaEventRecord(B->b, B->s), "cudaEventRecord");
        const double t = gpu_seconds(B->a, B->b);
        char how[96];
        snprintf(how, sizeof how, "8 independent FMA chains per thread, %d blocks of 256", blocks);
        if (t > 0) row("fp32_fma", gc_fma_flops(blocks, iters) / t, "FLOP/s", how);
    }
    cudaFree(out);
}

static void launch_costs(const bench_t *B, cublasHandle_t h)
{
    const int n = B->quick ? 8 : 2000;
    for (int i = 0; i < 16; i++) gc_empty(B->s); /* warm-up */
    ok_cuda(cudaStreamSynchronize(B->s), "cudaStreamSynchronize");
    ok_cuda(cudaEventRecord(B->a, B->s), "cudaEventRecord");
    const double t0 = now();
    for (int i = 0; i < n; i++) ok_cuda(gc_empty(B->s), "empty kernel");
    const double host = (now() - t0) / n;
    ok_cuda(cudaEventRecord(B->b, B->s), "cudaEventRecord");
    const double gpu = gpu_seconds(B->a, B->b) / n;
    row("launch_host", host, "s", "host time per launch of an empty kernel, many in a row");
    row("kernel_overhead", gpu, "s", "GPU time per empty kernel launched back to back (events around many)");

    /* sync: an empty kernel, then the host's wait for it, less the launch */
    double sync = 0;
    for (int i = 0; i < n; i++) {
        ok_cuda(gc_empty(B->s), "empty kernel");
        const double t = now();
        ok_cuda(cudaStreamSynchronize(B->s), "cudaStreamSynchronize");
        sync += now() - t;
    }
    sync /= n;
    row("sync_latency", sync, "s", "cudaStreamSynchronize after an empty kernel");

    int *h_x = NULL, *d_x = NULL;
    if (ok_cuda(cudaMallocHost((void **)&h_x, sizeof(int)), "cudaMallocHost") && ok_cuda(cudaMalloc((void **)&d_x, sizeof(int)), "cudaMalloc")) {
        *h_x = 1;
        double copy = 0;
        for (int i = 0; i < n; i++) {
            const double t = now();
            ok_cuda(cudaMemcpyAsync(d_x, h_x, sizeof(int), cudaMemcpyHostToDevice, B->s), "cudaMemcpyAsync");
            ok_cuda(cudaStreamSynchronize(B->s), "cudaStreamSynchronize");
            copy += now() - t;
        }
        copy = copy / n - sync;
        row("copy_latency", copy > 0 ? copy : 0, "s", "4-byte pinned cudaMemcpyAsync + sync, less sync_latency");
    }
    cudaFreeHost(h_x);
    cudaFree(d_x);

    /* a small GEMM's host cost: 64 x 64 x 64, queued without waiting */
    void *m = NULL;
    const float one = 1.0f, zero = 0.0f;
    if (ok_cuda(cudaMalloc(&m, 3 * 64 * 64 * 2), "cudaMalloc") && ok_cuda(cudaMemsetAsync(m, 0, 3 * 64 * 64 * 2, B->s), "cudaMemsetAsync")) {
        char *p = m;
        const int reps = B->quick ? 4 : 1000;
        const double t = now();
        for (int i = 0; i < reps; i++)
            ok_blas(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 64, 64, 64, &one, p, CUDA_R_16BF, 64, p + 8192, CUDA_R_16BF, 64,
                                 &zero, p + 16384, CUDA_R_16BF, 64, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT), "cublasGemmEx");
        row("library_host", (now() - t) / reps, "s", "host time per cublasGemmEx of 64 x 64 x 64, many in a row");
        ok_cuda(cudaStreamSynchronize(B->s), "cudaStreamSynchronize");
    }
    cudaFree(m);
}

static void pcie(const bench_t *B)
{
    const size_t bytes = B->quick ? (size_t)1 << 16 : (size_t)256 << 20;
    void *d = NULL, *pinned = NULL;
    char *pageable = malloc(bytes);
    if (pageable && ok_cuda(cudaMalloc(&d, bytes), "cudaMalloc") && ok_cuda(cudaMallocHost(&pinned, bytes), "cudaMallocHost")) {
        memset(pageable, 1, bytes);
        memset(pinned, 1, bytes);
        for (int pin = 0; pin < 2; pin++) {
            const void *src = pin ? pinned : (const void *)pageable;
            ok_cuda(cudaMemcpyAsync(d, src, bytes, cudaMemcpyHostToDevice, B->s), "cudaMemcpyAsync (warm-up)");
            ok_cuda(cudaStreamSynchronize(B->s), "cudaStreamSynchronize");
            const int reps = B->quick ? 1 : 10;
            const double t = now();
            for (int i = 0; i < reps; i++) ok_cuda(cudaMemcpyAsync(d, src, bytes, cudaMemcpyHostToDevice, B->s), "cudaMemcpyAsync");
            ok_cuda(cudaStreamSynchronize(B->s), "cudaStreamSynchronize");
            row(pin ? "pcie_bw_pinned" : "pcie_bw", (double)bytes * reps / (now() - t), "B/s",
                pin ? "host to device from cudaMallocHost memory" : "host to device from malloc'd memory");
        }
    }
    free(pageable);
    cudaFree(d);
    cudaFreeHost(pinned);
}

int main(int argc, char **argv)
{
    bench_t B = { 0 };
    int device = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            B.quick = 1;
        else if (!strcmp(argv[i], "--device") && i + 1 < argc)
            device = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gpu") && i + 1 < argc)
            gpu_name = argv[++i];
        else {
            fputs("usage: gpu_constants [--device N] [--quick] [--gpu NAME]\n", stderr);
            return 2;
        }
    }
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n <= device) {
        fprintf(stderr, "gpu_constants: no CUDA device %d\n", device);
        return 77;
    }
    cublasHandle_t h = NULL;
    if (!ok_cuda(cudaSetDevice(device), "cudaSetDevice") || !ok_cuda(cudaStreamCreate(&B.s), "cudaStreamCreate") ||
        !ok_cuda(cudaEventCreate(&B.a), "cudaEventCreate") || !ok_cuda(cudaEventCreate(&B.b), "cudaEventCreate") ||
        !ok_blas(cublasCreate(&h), "cublasCreate") || !ok_blas(cublasSetStream(h, B.s), "cublasSetStream"))
        return 1;
    printf("# gpu\tname\tvalue\tunit\tkind\tsource\n");
    hbm_bw(&B);
    const int big = B.quick ? 32 : 8192, wide = B.quick ? 32 : 4096;
    gemm_rate(&B, h, big, big, big, "tc_bf16_large");
    gemm_rate(&B, h, B.quick ? 16 : 64, wide, wide, "tc_bf16_small"); /* < 128 rows: the model's small class */
    fp32_rate(&B);
    launch_costs(&B, h);
    pcie(&B);
    cublasDestroy(h);
    cudaEventDestroy(B.a);
    cudaEventDestroy(B.b);
    cudaStreamDestroy(B.s);
    return failed;
}
