/* Decoder attention over the paged KV cache (backend.h paged_attention, MODEL.md 6.3): causal GQA,
 * query row i of sequence row_seq[i] sees key positions 0 .. ctx_len[i]-1, found through the
 * sequence's block table; query head h uses kv head h / G (G = H / Hkv). Softmax and accumulation
 * in fp32, output rounded to bf16 once.
 *
 * The launcher plans on the host from host copies of ctx_len and row_seq (the device arrays are
 * never read by the host): runs of at least PA_RUN_ROWS consecutive positions of one sequence
 * (prompt chunks) go to the tile kernel, every other row (decode rows, one per sequence) to the
 * decode kernel. The plan travels in the kernel arguments (pa_segs_t, batches of PA_MAX_SEGS
 * segments), so nothing is uploaded and the launches can be captured in a CUDA graph. Nothing in
 * the decode path's arguments depends on the context lengths: each block derives its row's
 * splits from the device's ctx_len (split_len_of), so a captured decode step replayed after the
 * contexts grew (past a split boundary too) computes the new step, as long as the rows are the
 * same sequences.
 *
 * Decode (paged_decode_kernel): one block per (row, kv head, query-head chunk, context split); the
 * GT query heads sharing the kv head read each key and value once, with 16-byte loads. Keys are
 * processed in chunks of PA_CHUNK: scores into shared memory, one running max / sum per head for
 * the whole block (online softmax at chunk granularity), then P V. When the decode rows alone give
 * too few blocks for the GPU and a workspace is given, the context is split (flash-decoding): each
 * split writes an unnormalised partial (acc, max, sum) and paged_combine_kernel merges them. The
 * grid has room for max_splits splits per row; a row uses as many as its context needs.
 * The kernel reads the KV cache once and so is bound by memory bandwidth when the loads are in
 * flight: per thread, the score step issues the block-table entries and then the 16-byte key
 * loads of several keys before any math, the P V step the loads of several value rows (8 loads
 * of 16 bytes per thread for the shipped shapes, H = 16, Hkv = 8, Dh = 128); the query slices,
 * accumulators and loaded words are register arrays indexed at compile time only (no local
 * memory), and the kernel leaves the register count to ptxas (no spills). Page sizes are powers of
 * two: page and offset are a shift and a mask (a runtime shift costs what a constant one does, so
 * no template per page size). Loads are plain 16-byte loads; a cp.async / TMA double-buffered
 * version (not emulated) would be the next step on sm_80+ / sm_90, tested against this one on a
 * GPU.
 *
 * Prefill (paged_prefill_kernel): the tile engine (attention_tile.cuh, tensor cores through
 * nvcuda::wmma) on 64 query vectors = 64/GT consecutive rows x GT heads of one kv head, so each
 * key tile staged in shared memory serves all of them; the causal mask is per row (key < ctx_len
 * of that row), and each warp stops at the keys its own rows see. */
#include "../common.cuh"

#include "attention_tile.cuh"
#include "kernels.h"

#include <stdint.h>
#include <vector>

#define PA_THREADS 128
#define PA_CHUNK 128      /* decode: keys per chunk, one per thread in the softmax step */
#define PA_RUN_ROWS 4     /* runs this long or longer take the tile kernel: about where its 64 query
                           * vectors of FMAs per key cost less than reading the keys once per row */
#define PA_SPLIT_MIN 256  /* decode: keys per context split, at least */
#define PA_MAX_SEGS 32    /* segments per launch (kernel argument size) */
#define LOG2E 1.44269504088896341f

/* What every kernel of the op needs (device pointers and sizes). */
typedef struct {
    const int *ctx_len;      /* [n_rows] */
    const int *row_seq;      /* [n_rows] */
    const int *block_tables; /* [n_seqs][max_blocks] */
    int max_blocks, P, p_shift; /* page size P = 1 << p_shift */
    int H, Hkv, G, GT, Dh, q_stride;
    float scale_log2; /* scale * log2(e): softmax via exp2f */
} pa_args_t;

/* A batch of row segments: segment i is rows r0[i] .. r0[i]+len[i]-1 and owns blocks first[i] ..
 * first[i+1]-1 along grid x (one per row for decode, one per tile for prefill). */
typedef struct {
    int r0[PA_MAX_SEGS], len[PA_MAX_SEGS], first[PA_MAX_SEGS + 1];
} pa_segs_t;

/* The segment owning block b along x. */
static __device__ __forceinline__ int seg_of(const pa_segs_t &s, int b)
{
    int i = 0;
    while (b >= s.first[i + 1]) i++;
    return i;
}

/* Keys per context split of a row of ctx >= 1 keys: about ctx / PA_SPLIT_MIN splits, at most
 * max_splits, each a whole number of PA_CHUNK chunks. The row has CEIL_DIV(ctx, split_len) splits;
 * the decode and combine kernels both derive them from ctx here, on the device. */
static __device__ __forceinline__ int split_len_of(int ctx, int max_splits)
{
    const int ns = min(CEIL_DIV(ctx, PA_SPLIT_MIN), max_splits);
    return CEIL_DIV(CEIL_DIV(ctx, ns), PA_CHUNK) * PA_CHUNK;
}

/* Whether a row of ctx keys has one split: split_len_of gives ns = 1 exactly then, and for ns >= 2
 * (ctx > PA_SPLIT_MIN = 2 PA_CHUNK) split_len < ctx / 2 + 1 + PA_CHUNK <= ctx. */
static __device__ __forceinline__ bool one_split(int ctx, int max_splits)
{
    return ctx <= PA_SPLIT_MIN || max_splits == 1;
}

/* Key or value row j (which 0 = K, 1 = V) of kv head g in page pg, at offset off in the page.
 * Offsets are 64-bit: a layer of a large page pool exceeds 2^31 elements. */
static __device__ __forceinline__ const bf16 *kv_at(const bf16 *kv, const pa_args_t &a, int pg, int which, int g,
                                                    int off)
{
    return kv + (((size_t)pg * 2 + which) * a.Hkv + g) * (size_t)a.P * a.Dh + (size_t)off * a.Dh;
}

/* Key or value row j through the block table bt (P a power of two: a shift and a mask). */
static __device__ __forceinline__ const bf16 *kv_row(const bf16 *kv, const int *bt, const pa_args_t &a, int which,
                                                     int g, int j)
{
    return kv_at(kv, a, bt[j >> a.p_shift], which, g, j & (a.P - 1));
}

/* 8 bf16 (16 bytes) as fp32: a bf16 is the upper half of an fp32. */
static __device__ __forceinline__ void widen8(float f[8], uint4 u)
{
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

/* 16 bytes at p (16-byte aligned), or zeros when !ok (nothing read: the address may be invalid). */
static __device__ __forceinline__ uint4 load16(const bf16 *p, bool ok)
{
    return ok ? *reinterpret_cast<const uint4 *>(p) : make_uint4(0u, 0u, 0u, 0u);
}

/* grid: (decode rows of the batch, Hkv * G / GT, max_splits); block: PA_THREADS. DH: Dh rounded up
 * to 32, 64 or 128 (16-byte chunks past Dh are neither loaded nor used).
 * Every register array is indexed at compile time only (loops over them have constant trip
 * counts and are unrolled), so nothing goes to local memory; no minimum of blocks per SM is
 * asked of ptxas, which would cap the registers and spill.
 * Score step: TPK lanes per key, lane kl holding NC 16-byte chunks kl + TPK c of the key and the
 * matching q slices of the GT heads (pre-scaled, GT NC 8 <= 64 floats), so each key is read once
 * for the GT heads; partial dots summed by xor-shuffles. A thread takes NK keys per chunk, KU at a
 * time: their block-table entries first, then their KU NC 16-byte loads, then the math, so KU NC
 * (8 for the shipped shapes) loads are in flight. The key-group leader stores the score and the
 * key's page for the P V step. Softmax step: thread t owns key t of the chunk. P V step: VT =
 * DH / 8 threads per value row (one 16-byte chunk each), RG rows at a time, NV rows per thread
 * and chunk, VU loads issued before their FMAs; acc[GT][8] summed over the RG row groups at the end
 * through shared memory. Static shared memory: sc [GT][PA_CHUNK], ored [RG][GT][DH] (at most
 * 37 KiB). */
template <int DH, int GT>
__global__ void __launch_bounds__(PA_THREADS)
paged_decode_kernel(bf16 *out, /* [n_rows][H*Dh] */ float *work, /* [rows of batch][H][max_splits][Dh+2] */
                    const bf16 *q, /* [n_rows][q_stride] */ const bf16 *kv, /* [pages][2][Hkv][P][Dh] */
                    pa_args_t a, pa_segs_t segs, int max_splits)
{
    constexpr int NCQ = GT < 4 ? 4 / GT : 1;                 /* q slices: GT NC 8 <= 32 floats, 64 for GT = 8 */
    constexpr int NC = DH / 8 < NCQ ? DH / 8 : NCQ;          /* 16-byte chunks per lane and key */
    constexpr int TPK = DH / 8 / NC, KPP = PA_THREADS / TPK;  /* lanes per key, keys per pass */
    constexpr int NK = PA_CHUNK / KPP, KU = NK < 8 / NC ? NK : 8 / NC; /* keys per thread, at once */
    constexpr int VT = DH / 8, RG = PA_THREADS / VT;          /* P V: threads per row, row groups */
    constexpr int NV = PA_CHUNK / RG, VU = NV < 8 ? NV : 8;    /* value rows per thread, at once */
    static_assert(PA_CHUNK == PA_THREADS && TPK <= 32 && NK % KU == 0 && NV % VU == 0, "decode mapping");
    __shared__ float sc[GT][PA_CHUNK];
    __shared__ int pages[PA_CHUNK];
    __shared__ float wred[PA_THREADS / 32][GT];
    __shared__ float ored[RG][GT][DH];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const int seg = seg_of(segs, blockIdx.x), r = segs.r0[seg] + blockIdx.x - segs.first[seg];
    const int chunks = a.G / GT, g = blockIdx.y / chunks, h0 = g * a.G + (blockIdx.y % chunks) * GT;
    const int split = blockIdx.z, ctx = a.ctx_len[r], split_len = split_len_of(ctx, max_splits);
    const int kb = split * split_len;
    if (kb >= ctx) return; /* block-uniform, before any barrier: this split is past the row's context */
    const int ke = min(ctx, kb + split_len), Dh = a.Dh;
    const int *bt = a.block_tables + (size_t)a.row_seq[r] * a.max_blocks;

    const int kg = tid / TPK, kl = tid % TPK; /* score step: key slot, lane within the key */
    float qf[GT][NC * 8];
#pragma unroll
    for (int h = 0; h < GT; h++) {
        const bf16 *qh = q + (size_t)r * a.q_stride + (size_t)(h0 + h) * Dh;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int d = 8 * (kl + TPK * c);
            widen8(&qf[h][8 * c], load16(qh + d, d < Dh));
#pragma unroll
            for (int e = 0; e < 8; e++) qf[h][8 * c + e] *= a.scale_log2;
        }
    }
    const int vr = tid / VT, vc = tid % VT; /* P V step: row group, 16-byte chunk */
    float m[GT], lsum[GT], acc[GT][8];
#pragma unroll
    for (int h = 0; h < GT; h++) {
        m[h] = -INFINITY;
        lsum[h] = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++) acc[h][e] = 0.0f;
    }

    for (int c0 = kb; c0 < ke; c0 += PA_CHUNK) {
#pragma unroll 1 /* KU keys at a time: unrolled further, ptxas hoists the next loads (> 128 registers) */
        for (int j0 = 0; j0 < NK; j0 += KU) {
            int pg[KU];
#pragma unroll
            for (int i = 0; i < KU; i++) {
                const int k = c0 + kg + KPP * (j0 + i);
                pg[i] = k < ke ? bt[k >> a.p_shift] : 0;
            }
            uint4 u[KU][NC];
#pragma unroll
            for (int i = 0; i < KU; i++) {
                const int k = c0 + kg + KPP * (j0 + i);
                const bf16 *kr = kv_at(kv, a, pg[i], 0, g, k & (a.P - 1));
#pragma unroll
                for (int c = 0; c < NC; c++) {
                    const int d = 8 * (kl + TPK * c);
                    u[i][c] = load16(kr + d, k < ke && d < Dh);
                }
            }
#pragma unroll
            for (int i = 0; i < KU; i++) {
                const int kk = kg + KPP * (j0 + i);
                float dot[GT];
#pragma unroll
                for (int h = 0; h < GT; h++) dot[h] = 0.0f;
#pragma unroll
                for (int c = 0; c < NC; c++) {
                    float f[8];
                    widen8(f, u[i][c]);
#pragma unroll
                    for (int h = 0; h < GT; h++)
#pragma unroll
                        for (int e = 0; e < 8; e++) dot[h] = fmaf(qf[h][8 * c + e], f[e], dot[h]);
                }
#pragma unroll
                for (int h = 0; h < GT; h++)
#pragma unroll
                    for (int o = 1; o < TPK; o <<= 1) dot[h] += __shfl_xor_sync(FULL_MASK, dot[h], o);
                if (kl == 0) {
#pragma unroll
                    for (int h = 0; h < GT; h++) sc[h][kk] = c0 + kk < ke ? dot[h] : -INFINITY;
                    pages[kk] = pg[i];
                }
            }
        }
        __syncthreads();

        float corr[GT];
#pragma unroll
        for (int h = 0; h < GT; h++) {
            float v = sc[h][tid];
            for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
            if (lane == 0) wred[warp][h] = v;
        }
        __syncthreads();
#pragma unroll
        for (int h = 0; h < GT; h++) {
            float cm = wred[0][h];
            for (int w = 1; w < PA_THREADS / 32; w++) cm = fmaxf(cm, wred[w][h]);
            const float m_new = fmaxf(m[h], cm); /* finite: every chunk has a key */
            corr[h] = exp2f(m[h] - m_new);
            const float p = exp2f(sc[h][tid] - m_new);
            sc[h][tid] = p; /* only this thread reads or writes slot tid in this step */
            lsum[h] = lsum[h] * corr[h] + p;
            m[h] = m_new;
        }
        __syncthreads();

#pragma unroll
        for (int h = 0; h < GT; h++)
#pragma unroll
            for (int e = 0; e < 8; e++) acc[h][e] *= corr[h];
#pragma unroll 1 /* VU rows at a time, as above */
        for (int j0 = 0; j0 < NV; j0 += VU) {
            uint4 u[VU];
#pragma unroll
            for (int i = 0; i < VU; i++) {
                const int kk = vr + RG * (j0 + i), k = c0 + kk;
                u[i] = load16(kv_at(kv, a, pages[kk], 1, g, k & (a.P - 1)) + 8 * vc, k < ke && 8 * vc < Dh);
            }
#pragma unroll
            for (int i = 0; i < VU; i++) {
                const int kk = vr + RG * (j0 + i);
                float f[8];
                widen8(f, u[i]);
#pragma unroll
                for (int h = 0; h < GT; h++) {
                    const float p = sc[h][kk];
#pragma unroll
                    for (int e = 0; e < 8; e++) acc[h][e] = fmaf(p, f[e], acc[h][e]);
                }
            }
        }
        __syncthreads(); /* sc and pages are rewritten by the next chunk */
    }

#pragma unroll
    for (int h = 0; h < GT; h++) {
#pragma unroll
        for (int e = 0; e < 8; e++) ored[vr][h][8 * vc + e] = acc[h][e];
        float v = lsum[h];
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
        if (lane == 0) wred[warp][h] = v;
    }
    __syncthreads();
    const bool direct = one_split(ctx, max_splits); /* not from split_len, which would then stay
                                                     * live through the loop */
#pragma unroll
    for (int h = 0; h < GT; h++) {
        float L = 0.0f;
        for (int w = 0; w < PA_THREADS / 32; w++) L += wred[w][h];
        for (int d = tid; d < Dh; d += PA_THREADS) {
            float o = 0.0f;
            for (int x = 0; x < RG; x++) o += ored[x][h][d];
            if (direct) {
                out[(size_t)r * a.H * Dh + (size_t)(h0 + h) * Dh + d] = __float2bfloat16_rn(o / L);
            } else {
                float *part = work + (((size_t)blockIdx.x * a.H + h0 + h) * max_splits + split) * (Dh + 2);
                part[d] = o;
                if (d == 0) {
                    part[Dh] = m[h];
                    part[Dh + 1] = L;
                }
            }
        }
    }
}

/* grid: (decode rows of the batch, H); block: Dh rounded up to 32 threads, one output dimension
 * each. Merges the partials of a row and head; rows with one split were written by the decode
 * kernel. */
__global__ void __launch_bounds__(128)
paged_combine_kernel(bf16 *out, /* [n_rows][H*Dh] */ const float *work, /* [rows of batch][H][max_splits][Dh+2] */
                     pa_args_t a, pa_segs_t segs, int max_splits)
{
    const int seg = seg_of(segs, blockIdx.x), r = segs.r0[seg] + blockIdx.x - segs.first[seg];
    const int h = blockIdx.y, d = threadIdx.x, Dh = a.Dh, ctx = a.ctx_len[r];
    if (one_split(ctx, max_splits) || d >= Dh) return;
    const int ns = CEIL_DIV(ctx, split_len_of(ctx, max_splits));
    const float *part = work + ((size_t)blockIdx.x * a.H + h) * max_splits * (Dh + 2);
    float M = -INFINITY;
    for (int s = 0; s < ns; s++) M = fmaxf(M, part[s * (Dh + 2) + Dh]);
    float L = 0.0f, o = 0.0f;
    for (int s = 0; s < ns; s++) {
        const float w = exp2f(part[s * (Dh + 2) + Dh] - M);
        L += w * part[s * (Dh + 2) + Dh + 1];
        o += w * part[s * (Dh + 2) + d];
    }
    out[(size_t)r * a.H * Dh + (size_t)h * Dh + d] = __float2bfloat16_rn(o / L);
}

/* grid: (tiles of the batch's runs, Hkv * G / GT); block: TILE_THREADS; dynamic shared memory:
 * attention_tile_smem_bytes<DH>() (DH: Dh rounded up to 32, 64 or 128). Tile = TILE_Q / GT
 * consecutive rows of one run x the GT heads of one query-head chunk; query vector v is row
 * v / GT, head v % GT, so a warp's 16 vectors are 16 / GT rows (GT <= 8 divides 16). */
template <int DH>
__global__ void __launch_bounds__(TILE_THREADS)
paged_prefill_kernel(bf16 *out, /* [n_rows][H*Dh] */ const bf16 *q, /* [n_rows][q_stride] */
                     const bf16 *kv, /* [pages][2][Hkv][P][Dh] */ pa_args_t a, pa_segs_t segs)
{
    CUEMU_DYNAMIC_SHARED(unsigned char, smem);
    const int seg = seg_of(segs, blockIdx.x), GT = a.GT, TQ = TILE_Q / GT;
    const int tile = blockIdx.x - segs.first[seg], r0 = segs.r0[seg] + tile * TQ;
    const int nr = min(TQ, segs.len[seg] - tile * TQ);
    const int chunks = a.G / GT, g = blockIdx.y / chunks, h0 = g * a.G + (blockIdx.y % chunks) * GT;
    const int *bt = a.block_tables + (size_t)a.row_seq[r0] * a.max_blocks;
    const int Dh = a.Dh;
    const size_t HD = (size_t)a.H * Dh;
    attention_tile<DH>(
        smem, Dh, a.scale_log2, a.ctx_len[r0 + nr - 1], /* rows of a run: the last sees the most */
        [=](int v) { return v / GT < nr ? q + (size_t)(r0 + v / GT) * a.q_stride + (size_t)(h0 + v % GT) * Dh : nullptr; },
        [=](int v) { return v / GT < nr ? a.ctx_len[r0 + v / GT] : 0; },
        [=](int j) { return kv_row(kv, bt, a, 0, g, j); },
        [=](int j) { return kv_row(kv, bt, a, 1, g, j); },
        [=](int v) { return v / GT < nr ? out + (size_t)(r0 + v / GT) * HD + (size_t)(h0 + v % GT) * Dh : nullptr; });
}

/* ---------------- host: plan and launches ---------------- */

typedef struct {
    int r0, len;
} pa_seg_t;

/* Query heads per block: the largest of 8, 4, 2, 1 dividing G. */
static int pick_gt(int G) { return G % 8 == 0 ? 8 : G % 4 == 0 ? 4 : G % 2 == 0 ? 2 : 1; }

/* Decode splits aim at this many blocks (two per SM of the current device), when the rows alone
 * give fewer. */
static cudaError_t split_target_blocks(long *target)
{
    int dev = 0, sms = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    *target = 2L * sms;
    return e;
}

extern "C" cudaError_t cuda_paged_attention_work_bytes(int n_heads, int n_kv_heads, int head_dim, size_t *bytes)
{
    SHAPE_ASSERT(n_kv_heads >= 1 && n_heads % n_kv_heads == 0 && head_dim >= 1);
    long target = 0;
    const cudaError_t e = split_target_blocks(&target);
    /* plan_max_splits keeps n_dec * H * max_splits below 2 * target * GT (see there) */
    *bytes = (size_t)2 * target * pick_gt(n_heads / n_kv_heads) * (head_dim + 2) * sizeof(float);
    return e;
}

/* Context splits per row (the grid's z) for n_dec decode rows of at most capacity keys: none
 * when the rows give target blocks already; else enough for about target blocks, within the
 * workspace. base * ceil(target / base) < target + base < 2 target blocks, so the partials need
 * less than 2 target GT (Dh + 2) floats: cuda_paged_attention_work_bytes. The bound is the cache's
 * capacity, not this step's longest context, so the grid stays right for later steps; rows
 * shorter than max_splits * PA_SPLIT_MIN leave the extra blocks empty (they return at once). */
static int plan_max_splits(long target, int n_dec, int blocks_per_row, int H, int Dh, long capacity,
                           size_t work_bytes)
{
    const long base = (long)n_dec * blocks_per_row;
    if (base >= target) return 1;
    long ns = CEIL_DIV(capacity, PA_SPLIT_MIN);
    ns = ns < CEIL_DIV(target, base) ? ns : CEIL_DIV(target, base);
    const long fit = (long)(work_bytes / ((size_t)n_dec * H * (Dh + 2) * sizeof(float)));
    ns = ns < fit ? ns : fit;
    return ns > 1 ? (int)ns : 1;
}

/* Segments [i0, i1) of v as kernel arguments; per_block rows per block along x (1: one block per
 * row; TQ: one per tile). Returns the number of blocks. */
static int fill_segs(pa_segs_t *s, const std::vector<pa_seg_t> &v, size_t i0, size_t i1, int per_block)
{
    s->first[0] = 0;
    for (size_t i = i0; i < i1; i++) {
        const int k = (int)(i - i0);
        s->r0[k] = v[i].r0;
        s->len[k] = v[i].len;
        s->first[k + 1] = s->first[k] + CEIL_DIV(v[i].len, per_block);
    }
    return s->first[i1 - i0];
}

/* The performance trace's cost of one launch over segments [i0, i1) (CUEMU_COST): each sequence's
 * keys and values up to its longest context once (its rows share them), its block table, the q
 * rows, ctx_len and row_seq; written: the output rows, or for a row split in ns > 1 parts its
 * partials (Dh + 2 floats per head and split). 4 Dh flops per head and key (q.k and p.v), or with
 * tc_flops >= 0 those tensor-core flops instead (CUEMU_COST_TC, prefill_tc_flops). */
static void declare_cost(const pa_args_t &a, const std::vector<pa_seg_t> &v, size_t i0, size_t i1,
                         const int *h_ctx_len, const int *h_row_seq, int max_splits, bool decode,
                         double tc_flops = -1)
{
#if defined(__CUDACC__) /* a search per row and sequence: not on a GPU's launch path */
    return;
#endif
    std::vector<std::pair<int, int>> seq_ctx; /* (sequence, longest context) */
    double rd = 0, wr = 0, flops = 0;
    const double hd = (double)a.H * a.Dh;
    for (size_t i = i0; i < i1; i++)
        for (int r = v[i].r0; r < v[i].r0 + v[i].len; r++) {
            const int ctx = h_ctx_len[r];
            bool found = false;
            for (auto &sc : seq_ctx)
                if (sc.first == h_row_seq[r]) {
                    sc.second = ctx > sc.second ? ctx : sc.second;
                    found = true;
                }
            if (!found) seq_ctx.push_back({h_row_seq[r], ctx});
            rd += hd * sizeof(bf16) + 2 * sizeof(int);
            flops += 4.0 * ctx * hd;
            int parts = 1;
            if (decode && ctx > PA_SPLIT_MIN && max_splits > 1) {
                const int ns = CEIL_DIV(ctx, PA_SPLIT_MIN) < max_splits ? CEIL_DIV(ctx, PA_SPLIT_MIN) : max_splits;
                parts = CEIL_DIV(ctx, CEIL_DIV(CEIL_DIV(ctx, ns), PA_CHUNK) * PA_CHUNK);
            }
            wr += parts == 1 ? hd * sizeof(bf16) : (double)parts * a.H * (a.Dh + 2) * sizeof(float);
        }
    for (auto &sc : seq_ctx)
        rd += 2.0 * sc.second * a.Hkv * a.Dh * sizeof(bf16) + CEIL_DIV(sc.second, a.P) * sizeof(int);
    if (tc_flops >= 0) CUEMU_COST_TC(rd, wr, tc_flops);
    else CUEMU_COST(rd, wr, flops);
}

/* The MMA flops of the prefill kernel over runs [i0, i1), as attention_tile<DH> does them: per
 * tile of TILE_Q / GT rows and per warp of 16 query vectors (16 / GT rows), the 16-key blocks up to
 * the largest context among the warp's rows (the causal skip; a warp with no rows does none), each
 * 2 x 16 x 16 x DH for Q K^T and 2 x that for P V (hi and lo parts of P); times the grid's
 * Hkv G / GT query-head chunks. DH is the padded head dim the MMAs run over. */
static double prefill_tc_flops(const pa_args_t &a, const std::vector<pa_seg_t> &v, size_t i0, size_t i1,
                               const int *h_ctx_len, int DH)
{
#if defined(__CUDACC__) /* only for the emulator's trace (declare_cost) */
    return 0;
#endif
    const int TQ = TILE_Q / a.GT, WR = 16 / a.GT; /* rows per tile, per warp */
    double blocks16 = 0;
    for (size_t i = i0; i < i1; i++)
        for (int t0 = 0; t0 < v[i].len; t0 += TQ)
            for (int w0 = t0; w0 < t0 + TQ && w0 < v[i].len; w0 += WR) {
                const int last = (w0 + WR < v[i].len ? w0 + WR : v[i].len) - 1;
                blocks16 += CEIL_DIV(h_ctx_len[v[i].r0 + last], 16);
            }
    return blocks16 * 6.0 * 16 * 16 * DH * a.Hkv * (a.G / a.GT);
}

/* The combine's cost: the partials of the split rows, their output rows. */
static void declare_combine_cost(const pa_args_t &a, const std::vector<pa_seg_t> &v, size_t i0, size_t i1,
                                 const int *h_ctx_len, int max_splits)
{
#if defined(__CUDACC__)
    return;
#endif
    double rd = 0, wr = 0;
    for (size_t i = i0; i < i1; i++)
        for (int r = v[i].r0; r < v[i].r0 + v[i].len; r++) {
            const int ctx = h_ctx_len[r];
            rd += sizeof(int);
            if (ctx <= PA_SPLIT_MIN) continue;
            const int ns = CEIL_DIV(ctx, PA_SPLIT_MIN) < max_splits ? CEIL_DIV(ctx, PA_SPLIT_MIN) : max_splits;
            const int parts = CEIL_DIV(ctx, CEIL_DIV(CEIL_DIV(ctx, ns), PA_CHUNK) * PA_CHUNK);
            rd += (double)parts * a.H * (a.Dh + 2) * sizeof(float);
            wr += (double)a.H * a.Dh * sizeof(bf16);
        }
    CUEMU_COST(rd, wr, 0);
}

template <int DH, int GT>
static cudaError_t launch_decode(bf16 *out, float *work, const bf16 *q, const bf16 *kv, const pa_args_t &a,
                                 const std::vector<pa_seg_t> &dec, int max_splits, const int *h_ctx_len,
                                 const int *h_row_seq, cudaStream_t stream)
{
    for (size_t i = 0; i < dec.size(); i += PA_MAX_SEGS) {
        pa_segs_t s;
        const size_t i1 = i + PA_MAX_SEGS < dec.size() ? i + PA_MAX_SEGS : dec.size();
        const int rows = fill_segs(&s, dec, i, i1, 1);
        const dim3 grid(rows, a.Hkv * (a.G / GT), max_splits);
        declare_cost(a, dec, i, i1, h_ctx_len, h_row_seq, max_splits, true);
        CUEMU_LAUNCH(grid, PA_THREADS, 0, stream, paged_decode_kernel<DH, GT>)(out, work, q, kv, a, s, max_splits);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return e;
        if (max_splits == 1) continue;
        declare_combine_cost(a, dec, i, i1, h_ctx_len, max_splits);
        CUEMU_LAUNCH(dim3(rows, a.H), DH, 0, stream, paged_combine_kernel)(out, work, a, s, max_splits);
        if ((e = cudaGetLastError()) != cudaSuccess) return e;
    }
    return cudaSuccess;
}

template <int DH>
static cudaError_t launch_decode_dh(bf16 *out, float *work, const bf16 *q, const bf16 *kv, const pa_args_t &a,
                                    const std::vector<pa_seg_t> &dec, int max_splits, const int *h_ctx_len,
                                    const int *h_row_seq, cudaStream_t stream)
{
    switch (a.GT) {
    case 1: return launch_decode<DH, 1>(out, work, q, kv, a, dec, max_splits, h_ctx_len, h_row_seq, stream);
    case 2: return launch_decode<DH, 2>(out, work, q, kv, a, dec, max_splits, h_ctx_len, h_row_seq, stream);
    case 4: return launch_decode<DH, 4>(out, work, q, kv, a, dec, max_splits, h_ctx_len, h_row_seq, stream);
    default: return launch_decode<DH, 8>(out, work, q, kv, a, dec, max_splits, h_ctx_len, h_row_seq, stream);
    }
}

template <int DH>
static cudaError_t launch_prefill(bf16 *out, const bf16 *q, const bf16 *kv, const pa_args_t &a,
                                  const std::vector<pa_seg_t> &runs, const int *h_ctx_len, const int *h_row_seq,
                                  cudaStream_t stream)
{
    const size_t smem = attention_tile_smem_bytes<DH>();
    if (smem > 48 * 1024) {
        const cudaError_t e =
            cudaFuncSetAttribute(paged_prefill_kernel<DH>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    for (size_t i = 0; i < runs.size(); i += PA_MAX_SEGS) {
        pa_segs_t s;
        const size_t i1 = i + PA_MAX_SEGS < runs.size() ? i + PA_MAX_SEGS : runs.size();
        const int tiles = fill_segs(&s, runs, i, i1, TILE_Q / a.GT);
        declare_cost(a, runs, i, i1, h_ctx_len, h_row_seq, 1, false, prefill_tc_flops(a, runs, i, i1, h_ctx_len, DH));
        const dim3 grid(tiles, a.Hkv * (a.G / a.GT));
        CUEMU_LAUNCH(grid, TILE_THREADS, smem, stream, paged_prefill_kernel<DH>)(out, q, kv, a, s);
        const cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

extern "C" cudaError_t cuda_paged_attention(bf16_t *out, const bf16_t *q, const bf16_t *kv, int page_size,
                                            const paged_attn_t *p, const int *h_ctx_len, const int *h_row_seq,
                                            float *work, size_t work_bytes, cudaStream_t stream)
{
    const int n = p->n_rows, H = p->n_heads, Hkv = p->n_kv_heads, Dh = p->head_dim;
    SHAPE_ASSERT(n >= 1 && Hkv >= 1 && H % Hkv == 0 && Dh >= 8 && Dh <= 128 && Dh % 8 == 0);
    SHAPE_ASSERT(page_size >= 1 && (page_size & (page_size - 1)) == 0); /* a power of two (the engine's: 16) */
    int p_shift = 0;
    while (1 << p_shift < page_size) p_shift++;
    SHAPE_ASSERT(p->max_blocks >= 1 && p->q_stride >= H * Dh && p->q_stride % 8 == 0);
    SHAPE_ASSERT((uintptr_t)q % 16 == 0 && (uintptr_t)kv % 16 == 0 && (uintptr_t)work % 16 == 0);
    const int G = H / Hkv, GT = pick_gt(G);
    SHAPE_ASSERT(Hkv * (G / GT) <= 65535 && H <= 65535);
    const pa_args_t a = {p->ctx_len, p->row_seq, p->block_tables, p->max_blocks, page_size, p_shift, H, Hkv, G, GT,
                         Dh, p->q_stride, p->scale * LOG2E};

    /* the plan: maximal runs of consecutive positions of one sequence, as the CPU backend */
    std::vector<pa_seg_t> dec, runs;
    int n_dec = 0;
    for (int r = 0; r < n;) {
        int len = 1;
        while (r + len < n && h_row_seq[r + len] == h_row_seq[r] && h_ctx_len[r + len] == h_ctx_len[r + len - 1] + 1)
            len++;
        for (int i = r; i < r + len; i++) SHAPE_ASSERT(h_ctx_len[i] >= 1 && h_ctx_len[i] <= p->max_blocks * page_size);
        if (len >= PA_RUN_ROWS) {
            runs.push_back({r, len});
        } else {
            if (!dec.empty() && dec.back().r0 + dec.back().len == r) dec.back().len += len;
            else dec.push_back({r, len});
            n_dec += len;
        }
        r += len;
    }

    bf16 *o = reinterpret_cast<bf16 *>(out);
    const bf16 *dq = reinterpret_cast<const bf16 *>(q), *dkv = reinterpret_cast<const bf16 *>(kv);
    cudaError_t e = cudaSuccess;
    if (n_dec > 0) {
        long target = 0;
        if (work && (e = split_target_blocks(&target)) != cudaSuccess) return e;
        const long capacity = (long)p->max_blocks * page_size;
        const int ns = work ? plan_max_splits(target, n_dec, Hkv * (G / GT), H, Dh, capacity, work_bytes) : 1;
        e = Dh <= 32   ? launch_decode_dh<32>(o, work, dq, dkv, a, dec, ns, h_ctx_len, h_row_seq, stream)
            : Dh <= 64 ? launch_decode_dh<64>(o, work, dq, dkv, a, dec, ns, h_ctx_len, h_row_seq, stream)
                       : launch_decode_dh<128>(o, work, dq, dkv, a, dec, ns, h_ctx_len, h_row_seq, stream);
        if (e != cudaSuccess) return e;
    }
    if (!runs.empty())
        e = Dh <= 32   ? launch_prefill<32>(o, dq, dkv, a, runs, h_ctx_len, h_row_seq, stream)
            : Dh <= 64 ? launch_prefill<64>(o, dq, dkv, a, runs, h_ctx_len, h_row_seq, stream)
                       : launch_prefill<128>(o, dq, dkv, a, runs, h_ctx_len, h_row_seq, stream);
    return e;
}
