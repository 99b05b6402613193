/* Decoder QK-norm and rotary embedding, in place on qkv rows (MODEL.md 6.2-6.4): each q head and
 * each k head of a row is RMS-normalised over Dh with its weight (qw for q heads, kw for k heads),
 * then rotated by rotate-half RoPE at the row's position (dimension i pairs with i + Dh/2). V is
 * untouched.
 *
 * Rounding follows the bf16 reference (MODEL.md 12 point 7) step by step, so the result is what
 * the official bf16 model computes, up to the last-bit differences of rsqrtf/sincosf:
 *   n = bf16(x * rsqrt(mean(x^2) + eps))       statistics in fp32
 *   y = bf16(w * n)
 *   inv_freq_i = 1 / theta^(2i/Dh)               fp32 (the power evaluated in double and rounded
 *                                                 once: the correctly rounded fp32 power)
 *   a = fp32(pos * inv_freq_i);  c = bf16(cos a), s = bf16(sin a)   (cos/sin in fp32)
 *   y'_i        = bf16(bf16(y_i * c) - bf16(y_{i+h} * s))            (h = Dh/2)
 *   y'_{i+h}    = bf16(bf16(y_{i+h} * c) + bf16(y_i * s))
 * which is torch's q * cos + rotate_half(q) * sin with bf16 tensors (each product and the sum
 * rounded). The CPU backend (fp32 activations) does the same without the roundings. */
#include "../common.cuh"

#include "kernels.h"

#include <math.h>

#define ROPE_THREADS 128
#define ROPE_MAX_DH 256 /* pairs per lane: Dh / 64 <= 4 */

/* grid: rows; block: ROPE_THREADS (4 warps). The row's cos/sin table (Dh/2 pairs, bf16-rounded)
 * is computed once into shared memory, then warp w normalises and rotates heads w, w + 4, ...
 * of the H + Hkv q and k heads; lane handles pairs i = lane + 32 p. */
__global__ void __launch_bounds__(ROPE_THREADS)
qk_norm_rope_kernel(bf16 *qkv, /* [rows][(H + 2 Hkv) * Dh], in place */ const bf16 *qw, /* [Dh] */
                    const bf16 *kw, /* [Dh] */ const int *pos, /* [rows] */ int H, int Hkv, int Dh, float eps,
                    float theta)
{
    __shared__ float cs[ROPE_MAX_DH / 2], sn[ROPE_MAX_DH / 2];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, half = Dh / 2;
    const int r = blockIdx.x;
    const float p = (float)pos[r];
    for (int i = tid; i < half; i += ROPE_THREADS) {
        const float expo = (float)(2 * i) / (float)Dh;
        const float inv_freq = 1.0f / (float)pow((double)theta, (double)expo);
        float s, c;
        sincosf(p * inv_freq, &s, &c);
        cs[i] = bf16_round(c);
        sn[i] = bf16_round(s);
    }
    __syncthreads();

    bf16 *row = qkv + (size_t)r * (H + 2 * Hkv) * Dh;
    for (int hd = warp; hd < H + Hkv; hd += ROPE_THREADS / 32) {
        bf16 *x = row + (size_t)hd * Dh;
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
            x[i] = __float2bfloat16_rn(bf16_round(y1 * cs[i]) - bf16_round(y2 * sn[i]));
            x[i + half] = __float2bfloat16_rn(bf16_round(y2 * cs[i]) + bf16_round(y1 * sn[i]));
        }
    }
}

extern "C" cudaError_t cuda_qk_norm_rope(bf16_t *qkv, const bf16_t *qw, const bf16_t *kw, const int *pos, int rows,
                                         int H, int Hkv, int Dh, float eps, float theta, cudaStream_t stream)
{
    SHAPE_ASSERT(rows >= 1 && H >= 1 && Hkv >= 1 && Dh >= 2 && Dh % 2 == 0 && Dh <= ROPE_MAX_DH);
    const double qk = (double)rows * (H + Hkv) * Dh * sizeof(bf16_t); /* in place on q and k */
    CUEMU_COST(qk + 2.0 * Dh * sizeof(bf16_t) + rows * sizeof(int), qk, 12.0 * rows * (H + Hkv) * Dh);
    CUEMU_LAUNCH(rows, ROPE_THREADS, 0, stream, qk_norm_rope_kernel)(reinterpret_cast<bf16 *>(qkv),
                                                                     reinterpret_cast<const bf16 *>(qw),
                                                                     reinterpret_cast<const bf16 *>(kw), pos, H,
                                                                     Hkv, Dh, eps, theta);
    return cudaGetLastError();
}
