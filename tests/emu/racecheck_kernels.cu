/* Kernels for the race detector (tests/emu/test_emu_racecheck.c): planted races that it must
 * report in every fiber order, and correct kernels that it must pass. The lines of the planted
 * accesses carry a `race:` comment that the test looks up to check the reported file:line. They
 * are valid CUDA: the nvcc compile check builds them too. */
#include "../../cuda/common.cuh"

#include "racecheck_kernels.h"

/* grid: 1; block: 256. y[t] = x[255 - t] through a shared tile. */
__global__ void rc_tile_kernel(const float *x, float *y, int sync)
{
    __shared__ float tile[256];
    const int t = threadIdx.x;
    tile[t] = x[t]; /* race: tile write */
    if (sync) __syncthreads();
    y[t] = tile[255 - t]; /* race: tile read */
}

/* grid: 1; block: 256. Tree reduction of x[0..255] in shared memory; the step with o == skip
 * has no barrier after it. */
__global__ void rc_reduce_kernel(const float *x, float *y, int skip)
{
    __shared__ float s[256];
    const int t = threadIdx.x;
    s[t] = x[t];
    __syncthreads();
    for (int o = 128; o > 0; o >>= 1) {
        if (t < o) s[t] += s[t + o]; /* race: reduce step */
        if (o != skip) __syncthreads();
    }
    if (t == 0) y[0] = s[0];
}

/* grid: 1; block: 64. Warp 0 reduces 64 shared values in the Volta-safe way (read, __syncwarp,
 * write, __syncwarp); the step with o == skip lacks the __syncwarp between read and write. */
__global__ void rc_warp_reduce_kernel(const float *x, float *y, int skip)
{
    __shared__ float s[64];
    const int t = threadIdx.x;
    s[t] = x[t];
    __syncthreads();
    if (t < 32) {
        float v = s[t];
        for (int o = 32; o > 0; o >>= 1) {
            v += s[t + o]; /* race: warp read */
            if (o != skip) __syncwarp();
            s[t] = v; /* race: warp write */
            __syncwarp();
        }
        if (t == 0) y[0] = v;
    }
}

/* grid: 4; block: 32. Every block's thread 0 stores to the same address. */
__global__ void rc_global_blocks_kernel(float *y)
{
    if (threadIdx.x == 0) y[0] = (float)blockIdx.x; /* race: global write */
}

/* grid: 1; block: 256. y[t] = x[t + 1] by shifting a shared array left in place; without the
 * barrier, thread t reads s[t + 1] while thread t + 1 overwrites it. */
__global__ void rc_war_kernel(const float *x, float *y, int sync)
{
    __shared__ float s[256];
    const int t = threadIdx.x;
    s[t] = x[t];
    __syncthreads();
    const float v = t < 255 ? s[t + 1] : 0.0f; /* race: war read */
    if (sync) __syncthreads();
    s[t] = v; /* race: war write */
    __syncthreads();
    y[t] = s[t];
}

/* grid: 8; block: 64. Each block's thread 0 stores the block's sum to partial[blockIdx.x]; the
 * block whose atomicAdd on *count comes last adds the partials up into y[0]. The partials are
 * ordered before the last block's reads by __threadfence + atomic only. */
__global__ void rc_last_block_kernel(const float *x, float *partial, unsigned *count, float *y, int fence)
{
    __shared__ float s[64];
    __shared__ int last;
    const int t = threadIdx.x;
    s[t] = x[blockIdx.x * 64 + t];
    __syncthreads();
    if (t == 0) {
        float sum = 0.0f;
        for (int i = 0; i < 64; i++) sum += s[i];
        partial[blockIdx.x] = sum; /* race: partial write */
        if (fence) __threadfence();
        last = atomicAdd(count, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (last && t == 0) {
        float sum = 0.0f;
        for (unsigned b = 0; b < gridDim.x; b++) sum += partial[b]; /* race: partial read */
        y[0] = sum;
    }
}

/* grid: 1; block: 64. Thread 0 resets a counter that the others increment atomically. */
__global__ void rc_atomic_plain_kernel(unsigned *count)
{
    if (threadIdx.x == 0) *count = 0; /* race: plain store */
    else atomicAdd(count, 1u);        /* race: atomic add */
}

/* grid: 4; block: 128. Atomics from every thread on a shared and a global counter. */
__global__ void rc_atomics_kernel(unsigned *count, float *y)
{
    __shared__ unsigned n;
    if (threadIdx.x == 0) n = 0;
    __syncthreads();
    atomicAdd(&n, 1u);
    atomicAdd(count, 1u);
    atomicMax(count + 1, threadIdx.x);
    __syncthreads();
    if (threadIdx.x == 0) y[blockIdx.x] = (float)n;
}

/* grid: 2; block: 128. Warp sums with shuffles, then the block's from one value per warp. */
__global__ void rc_shuffle_kernel(const float *x, float *y)
{
    __shared__ float warp_sum[4];
    const int t = threadIdx.x, lane = t % 32, warp = t / 32;
    float v = x[blockIdx.x * 128 + t];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    v = __shfl_sync(FULL_MASK, v, 0);
    if (lane == 0) warp_sum[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < 4 ? warp_sum[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(FULL_MASK, v, o);
        if (lane == 0) y[blockIdx.x] = v;
    }
}

/* grid: 2; block: 128. Each thread writes, reads back and updates its own shared and global
 * elements, several times without a barrier; neighbours write adjacent bytes of one word. */
__global__ void rc_own_data_kernel(const float *x, float *y)
{
    __shared__ float s[128];
    __shared__ unsigned char c[128];
    const int t = threadIdx.x, i = blockIdx.x * 128 + t;
    s[t] = x[i];
    s[t] = s[t] * 2.0f;
    y[i] = s[t];
    y[i] += 1.0f;
    c[t] = (unsigned char)(t * 3);
    y[i] += (float)c[t] - (float)(unsigned char)(t * 3);
}

/* grid: 8; block: 64; dynamic shared memory: 64 floats. Every block fills the same static and
 * dynamic shared arrays (one block after another here, as on a GPU's reused shared memory) and
 * reads its neighbours' elements after a barrier. */
__global__ void rc_blocks_reuse_kernel(const float *x, float *y)
{
    __shared__ float s[64];
    CUEMU_DYNAMIC_SHARED(float, d);
    const int t = threadIdx.x, i = blockIdx.x * 64 + t;
    s[t] = x[i];
    d[t] = 2.0f * x[i];
    __syncthreads();
    y[i] = s[(t + 1) % 64] + d[(t + 63) % 64];
}

/* grid: 4; block: 64. Element (blockIdx.x * 64 + threadIdx.x + shift) % 256 of y gets x's: the
 * two launches of RC_LAUNCHES give each element to a different block, which is no race. */
__global__ void rc_accumulate_kernel(const float *x, float *y, int shift)
{
    const int e = (blockIdx.x * 64 + threadIdx.x + shift) % 256;
    y[e] += x[e];
}

extern "C" cudaError_t emu_racecheck_case(rc_case c, const float *x, float *y, unsigned *counters)
{
    switch (c) {
    case RC_TILE_NO_SYNC: CUEMU_LAUNCH(1, 256, 0, 0, rc_tile_kernel)(x, y, 0); break;
    case RC_TILE: CUEMU_LAUNCH(1, 256, 0, 0, rc_tile_kernel)(x, y, 1); break;
    case RC_REDUCE_NO_SYNC: CUEMU_LAUNCH(1, 256, 0, 0, rc_reduce_kernel)(x, y, 8); break;
    case RC_REDUCE: CUEMU_LAUNCH(1, 256, 0, 0, rc_reduce_kernel)(x, y, 0); break;
    case RC_WARP_REDUCE_NO_SYNC: CUEMU_LAUNCH(1, 64, 0, 0, rc_warp_reduce_kernel)(x, y, 4); break;
    case RC_WARP_REDUCE: CUEMU_LAUNCH(1, 64, 0, 0, rc_warp_reduce_kernel)(x, y, 0); break;
    case RC_GLOBAL_BLOCKS: CUEMU_LAUNCH(4, 32, 0, 0, rc_global_blocks_kernel)(y); break;
    case RC_WAR_NO_SYNC: CUEMU_LAUNCH(1, 256, 0, 0, rc_war_kernel)(x, y, 0); break;
    case RC_WAR: CUEMU_LAUNCH(1, 256, 0, 0, rc_war_kernel)(x, y, 1); break;
    case RC_LAST_BLOCK_NO_FENCE: CUEMU_LAUNCH(8, 64, 0, 0, rc_last_block_kernel)(x, y + 16, counters, y, 0); break;
    case RC_LAST_BLOCK: CUEMU_LAUNCH(8, 64, 0, 0, rc_last_block_kernel)(x, y + 16, counters, y, 1); break;
    case RC_ATOMIC_PLAIN: CUEMU_LAUNCH(1, 64, 0, 0, rc_atomic_plain_kernel)(counters); break;
    case RC_ATOMICS: CUEMU_LAUNCH(4, 128, 0, 0, rc_atomics_kernel)(counters, y); break;
    case RC_SHUFFLE: CUEMU_LAUNCH(2, 128, 0, 0, rc_shuffle_kernel)(x, y); break;
    case RC_OWN_DATA: CUEMU_LAUNCH(2, 128, 0, 0, rc_own_data_kernel)(x, y); break;
    case RC_BLOCKS_REUSE: CUEMU_LAUNCH(8, 64, 64 * sizeof(float), 0, rc_blocks_reuse_kernel)(x, y); break;
    case RC_LAUNCHES:
        CUEMU_LAUNCH(4, 64, 0, 0, rc_accumulate_kernel)(x, y, 0);
        CUEMU_LAUNCH(4, 64, 0, 0, rc_accumulate_kernel)(x, y, 100);
        break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}
