/* The tiled attention block of the decoder's prefill runs (paged_attention.cu) and the encoder's
 * windows (window_attention.cu): TILE_Q query vectors of one block against keys 0 .. n_keys-1,
 * each vector seeing its own prefix of them (the causal mask; a window's rows all see every key),
 * on tensor cores through nvcuda::wmma (16x16x16, bf16 in, fp32 accumulators).
 *
 * The caller describes the tile with functors (device lambdas):
 *   q_row(v)   -> const bf16 * : query vector v (0 <= v < TILE_Q), or nullptr if v is unused;
 *   visible(v) -> int          : keys 0 .. visible(v)-1 are visible to v (0 for unused v, >= 1
 *                                otherwise);
 *   k_row(j), v_row(j)         : key / value j (0 <= j < n_keys) as const bf16 * [Dh];
 *   o_row(v)   -> bf16 *       : where v's result goes, or nullptr.
 * n_keys = max over v of visible(v), block-uniform. Rows are Dh bf16 values, Dh <= DH (DH a
 * multiple of 16; padding dimensions are zero in shared memory). When Dh % 8 == 0 every row
 * pointer must be 16-byte aligned (rows are read as uint4); otherwise rows are read element-wise.
 *
 * Work: 4 warps of 16 query vectors each. Key tiles of TILE_K rows are staged in shared memory
 * once per block and serve all 64 vectors (for GQA the caller puts the query heads sharing a kv
 * head in one tile, so each key is read once for all of them). Per tile a warp computes its
 * 16 x TILE_K scores S = Q K^T with MMAs, the online softmax (FlashAttention's running max and
 * sum) on its lanes in fp32, and O += P V with MMAs. Causal skip: a warp's vectors see at most
 * wk keys (the largest visible() among them, warp-uniform), so it stops its MMAs at the first
 * 16-key block past wk; the block stages keys up to n_keys for its last warp.
 *
 * Accuracy: q.k sums exact bf16 products in fp32; P enters the MMA as
 * bf16 hi + bf16 lo parts (p to 2^-17 relative), the row sum uses p in fp32. The fragment layout
 * is unspecified, so every per-row step (mask, softmax, rescaling O) works on shared memory in a
 * known layout, never on fragment elements. Scores are scaled by scale * log2(e), softmax with
 * exp2f; output rounded to bf16 once. */
#ifndef QASR_ATTENTION_TILE_CUH
#define QASR_ATTENTION_TILE_CUH

#include "../common.cuh"

#include <stdint.h>

#define TILE_Q 64        /* query vectors per block: 4 warps x 16 */
#define TILE_K 32        /* keys per shared-memory tile */
#define TILE_THREADS 128

static constexpr size_t tile_align(size_t b) { return (b + 127) / 128 * 128; }

/* Shared memory of attention_tile<DH>, in bytes from the (128-byte aligned) base. Row strides are
 * padded (bf16 rows DH + 8: 16-byte rows for uint4 copies, banks shifted per row) and every
 * fragment pointer is 32-byte aligned, as wmma requires. 54 KiB for DH = 64 and 86 KiB for 128
 * (both above the 48 KiB default: opt-in), 38 KiB for 32. */
template <int DH> struct tile_layout {
    static constexpr int LDB = DH + 8;    /* Q, K, V rows (bf16) */
    static constexpr int LDS = TILE_K + 4; /* scores (fp32) */
    static constexpr int LDP = TILE_K + 8; /* probabilities, hi and lo parts (bf16) */
    static constexpr int LDO = DH + 4;    /* output accumulator (fp32) */
    static constexpr size_t Q = 0;
    static constexpr size_t K = Q + tile_align((size_t)TILE_Q * LDB * 2);
    static constexpr size_t V = K + tile_align((size_t)TILE_K * LDB * 2);
    static constexpr size_t S = V + tile_align((size_t)TILE_K * LDB * 2);
    static constexpr size_t PH = S + tile_align((size_t)TILE_Q * LDS * 4);
    static constexpr size_t PL = PH + tile_align((size_t)TILE_Q * LDP * 2);
    static constexpr size_t O = PL + tile_align((size_t)TILE_Q * LDP * 2);
    static constexpr size_t bytes = O + tile_align((size_t)TILE_Q * LDO * 4);
};

template <int DH> constexpr size_t attention_tile_smem_bytes() { return tile_layout<DH>::bytes; }

/* The 8 bf16 values [8c, 8c+8) of row (zero past Dh), as fp32. A bf16 is the upper half of an
 * fp32, so widening is a shift. (Also the decode kernel's loads.) */
static __device__ __forceinline__ void tile_load8(float f[8], const bf16 *row, int c, int Dh)
{
    if (Dh % 8 == 0) {
        const uint4 u = reinterpret_cast<const uint4 *>(row)[c];
        const unsigned w[4] = {u.x, u.y, u.z, u.w};
        for (int i = 0; i < 4; i++) {
            f[2 * i] = __uint_as_float(w[i] << 16);
            f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
    } else {
        for (int e = 0; e < 8; e++) f[e] = 8 * c + e < Dh ? __bfloat162float(row[8 * c + e]) : 0.0f;
    }
}

/* n rows of Dh bf16 into shared rows of DH (stride ld), zero past Dh and for rows row(i) == nullptr
 * (never read: cache slots past a context may hold anything, block tables -1). */
template <int DH, class Row>
static __device__ void tile_load_rows(bf16 *dst, int ld, int n, Row row, int Dh, int tid)
{
    constexpr int CH = DH / 8;
    for (int i = tid; i < n * CH; i += TILE_THREADS) {
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

/* block: TILE_THREADS threads; smem: attention_tile_smem_bytes<DH>() bytes, 128-byte aligned.
 * Lanes 2i and 2i+1 of warp w own query vector 16w + i for the softmax and the output (half a row
 * of keys, half a row of O each). Must be called by all threads of the block (it contains
 * barriers). */
template <int DH, class QRow, class Visible, class KRow, class VRow, class ORow>
static __device__ void attention_tile(unsigned char *smem, int Dh, float scale_log2, int n_keys, QRow q_row,
                                      Visible visible, KRow k_row, VRow v_row, ORow o_row)
{
    static_assert(DH % 16 == 0 && DH <= 128, "head dim tile");
    typedef tile_layout<DH> L;
    typedef nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc_t;
    typedef nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, bf16, nvcuda::wmma::row_major> a_t;
    namespace wmma = nvcuda::wmma;
    bf16 *Qs = reinterpret_cast<bf16 *>(smem + L::Q), *Ks = reinterpret_cast<bf16 *>(smem + L::K);
    bf16 *Vs = reinterpret_cast<bf16 *>(smem + L::V);
    bf16 *Ph = reinterpret_cast<bf16 *>(smem + L::PH), *Pl = reinterpret_cast<bf16 *>(smem + L::PL);
    float *Ss = reinterpret_cast<float *>(smem + L::S), *Os = reinterpret_cast<float *>(smem + L::O);
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int r = 16 * warp + lane / 2, half = lane % 2;

    tile_load_rows<DH>(Qs, L::LDB, TILE_Q, q_row, Dh, tid);
    const int vis = visible(r);
    int wk = vis; /* keys any vector of this warp sees: warp-uniform */
    for (int o = 1; o < 32; o <<= 1) wk = max(wk, __shfl_xor_sync(FULL_MASK, wk, o));
    float *orow = Os + r * L::LDO + half * (DH / 2); /* this lane's half of its row of O */
    for (int d = 0; d < DH / 2; d++) orow[d] = 0.0f;
    float m = -INFINITY, l = 0.0f;

    for (int k0 = 0; k0 < n_keys; k0 += TILE_K) {
        __syncthreads(); /* Q and O are ready; the previous tile's K and V are consumed */
        tile_load_rows<DH>(Ks, L::LDB, TILE_K, [=](int j) { return k0 + j < n_keys ? k_row(k0 + j) : nullptr; }, Dh,
                           tid);
        tile_load_rows<DH>(Vs, L::LDB, TILE_K, [=](int j) { return k0 + j < n_keys ? v_row(k0 + j) : nullptr; }, Dh,
                           tid);
        __syncthreads();
        if (k0 < wk) {
            /* 16-key blocks of this tile that some vector of the warp sees (1 or 2) */
            const int nb = min(TILE_K, wk - k0 + 15) / 16;
            /* S = Q K^T: K rows in shared memory are K^T in column-major order */
            for (int n = 0; n < nb; n++) {
                acc_t s;
                wmma::fill_fragment(s, 0.0f);
                for (int d0 = 0; d0 < DH; d0 += 16) {
                    a_t a;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
                    wmma::load_matrix_sync(a, Qs + 16 * warp * L::LDB + d0, L::LDB);
                    wmma::load_matrix_sync(b, Ks + 16 * n * L::LDB + d0, L::LDB);
                    wmma::mma_sync(s, a, b, s);
                }
                wmma::store_matrix_sync(Ss + 16 * warp * L::LDS + 16 * n, s, L::LDS, wmma::mem_row_major);
            }
            __syncwarp();
            /* online softmax of vector r over this tile; this lane's 16 keys k0 + 16 half + j.
             * Scores of blocks past nb were not computed: only keys < vis <= wk are read. A used
             * vector sees key 0, so its max is finite from the first tile on; an unused one
             * (vis = 0) keeps m = -inf and takes base 0, so it stays at p = 0, l = 0. */
            const float *srow = Ss + r * L::LDS + 16 * half;
            float p[16], mx = -INFINITY;
            for (int j = 0; j < 16; j++) {
                p[j] = k0 + 16 * half + j < vis ? srow[j] * scale_log2 : -INFINITY;
                mx = fmaxf(mx, p[j]);
            }
            mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, 1));
            const float m_new = fmaxf(m, mx), base = m_new == -INFINITY ? 0.0f : m_new;
            const float corr = exp2f(m - base);
            bf16 *ph = Ph + r * L::LDP + 16 * half, *pl = Pl + r * L::LDP + 16 * half;
            float sum = 0.0f;
            for (int j = 0; j < 16; j++) {
                const float e = exp2f(p[j] - base);
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
            /* O += P V over the nb key blocks, 16 output dimensions at a time, through shared
             * memory (P is 0 past each vector's keys; V rows past n_keys are zeros) */
            for (int n = 0; n < DH / 16; n++) {
                acc_t o;
                wmma::load_matrix_sync(o, Os + 16 * warp * L::LDO + 16 * n, L::LDO, wmma::mem_row_major);
                for (int kb = 0; kb < nb; kb++) {
                    a_t a;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> v;
                    wmma::load_matrix_sync(v, Vs + 16 * kb * L::LDB + 16 * n, L::LDB);
                    wmma::load_matrix_sync(a, Ph + 16 * warp * L::LDP + 16 * kb, L::LDP);
                    wmma::mma_sync(o, a, v, o);
                    wmma::load_matrix_sync(a, Pl + 16 * warp * L::LDP + 16 * kb, L::LDP);
                    wmma::mma_sync(o, a, v, o);
                }
                wmma::store_matrix_sync(Os + 16 * warp * L::LDO + 16 * n, o, L::LDO, wmma::mem_row_major);
            }
            __syncwarp();
        }
    }

    bf16 *o = o_row(r);
    if (o) { /* a used vector: l >= 1 (its largest score gives p = 1) */
        const float inv = 1.0f / l;
        for (int d = 0; d < DH / 2; d++) {
            const int dd = half * (DH / 2) + d;
            if (dd < Dh) o[dd] = __float2bfloat16_rn(orow[d] * inv);
        }
    }
}

#endif
