/* Kernels with the bugs the emulation must report (tests/emu/test_emu_bugs.c). They are still
 * valid CUDA: the nvcc compile check builds them too. */
#include "../../cuda/common.cuh"

#include "bug_kernels.h"

/* grid: 1; block: 256 (32 for the warp bugs). */
__global__ void bug_kernel(emu_bug bug, float *out)
{
    int t = threadIdx.x, lane = t % 32;
    float v = (float)t;
    switch (bug) {
    case BUG_EARLY_RETURN:
        if (t >= 200) return;
        __syncthreads();
        break;
    case BUG_IF_ELSE_BARRIER:
        if (t % 2) {
            v += 1.0f;
            __syncthreads();
        } else {
            v -= 1.0f;
            __syncthreads();
        }
        break;
    case BUG_HALF_WARP_SHUFFLE:
        if (lane < 16) v = __shfl_xor_sync(FULL_MASK, v, 16);
        break;
    case BUG_WARP_SITES:
        if (lane < 16) v = __shfl_xor_sync(FULL_MASK, v, 1);
        else v = __shfl_xor_sync(FULL_MASK, v, 2);
        break;
    case BUG_DEADLOCK:
        if (lane == 0) __syncthreads();
        else v = __shfl_xor_sync(FULL_MASK, v, 1);
        break;
    case BUG_PARTIAL_MASK:
        v = __shfl_xor_sync(0x0000ffffu, v, 1);
        break;
    default:
        break;
    }
    out[t] = v;
}

extern "C" cudaError_t emu_launch_bug(emu_bug bug, float *out)
{
    int warp_bug = bug == BUG_HALF_WARP_SHUFFLE || bug == BUG_WARP_SITES || bug == BUG_DEADLOCK || bug == BUG_PARTIAL_MASK;
    CUEMU_LAUNCH(1, warp_bug ? 32 : 256, 0, 0, bug_kernel)(bug, out);
    return cudaGetLastError();
}

/* grid: 1; block: 256. The __syncthreads between the write and the read is missing. */
__global__ void missing_sync_kernel(const float *x, float *y, int left_neighbour)
{
    __shared__ float tile[256];
    int i = threadIdx.x;
    tile[i] = x[i];
    y[i] = left_neighbour ? (i ? tile[i - 1] : x[0]) : tile[255 - i];
}

extern "C" cudaError_t emu_missing_sync(const float *x, float *y, int left_neighbour)
{
    CUEMU_LAUNCH(1, 256, 0, 0, missing_sync_kernel)(x, y, left_neighbour);
    return cudaGetLastError();
}
