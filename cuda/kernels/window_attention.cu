/* Encoder self-attention inside windows (MODEL.md 5.6-5.7): every row of a window attends to all
 * rows of the same window (no mask, no RoPE), per head; softmax in fp32, output bf16.
 *
 * On tensor cores through nvcuda::wmma (16x16x16, bf16 in, fp32 accumulators). One block per
 * (window, tile of WIN_Q = 64 query rows, head), 4 warps of 16 query rows each. The window's keys
 * are streamed in tiles of WIN_K = 32 rows through shared memory (a window's K and V are a few
 * tens of KiB and stay in L2 for its other query tiles and heads); per tile a warp computes its
 * 16 x 32 scores S = Q K^T with MMAs, the online softmax (FlashAttention's running max and sum)
 * on its lanes in fp32, and O += P V with MMAs. Windows of the real model are 104 rows, head_dim
 * 64: two query tiles, four key tiles.
 *
 * Accuracy: q.k sums exact bf16 products in fp32, as the CUDA-core kernel did. P enters the MMA as
 * bf16, so each probability is split into hi = bf16(p) and lo = bf16(p - hi) and both are
 * multiplied with V (p to 2^-17 relative instead of bf16's 2^-9, which alone would exceed the
 * tests' tolerance near zero outputs); the row sum uses p in fp32. The fragment layout is
 * unspecified, so every per-row step (softmax, rescaling the output by the running max's
 * correction) works on shared memory in a known layout, never on fragment elements. */
#include "../common.cuh"

#include "kernels.h"

#include <math.h>
#include <stdint.h>

using namespace nvcuda;

#define WIN_Q 64        /* query rows per block: 4 warps x 16 */
#define WIN_K 32        /* keys per shared-memory tile */
#define WIN_THREADS 128

static constexpr size_t win_align(size_t b) { return (b + 127) / 128 * 128; }

/* Shared memory of window_attention_kernel<DH>, in bytes from the base. Row strides are padded
 * (bf16 rows DH + 8, so 16-byte rows for uint4 copies) and every fragment pointer is 32-byte
 * aligned, as wmma requires. 54 KiB for DH = 64 (above the 48 KiB default: opt-in), 88 KiB for 128. */
template <int DH> struct win_layout {
    static constexpr int LDB = DH + 8;     /* Q, K, V rows (bf16) */
    static constexpr int LDS = WIN_K + 4;  /* scores (fp32) */
    static constexpr int LDP = WIN_K + 8;  /* probabilities, hi and lo parts (bf16) */
    static constexpr int LDO = DH + 4;     /* output accumulator (fp32) */
    static constexpr size_t Q = 0;
    static constexpr size_t K = Q + win_align((size_t)WIN_Q * LDB * 2);
    static constexpr size_t V = K + win_align((size_t)WIN_K * LDB * 2);
    static constexpr size_t S = V + win_align((size_t)WIN_K * LDB * 2);
    static constexpr size_t PH = S + win_align((size_t)WIN_Q * LDS * 4);
    static constexpr size_t PL = PH + win_align((size_t)WIN_Q * LDP * 2);
    static constexpr size_t O = PL + win_align((size_t)WIN_Q * LDP * 2);
    static constexpr size_t bytes = O + win_align((size_t)WIN_Q * LDO * 4);
};

/* n rows of Dh bf16 into shared rows of DH (stride ld), zero past Dh and for rows row(i) == nullptr.
 * uint4 copies when Dh % 8 == 0 (row starts then 16-byte aligned), element-wise otherwise. */
template <int DH, class Row>
static __device__ void win_load_rows(bf16 *dst, int ld, int n, Row row, int Dh, int tid)
{
    constexpr int CH = DH / 8;
    for (int i = tid; i < n * CH; i += WIN_THREADS) {
        const int r = i / CH, c = i % CH;
        const bf16 *src = row(r);
        bf16 *d = dst + (size_t)r * ld + 8 * c;
        if (src && Dh % 8 == 0 && 8 * c < Dh) {
            /* four 32-bit stores, not a uint4 struct copy: the emulator's race detector does not
             * see the memcpy that a struct copy becomes */
            const uint4 u = reinterpret_cast<const uint4 *>(src)[c];
            unsigned *d32 = reinterpret_cast<unsigned *>(d);
            d32[0] = u.x;
            d32[1] = u.y;
            d32[2] = u.z;
            d32[3] = u.w;
        } else {
            for (int e = 0; e < 8; e++)
                d[e] = src && 8 * c + e < Dh ? src[8 * c + e] : __float2bfloat16_rn(0.0f);
        }
    }
}

/* grid: (n_win, ceil(max_len / WIN_Q), H); block: WIN_THREADS; dynamic shared memory:
 * win_layout<DH>::bytes. Query tiles past their window's length exit at once. */
template <int DH>
__global__ void __launch_bounds__(WIN_THREADS)
window_attention_kernel(bf16 *out, /* [rows][H*Dh] */ const bf16 *qkv, /* [rows][3*H*Dh] q | k | v */
                        const int *win_start, /* [n_win] */ const int *win_len, /* [n_win] */
                        int H, int Dh, float scale_log2)
{
    static_assert(DH % 16 == 0 && DH <= 128, "head dim tile");
    typedef win_layout<DH> L;
    typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc_t;
    CUEMU_DYNAMIC_SHARED(unsigned char, smem);
    bf16 *Qs = reinterpret_cast<bf16 *>(smem + L::Q), *Ks = reinterpret_cast<bf16 *>(smem + L::K);
    bf16 *Vs = reinterpret_cast<bf16 *>(smem + L::V);
    bf16 *Ph = reinterpret_cast<bf16 *>(smem + L::PH), *Pl = reinterpret_cast<bf16 *>(smem + L::PL);
    float *Ss = reinterpret_cast<float *>(smem + L::S), *Os = reinterpret_cast<float *>(smem + L::O);

    const int w = blockIdx.x, q0 = blockIdx.y * WIN_Q, h = blockIdx.z;
    const int start = win_start[w], len = win_len[w];
    if (q0 >= len) return; /* block-uniform, before any barrier */
    const size_t ld = (size_t)3 * H * Dh, HD = (size_t)H * Dh;
    const bf16 *base = qkv + (size_t)start * ld + (size_t)h * Dh;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int r = 16 * warp + lane / 2, half = lane % 2; /* the softmax: 2 lanes per query row */
    const bool active = q0 + 16 * warp < len;          /* warp-uniform: rows past the window idle */

    win_load_rows<DH>(Qs, L::LDB, WIN_Q, [=](int v) { return q0 + v < len ? base + (size_t)(q0 + v) * ld : nullptr; },
                      Dh, tid);
    float *orow = Os + r * L::LDO + half * (DH / 2); /* this lane's half of its row of O */
    for (int d = 0; d < DH / 2; d++) orow[d] = 0.0f;
    float m = -INFINITY, l = 0.0f;

    for (int k0 = 0; k0 < len; k0 += WIN_K) {
        __syncthreads(); /* Q and O are ready; the previous tile's K and V are consumed */
        win_load_rows<DH>(Ks, L::LDB, WIN_K,
                          [=](int j) { return k0 + j < len ? base + (size_t)(k0 + j) * ld + HD : nullptr; }, Dh, tid);
        win_load_rows<DH>(Vs, L::LDB, WIN_K,
                          [=](int j) { return k0 + j < len ? base + (size_t)(k0 + j) * ld + 2 * HD : nullptr; }, Dh,
                          tid);
        __syncthreads();
        if (active) {
            /* S = Q K^T: K rows in shared memory are K^T in column-major order */
            for (int n = 0; n < WIN_K / 16; n++) {
                acc_t s;
                wmma::fill_fragment(s, 0.0f);
                for (int d0 = 0; d0 < DH; d0 += 16) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
                    wmma::load_matrix_sync(a, Qs + 16 * warp * L::LDB + d0, L::LDB);
                    wmma::load_matrix_sync(b, Ks + 16 * n * L::LDB + d0, L::LDB);
                    wmma::mma_sync(s, a, b, s);
                }
                wmma::store_matrix_sync(Ss + 16 * warp * L::LDS + 16 * n, s, L::LDS, wmma::mem_row_major);
            }
            __syncwarp();
            /* online softmax of row r over this tile; this lane's 16 keys k0 + 16 half + j. Key k0
             * is visible (k0 < len), so the row max is finite. */
            const float *srow = Ss + r * L::LDS + 16 * half;
            float p[16], mx = -INFINITY;
            for (int j = 0; j < 16; j++) {
                p[j] = k0 + 16 * half + j < len ? srow[j] * scale_log2 : -INFINITY;
                mx = fmaxf(mx, p[j]);
            }
            mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, 1));
            const float m_new = fmaxf(m, mx), corr = exp2f(m - m_new);
            bf16 *ph = Ph + r * L::LDP + 16 * half, *pl = Pl + r * L::LDP + 16 * half;
            float sum = 0.0f;
            for (int j = 0; j < 16; j++) {
                const float e = exp2f(p[j] - m_new);
                const bf16 hi = __float2bfloat16_rn(e);
                ph[j] = hi;
                pl[j] = __float2bfloat16_rn(e - __bfloat162float(hi));
                sum += e;
            }
            sum += __shfl_xor_sync(FULL_MASK, sum, 1);
            l = l * corr + sum;
            m = m_new;
            for (int d = 0; d < DH / 2; d++) orow[d] *= corr;
            __syncwarp();
            /* O += P V, 16 output dimensions at a time, through shared memory */
            for (int n = 0; n < DH / 16; n++) {
                acc_t o;
                wmma::load_matrix_sync(o, Os + 16 * warp * L::LDO + 16 * n, L::LDO, wmma::mem_row_major);
                for (int kk = 0; kk < WIN_K; kk += 16) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> v;
                    wmma::load_matrix_sync(v, Vs + kk * L::LDB + 16 * n, L::LDB);
                    wmma::load_matrix_sync(a, Ph + 16 * warp * L::LDP + kk, L::LDP);
                    wmma::mma_sync(o, a, v, o);
                    wmma::load_matrix_sync(a, Pl + 16 * warp * L::LDP + kk, L::LDP);
                    wmma::mma_sync(o, a, v, o);
                }
                wmma::store_matrix_sync(Os + 16 * warp * L::LDO + 16 * n, o, L::LDO, wmma::mem_row_major);
            }
            __syncwarp();
        }
    }

    if (q0 + r < len) { /* then the warp was active */
        bf16 *o = out + (size_t)(start + q0 + r) * HD + (size_t)h * Dh;
        const float inv = 1.0f / l;
        for (int d = 0; d < DH / 2; d++) {
            const int dd = half * (DH / 2) + d;
            if (dd < Dh) o[dd] = __float2bfloat16_rn(orow[d] * inv);
        }
    }
}

template <int DH>
static cudaError_t launch_window(bf16 *out, const bf16 *qkv, const int *win_start, const int *win_len, int n_win,
                                 int max_len, int H, int Dh, float scale_log2, cudaStream_t stream)
{
    const size_t smem = win_layout<DH>::bytes;
    if (smem > 48 * 1024) {
        const cudaError_t e =
            cudaFuncSetAttribute(window_attention_kernel<DH>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    const dim3 grid(n_win, CEIL_DIV(max_len, WIN_Q), H);
    /* as if every window were max_len rows long (the launcher does not see win_len); tensor-core
     * flops: 2 for Q K^T and 2 x 2 for P V (hi and lo parts of P) per row, key and dimension */
    const double rows = (double)n_win * max_len, hd = (double)H * Dh;
    CUEMU_COST_TC(rows * 3 * hd * sizeof(bf16) + 2.0 * n_win * sizeof(int), rows * hd * sizeof(bf16),
                  6.0 * rows * max_len * hd);
    CUEMU_LAUNCH(grid, WIN_THREADS, smem, stream, window_attention_kernel<DH>)(out, qkv, win_start, win_len, H, Dh,
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
