/* CPU backend: fp32 activations; weight matrices in fp32 or the checkpoint's bf16 widened
 * inside oneDNN sgemm (--precision fp32), or packed bf16 into oneDNN's bf16 matmul (--precision
 * bf16, cpu_gemm_bf16.c, which also runs the conv stem's GEMMs and keeps the KV cache in bf16);
 * sgemm for attention, OpenMP for the rest. This is
 * the reference implementation of every backend op (the CUDA kernels are tested against it)
 * and the path users without a GPU run.
 * Why oneDNN and not OpenBLAS: Debian 12's OpenBLAS 0.3.21 does not recognise Sapphire Rapids
 * and later Xeons and falls back to its Prescott (SSE3) kernels: 27-37 GFLOP/s against
 * 140-200 for oneDNN on 2 cores of this machine. oneDNN picks its kernels from the CPU's feature
 * flags. It runs on OpenMP, so its threads and ours are one pool, and an sgemm issued inside
 * an OpenMP region runs single-threaded instead of oversubscribing. */
#include <malloc.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "cpu_attention.h"
#include "cpu_conv_dnnl.h"
#include "cpu_gemm.h"
#include "cpu_gemm_bf16.h"
#include "cpu_math.h"
#include "mel.h"
#include "util.h"

struct backend {
    int threads;
    int bf16; /* matrices go through the bf16 matmul */
    char desc[96];
    mel_t *mel;
    /* Scratch stack: one base block; when a pass needs more, further allocations go to
     * separate blocks, and the base is grown to the peak at the next full release. */
    char *base;
    size_t cap, used, peak;
    struct { void *p; size_t bytes; } *ovf;
    int n_ovf, cap_ovf;
    /* Weights are owned by the backend and freed with it. A hash on the address tells the
     * ops which matrices are stored as bf16 (see WEIGHT_MATRIX) and, on the bf16 path, where
     * their packed copy is. */
    struct weight {
        void *p;
        int bf16;
        int table;              /* read by embed too: packed into a copy, not in place */
        size_t n;               /* elements */
        int mapped;             /* p is the checkpoint's mapping (weight_map): not ours to free */
        bf16_weight_t *packed;  /* made at load (matrix_ready), in p itself unless a table */
    } *weights;
    size_t n_weights, cap_weights; /* open addressing, cap a power of two */
};

#define ALIGN 64

/* Large blocks are 2 MB aligned and their whole 2 MB pages marked for transparent huge pages:
 * loading the 0.6B model otherwise spends much of its time in 4 KB page faults, and huge pages
 * also spare the TLB when every decode step streams all the weights. The tail stays in small
 * pages: a huge page there would make a 6.1 MB encoder matrix cost 8 MB (90 MB over 0.6B). */
static void *aligned_or_die(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    const size_t align = bytes >= 2 * huge ? huge : ALIGN;
    void *p = NULL;
    bytes = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    if (posix_memalign(&p, align, bytes ? bytes : align) != 0)
        qasr_die(3, "out of host memory (allocating %zu bytes)", bytes);
    if (align == huge) madvise(p, bytes / huge * huge, MADV_HUGEPAGE);
    return p;
}

/* ---------------- memory ---------------- */

static void cpu_destroy(backend_t *be)
{
    for (int i = 0; i < be->n_ovf; i++) free(be->ovf[i].p);
    free(be->ovf);
    free(be->base);
    for (size_t i = 0; i < be->cap_weights; i++) {
        if (be->weights[i].p && !be->weights[i].bf16) conv3x3s2_bf16_forget(be->weights[i].p);
        if (!be->weights[i].mapped) free(be->weights[i].p);
        bf16_weight_free(be->weights[i].packed);
    }
    free(be->weights);
    mel_free(be->mel);
    free(be);
}

static size_t weight_slot(const backend_t *be, const void *p)
{
    size_t h = ((uintptr_t)p >> 6) * 0x9E3779B97F4A7C15ull, mask = be->cap_weights - 1;
    for (h &= mask; be->weights[h].p && be->weights[h].p != p; h = (h + 1) & mask) {}
    return h;
}

static void weight_insert(backend_t *be, struct weight w)
{
    if (2 * (be->n_weights + 1) > be->cap_weights) { /* grow and rehash */
        struct weight *old = be->weights;
        size_t old_cap = be->cap_weights;
        be->cap_weights = old_cap ? 2 * old_cap : 1024;
        be->weights = xcalloc(be->cap_weights, sizeof *be->weights);
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].p) be->weights[weight_slot(be, old[i].p)] = old[i];
        free(old);
    }
    be->weights[weight_slot(be, w.p)] = w;
    be->n_weights++;
}

static struct weight *weight_of(const backend_t *be, const void *p)
{
    struct weight *w = &be->weights[weight_slot(be, p)];
    QASR_ASSERT(w->p == p); /* only allocation base pointers are passed as weights */
    return w;
}

/* 1 if p is a weight stored as bf16, 0 if fp32. */
static int weight_is_bf16(const backend_t *be, const void *p) { return weight_of(be, p)->bf16; }

static void *cpu_weight_alloc(backend_t *be, size_t n, weight_kind_t kind, dtype_t src)
{
    /* the bf16 path keeps every matrix in bf16, the fp32 path those the checkpoint has in bf16 */
    const int bf16 = kind != WEIGHT_PARAM && (be->bf16 || src == DTYPE_BF16);
    struct weight w = { .bf16 = bf16, .table = kind == WEIGHT_TABLE, .n = n };
    w.p = aligned_or_die(n * (bf16 ? sizeof(uint16_t) : sizeof(float)));
    weight_insert(be, w);
    return w.p;
}

/* A table read in place from the checkpoint's mapping, when it is stored as this path would
 * store it (bf16 on the bf16 path, the checkpoint's bf16 or fp32 on the fp32 path). */
static void *cpu_weight_map(backend_t *be, const void *src, size_t n, weight_kind_t kind, dtype_t dt)
{
    const int bf16 = be->bf16 || dt == DTYPE_BF16;
    if (kind != WEIGHT_TABLE || dt != (bf16 ? DTYPE_BF16 : DTYPE_F32) || (uintptr_t)src % dtype_size(dt))
        return NULL;
    struct weight w = { .p = (void *)src, .bf16 = bf16, .table = 1, .mapped = 1, .n = n };
    weight_insert(be, w);
    return w.p;
}

static void cpu_weight_upload(backend_t *be, void *dst, size_t off, const void *src, dtype_t dt,
                              size_t n)
{
    if (weight_is_bf16(be, dst)) {
        uint16_t *d = (uint16_t *)dst + off;
        const uint16_t *s = src;
        if (dt == DTYPE_BF16)
            memcpy(d, src, n * sizeof(uint16_t));
        else if (dt == DTYPE_F32) /* the bf16 path on an fp32 checkpoint: rounded once here */
            for (size_t i = 0; i < n; i++) d[i] = f32_to_bf16(((const float *)src)[i]);
        else if (dt == DTYPE_F16)
            for (size_t i = 0; i < n; i++) d[i] = f32_to_bf16(f16_to_f32(s[i]));
        else
            QASR_ASSERT(!"weight dtype must be F32, BF16 or F16");
        return;
    }
    float *d = (float *)dst + off;
    switch (dt) {
    case DTYPE_F32:
        memcpy(d, src, n * sizeof(float));
        break;
    case DTYPE_BF16:
        widen_bf16(d, src, n);
        break;
    case DTYPE_F16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) d[i] = f16_to_f32(s[i]);
        break;
    }
    default:
        QASR_ASSERT(!"weight dtype must be F32, BF16 or F16");
    }
}

static void *cpu_buf_alloc(backend_t *be, size_t n) { return aligned_or_die(n * sizeof(float)); }
static void cpu_buf_free(backend_t *be, void *p) { free(p); }

static size_t scratch_top(const backend_t *be)
{
    size_t top = be->used;
    for (int i = 0; i < be->n_ovf; i++) top += be->ovf[i].bytes;
    return top;
}

static void *cpu_scratch(backend_t *be, size_t n)
{
    size_t bytes = (n * sizeof(float) + ALIGN - 1) / ALIGN * ALIGN;
    if (bytes == 0) bytes = ALIGN;
    void *p;
    if (be->n_ovf == 0 && be->used + bytes <= be->cap) {
        p = be->base + be->used;
        be->used += bytes;
    } else {
        if (be->n_ovf == be->cap_ovf) {
            be->cap_ovf = be->cap_ovf ? 2 * be->cap_ovf : 16;
            be->ovf = xrealloc(be->ovf, be->cap_ovf * sizeof *be->ovf);
        }
        p = be->ovf[be->n_ovf].p = aligned_or_die(bytes);
        be->ovf[be->n_ovf++].bytes = bytes;
    }
    be->peak = MAX(be->peak, scratch_top(be));
    return p;
}

static int *cpu_ints(backend_t *be, const int *src, size_t n)
{
    int *p = cpu_scratch(be, n); /* sizeof(int) == sizeof(float) */
    memcpy(p, src, n * sizeof(int));
    return p;
}

static size_t cpu_scratch_mark(backend_t *be) { return scratch_top(be); }

static void cpu_scratch_release(backend_t *be, size_t mark)
{
    size_t top = scratch_top(be);
    while (be->n_ovf > 0 && top - be->ovf[be->n_ovf - 1].bytes >= mark) {
        top -= be->ovf[be->n_ovf - 1].bytes;
        free(be->ovf[--be->n_ovf].p);
    }
    if (be->n_ovf == 0 && mark < be->used) be->used = mark;
    if (mark == 0 && be->peak > be->cap) {
        free(be->base);
        be->cap = be->peak;
        be->base = aligned_or_die(be->cap);
    }
}

static void cpu_download(backend_t *be, float *dst, const void *src, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

static void cpu_copy(backend_t *be, void *dst, const void *src, size_t n)
{
    memmove(dst, src, n * sizeof(float));
}

/* The bf16 path keeps keys and values in bf16 too: decode steps read the whole cache. */
static size_t cpu_kv_elem_bytes(backend_t *be) { return be->bf16 ? sizeof(uint16_t) : sizeof(float); }

static void *cpu_kv_alloc(backend_t *be, const kv_geom_t *g)
{
    size_t n = (size_t)g->n_layers * g->n_pages * 2 * g->n_kv_heads * g->page_size * g->head_dim;
    cpu_kv_t *kv = xcalloc(1, sizeof *kv);
    kv->g = *g;
    kv->bf16 = be->bf16;
    const size_t bytes = n * cpu_kv_elem_bytes(be);
    if (posix_memalign(&kv->data, ALIGN, bytes) != 0) {
        free(kv);
        qasr_fail("cannot allocate %.2f GB for the KV cache (%d pages of %d tokens)",
                  bytes / 1e9, g->n_pages, g->page_size);
        return NULL;
    }
    return kv;
}

static size_t cpu_mem_available(backend_t *be)
{
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? (size_t)pages * (size_t)page : (size_t)8 << 30;
}

static void cpu_kv_free(backend_t *be, void *p)
{
    cpu_kv_t *kv = p;
    if (kv) free(kv->data);
    free(kv);
}

/* ---------------- audio front end ---------------- */

static void cpu_log_mel(backend_t *be, void *out, const float *samples, int64_t n, int n_mels)
{
    QASR_ASSERT(mel_n_mels(be->mel) == n_mels);
    int64_t T = mel_frames(n);
    float *tmp = xmalloc((size_t)T * n_mels * sizeof(float));
    int rc = mel_compute(be->mel, samples, n, tmp);
    QASR_ASSERT(rc == 0); /* callers reject audio shorter than the minimum first */
    float *o = out;
    for (int m = 0; m < n_mels; m++)
        for (int64_t t = 0; t < T; t++) o[t * n_mels + m] = tmp[(size_t)m * T + t];
    free(tmp);
}

static void cpu_mel_chunks(backend_t *be, void *out, const void *mel, const int *start,
                           const int *len, int N, int n_mels, int W)
{
    float *o = out;
    const float *x = mel;
#pragma omp parallel for
    for (int c = 0; c < N; c++) {
        float *oc = o + (size_t)c * n_mels * W;
        for (int m = 0; m < n_mels; m++)
            for (int w = 0; w < W; w++)
                oc[m * W + w] = w < len[c] ? x[(size_t)(start[c] + w) * n_mels + m] : 0.0f;
    }
}

/* im2col of all N chunks side by side, [Cin*9][N][Ho*Wo], so that one GEMM over N*P columns
 * writes the [Cout][N][Ho][Wo] layout directly: a few parallel regions per layer, not per chunk
 * (each region costs a barrier, and a barrier costs a time slice on a busy machine). Each output
 * row is a stride-2 read of one input row between zero edges, with the bounds found once per
 * row so that the copy vectorises. */
static void im2col_s2(float *col, const float *x, int Cin, int N, int Hin, int Win)
{
    const int Ho = (Hin - 1) / 2 + 1, Wo = (Win - 1) / 2 + 1, P = Ho * Wo;
    const size_t NP = (size_t)N * P;
#pragma omp parallel for collapse(2)
    for (int k = 0; k < Cin * 9; k++)
        for (int n = 0; n < N; n++) {
            const int c = k / 9, dy = k % 9 / 3, dx = k % 3;
            /* ox is inside the input for lo <= ox < hi: 0 <= 2 ox + dx - 1 < Win */
            const int lo = dx == 0, hi = MIN(Wo, (Win - dx + 2) / 2);
            const float *xc = x + ((size_t)c * N + n) * Hin * Win;
            for (int oy = 0; oy < Ho; oy++) {
                const int iy = 2 * oy + dy - 1, inside = iy >= 0 && iy < Hin;
                const float *src = xc + (size_t)(inside ? iy : 0) * Win;
                float *d = col + (size_t)k * NP + (size_t)n * P + (size_t)oy * Wo;
                for (int ox = 0; ox < Wo; ox++) d[ox] = 0.0f;
                if (inside)
                    for (int ox = lo; ox < hi; ox++) d[ox] = src[2 * ox + dx - 1];
            }
        }
}

static void cpu_conv3x3s2_gelu(backend_t *be, void *out, const void *in, const void *w,
                               const void *bias, int Cin, int Cout, int N, int Hin, int Win)
{
    const int Ho = (Hin - 1) / 2 + 1, Wo = (Win - 1) / 2 + 1, K = Cin * 9;
    const size_t NP = (size_t)N * Ho * Wo;
    const float *b = bias;
    float *o = out;
    const size_t mark = cpu_scratch_mark(be);
    /* bf16 path: the layers after the first on oneDNN (the first, one input channel, is 1/50 of
     * the FLOPs, and im2col + sgemm does it in half the time oneDNN's fp32 kernel takes) */
    if (be->bf16 && Cin > 1) {
        const size_t work = conv3x3s2_bf16_work_bytes(w, Cin, Cout, N, Hin, Win);
        conv3x3s2_gelu_bf16(o, in, w, b, Cin, Cout, N, Hin, Win, cpu_scratch(be, (work + 3) / 4));
        cpu_scratch_release(be, mark);
        return;
    }
    float *col = cpu_scratch(be, (size_t)K * NP);
    im2col_s2(col, in, Cin, N, Hin, Win);
    sgemm('N', 'N', Cout, (int)NP, K, 1.0f, w, K, col, (int)NP, 0.0f, o, (int)NP);
#pragma omp parallel for
    for (int co = 0; co < Cout; co++) {
        float *r = o + (size_t)co * NP;
        for (size_t i = 0; i < NP; i++) r[i] = qgelu(r[i] + b[co]);
    }
    cpu_scratch_release(be, mark);
}

static void cpu_conv_flatten(backend_t *be, void *out, const void *in, int C, int N, int F, int W)
{
    const float *x = in;
    float *o = out;
#pragma omp parallel for
    for (int r = 0; r < N * W; r++) {
        const int n = r / W, w = r % W;
        float *orow = o + (size_t)r * C * F;
        for (int c = 0; c < C; c++)
            for (int f = 0; f < F; f++) orow[c * F + f] = x[(((size_t)c * N + n) * F + f) * W + w];
    }
}

static void cpu_add_pos_emb(backend_t *be, void *xv, const void *pev, int rows, int period, int D)
{
    float *x = xv;
    const float *pe = pev;
#pragma omp parallel for if (rows > 64)
    for (int r = 0; r < rows; r++) {
        const float *p = pe + (size_t)(r % period) * D;
        for (int d = 0; d < D; d++) x[(size_t)r * D + d] += p[d];
    }
}

/* ---------------- dense ---------------- */

/* A bf16-path matrix [N][K] packed for oneDNN, at load (matrix_ready) or else at its first
 * product: in place, so no second copy is kept, except for a table, whose rows embed still reads. */
static const bf16_weight_t *weight_packed(backend_t *be, const void *p, int N, int K)
{
    struct weight *w = weight_of(be, p);
    if (!w->packed) {
        QASR_ASSERT(w->bf16 && (size_t)N * K == w->n);
        w->packed = bf16_weight_pack(w->p, N, K, !w->table);
        if (w->mapped) st_release_bytes(w->p, w->n * sizeof(uint16_t)); /* a tied head, copied */
    }
    return w->packed;
}

static void cpu_matrix_ready(backend_t *be, const void *w, int N, int K)
{
    if (be->bf16) weight_packed(be, w, N, K);
}

static void cpu_matmul(backend_t *be, void *out, const void *x, const void *w, const void *bias,
                       int M, int K, int N, int accumulate)
{
    if (be->bf16)
        gemm_bf16_xwt(out, x, weight_packed(be, w, N, K), bias, M, accumulate);
    else
        gemm_xwt(out, x, w, weight_is_bf16(be, w), bias, M, K, N, accumulate);
}

static void cpu_layernorm(backend_t *be, void *out, const void *xv, const void *wv, const void *bv,
                          int rows, int D, float eps)
{
    const float *x = xv, *w = wv, *b = bv;
    float *o = out;
#pragma omp parallel for if (rows > 8)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * D;
        float *orow = o + (size_t)r * D;
        float sum = 0.0f, var = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int d = 0; d < D; d++) sum += xr[d];
        const float mean = sum / D;
#pragma omp simd reduction(+ : var)
        for (int d = 0; d < D; d++) var += (xr[d] - mean) * (xr[d] - mean);
        const float inv = 1.0f / sqrtf(var / D + eps);
        for (int d = 0; d < D; d++) orow[d] = (xr[d] - mean) * inv * w[d] + b[d];
    }
}

static inline void rmsnorm_row(float *o, const float *x, const float *w, int D, float eps)
{
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int d = 0; d < D; d++) ss += x[d] * x[d];
    const float inv = 1.0f / sqrtf(ss / D + eps);
    for (int d = 0; d < D; d++) o[d] = w[d] * (x[d] * inv);
}

static void cpu_rmsnorm(backend_t *be, void *out, const void *x, const void *w, int rows, int D,
                        float eps)
{
#pragma omp parallel for if (rows > 8)
    for (int r = 0; r < rows; r++)
        rmsnorm_row((float *)out + (size_t)r * D, (const float *)x + (size_t)r * D, w, D, eps);
}

static void cpu_gelu(backend_t *be, void *xv, size_t n)
{
    float *x = xv;
#pragma omp parallel for if (n > 16384)
    for (size_t i = 0; i < n; i++) x[i] = qgelu(x[i]);
}

static void cpu_swiglu(backend_t *be, void *out, const void *guv, int rows, int Dff)
{
    const float *gu = guv;
    float *o = out;
#pragma omp parallel for if (rows > 4)
    for (int r = 0; r < rows; r++) {
        const float *g = gu + (size_t)r * 2 * Dff, *u = g + Dff;
        float *orow = o + (size_t)r * Dff;
        for (int i = 0; i < Dff; i++) orow[i] = qsilu(g[i]) * u[i];
    }
}

static void cpu_embed(backend_t *be, void *out, const void *table, const int *ids, int n, int D)
{
    const struct weight *w = weight_of(be, table);
    QASR_ASSERT(!w->packed || w->table); /* a matrix packed in place has no rows any more */
    const int bf16 = w->bf16;
    for (int i = 0; i < n; i++) {
        float *o = (float *)out + (size_t)i * D;
        if (bf16)
            widen_bf16(o, (const uint16_t *)table + (size_t)ids[i] * D, D);
        else
            memcpy(o, (const float *)table + (size_t)ids[i] * D, D * sizeof(float));
    }
}

static void cpu_gather_rows(backend_t *be, void *out, const void *in, const int *idx, int n, int D)
{
    for (int i = 0; i < n; i++)
        memmove((float *)out + (size_t)i * D, (const float *)in + (size_t)idx[i] * D, D * sizeof(float));
}

/* ---------------- attention ---------------- */

/* ---------------- attention (cpu_attention.c) ---------------- */

static void cpu_qk_norm_rope(backend_t *be, void *qkvv, const void *qw, const void *kw,
                             const int *pos, int rows, int H, int Hkv, int Dh, float eps,
                             float theta)
{
    float *qkv = qkvv;
    const int half = Dh / 2, stride = (H + 2 * Hkv) * Dh;
#pragma omp parallel for if (rows > 4)
    for (int r = 0; r < rows; r++) {
        float cs[half], sn[half]; /* angles in float32 as the reference computes them */
        for (int i = 0; i < half; i++) {
            const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)Dh);
            const float a = (float)pos[r] * inv_freq;
            cs[i] = cosf(a);
            sn[i] = sinf(a);
        }
        float *row = qkv + (size_t)r * stride;
        for (int h = 0; h < H + Hkv; h++) {
            float *x = row + h * Dh;
            rmsnorm_row(x, x, h < H ? qw : kw, Dh, eps);
            for (int i = 0; i < half; i++) {
                const float x1 = x[i], x2 = x[i + half];
                x[i] = x1 * cs[i] - x2 * sn[i];
                x[i + half] = x2 * cs[i] + x1 * sn[i];
            }
        }
    }
}

static void cpu_window_attention(backend_t *be, void *out, const void *qkv, const int *win_start,
                                 const int *win_len, int n_win, int H, int Dh, float scale)
{
    cpu_attn_window(out, qkv, win_start, win_len, n_win, H, Dh, scale);
}

static void cpu_kv_store(backend_t *be, void *kv, int layer, const void *qkv, const int *slot, int rows,
                         int H, int Hkv, int Dh)
{
    cpu_attn_kv_store(kv, layer, qkv, slot, rows, H, Hkv, Dh);
}

static void cpu_paged_attention(backend_t *be, void *out, const void *q, const void *kv, int layer,
                                const paged_attn_t *p)
{
    cpu_attn_paged(out, q, kv, layer, p);
}

/* ---------------- output ---------------- */

static void cpu_argmax(backend_t *be, int *ids, const void *logits, int n, int V)
{
#pragma omp parallel for if (n > 1)
    for (int r = 0; r < n; r++) {
        const float *l = (const float *)logits + (size_t)r * V;
        int best = 0;
        for (int v = 1; v < V; v++) /* strict: the lowest id wins a tie; NaN never wins */
            if (l[v] > l[best] || (isnan(l[best]) && !isnan(l[v]))) best = v;
        ids[r] = best;
    }
}

static void cpu_sync(backend_t *be) {}

static const char *cpu_describe(backend_t *be)
{
    const char *isa;
    bf16_gemm_native(&isa);
    snprintf(be->desc, sizeof be->desc, "cpu, %d threads, %s matrix products%s%s%s", be->threads,
             be->bf16 ? "bf16" : "fp32", be->bf16 ? " (" : "", be->bf16 ? isa : "", be->bf16 ? ")" : "");
    return be->desc;
}

static const backend_ops_t cpu_ops = {
    .name = "cpu",
    .act_size = sizeof(float),
    .destroy = cpu_destroy,
    .weight_alloc = cpu_weight_alloc,
    .weight_map = cpu_weight_map,
    .weight_upload = cpu_weight_upload,
    .matrix_ready = cpu_matrix_ready,
    .buf_alloc = cpu_buf_alloc,
    .buf_free = cpu_buf_free,
    .scratch = cpu_scratch,
    .ints = cpu_ints,
    .scratch_mark = cpu_scratch_mark,
    .scratch_release = cpu_scratch_release,
    .download = cpu_download,
    .copy = cpu_copy,
    .kv_alloc = cpu_kv_alloc,
    .kv_free = cpu_kv_free,
    .kv_elem_bytes = cpu_kv_elem_bytes,
    .mem_available = cpu_mem_available,
    .log_mel = cpu_log_mel,
    .mel_chunks = cpu_mel_chunks,
    .conv3x3s2_gelu = cpu_conv3x3s2_gelu,
    .conv_flatten = cpu_conv_flatten,
    .add_pos_emb = cpu_add_pos_emb,
    .matmul = cpu_matmul,
    .layernorm = cpu_layernorm,
    .rmsnorm = cpu_rmsnorm,
    .gelu = cpu_gelu,
    .swiglu = cpu_swiglu,
    .embed = cpu_embed,
    .gather_rows = cpu_gather_rows,
    .window_attention = cpu_window_attention,
    .qk_norm_rope = cpu_qk_norm_rope,
    .kv_store = cpu_kv_store,
    .paged_attention = cpu_paged_attention,
    .argmax = cpu_argmax,
    .sync = cpu_sync,
    .describe = cpu_describe,
};

int backend_cpu_create(backend_ref_t *out, int threads, int n_mels, precision_t precision)
{
    backend_t *be = xcalloc(1, sizeof *be);
    be->bf16 = precision == PRECISION_BF16;
    be->threads = threads > 0 ? threads : omp_get_num_procs();
    omp_set_num_threads(be->threads);
    /* Blocks from 256 KB up get their own mapping, returned to the system when freed. glibc's
     * default threshold rises with every large block freed (to 32 MB), after which per-step
     * buffers pile up in the heap: ~60 MB more at the peak of a 32-clip batch. Hot loops keep
     * their blocks between calls instead (thread_scratch), so they pay no mapping per call. */
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
    be->mel = mel_init(n_mels);
    if (!be->mel) {
        free(be);
        return -1;
    }
    out->ops = &cpu_ops;
    out->be = be;
    return 0;
}
