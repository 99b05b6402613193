/* Encoder front (MODEL.md section 5): cut the log-mel into zero-padded conv chunks, the
 * channel-major flatten of each time column after the convs (conv_implicit.cu), and the
 * sinusoidal position embedding add. All bf16 in and out.
 *
 * The layout changes (mel_chunks, conv_flatten) stage tiles through shared memory so that both
 * the reads and the writes are coalesced; the element-wise ops use bf16x2 pairs when the row
 * width is even and the pointers are 4-byte aligned (scalar otherwise). */
#include "../common.cuh"

#include "kernels.h"

#include <stdint.h>

#define BLOCK 256
#define MAX_BLOCKS 1024
#define MAX_GRID_YZ 65535
#define TILE 32
#define FLATTEN_TILE_ELEMS 4096 /* bf16 staged per conv_flatten block (8 KiB) when F*W is smaller */

static inline unsigned cap(int64_t v, int64_t max) { return (unsigned)(v < max ? v : max); }

/* Row ops: threads for one row's items (a multiple of 32, at most BLOCK), blocks on y per row. */
static inline int row_block(int64_t items_per_row)
{
    return items_per_row >= BLOCK ? BLOCK : (int)CEIL_DIV(items_per_row, 32) * 32;
}

/* grid: (ceil(W / 32), ceil(n_mels / 32), min(N, 65535)); block: (32, 8); a 32 x 32 tile of
 * (frames, mels) read along mels (the input's contiguous axis), transposed through shared
 * memory, written along frames; blocks stride over chunks on z. */
__global__ void mel_chunks_kernel(bf16 *out, /* [N][n_mels][W] */ const bf16 *mel, /* [*][n_mels] */
                                  const int *start, /* [N] */ const int *len, /* [N] */ int N, int n_mels, int W)
{
    __shared__ float tile[TILE][TILE + 1]; /* [frame][mel]; +1: column reads hit distinct banks */
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int w0 = blockIdx.x * TILE, m0 = blockIdx.y * TILE;
    for (int c = blockIdx.z; c < N; c += gridDim.z) {
        const int s = start[c], l = len[c];
        for (int j = ty; j < TILE; j += blockDim.y) {
            const int w = w0 + j, m = m0 + tx;
            tile[j][tx] = w < l && w < W && m < n_mels ? __bfloat162float(mel[(size_t)(s + w) * n_mels + m]) : 0.0f;
        }
        __syncthreads();
        for (int j = ty; j < TILE; j += blockDim.y) {
            const int m = m0 + j, w = w0 + tx;
            if (m < n_mels && w < W) out[((size_t)c * n_mels + m) * W + w] = __float2bfloat16_rn(tile[tx][j]);
        }
        __syncthreads(); /* the tile is rewritten for the next chunk */
    }
}

extern "C" cudaError_t cuda_mel_chunks(bf16_t *out, const bf16_t *mel, const int *start, const int *len, int N,
                                       int n_mels, int W, cudaStream_t stream)
{
    SHAPE_ASSERT(N >= 1 && n_mels >= 1 && W >= 1);
    const dim3 grid(CEIL_DIV(W, TILE), CEIL_DIV(n_mels, TILE), cap(N, MAX_GRID_YZ));
    /* reads at most W frames per chunk (the last of an item is shorter) */
    const double chunk = (double)N * n_mels * W * sizeof(bf16_t);
    CUEMU_COST(chunk + 2.0 * N * sizeof(int), chunk, 0);
    CUEMU_LAUNCH(grid, dim3(TILE, 8), 0, stream, mel_chunks_kernel)(
        reinterpret_cast<bf16 *>(out), reinterpret_cast<const bf16 *>(mel), start, len, N, n_mels, W);
    return cudaGetLastError();
}

/* grid: (ceil(C / CB), min(N, 65535)); block: BLOCK; dynamic shared memory: CB*F*W bf16.
 * A block stages the [F][W] planes of CB consecutive channels of chunk n (each plane contiguous
 * in the input: coalesced reads), then writes every time column w as the CB*F contiguous
 * elements (c, f) of output row n*W + w; blocks stride over chunks on y. */
__global__ void conv_flatten_kernel(bf16 *out, /* [N*W][C*F] */ const bf16 *in, /* [C][N][F][W] */
                                    int C, int N, int F, int W, int CB)
{
    CUEMU_DYNAMIC_SHARED(bf16, tile); /* [cb][F][W] */
    const int tid = threadIdx.x, nt = blockDim.x, FW = F * W;
    const int c0 = blockIdx.x * CB, cb = C - c0 < CB ? C - c0 : CB;
    for (int n = blockIdx.y; n < N; n += gridDim.y) {
        for (int e = tid; e < cb * FW; e += nt) {
            const int cl = e / FW, fw = e % FW;
            tile[e] = in[((size_t)(c0 + cl) * N + n) * FW + fw];
        }
        __syncthreads();
        for (int e = tid; e < W * cb * F; e += nt) {
            const int w = e / (cb * F), q = e % (cb * F); /* q = cl * F + f */
            out[((size_t)n * W + w) * C * F + (size_t)c0 * F + q] = tile[q / F * FW + q % F * W + w];
        }
        __syncthreads(); /* the tile is rewritten for the next chunk */
    }
}

extern "C" cudaError_t cuda_conv_flatten(bf16_t *out, const bf16_t *in, int C, int N, int F, int W,
                                         cudaStream_t stream)
{
    SHAPE_ASSERT(C >= 1 && N >= 1 && F >= 1 && W >= 1);
    SHAPE_ASSERT((int64_t)F * W * sizeof(bf16) <= 48 * 1024); /* one channel plane fits a block */
    const int FW = F * W;
    const int CB = FW >= FLATTEN_TILE_ELEMS ? 1 : (FLATTEN_TILE_ELEMS / FW < C ? FLATTEN_TILE_ELEMS / FW : C);
    const size_t smem = (size_t)CB * FW * sizeof(bf16);
    const dim3 grid(CEIL_DIV(C, CB), cap(N, MAX_GRID_YZ));
    CUEMU_COST((double)C * N * FW * sizeof(bf16), (double)C * N * FW * sizeof(bf16), 0);
    CUEMU_LAUNCH(grid, BLOCK, smem, stream, conv_flatten_kernel)(
        reinterpret_cast<bf16 *>(out), reinterpret_cast<const bf16 *>(in), C, N, F, W, CB);
    return cudaGetLastError();
}

/* grid: (ceil(items / BLOCK) capped, min(rows, 65535)); block: row_block(items); items = D / 2
 * bf16x2 pairs or D elements; thread = one item of a row, blocks striding over rows. */
template <bool PAIRS>
__global__ void add_pos_emb_kernel(bf16 *x, /* [rows][D] */ const bf16 *pe, /* [period][D] */ int rows, int period,
                                   int D)
{
    const int first = blockIdx.x * blockDim.x + threadIdx.x, step = gridDim.x * blockDim.x;
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        bf16 *xr = x + (size_t)r * D;
        const bf16 *p = pe + (size_t)(r % period) * D;
        if constexpr (PAIRS) {
            for (int i = first; i < D / 2; i += step) {
                const float2 a = __bfloat1622float2(reinterpret_cast<bf16x2 *>(xr)[i]);
                const float2 b = __bfloat1622float2(reinterpret_cast<const bf16x2 *>(p)[i]);
                reinterpret_cast<bf16x2 *>(xr)[i] = __floats2bfloat162_rn(a.x + b.x, a.y + b.y);
            }
        } else {
            for (int i = first; i < D; i += step)
                xr[i] = __float2bfloat16_rn(__bfloat162float(xr[i]) + __bfloat162float(p[i]));
        }
    }
}

extern "C" cudaError_t cuda_add_pos_emb(bf16_t *x, const bf16_t *pe, int rows, int period, int D,
                                        cudaStream_t stream)
{
    SHAPE_ASSERT(rows >= 1 && period >= 1 && D >= 1);
    bf16 *dx = reinterpret_cast<bf16 *>(x);
    const bf16 *dp = reinterpret_cast<const bf16 *>(pe);
    CUEMU_COST(((double)rows + (period < rows ? period : rows)) * D * sizeof(bf16_t), (double)rows * D * sizeof(bf16_t),
               (double)rows * D);
    if (D % 2 == 0 && aligned(x, 4) && aligned(pe, 4)) {
        const dim3 grid(cap(CEIL_DIV(D / 2, BLOCK), MAX_BLOCKS), cap(rows, MAX_GRID_YZ));
        CUEMU_LAUNCH(grid, row_block(D / 2), 0, stream, add_pos_emb_kernel<true>)(dx, dp, rows, period, D);
    } else {
        const dim3 grid(cap(CEIL_DIV(D, BLOCK), MAX_BLOCKS), cap(rows, MAX_GRID_YZ));
        CUEMU_LAUNCH(grid, row_block(D), 0, stream, add_pos_emb_kernel<false>)(dx, dp, rows, period, D);
    }
    return cudaGetLastError();
}
