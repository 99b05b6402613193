/* The tiled attention block of the decoder's prefill runs (paged_attention.cu): TILE_Q query vectors of one block against keys
 * 0 .. n_keys-1, key tiles of TILE_K staged through shared memory, online softmax in fp32, output
 * rounded to bf16 once. Each staged key tile is used by all TILE_Q query vectors, which is the
 * point of the tile: the keys are read TILE_Q times less often than by one-row-at-a-time code.
 *
 * The caller describes the tile with functors (device lambdas):
 *   q_row(v)   -> const bf16 * : query vector v (0 <= v < TILE_Q), or nullptr if v is unused;
 *   visible(v) -> int          : keys 0 .. visible(v)-1 are visible to v (0 for unused v);
 *   k_row(j), v_row(j)         : key / value j (0 <= j < n_keys) as const bf16 * [Dh];
 *   o_row(v)   -> bf16 *       : where v's result goes, or nullptr.
 * n_keys = max over v of visible(v), block-uniform. Rows are Dh bf16 values, Dh <= DH (DH a
 * multiple of 32; padding dimensions are zero in shared memory). When Dh % 8 == 0 every row
 * pointer must be 16-byte aligned (rows are read as uint4); otherwise rows are read element-wise.
 *
 * Arithmetic: scores are q.k in fp32 times scale * log2(e), softmax with exp2f; the running max
 * and sum are those of FlashAttention. Scalar fp32 FMAs on the CUDA cores. The encoder's window
 * attention (window_attention.cu) runs on tensor cores through nvcuda::wmma, which the emulation
 * provides (cuda/emu/README.md rule 5); prefill could follow the same way. */
#ifndef QASR_ATTENTION_TILE_CUH
#define QASR_ATTENTION_TILE_CUH

#include "../common.cuh"

#define TILE_Q 64       /* query vectors per block */
#define TILE_K 32       /* keys per shared-memory tile */
#define TILE_THREADS 128 /* 16 row groups x 8 column groups; each thread owns 4 query vectors */

/* Shared memory of attention_tile<DH>, in floats: Qt [DH][TILE_Q], Kt [DH][TILE_K], Vs [TILE_K][DH],
 * Pt [TILE_K][TILE_Q]. 72 KiB for DH = 128 (needs the opt-in above 48 KiB), 40 KiB for DH = 64. */
template <int DH> constexpr size_t attention_tile_smem_bytes()
{
    return sizeof(float) * ((size_t)DH * (TILE_Q + 2 * TILE_K) + (size_t)TILE_K * TILE_Q);
}

/* The 8 bf16 values [8c, 8c+8) of row (zero past Dh), as fp32. A bf16 is the upper half of an
 * fp32, so widening is a shift. */
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

/* block: TILE_THREADS threads; thread t owns query vectors 4 (t / 8) .. 4 (t / 8) + 3 and, of each
 * key tile, keys 4 (t % 8) .. +3 for the scores and dimensions 4 (t % 8) + 32 j .. +3 for the
 * output, so the 8 threads sharing a query vector are consecutive lanes (row max and sum are
 * 3 xor-shuffles) and shared-memory reads are float4: Qt and Pt broadcast, Kt and Vs
 * conflict-free. Must be called by all threads of the block (it contains barriers). */
template <int DH, class QRow, class Visible, class KRow, class VRow, class ORow>
static __device__ void attention_tile(float *smem, int Dh, float scale_log2, int n_keys, QRow q_row,
                                      Visible visible, KRow k_row, VRow v_row, ORow o_row)
{
    static_assert(DH % 32 == 0 && DH <= 256, "head dim tile");
    constexpr int CH = DH / 8;      /* 8-value chunks per row */
    constexpr int OD = DH / 32;     /* float4 output groups per thread */
    float *Qt = smem;               /* [DH][TILE_Q] */
    float *Kt = Qt + DH * TILE_Q;   /* [DH][TILE_K] */
    float *Vs = Kt + DH * TILE_K;   /* [TILE_K][DH] */
    float *Pt = Vs + TILE_K * DH;   /* [TILE_K][TILE_Q] */
    const int tid = threadIdx.x, rg = tid / 8, cg = tid % 8;

    /* Q, transposed; lanes over query vectors so the scalar stores hit distinct banks */
    for (int i = tid; i < CH * TILE_Q; i += TILE_THREADS) {
        const int v = i % TILE_Q, c = i / TILE_Q;
        const bf16 *q = q_row(v);
        float f[8];
        if (q && 8 * c < Dh) tile_load8(f, q, c, Dh);
        else for (int e = 0; e < 8; e++) f[e] = 0.0f;
        for (int e = 0; e < 8; e++) Qt[(8 * c + e) * TILE_Q + v] = f[e];
    }
    int vis[4];
    float m[4], l[4], acc[4][4 * OD];
    for (int r = 0; r < 4; r++) {
        vis[r] = visible(4 * rg + r);
        m[r] = -INFINITY;
        l[r] = 0.0f;
        for (int x = 0; x < 4 * OD; x++) acc[r][x] = 0.0f;
    }

    for (int k0 = 0; k0 < n_keys; k0 += TILE_K) {
        __syncthreads(); /* the previous tile's Kt, Vs, Pt are consumed */
        /* K transposed (lanes over keys), V row-major (lanes over chunks: coalesced rows);
         * keys past n_keys are zeros, never loaded: their cache slots may hold anything */
        for (int i = tid; i < CH * TILE_K; i += TILE_THREADS) {
            const int kk = i % TILE_K, c = i / TILE_K;
            float f[8];
            if (k0 + kk < n_keys && 8 * c < Dh) tile_load8(f, k_row(k0 + kk), c, Dh);
            else for (int e = 0; e < 8; e++) f[e] = 0.0f;
            for (int e = 0; e < 8; e++) Kt[(8 * c + e) * TILE_K + kk] = f[e];
        }
        for (int i = tid; i < CH * TILE_K; i += TILE_THREADS) {
            const int c = i % CH, kk = i / CH;
            float f[8];
            if (k0 + kk < n_keys && 8 * c < Dh) tile_load8(f, v_row(k0 + kk), c, Dh);
            else for (int e = 0; e < 8; e++) f[e] = 0.0f;
            for (int e = 0; e < 8; e++) Vs[kk * DH + 8 * c + e] = f[e];
        }
        __syncthreads();

        /* scores of this thread's 4 query vectors x 4 keys */
        float s[4][4] = {};
        for (int d = 0; d < DH; d++) {
            const float4 qf = *reinterpret_cast<const float4 *>(Qt + d * TILE_Q + 4 * rg);
            const float4 kf = *reinterpret_cast<const float4 *>(Kt + d * TILE_K + 4 * cg);
            const float qa[4] = {qf.x, qf.y, qf.z, qf.w}, ka[4] = {kf.x, kf.y, kf.z, kf.w};
            for (int r = 0; r < 4; r++)
                for (int j = 0; j < 4; j++) s[r][j] = fmaf(qa[r], ka[j], s[r][j]);
        }
        /* online softmax: row max and sum over the 8 lanes of the row group */
        float corr[4];
        for (int r = 0; r < 4; r++) {
            float mx = -INFINITY;
            for (int j = 0; j < 4; j++) {
                s[r][j] = k0 + 4 * cg + j < vis[r] ? s[r][j] * scale_log2 : -INFINITY;
                mx = fmaxf(mx, s[r][j]);
            }
            for (int o = 1; o < 8; o <<= 1) mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, o));
            const float m_new = fmaxf(m[r], mx);
            const float base = m_new == -INFINITY ? 0.0f : m_new; /* no key visible yet */
            corr[r] = exp2f(m[r] - base);
            float sum = 0.0f;
            for (int j = 0; j < 4; j++) {
                s[r][j] = exp2f(s[r][j] - base);
                sum += s[r][j];
            }
            for (int o = 1; o < 8; o <<= 1) sum += __shfl_xor_sync(FULL_MASK, sum, o);
            l[r] = l[r] * corr[r] + sum;
            m[r] = m_new;
        }
        for (int j = 0; j < 4; j++)
            *reinterpret_cast<float4 *>(Pt + (4 * cg + j) * TILE_Q + 4 * rg) =
                make_float4(s[0][j], s[1][j], s[2][j], s[3][j]);
        __syncthreads();

        /* acc = acc * corr + P V over this tile */
        for (int r = 0; r < 4; r++)
            for (int x = 0; x < 4 * OD; x++) acc[r][x] *= corr[r];
        for (int kk = 0; kk < TILE_K; kk++) {
            const float4 pf = *reinterpret_cast<const float4 *>(Pt + kk * TILE_Q + 4 * rg);
            const float pa[4] = {pf.x, pf.y, pf.z, pf.w};
            for (int jj = 0; jj < OD; jj++) {
                const float4 vf = *reinterpret_cast<const float4 *>(Vs + kk * DH + 4 * cg + 32 * jj);
                const float va[4] = {vf.x, vf.y, vf.z, vf.w};
                for (int r = 0; r < 4; r++)
                    for (int e = 0; e < 4; e++) acc[r][4 * jj + e] = fmaf(pa[r], va[e], acc[r][4 * jj + e]);
            }
        }
    }

    for (int r = 0; r < 4; r++) {
        bf16 *o = o_row(4 * rg + r);
        if (!o) continue;
        const float inv = 1.0f / l[r];
        for (int jj = 0; jj < OD; jj++)
            for (int e = 0; e < 4; e++) {
                const int d = 4 * cg + 32 * jj + e;
                if (d < Dh) o[d] = __float2bfloat16_rn(acc[r][4 * jj + e] * inv);
            }
    }
}

#endif
