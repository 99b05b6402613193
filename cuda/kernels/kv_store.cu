/* Append keys and values to the paged KV cache: the k and v parts of qkv row r go to cache slot
 * slot[r] = page * P + offset of this layer's cache [n_pages][2 (K, V)][Hkv][P][Dh] (backend.h).
 * A pure copy (keys are already normalised and rotated by qk_norm_rope), 16 bytes per thread. */
#include "../common.cuh"

#include "kernels.h"

#include <stdint.h>

#define KV_STORE_THREADS 128

/* grid: rows; block: KV_STORE_THREADS; thread = one uint4 (8 values) of the row's 2 Hkv Dh k and
 * v values, consecutive threads on consecutive words of a head (coalesced on both sides). Cache
 * offsets are 64-bit: a layer of a large pool exceeds 2^31 elements. */
__global__ void __launch_bounds__(KV_STORE_THREADS)
kv_store_kernel(uint4 *kv, /* this layer: [n_pages][2][Hkv][P][Dh / 8] */
                const uint4 *qkv, /* [rows][(H + 2 Hkv) * Dh / 8] */ const int *slot, /* [rows] */
                int H, int Hkv, int Dh, int P)
{
    const int r = blockIdx.x, W = Dh / 8; /* words per head */
    const int page = slot[r] / P, off = slot[r] % P;
    const uint4 *src = qkv + (size_t)r * (H + 2 * Hkv) * W + (size_t)H * W; /* k heads, then v heads */
    for (int i = threadIdx.x; i < 2 * Hkv * W; i += KV_STORE_THREADS) {
        const int hw = i / W, c = i % W; /* hw = which * Hkv + g, in source order */
        kv[(((size_t)page * 2 * Hkv + hw) * P + off) * W + c] = src[i];
    }
}

extern "C" cudaError_t cuda_kv_store(bf16_t *kv, const bf16_t *qkv, const int *slot, int rows, int H, int Hkv,
                                     int Dh, int page_size, cudaStream_t stream)
{
    SHAPE_ASSERT(rows >= 1 && H >= 1 && Hkv >= 1 && page_size >= 1);
    SHAPE_ASSERT(Dh >= 8 && Dh % 8 == 0 && (uintptr_t)kv % 16 == 0 && (uintptr_t)qkv % 16 == 0);
    const double kvb = 2.0 * rows * Hkv * Dh * sizeof(bf16_t); /* the K and V parts of the rows */
    CUEMU_COST(kvb + rows * sizeof(int), kvb, 0);
    CUEMU_LAUNCH(rows, KV_STORE_THREADS, 0, stream, kv_store_kernel)(reinterpret_cast<uint4 *>(kv),
                                                                     reinterpret_cast<const uint4 *>(qkv), slot,
                                                                     H, Hkv, Dh, page_size);
    return cudaGetLastError();
}
