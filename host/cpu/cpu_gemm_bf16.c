/* bf16 matmul on oneDNN (contract in cpu_gemm_bf16.h).
 *
 * oneDNN's brgemm matmul only runs at full speed with every dimension known when the primitive
 * is made (with a run-time M it falls back to a generic gemm), so there is one primitive per
 * (M, K, N, bias, accumulate). To keep their number bounded whatever the batch shapes, M is cut
 * into pieces of PIECE rows, one multiple of 64 below PIECE and a remainder below 64: at most
 * 1 + PIECE/64 + 63 row counts per weight shape, and in practice a handful. The weight layout
 * oneDNN asks for does not depend on M (checked as each primitive is made), so one packed copy
 * serves all. */
#include "cpu_gemm_bf16.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnnl_check.h"
#include "util.h"

#define PIECE 1024      /* rows per primitive call at most */
#define MAX_PRIMS 1024  /* cache entries; past this the cache starts over */
#define PACK_ROWS 256   /* the M the packed layout is queried at */

struct bf16_weight {
    int N, K;
    dnnl_memory_desc_t md; /* the packed layout */
    void *data;            /* packed, bf16 */
    size_t bytes;
    int owned;             /* data is ours to free, not the caller's buffer packed in place */
    int plain;             /* data is the caller's [N][K] as it is (bf16_weight_plain) */
};

typedef struct {
    int m, K, N, bias, accumulate, plain;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst, b; /* handles set per call */
} prim_t;

typedef struct {
    int N, K;
    dnnl_memory_desc_t md;
} layout_t;

/* Everything of oneDNN one backend instance uses, freed with it. */
struct bf16_gemm {
    pthread_mutex_t lock; /* the stream and the caches */
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    prim_t *prims;
    int n_prims;
    layout_t known[64];   /* packed layouts by shape */
    int n_known;
    uint16_t *xbuf;       /* activations rounded to bf16 */
    size_t xcap;
    void *pack_buf;       /* in-place packing goes through it */
    size_t pack_cap;
};

bf16_gemm_t *bf16_gemm_new(void)
{
    bf16_gemm_t *g = xcalloc(1, sizeof *g);
    pthread_mutex_init(&g->lock, NULL);
    DNNL_OK(dnnl_engine_create(&g->eng, dnnl_cpu, 0));
    DNNL_OK(dnnl_stream_create(&g->stream, g->eng, dnnl_stream_default_flags));
    g->prims = xcalloc(MAX_PRIMS, sizeof *g->prims);
    return g;
}

int bf16_gemm_native(const char **isa)
{
    const dnnl_cpu_isa_t have = dnnl_get_effective_cpu_isa();
    const int amx = (have & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx;
    const int bf16 = (have & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
    if (isa) *isa = amx ? "AMX" : bf16 ? "AVX512-BF16" : "no native bf16";
    return amx || bf16;
}

static void md_2d(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, dnnl_data_type_t dt, dnnl_format_tag_t tag)
{
    const dnnl_dims_t d = { rows, cols };
    DNNL_OK(dnnl_memory_desc_init_by_tag(md, 2, d, dt, tag));
}

/* The matmul descriptor src [m][K] bf16 x wei [K][N] (layout wtag, or any) -> dst [m][N] f32. */
static dnnl_primitive_desc_t make_pd(const bf16_gemm_t *g, int m, int K, int N, int bias, int accumulate,
                                     dnnl_format_tag_t wtag)
{
    dnnl_memory_desc_t src, wei, dst, b;
    md_2d(&src, m, K, dnnl_bf16, dnnl_ab);
    md_2d(&wei, K, N, dnnl_bf16, wtag);
    md_2d(&dst, m, N, dnnl_f32, dnnl_ab);
    md_2d(&b, 1, N, dnnl_f32, dnnl_ab);
    dnnl_matmul_desc_t desc;
    DNNL_OK(dnnl_matmul_desc_init(&desc, &src, &wei, bias ? &b : NULL, &dst));
    dnnl_primitive_attr_t attr;
    DNNL_OK(dnnl_primitive_attr_create(&attr));
    if (accumulate) {
        dnnl_post_ops_t po;
        DNNL_OK(dnnl_post_ops_create(&po));
        DNNL_OK(dnnl_post_ops_append_sum(po, 1.0f));
        DNNL_OK(dnnl_primitive_attr_set_post_ops(attr, po));
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    DNNL_OK(dnnl_primitive_desc_create(&pd, &desc, attr, g->eng, NULL));
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

/* oneDNN's reorder into the packed layout (any layout oneDNN may ask for). */
static void pack_by_reorder(bf16_gemm_t *g, void *dst, const dnnl_memory_desc_t *packed, const uint16_t *w, int N,
                            int K)
{
    /* PyTorch's [N][K] is the matmul's [K][N] with the K stride 1: tag "ba" */
    dnnl_memory_desc_t plain;
    md_2d(&plain, K, N, dnnl_bf16, dnnl_ba);
    dnnl_memory_t from, to;
    DNNL_OK(dnnl_memory_create(&from, &plain, g->eng, (void *)w));
    DNNL_OK(dnnl_memory_create(&to, packed, g->eng, dst));
    dnnl_primitive_desc_t rpd;
    DNNL_OK(dnnl_reorder_primitive_desc_create(&rpd, &plain, g->eng, packed, g->eng, NULL));
    dnnl_primitive_t reorder;
    DNNL_OK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
    DNNL_OK(dnnl_primitive_execute(reorder, g->stream, 2, args)); /* g->stream: callers hold g->lock */
    DNNL_OK(dnnl_stream_wait(g->stream));
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(from);
    dnnl_memory_destroy(to);
}

/* One K x N block (KB x NB) of the layout below: rows n0.. of src ([*][K], row stride K) from
 * column k0, zero where the block passes N or K. */
static void pack_block(uint16_t *blk, const uint16_t *src, int64_t n0, int64_t k0, int64_t KB, int64_t NB,
                       int64_t V, int N, int K)
{
    if (V == 2 && n0 + NB <= N && k0 + KB <= K && K % 2 == 0) {
        /* a whole block: a transpose of k pairs (32 bits, moved by memcpy: no aliasing) */
        const uint16_t *s = src + n0 * K + k0;
        for (int64_t kp = 0; kp < KB / 2; kp++)
            for (int64_t n = 0; n < NB; n++) memcpy(blk + (kp * NB + n) * 2, s + n * K + kp * 2, 4);
        return;
    }
    for (int64_t n = 0; n < NB; n++)
        for (int64_t k = 0; k < KB; k++)
            blk[(k / V) * NB * V + n * V + k % V] = n0 + n < N && k0 + k < K ? src[(n0 + n) * K + k0 + k] : 0;
}

/* The brgemm kernels' layout "BA<X>a<NB>b<V>a": blocks of X*V x NB (K x N), N-blocks outermost,
 * and inside a block V consecutive k of one n side by side (the dot-product instructions take
 * pairs of bf16). oneDNN's jit reorder into it runs at ~1 GB/s here, which would make packing
 * the 0.6B model take seconds; this copy runs at memory speed. dst == w packs in place: with
 * no padding, N-block nb occupies exactly the bytes of w's rows nb*NB .. nb*NB+NB-1, so each
 * panel of NB rows is copied aside and rewritten where it was (no second copy of the matrix,
 * which for a 151936-row LM head would be 311 MB at the process's peak). 1 if md is that
 * layout and w was packed into dst, else 0 (then the reorder does it). */
static int pack_vnni(uint16_t *dst, const dnnl_memory_desc_t *md, const uint16_t *w, int N, int K)
{
    const dnnl_blocking_desc_t *bd = &md->format_desc.blocking;
    if (md->format_kind != dnnl_blocked || md->ndims != 2 || md->offset0 != 0 || bd->inner_nblks != 3 ||
        bd->inner_idxs[0] != 0 || bd->inner_idxs[1] != 1 || bd->inner_idxs[2] != 0)
        return 0;
    /* blocks multiply: "16a64b2a" is a block of 32 k (16 pairs) by 64 n */
    const int64_t V = bd->inner_blks[2], KB = bd->inner_blks[0] * V, NB = bd->inner_blks[1];
    const int64_t Kp = md->padded_dims[0], Np = md->padded_dims[1];
    if (Kp % KB || Np % NB || bd->strides[0] != KB * NB || bd->strides[1] != Kp * NB ||
        dnnl_memory_desc_get_size(md) != (size_t)(Kp * Np) * sizeof(uint16_t))
        return 0;
    if (dst == w) {
        if (Kp != K || Np != N) return 0;
#pragma omp parallel
        {
            uint16_t *panel = xmalloc((size_t)NB * K * sizeof *panel);
#pragma omp for schedule(static)
            for (int64_t nb = 0; nb < Np / NB; nb++) {
                memcpy(panel, w + nb * NB * K, (size_t)NB * K * sizeof *panel);
                for (int64_t kb = 0; kb < Kp / KB; kb++)
                    pack_block(dst + nb * bd->strides[1] + kb * bd->strides[0], panel, 0, kb * KB, KB, NB, V, NB, K);
            }
            free(panel);
        }
        return 1;
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t nb = 0; nb < Np / NB; nb++)
        for (int64_t kb = 0; kb < Kp / KB; kb++)
            pack_block(dst + nb * bd->strides[1] + kb * bd->strides[0], w, nb * NB, kb * KB, KB, NB, V, N, K);
    return 1;
}

/* The packed layout for K x N, from a cache: making the descriptor costs more than small copies. */
static dnnl_memory_desc_t packed_layout(bf16_gemm_t *g, int N, int K)
{
    pthread_mutex_lock(&g->lock);
    for (int i = 0; i < g->n_known; i++)
        if (g->known[i].N == N && g->known[i].K == K) {
            const dnnl_memory_desc_t md = g->known[i].md;
            pthread_mutex_unlock(&g->lock);
            return md;
        }
    pthread_mutex_unlock(&g->lock);
    dnnl_primitive_desc_t pd = make_pd(g, PACK_ROWS, K, N, 0, 0, dnnl_format_tag_any);
    const dnnl_memory_desc_t md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(pd);
    pthread_mutex_lock(&g->lock);
    if (g->n_known < 64) g->known[g->n_known++] = (layout_t){ N, K, md };
    pthread_mutex_unlock(&g->lock);
    return md;
}

bf16_weight_t *bf16_weight_pack_how(bf16_gemm_t *g, uint16_t *w, int N, int K, int in_place, int by_reorder)
{
    bf16_weight_t *bw = xcalloc(1, sizeof *bw);
    bw->N = N, bw->K = K;
    bw->md = packed_layout(g, N, K);
    bw->bytes = dnnl_memory_desc_get_size(&bw->md);
    /* in place only where the packed layout has no padding */
    bw->owned = !in_place || bw->bytes != (size_t)N * K * sizeof(uint16_t);
    if (bw->owned && posix_memalign(&bw->data, (size_t)2 << 20, bw->bytes) != 0) {
        qasr_fail("out of host memory packing a %d x %d bf16 weight (%zu bytes)", N, K, bw->bytes);
        free(bw);
        return NULL;
    }
    pthread_mutex_lock(&g->lock); /* the stream and the packing buffer */
    if (by_reorder || !pack_vnni(bw->owned ? bw->data : w, &bw->md, w, N, K)) {
        /* oneDNN's reorder cannot work in place: it goes through a reused buffer then, so no
         * fresh pages are faulted in for each matrix, which costs as much as the packing */
        if (!bw->owned && bw->bytes > g->pack_cap) {
            free(g->pack_buf);
            g->pack_cap = bw->bytes;
            g->pack_buf = xmalloc(g->pack_cap);
        }
        pack_by_reorder(g, bw->owned ? bw->data : g->pack_buf, &bw->md, w, N, K);
        if (!bw->owned) memcpy(w, g->pack_buf, bw->bytes);
        if (g->pack_cap > ((size_t)64 << 20)) { /* an LM head: do not keep its size around */
            free(g->pack_buf);
            g->pack_buf = NULL;
            g->pack_cap = 0;
        }
    }
    if (!bw->owned) bw->data = w;
    pthread_mutex_unlock(&g->lock);
    return bw;
}

bf16_weight_t *bf16_weight_pack(bf16_gemm_t *g, uint16_t *w, int N, int K, int in_place)
{
    return bf16_weight_pack_how(g, w, N, K, in_place, 0);
}

bf16_weight_t *bf16_weight_plain(uint16_t *w, int N, int K)
{
    bf16_weight_t *bw = xcalloc(1, sizeof *bw);
    *bw = (bf16_weight_t){ .N = N, .K = K, .data = w, .bytes = (size_t)N * K * sizeof(uint16_t), .plain = 1 };
    md_2d(&bw->md, K, N, dnnl_bf16, dnnl_ba); /* PyTorch's [N][K]: the matmul's [K][N], K stride 1 */
    return bw;
}

const void *bf16_weight_data(const bf16_weight_t *w) { return w->data; }

void bf16_weight_free(bf16_weight_t *w)
{
    if (!w) return;
    if (w->owned) free(w->data);
    free(w);
}

size_t bf16_weight_bytes(const bf16_weight_t *w) { return w->bytes; }

static void prim_destroy(prim_t *p)
{
    dnnl_primitive_destroy(p->prim);
    dnnl_memory_destroy(p->src);
    dnnl_memory_destroy(p->wei);
    dnnl_memory_destroy(p->dst);
    if (p->b) dnnl_memory_destroy(p->b);
}

/* The primitive for one shape, made on first use; with g->lock held. */
static prim_t *prim_get(bf16_gemm_t *g, int m, int K, int N, const bf16_weight_t *w, int bias, int accumulate)
{
    for (int i = 0; i < g->n_prims; i++) {
        prim_t *p = &g->prims[i];
        if (p->m == m && p->K == K && p->N == N && p->bias == bias && p->accumulate == accumulate &&
            p->plain == w->plain)
            return p;
    }
    if (g->n_prims == MAX_PRIMS) { /* shapes this varied are not expected: start over */
        for (int i = 0; i < g->n_prims; i++) prim_destroy(&g->prims[i]);
        g->n_prims = 0;
    }
    dnnl_primitive_desc_t pd = make_pd(g, m, K, N, bias, accumulate, w->plain ? dnnl_ba : dnnl_format_tag_any);
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    /* The packed layout (queried at PACK_ROWS rows) is what this M must read too: a oneDNN that
     * asks for another is one this code does not know (an internal error, not a user's). */
    if (!dnnl_memory_desc_equal(wmd, &w->md)) {
        fprintf(stderr, "%s: oneDNN asks for another bf16 weight layout at M = %d (K = %d, N = %d) than at M = %d: "
                "run with --precision fp32 and report this\n", qasr_program_name(), m, K, N, PACK_ROWS);
        QASR_ASSERT(!"one packed bf16 layout for every row count");
    }
    prim_t *p = &g->prims[g->n_prims++];
    *p = (prim_t){ .m = m, .K = K, .N = N, .bias = bias, .accumulate = accumulate, .plain = w->plain };
    DNNL_OK(dnnl_primitive_create(&p->prim, pd));
    const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    DNNL_OK(dnnl_memory_create(&p->src, src, g->eng, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&p->wei, wmd, g->eng, DNNL_MEMORY_NONE));
    DNNL_OK(dnnl_memory_create(&p->dst, dst, g->eng, DNNL_MEMORY_NONE));
    if (bias) {
        const dnnl_memory_desc_t *b = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1);
        DNNL_OK(dnnl_memory_create(&p->b, b, g->eng, DNNL_MEMORY_NONE));
    }
    dnnl_primitive_desc_destroy(pd);
    return p;
}

static void run_rows(bf16_gemm_t *g, float *out, const uint16_t *x, int K, int N, const bf16_weight_t *w,
                     const float *bias, int m, int accumulate)
{
    prim_t *p = prim_get(g, m, K, N, w, bias != NULL, accumulate);
    DNNL_OK(dnnl_memory_set_data_handle(p->src, (void *)x));
    DNNL_OK(dnnl_memory_set_data_handle(p->wei, w->data));
    DNNL_OK(dnnl_memory_set_data_handle(p->dst, out));
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, p->src }, { DNNL_ARG_WEIGHTS, p->wei }, { DNNL_ARG_DST, p->dst } };
    int n = 3;
    if (bias) {
        DNNL_OK(dnnl_memory_set_data_handle(p->b, (void *)bias));
        args[n++] = (dnnl_exec_arg_t){ DNNL_ARG_BIAS, p->b };
    }
    DNNL_OK(dnnl_primitive_execute(p->prim, g->stream, n, args));
}

void gemm_bf16_xwt(bf16_gemm_t *g, float *out, const float *x, const bf16_weight_t *w, const float *bias, int M,
                   int accumulate)
{
    if (M <= 0) return;
    const int K = w->K, N = w->N;
    pthread_mutex_lock(&g->lock);
    const size_t n = (size_t)M * K;
    if (n > g->xcap) {
        free(g->xbuf);
        g->xcap = n;
        g->xbuf = xmalloc(n * sizeof *g->xbuf);
    }
    uint16_t *xb = g->xbuf;
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) xb[i] = f32_to_bf16(x[i]);
    for (int r = 0; r < M;) {
        const int left = M - r, m = left >= PIECE ? PIECE : left >= 64 ? left / 64 * 64 : left;
        run_rows(g, out + (size_t)r * N, xb + (size_t)r * K, K, N, w, bias, m, accumulate);
        r += m;
    }
    DNNL_OK(dnnl_stream_wait(g->stream));
    pthread_mutex_unlock(&g->lock);
}

int bf16_gemm_primitives(bf16_gemm_t *g)
{
    pthread_mutex_lock(&g->lock);
    const int n = g->n_prims;
    pthread_mutex_unlock(&g->lock);
    return n;
}

void bf16_gemm_free(bf16_gemm_t *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_prims; i++) prim_destroy(&g->prims[i]);
    free(g->prims);
    free(g->xbuf);
    free(g->pack_buf);
    dnnl_stream_destroy(g->stream);
    dnnl_engine_destroy(g->eng);
    pthread_mutex_destroy(&g->lock);
    free(g);
}
