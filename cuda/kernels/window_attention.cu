/* Encoder self-attention inside windows (MODEL.md 5.6-5.7): every row of a window attends to all
 * rows of the same window (no mask, no RoPE), per head; softmax in fp32, output bf16.
 *
 * On tensor cores through attention_tile.cuh (nvcuda::wmma 16x16x16, bf16 in, fp32 accumulators,
 * the online softmax in fp32, P as bf16 hi + lo parts; the decoder's prefill attention is the
 * same tile with a causal mask and paged keys). One block per (window, tile of TILE_Q = 64 query
 * rows, head); the window's keys stream through shared memory TILE_K = 32 rows at a time (a
 * window's K and V are a few tens of KiB and stay in L2 for its other query tiles and heads).
 * Windows of the real model are 104 rows, head_dim 64: two query tiles, four key tiles. */
#include "../common.cuh"

#include "attention_tile.cuh"
#include "kernels.h"

#include <stdint.h>

/* grid: (n_win, ceil(max_len / TILE_Q), H); block: TILE_THREADS; dynamic shared memory:
 * attention_tile_smem_bytes<DH>(). Query tiles past their window's length exit at once. */
template <int DH>
__global__ void __launch_bounds__(TILE_THREADS)
window_attention_kernel(bf16 *out, /* [rows][H*Dh] */ const bf16 *qkv, /* [rows][3*H*Dh] q | k | v */
                        const int *win_start, /* [n_win] */ const int *win_len, /* [n_win] */
                        int H, int Dh, float scale_log2)
{
    CUEMU_DYNAMIC_SHARED(unsigned char, smem);
    const int w = blockIdx.x, q0 = blockIdx.y * TILE_Q, h = blockIdx.z;
    const int start = win_start[w], len = win_len[w];
    if (q0 >= len) return; /* block-uniform, before any barrier */
    const size_t ld = (size_t)3 * H * Dh, HD = (size_t)H * Dh;
    const bf16 *base = qkv + (size_t)start * ld + (size_t)h * Dh;
    bf16 *obase = out + (size_t)start * HD + (size_t)h * Dh;
    /* query vector v is row q0 + v; every row of the window sees all len keys */
    attention_tile<DH>(
        smem, Dh, scale_log2, len, [=](int v) { return q0 + v < len ? base + (size_t)(q0 + v) * ld : nullptr; },
        [=](int v) { return q0 + v < len ? len : 0; }, [=](int j) { return base + (size_t)j * ld + HD; },
        [=](int j) { return base + (size_t)j * ld + 2 * HD; },
        [=](int v) { return q0 + v < len ? obase + (size_t)(q0 + v) * HD : nullptr; });
}

template <int DH>
static cudaError_t launch_window(bf16 *out, const bf16 *qkv, const int *win_start, const int *win_len, int n_win,
                                 int max_len, int H, int Dh, float scale_log2, cudaStream_t stream)
{
    const size_t smem = attention_tile_smem_bytes<DH>();
    if (smem > 48 * 1024) {
        const cudaError_t e =
            cudaFuncSetAttribute(window_attention_kernel<DH>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    const dim3 grid(n_win, CEIL_DIV(max_len, TILE_Q), H);
    /* as if every window were max_len rows long (the launcher does not see win_len); tensor-core
     * flops: 2 for Q K^T and 2 x 2 for P V (hi and lo parts of P) per row, key and dimension */
    const double rows = (double)n_win * max_len, hd = (double)H * Dh;
    CUEMU_COST_TC(rows * 3 * hd * sizeof(bf16) + 2.0 * n_win * sizeof(int), rows * hd * sizeof(bf16),
                  6.0 * rows * max_len * hd);
    CUEMU_LAUNCH(grid, TILE_THREADS, smem, stream, window_attention_kernel<DH>)(out, qkv, win_start, win_len, H, Dh,
                                                                               scale_log2);
    return cudaGetLastError();
}

extern "C" cudaError_t cuda_window_attention(bf16_t *out, const bf16_t *qkv, const int *win_start,
                                             const int *win_len, int n_win, int max_len, int H, int Dh,
                                             float scale, cudaStream_t stream)
{
    SHAPE_ASSERT(n_win >= 1 && max_len >= 1 && H >= 1 && H <= 65535 && Dh >= 1 && Dh <= 128);
    /* rows are read as uint4 when Dh % 8 == 0 (then every row start is a multiple of 16 bytes) */
    SHAPE_ASSERT(Dh % 8 != 0 || (uintptr_t)qkv % 16 == 0);
    bf16 *o = reinterpret_cast<bf16 *>(out);
    const bf16 *x = reinterpret_cast<const bf16 *>(qkv);
    const float sl2 = scale * 1.44269504088896341f; /* exp(s) = exp2(s log2 e) */
    if (Dh <= 32) return launch_window<32>(o, x, win_start, win_len, n_win, max_len, H, Dh, sl2, stream);
    if (Dh <= 64) return launch_window<64>(o, x, win_start, win_len, n_win, max_len, H, Dh, sl2, stream);
    return launch_window<128>(o, x, win_start, win_len, n_win, max_len, H, Dh, sl2, stream);
}
