/* Small kernels for the runtime-shim test: their results show when queued work ran. */
#include "../../cuda/common.cuh"

#include "runtime_kernels.h"

/* grid: ceil(n / 128); block: 128. */
__global__ void fill_kernel(float *y, float v, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = v;
}

__global__ void axpy_kernel(float *__restrict__ y, const float *__restrict__ x, const float a, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += a * x[i];
}

__constant__ float emu_coeff[4];

__global__ void scale_kernel(float *y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] *= emu_coeff[i % 4];
}

/* grid: 1; block: 64. Half the block returns before the barrier. */
__global__ void faulty_kernel(float *y)
{
    if (threadIdx.x >= 32) return;
    __syncthreads();
    y[threadIdx.x] = 1.0f;
}

__global__ void empty_kernel() {}

extern "C" cudaError_t emu_fill(float *y, float v, int n, cudaStream_t stream)
{
    CUEMU_LAUNCH(CEIL_DIV(n, 128), 128, 0, stream, fill_kernel)(y, v, n);
    return cudaGetLastError();
}

extern "C" cudaError_t emu_axpy(float *y, const float *x, float a, int n, cudaStream_t stream)
{
    CUEMU_LAUNCH(CEIL_DIV(n, 128), 128, 0, stream, axpy_kernel)(y, x, a, n);
    return cudaGetLastError();
}

extern "C" cudaError_t emu_scale_by_coeff(float *y, int n, cudaStream_t stream)
{
    CUEMU_LAUNCH(CEIL_DIV(n, 128), 128, 0, stream, scale_kernel)(y, n);
    return cudaGetLastError();
}

extern "C" cudaError_t emu_set_coeff(const float coeff[4])
{
    return cudaMemcpyToSymbol(emu_coeff, coeff, 4 * sizeof(float));
}

extern "C" cudaError_t emu_set_coeff_overrun(const float coeff[5])
{
    return cudaMemcpyToSymbol(emu_coeff, coeff, 5 * sizeof(float));
}

extern "C" cudaError_t emu_faulty(float *y, cudaStream_t stream)
{
    CUEMU_LAUNCH(1, 64, 0, stream, faulty_kernel)(y);
    return cudaGetLastError();
}

extern "C" cudaError_t emu_configured(unsigned grid_x, unsigned block_x, unsigned block_z, size_t smem, int opt_in)
{
    if (opt_in) {
        cudaError_t e = cudaFuncSetAttribute(empty_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    CUEMU_LAUNCH(dim3(grid_x), dim3(block_x, 1, block_z), smem, 0, empty_kernel)();
    return cudaGetLastError();
}
