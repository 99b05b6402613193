/* Row ops: embedding lookup and row gather (one copy kernel: out row i = source row idx[i]), and
 * the greedy argmax over bf16 logits.
 *
 * Copies move the widest word the row width and the pointers allow (16, 4 or 2 bytes).
 * Argmax follows the reference (MODEL.md section 12.9): compare the bf16 logits as fp32, the
 * lowest index wins an exact tie, and NaN ranks below every number (it only wins a row that is
 * all NaN, at index 0). */
#include "../common.cuh"

#include "kernels.h"

#include <stdint.h>

#define COPY_BLOCK 256
#define MAX_GRID_Y 65535
#define ARGMAX_BLOCK 1024

/* grid: (ceil(words / COPY_BLOCK), min(n, 65535)); block: COPY_BLOCK; thread = one word of a
 * row, blocks striding over the rows. Word = uint4, unsigned or unsigned short. */
template <typename Word>
__global__ void copy_rows_kernel(Word *out, /* [n][words] */ const Word *src, /* [*][words] */
                                 const int *idx, /* [n] */ int n, int words)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    for (int r = blockIdx.y; r < n; r += gridDim.y)
        if (i < words) out[(size_t)r * words + i] = src[(size_t)idx[r] * words + i];
}

/* out [n][D] = src rows idx[i] (bf16, D elements per row); out must not overlap src. */
static cudaError_t copy_rows(bf16_t *out, const bf16_t *src, const int *idx, int n, int D, cudaStream_t stream)
{
    SHAPE_ASSERT(n >= 1 && D >= 1);
    const size_t bytes = (size_t)D * sizeof(bf16_t);
    const unsigned rows = (unsigned)(n < MAX_GRID_Y ? n : MAX_GRID_Y);
    /* as if the n rows were distinct (repeated ids read the same row: fewer bytes) */
    CUEMU_COST((double)n * bytes + n * sizeof(int), (double)n * bytes, 0);
    if (bytes % 16 == 0 && aligned(out, 16) && aligned(src, 16)) {
        const int words = (int)(bytes / 16);
        CUEMU_LAUNCH(dim3(CEIL_DIV(words, COPY_BLOCK), rows), COPY_BLOCK, 0, stream, copy_rows_kernel<uint4>)(
            reinterpret_cast<uint4 *>(out), reinterpret_cast<const uint4 *>(src), idx, n, words);
    } else if (bytes % 4 == 0 && aligned(out, 4) && aligned(src, 4)) {
        const int words = (int)(bytes / 4);
        CUEMU_LAUNCH(dim3(CEIL_DIV(words, COPY_BLOCK), rows), COPY_BLOCK, 0, stream, copy_rows_kernel<unsigned>)(
            reinterpret_cast<unsigned *>(out), reinterpret_cast<const unsigned *>(src), idx, n, words);
    } else {
        CUEMU_LAUNCH(dim3(CEIL_DIV(D, COPY_BLOCK), rows), COPY_BLOCK, 0, stream, copy_rows_kernel<unsigned short>)(
            out, src, idx, n, D);
    }
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_embed(bf16_t *out, const bf16_t *table, const int *ids, int n, int D, cudaStream_t stream)
{
    return copy_rows(out, table, ids, n, D, stream);
}

extern "C" cudaError_t cuda_gather_rows(bf16_t *out, const bf16_t *in, const int *idx, int n, int D,
                                        cudaStream_t stream)
{
    return copy_rows(out, in, idx, n, D, stream);
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

/* grid: n (one block per row); block: up to ARGMAX_BLOCK threads striding over the row's
 * elements (bf16x2 pairs when VEC = 2), each keeping its best (value, index); then warp shuffles
 * and one shared (value, index) per warp. */
template <int VEC>
__global__ void argmax_kernel(int *ids, /* [n] */ const bf16 *logits, /* [n][vocab] */ int vocab)
{
    __shared__ float warp_v[ARGMAX_BLOCK / 32];
    __shared__ int warp_i[ARGMAX_BLOCK / 32];
    const int tid = threadIdx.x, nt = blockDim.x, lane = tid % 32, warp = tid / 32;
    const bf16 *l = logits + (size_t)blockIdx.x * vocab;

    float best_v = NAN; /* ranks below any element */
    int best_i = INT32_MAX;
    for (int p = tid; p < vocab / VEC; p += nt) {
        if constexpr (VEC == 2) {
            const float2 v = __bfloat1622float2(reinterpret_cast<const bf16x2 *>(l)[p]);
            keep_best(best_v, best_i, v.x, 2 * p);
            keep_best(best_v, best_i, v.y, 2 * p + 1);
        } else {
            keep_best(best_v, best_i, __bfloat162float(l[p]), p);
        }
    }
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
        best_v = lane < nt / 32 ? warp_v[lane] : NAN;
        best_i = lane < nt / 32 ? warp_i[lane] : INT32_MAX;
        for (int o = 16; o > 0; o >>= 1) {
            const float v = __shfl_xor_sync(FULL_MASK, best_v, o);
            const int i = __shfl_xor_sync(FULL_MASK, best_i, o);
            keep_best(best_v, best_i, v, i);
        }
        if (lane == 0) ids[blockIdx.x] = best_i;
    }
}

extern "C" cudaError_t cuda_argmax(int *ids, const bf16_t *logits, int n, int V, cudaStream_t stream)
{
    SHAPE_ASSERT(n >= 1 && V >= 1);
    const bf16 *l = reinterpret_cast<const bf16 *>(logits);
    CUEMU_COST((double)n * V * sizeof(bf16_t), n * sizeof(int), (double)n * V);
    if (V % 2 == 0 && aligned(logits, 4)) {
        const int block = V / 2 >= ARGMAX_BLOCK ? ARGMAX_BLOCK : CEIL_DIV(V / 2, 32) * 32;
        CUEMU_LAUNCH(n, block, 0, stream, argmax_kernel<2>)(ids, l, V);
    } else {
        const int block = V >= ARGMAX_BLOCK ? ARGMAX_BLOCK : CEIL_DIV(V, 32) * 32;
        CUEMU_LAUNCH(n, block, 0, stream, argmax_kernel<1>)(ids, l, V);
    }
    return cudaGetLastError();
}
