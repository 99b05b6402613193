/* Decoder QK-norm, rotary embedding and the KV store in one pass over the qkv rows (MODEL.md
 * 6.2-6.4): each q head and each k head of a row is RMS-normalised over Dh with its weight (qw
 * for q heads, kw for k heads), then rotated by rotate-half RoPE at the row's position (dimension
 * i pairs with i + Dh/2); q goes back into qkv, k and v into the paged cache at the row's slot.
 * The cos/sin come from a table of every position, computed once at load (rope_table_kernel)
 * rather than in every layer for every row.
 *
 * Rounding follows the bf16 reference (MODEL.md 12 point 7) step by step, so the result is what
 * the official bf16 model computes, up to the last-bit differences of rsqrtf/sincosf:
 *   n = bf16(x * rsqrt(mean(x^2) + eps))       statistics in fp32
 *   y = bf16(w * n)
 *   inv_freq_i = 1 / theta^(2i/Dh)               fp32 (the power evaluated in double and rounded
 *                                                 once: the correctly rounded fp32 power)
 *   a = fp32(pos * inv_freq_i);  c = bf16(cos a), s = bf16(sin a)   (cos/sin in fp32; the table)
 *   y'_i        = bf16(bf16(y_i * c) - bf16(y_{i+h} * s))            (h = Dh/2)
 *   y'_{i+h}    = bf16(bf16(y_{i+h} * c) + bf16(y_i * s))
 * which is torch's q * cos + rotate_half(q) * sin with bf16 tensors (each product and the sum
 * rounded). The CPU backend (fp32 activations) does the same without the roundings. */
#include "../common.cuh"

#include "kernels.h"

#include <math.h>
#include <stdint.h>

#define ROPE_THREADS 128
#define ROPE_MAX_DH 256 /* pairs per lane: Dh / 64 <= 4 */
#define ROPE_TABLE_BLOCKS 1024

/* grid: up to ROPE_TABLE_BLOCKS; block: ROPE_THREADS; a grid-stride loop over the n_pos * Dh/2
 * (position, pair) entries. Run once per model, so the double-precision power costs nothing. */
__global__ void __launch_bounds__(ROPE_THREADS)
rope_table_kernel(bf16 *rope, /* [n_pos][Dh]: cos of the Dh/2 pairs, then sin */ int n_pos, int Dh, float theta)
{
    const int half = Dh / 2;
    const size_t n = (size_t)n_pos * half;
    for (size_t e = (size_t)blockIdx.x * ROPE_THREADS + threadIdx.x; e < n; e += (size_t)gridDim.x * ROPE_THREADS) {
        const int p = (int)(e / half), i = (int)(e % half);
        const float expo = (float)(2 * i) / (float)Dh;
        const float inv_freq = 1.0f / (float)pow((double)theta, (double)expo);
        float s, c;
        sincosf((float)p * inv_freq, &s, &c);
        rope[(size_t)p * Dh + i] = __float2bfloat16_rn(c);
        rope[(size_t)p * Dh + half + i] = __float2bfloat16_rn(s);
    }
}

/* grid: rows; block: ROPE_THREADS (4 warps). The row's cos/sin (its table row) go to shared
 * memory; warp w normalises and rotates heads w, w + 4, ... of the H + Hkv q and k heads (lane:
 * pairs i = lane + 32 p), q back into qkv, k into the cache; the block copies the v heads to the
 * cache in 4-byte words. Cache offsets are 64-bit: a layer of a large pool exceeds 2^31 elements. */
__global__ void __launch_bounds__(ROPE_THREADS)
qk_norm_rope_store_kernel(bf16 *kv, /* this layer: [n_pages][2][Hkv][P][Dh] */
                          bf16 *qkv, /* [rows][(H + 2 Hkv) * Dh]: q in place */ const bf16 *qw, /* [Dh] */
                          const bf16 *kw, /* [Dh] */ const bf16 *rope, /* [*][Dh] */ const int *pos, /* [rows] */
                          const int *slot, /* [rows] */ int H, int Hkv, int Dh, int P, float eps)
{
    __shared__ float cs[ROPE_MAX_DH / 2], sn[ROPE_MAX_DH / 2];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, half = Dh / 2;
    const int r = blockIdx.x, page = slot[r] / P, off = slot[r] % P;
    const bf16 *t = rope + (size_t)pos[r] * Dh;
    for (int i = tid; i < half; i += ROPE_THREADS) {
        cs[i] = __bfloat162float(t[i]);
        sn[i] = __bfloat162float(t[half + i]);
    }
    __syncthreads();

    bf16 *row = qkv + (size_t)r * (H + 2 * Hkv) * Dh;
    for (int hd = warp; hd < H + Hkv; hd += ROPE_THREADS / 32) {
        const bf16 *x = row + (size_t)hd * Dh;
        bf16 *y = hd < H ? row + (size_t)hd * Dh : kv + (((size_t)page * 2 * Hkv + (hd - H)) * P + off) * Dh;
        const bf16 *w = hd < H ? qw : kw;
        float x1[ROPE_MAX_DH / 64], x2[ROPE_MAX_DH / 64];
        float ss = 0.0f;
        for (int k = 0; k < ROPE_MAX_DH / 64; k++) {
            const int i = lane + 32 * k;
            x1[k] = i < half ? __bfloat162float(x[i]) : 0.0f;
            x2[k] = i < half ? __bfloat162float(x[i + half]) : 0.0f;
            ss += x1[k] * x1[k] + x2[k] * x2[k];
        }
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(FULL_MASK, ss, o);
        const float inv = rsqrtf(ss / (float)Dh + eps);
        for (int k = 0; k < ROPE_MAX_DH / 64; k++) {
            const int i = lane + 32 * k;
            if (i >= half) continue;
            const float y1 = bf16_round(__bfloat162float(w[i]) * bf16_round(x1[k] * inv));
            const float y2 = bf16_round(__bfloat162float(w[i + half]) * bf16_round(x2[k] * inv));
            y[i] = __float2bfloat16_rn(bf16_round(y1 * cs[i]) - bf16_round(y2 * sn[i]));
            y[i + half] = __float2bfloat16_rn(bf16_round(y2 * cs[i]) + bf16_round(y1 * sn[i]));
        }
    }

    const int W = Dh / 2; /* 4-byte words per head */
    const uint32_t *v = reinterpret_cast<const uint32_t *>(row + (size_t)(H + Hkv) * Dh);
    uint32_t *cache = reinterpret_cast<uint32_t *>(kv);
    for (int i = tid; i < Hkv * W; i += ROPE_THREADS) {
        const int g = i / W, c = i % W;
        cache[(((size_t)page * 2 * Hkv + Hkv + g) * P + off) * W + c] = v[i];
    }
}

extern "C" cudaError_t cuda_rope_table(bf16_t *rope, int n_pos, int Dh, float theta, cudaStream_t stream)
{
    SHAPE_ASSERT(n_pos >= 1 && Dh >= 2 && Dh % 2 == 0);
    const long long pairs = (long long)n_pos * (Dh / 2), blocks = CEIL_DIV(pairs, ROPE_THREADS);
    CUEMU_COST(0.0, 2.0 * pairs * sizeof(bf16_t), 40.0 * pairs);
    CUEMU_LAUNCH((int)(blocks < ROPE_TABLE_BLOCKS ? blocks : ROPE_TABLE_BLOCKS), ROPE_THREADS, 0, stream, rope_table_kernel)(reinterpret_cast<bf16 *>(rope), n_pos, Dh, theta);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_qk_norm_rope_store(bf16_t *kv, bf16_t *qkv, const bf16_t *qw, const bf16_t *kw,
                                               const bf16_t *rope, const int *pos, const int *slot, int rows, int H,
                                               int Hkv, int Dh, int page_size, float eps, cudaStream_t stream)
{
    SHAPE_ASSERT(rows >= 1 && H >= 1 && Hkv >= 1 && page_size >= 1);
    SHAPE_ASSERT(Dh >= 2 && Dh % 2 == 0 && Dh <= ROPE_MAX_DH && aligned(kv, 4) && aligned(qkv, 4));
    const double head = (double)Dh * sizeof(bf16_t), qkv_b = (double)rows * (H + 2 * Hkv) * head;
    CUEMU_COST(qkv_b + rows * head + 2.0 * head + 2.0 * rows * sizeof(int), qkv_b,
               12.0 * rows * (H + Hkv) * Dh);
    CUEMU_LAUNCH(rows, ROPE_THREADS, 0, stream, qk_norm_rope_store_kernel)(
        reinterpret_cast<bf16 *>(kv), reinterpret_cast<bf16 *>(qkv), reinterpret_cast<const bf16 *>(qw),
        reinterpret_cast<const bf16 *>(kw), reinterpret_cast<const bf16 *>(rope), pos, slot, H, Hkv, Dh, page_size,
        eps);
    return cudaGetLastError();
}
