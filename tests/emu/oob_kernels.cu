/* Kernels that write one element past global, static shared and dynamic shared memory, for the
 * AddressSanitizer test (tests/emu/test_emu_oob.c). Valid CUDA: nvcc compiles them too. */
#include "../../cuda/common.cuh"

/* grid: 1; block: 256. Writes y[1..256] of a 256-element buffer. */
__global__ void oob_global_kernel(float *y)
{
    y[threadIdx.x + 1] = 1.0f;
}

/* grid: 1; block: 256. tile[256] is one past the end; written through a pointer, as computed
 * indices usually are, so that ASan's redzone (not UBSan's array-bounds check) reports it. */
__global__ void oob_static_shared_kernel(const float *x, float *y)
{
    __shared__ float tile[256];
    float *t = tile;
    t[threadIdx.x + 1] = x[threadIdx.x];
    __syncthreads();
    y[threadIdx.x] = tile[threadIdx.x];
}

/* grid: 1; block: 256. The launcher sizes shared memory for bf16 while the kernel stores floats. */
__global__ void oob_dynamic_shared_kernel(const float *x, float *y)
{
    CUEMU_DYNAMIC_SHARED(float, row);
    row[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    y[threadIdx.x] = row[255 - threadIdx.x];
}

extern "C" cudaError_t emu_oob(int which, const float *x, float *y)
{
    if (which == 0) CUEMU_LAUNCH(1, 256, 0, 0, oob_global_kernel)(y);
    else if (which == 1) CUEMU_LAUNCH(1, 256, 0, 0, oob_static_shared_kernel)(x, y);
    else CUEMU_LAUNCH(1, 256, 256 * sizeof(bf16), 0, oob_dynamic_shared_kernel)(x, y);
    return cudaGetLastError();
}
