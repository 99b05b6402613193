/* Row normalisations of bf16 activations: LayerNorm (encoder) and RMSNorm (decoder), each also
 * fused with the residual add before it (add_layernorm, add_rmsnorm: x += delta, then the norm of
 * x: x and delta read once; the same kernel with and without it). Statistics in fp32 over the
 * whole row (one block per row, warp shuffles then one shared partial per warp); rounding as the bf16 reference (MODEL.md section 12): LayerNorm rounds once at its
 * output; RMSNorm rounds the normalised value to bf16, then multiplies by the weight and rounds
 * again (section 6.2).
 *
 * The row is read from global memory once, as bf16x2 pairs when D is even and the pointers are
 * 4-byte aligned (scalar otherwise), and kept in shared memory in fp32 for the later passes:
 * each thread only reads back its own elements. */
#include "../common.cuh"

#include "kernels.h"

#include <stdint.h>

#define MAX_BLOCK 256
#define MAX_D 8192 /* row in shared memory: 32 KiB of the 48 KiB available without opt-in */

/* threads per row: enough for one item (element or pair) each, a multiple of 32, at most 256 */
static inline int norm_block(int items) { return items >= MAX_BLOCK ? MAX_BLOCK : CEIL_DIV(items, 32) * 32; }

/* Item p of a bf16 vector as VEC fp32 values: element p (VEC = 1) or the pair 2p, 2p+1 (VEC = 2). */
template <int VEC>
static __device__ __forceinline__ void load_item(float *dst, const bf16 *src, int p)
{
    if constexpr (VEC == 2) {
        const float2 v = __bfloat1622float2(reinterpret_cast<const bf16x2 *>(src)[p]);
        dst[0] = v.x;
        dst[1] = v.y;
    } else {
        dst[0] = __bfloat162float(src[p]);
    }
}

template <int VEC>
static __device__ __forceinline__ void store_item(bf16 *dst, int p, const float *v)
{
    if constexpr (VEC == 2) reinterpret_cast<bf16x2 *>(dst)[p] = __floats2bfloat162_rn(v[0], v[1]);
    else dst[p] = __float2bfloat16_rn(v[0]);
}

/* Sum over the block, returned to every thread. red: 32 floats of shared memory, free again on
 * return (the second barrier keeps a following call from overwriting partials still being read). */
static __device__ __forceinline__ float block_sum(float v, float *red)
{
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, warps = blockDim.x / 32;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < warps ? red[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    __syncthreads();
    return v;
}

/* The row into shared memory in fp32, each thread its own items (it alone reads them back, so no
 * barrier follows): x, or with a residual the sum x + delta rounded to bf16 (the residual stream
 * is bf16, MODEL.md 12 points 5, 6; delta is a Linear's output, bias included), written back to
 * x_sum (= x). Each thread reads its items of x and delta before writing, so out may be delta. */
template <int VEC>
static __device__ __forceinline__ void row_in(float *row, const bf16 *x, bf16 *x_sum, const bf16 *delta, int items)
{
    for (int p = threadIdx.x; p < items; p += blockDim.x) {
        float a[VEC];
        load_item<VEC>(a, x, p);
        if (delta) {
            float d[VEC];
            load_item<VEC>(d, delta, p);
            for (int k = 0; k < VEC; k++) a[k] = bf16_round(a[k] + d[k]);
            store_item<VEC>(x_sum, p, a);
        }
        for (int k = 0; k < VEC; k++) row[p * VEC + k] = a[k];
    }
}

/* grid: rows; block: norm_block(D / VEC) threads over the row's items (VEC = 2: bf16x2 pairs);
 * dynamic shared memory: the row in fp32, D floats. Two-pass statistics, as the CPU reference.
 * delta NULL: out = layernorm(x); else x += delta first (add_layernorm). */
template <int VEC>
__global__ void layernorm_kernel(bf16 *out, /* [rows][D] */ bf16 *x, /* [rows][D]; written only with delta */
                                 const bf16 *delta, /* [rows][D] or NULL */ const bf16 *w, /* [D] */
                                 const bf16 *b, /* [D] */ int D, float eps)
{
    CUEMU_DYNAMIC_SHARED(float, row);
    __shared__ float red[32];
    const int tid = threadIdx.x, nt = blockDim.x, items = D / VEC;
    const size_t off = (size_t)blockIdx.x * D;
    row_in<VEC>(row, x + off, x + off, delta ? delta + off : nullptr, items);

    float sum = 0.0f;
    for (int p = tid; p < items; p += nt)
        for (int k = 0; k < VEC; k++) sum += row[p * VEC + k];
    const float mean = block_sum(sum, red) / (float)D;

    float var = 0.0f;
    for (int p = tid; p < items; p += nt)
        for (int k = 0; k < VEC; k++) {
            const float d = row[p * VEC + k] - mean;
            var += d * d;
        }
    const float inv = rsqrtf(block_sum(var, red) / (float)D + eps);

    for (int p = tid; p < items; p += nt) {
        float wv[VEC], bv[VEC], y[VEC];
        load_item<VEC>(wv, w, p);
        load_item<VEC>(bv, b, p);
        for (int k = 0; k < VEC; k++) y[k] = (row[p * VEC + k] - mean) * inv * wv[k] + bv[k];
        store_item<VEC>(out + off, p, y);
    }
}

static cudaError_t layernorm(bf16_t *out, bf16_t *x, const bf16_t *delta, const bf16_t *w, const bf16_t *b, int rows,
                             int D, float eps, cudaStream_t stream)
{
    SHAPE_ASSERT(rows >= 1 && D >= 1 && D <= MAX_D);
    bf16 *o = reinterpret_cast<bf16 *>(out), *dx = reinterpret_cast<bf16 *>(x);
    const bf16 *dd = reinterpret_cast<const bf16 *>(delta), *dw = reinterpret_cast<const bf16 *>(w),
               *db = reinterpret_cast<const bf16 *>(b);
    const size_t smem = (size_t)D * sizeof(float);
    const double n = (double)rows * D * sizeof(bf16_t), add = delta ? 1.0 : 0.0;
    CUEMU_COST((1.0 + add) * n + 2.0 * D * sizeof(bf16_t), (1.0 + add) * n, (8.0 + 2.0 * add) * rows * D);
    if (D % 2 == 0 && aligned(out, 4) && aligned(x, 4) && aligned(delta, 4) && aligned(w, 4) && aligned(b, 4))
        CUEMU_LAUNCH(rows, norm_block(D / 2), smem, stream, layernorm_kernel<2>)(o, dx, dd, dw, db, D, eps);
    else
        CUEMU_LAUNCH(rows, norm_block(D), smem, stream, layernorm_kernel<1>)(o, dx, dd, dw, db, D, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_layernorm(bf16_t *out, const bf16_t *x, const bf16_t *w, const bf16_t *b, int rows,
                                      int D, float eps, cudaStream_t stream)
{
    return layernorm(out, const_cast<bf16_t *>(x), nullptr, w, b, rows, D, eps, stream); /* x only read */
}

extern "C" cudaError_t cuda_add_layernorm(bf16_t *out, bf16_t *x, const bf16_t *delta, const bf16_t *w,
                                          const bf16_t *b, int rows, int D, float eps, cudaStream_t stream)
{
    return layernorm(out, x, delta, w, b, rows, D, eps, stream);
}

/* grid: rows; block: norm_block(D / VEC) threads over the row's items (VEC = 2: bf16x2 pairs);
 * dynamic shared memory: the row in fp32, D floats. delta NULL: out = rmsnorm(x); else x += delta
 * first (add_rmsnorm), and w NULL: the add alone. */
template <int VEC>
__global__ void rmsnorm_kernel(bf16 *out, /* [rows][D] or NULL */ bf16 *x, /* [rows][D]; written only with delta */
                               const bf16 *delta, /* [rows][D] or NULL */ const bf16 *w, /* [D] or NULL */ int D,
                               float eps)
{
    CUEMU_DYNAMIC_SHARED(float, row);
    __shared__ float red[32];
    const int tid = threadIdx.x, nt = blockDim.x, items = D / VEC;
    const size_t off = (size_t)blockIdx.x * D;
    row_in<VEC>(row, x + off, x + off, delta ? delta + off : nullptr, items);
    if (!w) return; /* the residual alone */

    float ss = 0.0f;
    for (int p = tid; p < items; p += nt)
        for (int k = 0; k < VEC; k++) ss += row[p * VEC + k] * row[p * VEC + k];
    const float inv = rsqrtf(block_sum(ss, red) / (float)D + eps);

    for (int p = tid; p < items; p += nt) {
        float wv[VEC], y[VEC];
        load_item<VEC>(wv, w, p);
        for (int k = 0; k < VEC; k++) y[k] = wv[k] * bf16_round(row[p * VEC + k] * inv);
        store_item<VEC>(out + off, p, y);
    }
}

static cudaError_t rmsnorm(bf16_t *out, bf16_t *x, const bf16_t *delta, const bf16_t *w, int rows, int D, float eps,
                           cudaStream_t stream)
{
    SHAPE_ASSERT(rows >= 1 && D >= 1 && D <= MAX_D && (w == nullptr) == (out == nullptr) && (w || delta));
    bf16 *o = reinterpret_cast<bf16 *>(out), *dx = reinterpret_cast<bf16 *>(x);
    const bf16 *dd = reinterpret_cast<const bf16 *>(delta), *dw = reinterpret_cast<const bf16 *>(w);
    const size_t smem = (size_t)D * sizeof(float);
    const double n = (double)rows * D * sizeof(bf16_t), add = delta ? 1.0 : 0.0, norm = w ? 1.0 : 0.0;
    CUEMU_COST((1.0 + add) * n + norm * D * sizeof(bf16_t), (add + norm) * n, (2.0 * add + 5.0 * norm) * rows * D);
    if (D % 2 == 0 && aligned(out, 4) && aligned(x, 4) && aligned(delta, 4) && aligned(w, 4))
        CUEMU_LAUNCH(rows, norm_block(D / 2), smem, stream, rmsnorm_kernel<2>)(o, dx, dd, dw, D, eps);
    else
        CUEMU_LAUNCH(rows, norm_block(D), smem, stream, rmsnorm_kernel<1>)(o, dx, dd, dw, D, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_rmsnorm(bf16_t *out, const bf16_t *x, const bf16_t *w, int rows, int D, float eps,
                                    cudaStream_t stream)
{
    return rmsnorm(out, const_cast<bf16_t *>(x), nullptr, w, rows, D, eps, stream); /* x only read */
}

extern "C" cudaError_t cuda_add_rmsnorm(bf16_t *out, bf16_t *x, const bf16_t *delta, const bf16_t *w, int rows, int D,
                                        float eps, cudaStream_t stream)
{
    return rmsnorm(out, x, delta, w, rows, D, eps, stream);
}
