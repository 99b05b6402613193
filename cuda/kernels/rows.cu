/* Row ops: embedding lookup and row gather (one copy kernel: out row i = source row idx[i], or
 * prev[-idx[i] - 1] for a negative idx: an embedding of the previous step's token), and
 * the greedy argmax over bf16 logits.
 *
 * Copies move the widest word the row width and the pointers allow (16, 4 or 2 bytes).
 * Argmax follows the reference (MODEL.md section 12.9): compare the bf16 logits as fp32, the
 * lowest index wins an exact tie, and NaN ranks below every number (it only wins a row that is
 * all NaN, at index 0). It reads the logits once, near HBM bandwidth, in two passes: several
 * blocks per row, each thread with several 16-byte loads in flight, write a (value, index) each
 * to the caller's workspace; one warp per row reduces them. The order ranks distinct indices
 * strictly, so the split and the reduction order give the same index as a serial scan. */
#include "../common.cuh"

#include "kernels.h"

#include <stdint.h>

#define COPY_BLOCK 256
#define MAX_GRID_Y 65535
#define ARGMAX_THREADS 256
#define ARGMAX_LOADS 4                                /* 16-byte loads in flight per thread */
#define ARGMAX_SPAN (ARGMAX_THREADS * ARGMAX_LOADS) /* 16-byte words per block of pass 1: 8192 logits */
#define ARGMAX_ROWS 4                                 /* rows per block of pass 2, a warp each */

/* grid: (ceil(words / COPY_BLOCK), min(n, 65535)); block: COPY_BLOCK; thread = one word of a
 * row, blocks striding over the rows. Word = uint4, unsigned or unsigned short. */
template <typename Word>
__global__ void copy_rows_kernel(Word *out, /* [n][words] */ const Word *src, /* [*][words] */
                                 const int *idx, /* [n] */ const int *prev, int n, int words)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    for (int r = blockIdx.y; r < n; r += gridDim.y) {
        const int k = idx[r], row = k >= 0 ? k : prev[-k - 1];
        if (i < words) out[(size_t)r * words + i] = src[(size_t)row * words + i];
    }
}

/* out [n][D] = src rows idx[i], or prev[-idx[i] - 1] where idx[i] < 0 (bf16, D elements per row);
 * out must not overlap src. */
static cudaError_t copy_rows(bf16_t *out, const bf16_t *src, const int *idx, const int *prev, int n, int D,
                             cudaStream_t stream)
{
    SHAPE_ASSERT(n >= 1 && D >= 1);
    const size_t bytes = (size_t)D * sizeof(bf16_t);
    const unsigned rows = (unsigned)(n < MAX_GRID_Y ? n : MAX_GRID_Y);
    /* as if the n rows were distinct (repeated ids read the same row: fewer bytes) */
    CUEMU_COST((double)n * bytes + n * sizeof(int), (double)n * bytes, 0);
    if (bytes % 16 == 0 && aligned(out, 16) && aligned(src, 16)) {
        const int words = (int)(bytes / 16);
        CUEMU_LAUNCH(dim3(CEIL_DIV(words, COPY_BLOCK), rows), COPY_BLOCK, 0, stream, copy_rows_kernel<uint4>)(
            reinterpret_cast<uint4 *>(out), reinterpret_cast<const uint4 *>(src), idx, prev, n, words);
    } else if (bytes % 4 == 0 && aligned(out, 4) && aligned(src, 4)) {
        const int words = (int)(bytes / 4);
        CUEMU_LAUNCH(dim3(CEIL_DIV(words, COPY_BLOCK), rows), COPY_BLOCK, 0, stream, copy_rows_kernel<unsigned>)(
            reinterpret_cast<unsigned *>(out), reinterpret_cast<const unsigned *>(src), idx, prev, n, words);
    } else {
        CUEMU_LAUNCH(dim3(CEIL_DIV(D, COPY_BLOCK), rows), COPY_BLOCK, 0, stream, copy_rows_kernel<unsigned short>)(
            out, src, idx, prev, n, D);
    }
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_embed(bf16_t *out, const bf16_t *table, const int *ids, const int *prev, int n, int D,
                                  cudaStream_t stream)
{
    return copy_rows(out, table, ids, prev, n, D, stream);
}

extern "C" cudaError_t cuda_gather_rows(bf16_t *out, const bf16_t *in, const int *idx, int n, int D,
                                        cudaStream_t stream)
{
    return copy_rows(out, in, idx, nullptr, n, D, stream);
}

/* Does (va, ia) rank above (vb, ib)? Larger value first, then lower index; NaN below all
 * numbers. A strict total order on distinct indices, so the reduction order does not matter. */
static __device__ __forceinline__ bool ranks_above(float va, int ia, float vb, int ib)
{
    if (va > vb) return true;
    if (va == vb) return ia < ib;
    return isnan(vb) && (!isnan(va) || ia < ib);
}

static __device__ __forceinline__ void keep_best(float &best_v, int &best_i, float v, int i)
{
    if (ranks_above(v, i, best_v, best_i)) {
        best_v = v;
        best_i = i;
    }
}

/* Pass 1. grid: n * nb (block b of row r at r * nb + b); block: ARGMAX_THREADS. A row is a head
 * of fewer than 8 logits up to its first 16-byte boundary, a body of 16-byte words (8 bf16) and a
 * tail of fewer than 8; block b takes body words [b ARGMAX_SPAN, (b + 1) ARGMAX_SPAN), each thread
 * ARGMAX_LOADS of them, all loaded before any compare, and block 0 also the head and the tail
 * (one logit per thread). The block's best goes to the partials [n][nb] (NaN, INT32_MAX: none). */
__global__ void __launch_bounds__(ARGMAX_THREADS)
argmax_part_kernel(float *part_v, int *part_i, /* [n][nb] */ const bf16 *logits, /* [n][vocab] */ int vocab, int nb)
{
    __shared__ float warp_v[ARGMAX_THREADS / 32];
    __shared__ int warp_i[ARGMAX_THREADS / 32];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, row = blockIdx.x / nb, b = blockIdx.x % nb;
    const bf16 *l = logits + (size_t)row * vocab;
    const int to_boundary = (int)((16 - (uintptr_t)l % 16) % 16 / sizeof(bf16));
    const int head = min(vocab, to_boundary), words = (vocab - head) / 8, tail = vocab - head - 8 * words;
    const uint4 *w = reinterpret_cast<const uint4 *>(l + head);

    uint4 u[ARGMAX_LOADS];
    for (int k = 0; k < ARGMAX_LOADS; k++) {
        const int x = b * ARGMAX_SPAN + k * ARGMAX_THREADS + tid;
        u[k] = x < words ? w[x] : make_uint4(0u, 0u, 0u, 0u);
    }
    float best_v = NAN; /* ranks below any element */
    int best_i = INT32_MAX;
    for (int k = 0; k < ARGMAX_LOADS; k++) {
        const int x = b * ARGMAX_SPAN + k * ARGMAX_THREADS + tid;
        const unsigned h[4] = {u[k].x, u[k].y, u[k].z, u[k].w};
        for (int e = 0; e < 4 && x < words; e++) { /* a bf16 is the upper half of an fp32 */
            keep_best(best_v, best_i, __uint_as_float(h[e] << 16), head + 8 * x + 2 * e);
            keep_best(best_v, best_i, __uint_as_float(h[e] & 0xffff0000u), head + 8 * x + 2 * e + 1);
        }
    }
    if (b == 0 && tid < head) keep_best(best_v, best_i, __bfloat162float(l[tid]), tid);
    if (b == 0 && tid < tail) keep_best(best_v, best_i, __bfloat162float(l[head + 8 * words + tid]), head + 8 * words + tid);
    for (int o = 16; o > 0; o >>= 1) {
        const float v = __shfl_xor_sync(FULL_MASK, best_v, o);
        const int i = __shfl_xor_sync(FULL_MASK, best_i, o);
        keep_best(best_v, best_i, v, i);
    }
    if (lane == 0) {
        warp_v[warp] = best_v;
        warp_i[warp] = best_i;
    }
    __syncthreads();
    if (warp == 0) {
        best_v = lane < ARGMAX_THREADS / 32 ? warp_v[lane] : NAN;
        best_i = lane < ARGMAX_THREADS / 32 ? warp_i[lane] : INT32_MAX;
        for (int o = 16; o > 0; o >>= 1) {
            const float v = __shfl_xor_sync(FULL_MASK, best_v, o);
            const int i = __shfl_xor_sync(FULL_MASK, best_i, o);
            keep_best(best_v, best_i, v, i);
        }
        if (lane == 0) {
            part_v[blockIdx.x] = best_v;
            part_i[blockIdx.x] = best_i;
        }
    }
}

/* Pass 2. grid: ceil(n / ARGMAX_ROWS); block: ARGMAX_ROWS warps, one row each: its lanes stride
 * over the row's nb partials, then shuffles. */
__global__ void __launch_bounds__(ARGMAX_ROWS * 32)
argmax_final_kernel(int *ids, /* [n] */ const float *part_v, const int *part_i, /* [n][nb] */ int n, int nb)
{
    const int lane = threadIdx.x % 32, row = blockIdx.x * ARGMAX_ROWS + threadIdx.x / 32;
    if (row >= n) return; /* warp-uniform; no block barrier here */
    float best_v = NAN;
    int best_i = INT32_MAX;
    for (int b = lane; b < nb; b += 32) keep_best(best_v, best_i, part_v[(size_t)row * nb + b], part_i[(size_t)row * nb + b]);
    for (int o = 16; o > 0; o >>= 1) {
        const float v = __shfl_xor_sync(FULL_MASK, best_v, o);
        const int i = __shfl_xor_sync(FULL_MASK, best_i, o);
        keep_best(best_v, best_i, v, i);
    }
    if (lane == 0) ids[row] = best_i;
}

/* Blocks per row of pass 1: a row has at most vocab / 8 body words. */
static int argmax_blocks_per_row(int V) { return V / 8 > ARGMAX_SPAN ? CEIL_DIV(V / 8, ARGMAX_SPAN) : 1; }

extern "C" size_t cuda_argmax_work_bytes(int n, int V)
{
    return (size_t)n * argmax_blocks_per_row(V) * (sizeof(float) + sizeof(int));
}

extern "C" cudaError_t cuda_argmax(int *ids, const bf16_t *logits, int n, int V, void *work, size_t work_bytes,
                                   cudaStream_t stream)
{
    SHAPE_ASSERT(n >= 1 && V >= 1 && work && work_bytes >= cuda_argmax_work_bytes(n, V) && aligned(work, 4));
    const int nb = argmax_blocks_per_row(V);
    SHAPE_ASSERT((long)n * nb <= INT32_MAX);
    float *part_v = (float *)work;
    int *part_i = (int *)(part_v + (size_t)n * nb);
    const size_t parts = (size_t)n * nb * (sizeof(float) + sizeof(int));
    CUEMU_COST((double)n * V * sizeof(bf16_t), parts, (double)n * V);
    CUEMU_LAUNCH(n * nb, ARGMAX_THREADS, 0, stream, argmax_part_kernel)(part_v, part_i,
                                                                         reinterpret_cast<const bf16 *>(logits), V, nb);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    CUEMU_COST(parts, n * sizeof(int), 0);
    CUEMU_LAUNCH(CEIL_DIV(n, ARGMAX_ROWS), ARGMAX_ROWS * 32, 0, stream, argmax_final_kernel)(ids, part_v, part_i, n, nb);
    return cudaGetLastError();
}
