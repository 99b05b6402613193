/* Attention kernels (window_attention.cu, qk_norm_rope.cu, paged_attention.cu), run
 * on the CUDA emulation, against the CPU backend's ops (host/cpu/backend_cpu.c, cpu_attention.c) on
 * identical bf16-valued inputs; paged attention also against a dense attention in double over
 * keys gathered from the pages (STYLE.md section 6).
 *
 * Tolerances: the CPU reference is fp32 throughout; a kernel rounds to bf16 (8 significant bits,
 * unit roundoff u = 2^-8) where the official bf16 model does. Attention rounds once, at its output:
 * |got - ref| <= u |ref| + ATOL, where ATOL = 1e-4 covers fp32 arithmetic that is not identical on
 * the two sides (summation order of q.k over up to 128 products of size <= 3, giving score
 * differences ~1e-5; exp2f against the CPU's expf polynomial, ~2 ulp), times values |v| <= 1.
 * QK-norm + RoPE rounds at six points (normalised value, times weight, cos/sin, each product, the
 * sum), each of a term at most |y1| + |y2| of the pair: |got - cpu| <= 6u (|y1| + |y2|). Against a
 * host model of the kernel's documented rounding it must agree except where a last-bit fp32
 * difference (rsqrtf, summation order, sincosf) flips a bf16 rounding: at most 2 bf16 ulps of the
 * pair's terms, and in few elements; its cos/sin table against the same model and the CPU's fp32
 * table. The values go to the cache as a copy: exact, NaN where nothing was stored. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cuda/kernels/kernels.h"
#include "backend.h"
#include "cpu_attention.h"
#include "util.h"
#include "../test.h"
#include "kernel_test.h"

#define ATOL 1e-4 /* fp32 arithmetic that differs between the two sides, absolute (see above) */
#define BF16_NAN 0x7fc0

/* ---------------- helpers ---------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t urand(void) { return (uint32_t)(xorshift64(&rng_state) >> 32); }

static float frand(float lo, float hi) { return lo + (hi - lo) * (float)((double)urand() * 0x1p-32); }

/* Fisher-Yates: a random permutation of 0 .. n-1 */
static int *permutation(int n)
{
    int *p = xmalloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) p[i] = i;
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)(urand() % (uint32_t)(i + 1)), t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

/* ---------------- window attention ---------------- */

/* Windows of lengths len[0..n_win-1] laid out in order with a gap of 2 rows after the first (rows
 * no window owns: the kernel must not write them). */
static void window_case(int H, int Dh, const int *len, int n_win)
{
    const size_t mark = ref.ops->scratch_mark(ref.be);
    int *start = xmalloc((size_t)n_win * sizeof *start), rows = 0, max_len = 0;
    for (int w = 0; w < n_win; w++) {
        start[w] = rows;
        rows += len[w] + (w == 0 ? 2 : 0);
        max_len = MAX(max_len, len[w]);
    }
    const size_t HD = (size_t)H * Dh, n_out = (size_t)rows * HD;
    float *qkv = rand_bf16((size_t)rows * 3 * HD, -2.0f, 2.0f);
    float *want = ref.ops->scratch(ref.be, n_out), *got = ref.ops->scratch(ref.be, n_out);
    for (size_t i = 0; i < n_out; i++) want[i] = 7.0f; /* gap rows keep it on both sides */
    bf16_t *dqkv = to_dev(qkv, (size_t)rows * 3 * HD, 0), *dout = to_dev(want, n_out, 0); /* all 7 */
    const float scale = 1.0f / sqrtf((float)Dh);
    ref.ops->window_attention(ref.be, want, qkv, start, len, n_win, H, Dh, scale);

    int *dstart = ints_to_dev(start, n_win), *dlen = ints_to_dev(len, n_win);
    CHECK_INT_EQ(cuda_window_attention(dout, dqkv, dstart, dlen, n_win, max_len, H, Dh, scale, stream), cudaSuccess);
    from_dev(got, dout, n_out);
    char what[128];
    snprintf(what, sizeof what, "window_attention H=%d Dh=%d windows=%d max_len=%d", H, Dh, n_win, max_len);
    compare(what, got, want, n_out, ATOL, U);
    for (size_t i = (size_t)len[0] * HD; i < (size_t)(len[0] + 2) * HD; i++) CHECK(got[i] == 7.0f);
    cudaFree(dqkv);
    cudaFree(dout);
    cudaFree(dstart);
    cudaFree(dlen);
    free(start);
    ref.ops->scratch_release(ref.be, mark);
}

static void test_window_attention(void)
{
    printf("window attention\n");
    const int real[] = {104, 1, 37, 104, 13}; /* the real model's windows: 104 rows, head dim 64 */
    window_case(3, 64, real, 5);
    const int big[] = {128, 65, 7};
    window_case(2, 128, big, 3);
    const int odd[] = {33, 5, 64};
    window_case(2, 20, odd, 3);  /* Dh % 8 != 0: element-wise loads */
    const int one[] = {50};
    window_case(1, 72, one, 1);  /* Dh padded to 128 */
    const int longw[] = {200, 3};
    window_case(1, 32, longw, 2); /* a window longer than the 64-row query tile and 3 key tiles */
}

/* ---------------- QK-norm + RoPE + KV store ---------------- */

static size_t layer_elems(const kv_geom_t *g)
{
    return (size_t)g->n_pages * 2 * g->n_kv_heads * g->page_size * g->head_dim;
}

/* A CPU cache (all layers NaN) and the device copy of its layer `layer`. */
static kv_cache_t *cpu_cache(const kv_geom_t *g)
{
    kv_cache_t *kv = ref.ops->kv_alloc(ref.be, g);
    QASR_ASSERT(kv);
    const size_t n = layer_elems(g) * g->n_layers;
    QASR_ASSERT(!kv->bf16); /* the reference backend is fp32 */
    for (size_t i = 0; i < n; i++) ((float *)kv->data)[i] = NAN;
    return kv;
}

static bf16_t *dev_layer(const kv_cache_t *kv, int layer)
{
    const size_t n = layer_elems(&kv->g);
    return to_dev((const float *)kv->data + n * layer, n, 0);
}

/* The RoPE tables of one head size: the CPU's (fp32) and the device's, n_pos rows. */
typedef struct {
    int Dh, n_pos;
    weight_t *cpu;
    bf16_t *dev;
} rope_t;

/* The device table against the kernel's documented arithmetic (qk_norm_rope.cu) and against the
 * CPU backend's arithmetic (fp32, powf): one rounding of cos and sin, plus the angle's error where
 * the two fp32 inv_freq differ (each within an ulp of the exact power: pos inv_freq 2^-23). */
static rope_t rope_tables(int Dh, int n_pos, float theta)
{
    const int half = Dh / 2;
    const size_t n = (size_t)n_pos * Dh;
    rope_t t = { Dh, n_pos, ref.ops->weight_alloc(ref.be, n, WEIGHT_PARAM, DTYPE_F32), dev_nan(n, 0) };
    QASR_ASSERT(t.cpu);
    ref.ops->rope_table(ref.be, t.cpu, n_pos, Dh, theta);
    CHECK_INT_EQ(cuda_rope_table(t.dev, n_pos, Dh, theta, stream), cudaSuccess);
    float *got = xmalloc(n * sizeof *got);
    from_dev(got, t.dev, n);
    size_t differ = 0, bad = 0;
    for (int i = 0; i < half; i++) {
        const float expo = (float)(2 * i) / (float)Dh, inv_freq = 1.0f / (float)pow((double)theta, (double)expo);
        const float inv_freq_cpu = 1.0f / powf(theta, expo);
        for (int p = 0; p < n_pos; p++) {
            const float a = (float)p * inv_freq, a_cpu = (float)p * inv_freq_cpu;
            const float want[2] = { bf16r(cosf(a)), bf16r(sinf(a)) }, cpu[2] = { cosf(a_cpu), sinf(a_cpu) };
            for (int k = 0; k < 2; k++) {
                const float g = got[(size_t)p * Dh + k * half + i];
                differ += g != want[k];
                bad += !(fabs((double)g - want[k]) <= 2 * 0x1p-8 * fabs(want[k]));
                bad += !(fabs((double)g - cpu[k]) <= U * fabs(cpu[k]) + (double)p * inv_freq * 0x1p-23);
            }
        }
    }
    printf("  rope_table Dh=%-3d positions 0..%d: %zu of %zu differ from the host model\n", Dh, n_pos - 1, differ, n);
    CHECK(bad == 0);
    CHECK(differ * 1000 <= n); /* sincosf's last bit flips a rounding rarely (on a GPU) */
    free(got);
    return t;
}

/* The kernel's documented arithmetic (qk_norm_rope.cu) on the host, with the device's table. */
static void rope_model(float *qkv, const float *qw, const float *kw, const float *table, const int *pos, int rows,
                       int H, int Hkv, int Dh, float eps, float *bound)
{
    const int half = Dh / 2, stride = (H + 2 * Hkv) * Dh;
    for (int r = 0; r < rows; r++)
        for (int h = 0; h < H + Hkv; h++) {
            float *x = qkv + (size_t)r * stride + h * Dh, *b = bound + (size_t)r * stride + h * Dh;
            const float *w = h < H ? qw : kw, *cs = table + (size_t)pos[r] * Dh, *sn = cs + half;
            float ss = 0.0f;
            for (int d = 0; d < Dh; d++) ss += x[d] * x[d];
            const float inv = 1.0f / sqrtf(ss / (float)Dh + eps);
            for (int i = 0; i < half; i++) {
                const float y1 = bf16r(w[i] * bf16r(x[i] * inv)), y2 = bf16r(w[i + half] * bf16r(x[i + half] * inv));
                x[i] = bf16r(bf16r(y1 * cs[i]) - bf16r(y2 * sn[i]));
                x[i + half] = bf16r(bf16r(y2 * cs[i]) + bf16r(y1 * sn[i]));
                b[i] = b[i + half] = fabsf(y1) + fabsf(y2);
            }
        }
}

/* rows at distinct random slots of a cache of n_pages pages of P, at distinct random positions
 * below the table's rows, row 0 at 0 and row 1 at the last */
static void rope_store_case(const rope_t *t, int rows, int H, int Hkv, int P, int n_pages)
{
    const size_t mark = ref.ops->scratch_mark(ref.be);
    const int Dh = t->Dh, stride = (H + 2 * Hkv) * Dh, layer = 1;
    const size_t n = (size_t)rows * stride;
    const float eps = 1e-6f;
    const kv_geom_t g = { 2, n_pages, P, Hkv, Dh };
    float *qkv = rand_bf16(n, -3.0f, 3.0f), *qw = rand_bf16(Dh, 0.5f, 1.5f), *kw = rand_bf16(Dh, -1.5f, 1.5f);
    int *pos = xmalloc((size_t)rows * sizeof *pos), *slot = permutation(n_pages * P);
    for (int r = 0; r < rows; r++) { /* distinct: the launch's declared bytes count a table row per row */
        pos[r] = r == 0 ? 0 : r == 1 ? t->n_pos - 1 : (int)(urand() % t->n_pos);
        for (int q = 0; q < r; q++)
            if (pos[q] == pos[r]) r--;
    }
    kv_cache_t *kv = cpu_cache(&g);
    bf16_t *dkv = dev_layer(kv, layer);
    float *cpu = ref.ops->scratch(ref.be, n), *model = ref.ops->scratch(ref.be, n);
    float *bound = ref.ops->scratch(ref.be, n), *got = ref.ops->scratch(ref.be, n);
    float *table = ref.ops->scratch(ref.be, (size_t)t->n_pos * Dh);
    from_dev(table, t->dev, (size_t)t->n_pos * Dh);
    memcpy(cpu, qkv, n * sizeof *cpu);
    memcpy(model, qkv, n * sizeof *model);
    ref.ops->qk_norm_rope_store(ref.be, kv, layer, cpu, ref_weight(qw, Dh), ref_weight(kw, Dh), t->cpu, pos, slot,
                                rows, H, Hkv, Dh, eps);
    rope_model(model, qw, kw, table, pos, rows, H, Hkv, Dh, eps, bound);

    bf16_t *dqkv = to_dev(qkv, n, 0), *dqw = to_dev(qw, Dh, 0), *dkw = to_dev(kw, Dh, 0);
    int *dpos = ints_to_dev(pos, rows), *dslot = ints_to_dev(slot, rows);
    CHECK_INT_EQ(cuda_qk_norm_rope_store(dkv, dqkv, dqw, dkw, t->dev, dpos, dslot, rows, H, Hkv, Dh, P, eps, stream),
                 cudaSuccess);
    from_dev(got, dqkv, n);
    const size_t kn = layer_elems(&g);
    float *got_kv = ref.ops->scratch(ref.be, kn);
    from_dev(got_kv, dkv, kn);
    const float *want_kv = (const float *)kv->data + kn * layer;

    /* q heads (in qkv) and k heads (in the cache): against the CPU (fp32) within the rounding
     * bound, against the model within 2 ulps of the terms; the k and v parts of qkv as they
     * were; v in the cache exact; nothing else of the cache written */
    size_t bad_cpu = 0, bad_model = 0, differ = 0, qk = 0, bad_copy = 0, stored = 0;
    double max_cpu = 0, max_model = 0;
#define ROPE_CHECK(g_, c_, m_, b_)                                                                   \
    do {                                                                                           \
        const double e_cpu = fabs((double)(g_) - (c_)), e_model = fabs((double)(g_) - (m_));         \
        qk++;                                                                                      \
        bad_cpu += !(e_cpu <= 6 * U * (b_));                                                       \
        bad_model += !(e_model <= 2 * 0x1p-7 * (b_));                                              \
        differ += (g_) != (m_);                                                                    \
        max_cpu = fmax(max_cpu, e_cpu / (b_));                                                     \
        max_model = fmax(max_model, e_model / (b_));                                               \
    } while (0)
    for (int r = 0; r < rows; r++) {
        const size_t o = (size_t)r * stride;
        for (int c = 0; c < H * Dh; c++) ROPE_CHECK(got[o + c], cpu[o + c], model[o + c], bound[o + c]);
        for (int c = H * Dh; c < stride; c++) bad_copy += got[o + c] != qkv[o + c];
        const int page = slot[r] / P, off = slot[r] % P;
        for (int hw = 0; hw < 2 * Hkv; hw++) /* hw = which * Hkv + head */
            for (int d = 0; d < Dh; d++) {
                const size_t e = (((size_t)page * 2 * Hkv + hw) * P + off) * Dh + d, m = o + (H + hw) * Dh + d;
                if (hw < Hkv) ROPE_CHECK(got_kv[e], want_kv[e], model[m], bound[m]);
                else bad_copy += got_kv[e] != qkv[m] || want_kv[e] != qkv[m];
            }
    }
#undef ROPE_CHECK
    for (size_t i = 0; i < kn; i++) stored += !isnan(got_kv[i]);
    printf("  qk_norm_rope_store rows=%-3d H=%-2d Hkv=%d Dh=%-3d vs cpu: max %.3g u (|y1|+|y2|); vs model: "
           "max %.3g u, %zu of %zu differ\n", rows, H, Hkv, Dh, max_cpu / U, max_model / U, differ, qk);
    CHECK(bad_cpu == 0);
    CHECK(bad_model == 0);
    CHECK(differ * 50 <= qk); /* a flipped rounding is rare */
    CHECK_INT_EQ(bad_copy, 0);
    CHECK_INT_EQ(stored, (size_t)rows * 2 * Hkv * Dh);
    cudaFree(dkv);
    cudaFree(dqkv);
    cudaFree(dqw);
    cudaFree(dkw);
    cudaFree(dpos);
    cudaFree(dslot);
    free(pos);
    free(slot);
    ref.ops->kv_free(ref.be, kv);
    ref.ops->scratch_release(ref.be, mark);
}

static void test_qk_norm_rope_store(void)
{
    printf("qk_norm_rope_store\n");
    const float theta = 1e6f;
    rope_t t128 = rope_tables(128, 65536, theta); /* 0.6B and 1.7B: max_position_embeddings 65536 */
    rope_store_case(&t128, 37, 5, 3, 16, 13);
    rope_store_case(&t128, 9, 16, 8, 16, 7); /* the decoder's heads: 6 per warp */
    rope_store_case(&t128, 1, 16, 8, 16, 1); /* one row */
    rope_t t64 = rope_tables(64, 1000, theta), t256 = rope_tables(256, 50, theta), t6 = rope_tables(6, 9, theta);
    rope_store_case(&t64, 2, 2, 1, 5, 3);
    rope_store_case(&t256, 3, 2, 1, 3, 2); /* 4 pairs per lane */
    rope_store_case(&t6, 4, 1, 1, 3, 4);   /* most lanes idle */
    const rope_t *all[] = { &t128, &t64, &t256, &t6 };
    for (int i = 0; i < 4; i++) cudaFree(all[i]->dev);
}

/* ---------------- paged attention ---------------- */

/* A step of the engine: n_rows query rows, row i of sequence row_seq[i] at ctx_len[i] (its own
 * key is at position ctx_len[i]-1). Sequences own random pages of a pool twice as large as
 * needed; cache slots past a sequence's length and unused pages are NaN, block-table entries past
 * a sequence's pages are -1: the kernels must read none of them. */
typedef struct {
    const char *name;
    int H, Hkv, Dh, P;
    int n_rows;
    const int *row_seq, *ctx_len;
    int use_work;     /* pass a workspace (cuda_paged_attention_work_bytes) */
    int expect_split; /* 1: the decode rows must be split (workspace written), 0: must not */
    int graph;        /* capture the call in a CUDA graph and launch that */
    /* With graph: the contexts of a later decode step (the same rows, longer contexts). The graph
     * captured with ctx_len is launched, then relaunched after the device's ctx_len is overwritten
     * with these, as an engine would replay a captured step; the relaunch must give this step's
     * attention, the same as an uncaptured call. NULL: one launch. */
    const int *replay_ctx;
} paged_case_t;

/* out [n_rows][H*Dh] in double: softmax(q k^T scale) v over keys gathered from the pages */
static void dense_attention(double *out, const float *q, int q_stride, const kv_cache_t *kv, int layer,
                            const paged_attn_t *p)
{
    const int H = p->n_heads, Dh = p->head_dim, G = H / p->n_kv_heads, P = kv->g.page_size;
    const size_t page = (size_t)P * Dh, lay = layer_elems(&kv->g);
    double *s = xmalloc((size_t)p->max_ctx * sizeof *s);
    for (int i = 0; i < p->n_rows; i++) {
        const int *bt = p->block_tables + (size_t)p->row_seq[i] * p->max_blocks, n = p->ctx_len[i];
        for (int h = 0; h < H; h++) {
            const int g = h / G;
            const float *qh = q + (size_t)i * q_stride + (size_t)h * Dh;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < n; j++) {
                const float *k = (const float *)kv->data + lay * layer + (((size_t)bt[j / P] * 2 + 0) * kv->g.n_kv_heads + g) * page +
                                 (size_t)(j % P) * Dh;
                double dot = 0;
                for (int d = 0; d < Dh; d++) dot += (double)qh[d] * k[d];
                s[j] = dot * p->scale;
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j < n; j++) sum += s[j] = exp(s[j] - mx);
            for (int d = 0; d < Dh; d++) {
                double o = 0;
                for (int j = 0; j < n; j++) {
                    const float *v = (const float *)kv->data + lay * layer + (((size_t)bt[j / P] * 2 + 1) * kv->g.n_kv_heads + g) * page +
                                     (size_t)(j % P) * Dh;
                    o += s[j] * v[d];
                }
                out[((size_t)i * H + h) * Dh + d] = o / sum;
            }
        }
    }
    free(s);
}

static void paged_case(const paged_case_t *c)
{
    const size_t mark = ref.ops->scratch_mark(ref.be);
    const int H = c->H, Hkv = c->Hkv, Dh = c->Dh, P = c->P, n = c->n_rows, layer = 1;
    /* sequences: length = the largest context of their rows */
    /* the contexts checked: those of the replay when there is one */
    const int *ctx = c->replay_ctx ? c->replay_ctx : c->ctx_len;
    int n_seqs = 0, max_ctx = 0;
    for (int i = 0; i < n; i++) {
        n_seqs = MAX(n_seqs, c->row_seq[i] + 1);
        max_ctx = MAX(max_ctx, MAX(ctx[i], c->ctx_len[i]));
    }
    int *seq_len = xcalloc((size_t)n_seqs, sizeof *seq_len), max_blocks = 1, used = 0;
    for (int i = 0; i < n; i++) seq_len[c->row_seq[i]] = MAX(seq_len[c->row_seq[i]], MAX(ctx[i], c->ctx_len[i]));
    for (int s = 0; s < n_seqs; s++) {
        max_blocks = MAX(max_blocks, CEIL_DIV(seq_len[s], P) + 1); /* + 1: an entry past every sequence */
        used += CEIL_DIV(seq_len[s], P);
    }
    const kv_geom_t g = {2, 2 * used + 3, P, Hkv, Dh};
    int *perm = permutation(g.n_pages), *bt = xmalloc((size_t)n_seqs * max_blocks * sizeof *bt), next = 0;
    kv_cache_t *kv = cpu_cache(&g);
    const size_t lay = layer_elems(&g), page = (size_t)P * Dh;
    for (int s = 0; s < n_seqs; s++)
        for (int b = 0; b < max_blocks; b++) {
            bt[s * max_blocks + b] = b < CEIL_DIV(seq_len[s], P) ? perm[next++] : -1;
            if (bt[s * max_blocks + b] < 0) continue;
            for (int w = 0; w < 2; w++)
                for (int kh = 0; kh < Hkv; kh++)
                    for (int off = 0; off < P && b * P + off < seq_len[s]; off++)
                        for (int d = 0; d < Dh; d++)
                            ((float *)kv->data)[lay * layer + (((size_t)bt[s * max_blocks + b] * 2 + w) * Hkv + kh) * page +
                                     (size_t)off * Dh + d] = bf16r(frand(-1.0f, 1.0f));
        }
    const int q_stride = (H + 2 * Hkv) * Dh;
    float *q = rand_bf16((size_t)n * q_stride, -3.0f, 3.0f);
    const size_t n_out = (size_t)n * H * Dh;
    float *want = ref.ops->scratch(ref.be, n_out), *got = ref.ops->scratch(ref.be, n_out);
    paged_attn_t p = {
        .n_rows = n, .n_heads = H, .n_kv_heads = Hkv, .head_dim = Dh, .q_stride = q_stride,
        .scale = 1.0f / sqrtf((float)Dh), .ctx_len = ctx, .row_seq = c->row_seq, .block_tables = bt,
        .max_blocks = max_blocks, .max_ctx = max_ctx,
    };
    ref.ops->paged_attention(ref.be, want, q, kv, layer, &p);
    double *dense = xmalloc(n_out * sizeof *dense);
    dense_attention(dense, q, q_stride, kv, layer, &p);

    bf16_t *dkv = dev_layer(kv, layer), *dq = to_dev(q, (size_t)n * q_stride, 0);
    bf16_t *dout = NULL;
    dout = dev_alloc(n_out * sizeof *dout); /* 0xFF: NaN if unwritten */
    paged_attn_t dp = p;
    dp.ctx_len = ints_to_dev(c->ctx_len, n); /* the call's (captured) contexts */
    dp.row_seq = ints_to_dev(c->row_seq, n);
    dp.block_tables = ints_to_dev(bt, (size_t)n_seqs * max_blocks);
    float *work = NULL;
    size_t work_bytes = 0;
    if (c->use_work) {
        CHECK_INT_EQ(cuda_paged_attention_work_bytes(H, Hkv, Dh, &work_bytes), cudaSuccess);
        CHECK_INT_EQ(cudaMalloc((void **)&work, work_bytes), cudaSuccess);
        CHECK_INT_EQ(cudaMemset(work, 0xff, work_bytes), cudaSuccess);
    }
    if (c->graph) {
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CHECK_INT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
        CHECK_INT_EQ(cuda_paged_attention(dout, dq, dkv, P, &dp, c->ctx_len, c->row_seq, work, work_bytes, stream),
                     cudaSuccess);
        CHECK_INT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
        CHECK_INT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
        CHECK_INT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
        CHECK_INT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
        if (c->replay_ctx) {
            CHECK_INT_EQ(cudaMemcpy((void *)dp.ctx_len, c->replay_ctx, (size_t)n * sizeof(int), cudaMemcpyHostToDevice),
                         cudaSuccess);
            CHECK_INT_EQ(cudaMemset(dout, 0xff, n_out * sizeof *dout), cudaSuccess);
            if (work) CHECK_INT_EQ(cudaMemset(work, 0xff, work_bytes), cudaSuccess);
            CHECK_INT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
            CHECK_INT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
        }
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
    } else {
        CHECK_INT_EQ(cuda_paged_attention(dout, dq, dkv, P, &dp, c->ctx_len, c->row_seq, work, work_bytes, stream),
                     cudaSuccess);
    }
    from_dev(got, dout, n_out);

    char what[160];
    if (c->replay_ctx) { /* the replay against an uncaptured call with the replay's contexts */
        float *direct = ref.ops->scratch(ref.be, n_out);
        CHECK_INT_EQ(cudaMemset(dout, 0xff, n_out * sizeof *dout), cudaSuccess);
        CHECK_INT_EQ(cuda_paged_attention(dout, dq, dkv, P, &dp, c->replay_ctx, c->row_seq, work, work_bytes, stream),
                     cudaSuccess);
        from_dev(direct, dout, n_out);
        snprintf(what, sizeof what, "%s: replay vs uncaptured", c->name);
        compare(what, got, direct, n_out, 0.0f, 0);
    }
    snprintf(what, sizeof what, "%s vs cpu", c->name);
    compare(what, got, want, n_out, ATOL, U);
    float *dense_f = ref.ops->scratch(ref.be, n_out);
    for (size_t i = 0; i < n_out; i++) dense_f[i] = (float)dense[i];
    snprintf(what, sizeof what, "%s vs dense (double)", c->name);
    compare(what, got, dense_f, n_out, ATOL, U);
    snprintf(what, sizeof what, "%s: cpu vs dense (the references agree)", c->name);
    compare(what, want, dense_f, n_out, ATOL, 0);
    if (c->use_work) {
        uint32_t *h = xmalloc(work_bytes);
        CHECK_INT_EQ(cudaMemcpy(h, work, work_bytes, cudaMemcpyDeviceToHost), cudaSuccess);
        int written = 0;
        for (size_t i = 0; i < work_bytes / 4; i++) written |= h[i] != 0xffffffffu;
        CHECK_INT_EQ(written, c->expect_split);
        free(h);
        cudaFree(work);
    }
    cudaFree(dout);
    cudaFree(dkv);
    cudaFree(dq);
    cudaFree((void *)dp.ctx_len);
    cudaFree((void *)dp.row_seq);
    cudaFree((void *)dp.block_tables);
    free(dense);
    free(perm);
    free(bt);
    free(seq_len);
    ref.ops->kv_free(ref.be, kv);
    ref.ops->scratch_release(ref.be, mark);
}

/* Rows of a step, appended: one decode row, or a prompt chunk (consecutive positions). */
typedef struct {
    int n, seq[512], ctx[512];
} rows_t;

static void add_decode(rows_t *r, int seq, int ctx)
{
    QASR_ASSERT(r->n < 512);
    r->seq[r->n] = seq;
    r->ctx[r->n++] = ctx;
}

static void add_chunk(rows_t *r, int seq, int first_pos, int len)
{
    for (int i = 0; i < len; i++) add_decode(r, seq, first_pos + i + 1);
}

static void test_paged_attention(void)
{
    printf("paged_attention\n");
    rows_t r;

    /* The engine's order: decode rows (contexts of 1, a full page, a page + 1, several chunks of
     * the decode kernel), then prompt chunks: mid-sequence (two 32-row tiles), from position 0,
     * and a 3-row chunk (too short for the tile kernel: decode rows). No workspace: no split. */
    r.n = 0;
    add_decode(&r, 0, 1);
    add_decode(&r, 1, 16);
    add_decode(&r, 2, 17);
    add_decode(&r, 3, 300);
    add_decode(&r, 4, 53);
    add_chunk(&r, 5, 40, 60);
    add_chunk(&r, 6, 0, 10);
    add_chunk(&r, 7, 20, 3);
    paged_case(&(paged_case_t){"mixed G=2 Dh=128 P=16", 4, 2, 128, 16, r.n, r.seq, r.ctx, 0, 0, 0, NULL});

    /* Batch of one long decode row: 3 blocks only, so 4 context splits and the combine. */
    r.n = 0;
    add_decode(&r, 0, 1000);
    paged_case(&(paged_case_t){"one row ctx=1000 G=1 Dh=64 P=8 (split)", 3, 3, 64, 8, r.n, r.seq, r.ctx, 1, 1, 0, NULL});

    /* Split decode rows (1 split: ctx 1, 129, 256; 2 splits with one key in the second: 257;
     * 3 splits: 700) mixed with a prompt chunk that starts mid-sequence. */
    r.n = 0;
    add_decode(&r, 0, 1);
    add_decode(&r, 1, 700);
    add_decode(&r, 2, 256);
    add_decode(&r, 3, 257);
    add_decode(&r, 4, 129);
    add_chunk(&r, 5, 300, 40);
    paged_case(&(paged_case_t){"split + prefill G=2 Dh=128 P=16, CUDA graph", 4, 2, 128, 16, r.n, r.seq, r.ctx, 1, 1, 1, NULL});

    /* A captured decode step replayed for the next steps: every row's context grows, across the
     * 256-key split boundary (250 -> 260: one split to two; 512 -> 520: two to three), and past a
     * 128-key chunk without a workspace (no split). */
    {
        static const int seq[] = {0, 1, 2}, before[] = {250, 100, 512}, after[] = {260, 101, 520};
        paged_case(&(paged_case_t){"graph replayed across split boundaries G=2 Dh=128 P=16", 4, 2, 128, 16, 3, seq,
                                   before, 1, 1, 1, after});
        paged_case(&(paged_case_t){"graph replayed past a chunk, no workspace G=2 Dh=64 P=16", 4, 2, 64, 16, 3, seq,
                                   before, 0, 0, 1, after});
    }

    /* The decoder's shapes (H = 16, Hkv = 8, Dh = 128, P = 16): 12 decode rows, one of 2000 keys
     * (96 blocks: 3 splits), and a 128-row prompt chunk at position 400. */
    r.n = 0;
    for (int s = 0; s < 12; s++) add_decode(&r, s, s == 0 ? 2000 : 1 + (int)(urand() % 500));
    add_chunk(&r, 12, 400, 128);
    paged_case(&(paged_case_t){"decoder shapes H=16 Hkv=8 Dh=128 P=16", 16, 8, 128, 16, r.n, r.seq, r.ctx, 1, 1, 0, NULL});

    /* Enough decode rows to fill the GPU (140 x 2 blocks >= 2 x 132 SMs): no split even with a
     * workspace. */
    r.n = 0;
    for (int s = 0; s < 140; s++) add_decode(&r, s, 1 + (int)(urand() % 40));
    paged_case(&(paged_case_t){"140 decode rows G=1 Dh=64 P=16 (no split)", 2, 2, 64, 16, r.n, r.seq, r.ctx, 1, 0, 0, NULL});

    /* Decode rows and 4-row prompt chunks interleaved: 34 segments of each kind, more than one
     * launch holds (PA_MAX_SEGS = 32); pages of 4 positions. */
    r.n = 0;
    for (int s = 0; s < 34; s++) {
        add_decode(&r, 2 * s, 1 + (int)(urand() % 30));
        add_chunk(&r, 2 * s + 1, (int)(urand() % 20), 4);
    }
    paged_case(&(paged_case_t){"interleaved 68 segments G=2 Dh=64 P=4", 2, 1, 64, 4, r.n, r.seq, r.ctx, 0, 0, 0, NULL});

    /* Other GQA groups: G = 3 (three 1-head chunks per kv head; split), 4 and 8 (one chunk). */
    r.n = 0;
    add_decode(&r, 0, 600);
    add_decode(&r, 1, 7);
    add_chunk(&r, 2, 5, 30);
    paged_case(&(paged_case_t){"G=3 Dh=128 P=16", 6, 2, 128, 16, r.n, r.seq, r.ctx, 1, 1, 0, NULL});
    paged_case(&(paged_case_t){"G=4 Dh=64 P=16", 8, 2, 64, 16, r.n, r.seq, r.ctx, 0, 0, 0, NULL});
    paged_case(&(paged_case_t){"G=8 Dh=128 P=32", 8, 1, 128, 32, r.n, r.seq, r.ctx, 0, 0, 0, NULL});

    /* Head dims other than 64 and 128: 32 (the tiny test model's decoder) and 96 (padded to 128). */
    paged_case(&(paged_case_t){"G=2 Dh=32 P=16 (split)", 4, 2, 32, 16, r.n, r.seq, r.ctx, 1, 1, 0, NULL});
    paged_case(&(paged_case_t){"G=2 Dh=96 P=16", 4, 2, 96, 16, r.n, r.seq, r.ctx, 0, 0, 0, NULL});

    /* Page sizes at the ends of the shift and mask: 1 (a page per key) and 64 (a 128-key chunk of
     * the decode kernel in two pages). */
    r.n = 0;
    add_decode(&r, 0, 300);
    add_decode(&r, 1, 7);
    add_chunk(&r, 2, 5, 8);
    paged_case(&(paged_case_t){"G=2 Dh=128 P=1 (split)", 4, 2, 128, 1, r.n, r.seq, r.ctx, 1, 1, 0, NULL});
    paged_case(&(paged_case_t){"G=1 Dh=64 P=64", 2, 2, 64, 64, r.n, r.seq, r.ctx, 0, 0, 0, NULL});

    /* Prefill-heavy steps (the tensor-core tile kernel): prompts of several lengths in one step,
     * from position 0 (100 rows: the warps of a tile stop at different keys, the causal skip) and
     * continued from an earlier step (context longer than the step's rows), lengths that are not
     * multiples of 16 or of the page (8 positions), the shortest run the tile kernel takes (4
     * rows), one decode row; GQA groups of 1, 2 (GT = 2: 32 rows a tile) and 8 (2 rows a warp). */
    r.n = 0;
    add_chunk(&r, 0, 0, 100);
    add_decode(&r, 1, 45);
    add_chunk(&r, 2, 0, 37);
    add_chunk(&r, 3, 90, 45);
    add_chunk(&r, 4, 200, 17);
    add_chunk(&r, 5, 0, 4);
    paged_case(&(paged_case_t){"prompts G=1 Dh=64 P=8", 2, 2, 64, 8, r.n, r.seq, r.ctx, 0, 0, 0, NULL});
    paged_case(&(paged_case_t){"prompts G=2 Dh=128 P=8", 4, 2, 128, 8, r.n, r.seq, r.ctx, 0, 0, 0, NULL});
    paged_case(&(paged_case_t){"prompts G=8 Dh=64 P=8", 8, 1, 64, 8, r.n, r.seq, r.ctx, 0, 0, 0, NULL});
}

int main(void)
{
    require_device();
    if (backend_cpu_create(&ref, 1, 128, PRECISION_FP32) != 0) {
        fprintf(stderr, "cannot create the CPU backend\n");
        return 1;
    }
    CHECK_INT_EQ(cudaStreamCreate(&stream), cudaSuccess);
    test_window_attention();
    test_qk_norm_rope_store();
    test_paged_attention();
    CHECK_INT_EQ(cudaStreamDestroy(stream), cudaSuccess);
    ref.ops->destroy(ref.be);
    return test_result("test_kernels_attention");
}
