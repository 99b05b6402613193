/* Kernels of bench/gpu_constants.c, the microbenchmarks that measure the performance model's
 * constants (bench/gpu_constants.tsv) on a real GPU. Built with nvcc for the GPU and against the
 * emulation for the test that runs the program on the CPU (tests/test_perf_model.py). */
#include "../cuda/common.cuh"

#include "gpu_constants_kernels.h"

/* grid-stride copy in 16-byte words: every byte read once and written once, the traffic of the
 * streaming kernels the model charges at hbm_bw_fraction */
__global__ void stream_copy_kernel(uint4 *__restrict__ dst, const uint4 *__restrict__ src, size_t n)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = src[i];
}

/* FMA_CHAINS independent chains of `iters` dependent FMAs per thread: enough independent work per
 * warp scheduler to reach the CUDA cores' peak; the sum is stored so nothing is optimised away */
#define FMA_CHAINS 8

__global__ void fma_kernel(float *out, int iters, float a, float b)
{
    float x[FMA_CHAINS];
    const int tid = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    for (int c = 0; c < FMA_CHAINS; c++) x[c] = (float)(tid + c);
    for (int i = 0; i < iters; i++)
#pragma unroll
        for (int c = 0; c < FMA_CHAINS; c++) x[c] = fmaf(x[c], a, b);
    float s = 0.0f;
    for (int c = 0; c < FMA_CHAINS; c++) s += x[c];
    out[tid] = s;
}

__global__ void empty_kernel() {}

extern "C" cudaError_t gc_stream_copy(void *dst, const void *src, size_t bytes, int blocks, cudaStream_t stream)
{
    CUEMU_LAUNCH(blocks, 256, 0, stream, stream_copy_kernel)((uint4 *)dst, (const uint4 *)src, bytes / sizeof(uint4));
    return cudaGetLastError();
}

extern "C" cudaError_t gc_fma(float *out, int blocks, int iters, cudaStream_t stream)
{
    CUEMU_LAUNCH(blocks, 256, 0, stream, fma_kernel)(out, iters, 0.999f, 0.001f);
    return cudaGetLastError();
}

extern "C" double gc_fma_flops(int blocks, int iters) { return 2.0 * blocks * 256 * FMA_CHAINS * (double)iters; }

extern "C" cudaError_t gc_empty(cudaStream_t stream)
{
    CUEMU_LAUNCH(1, 32, 0, stream, empty_kernel)();
    return cudaGetLastError();
}
