/* CPU backend: fp32 activations; weight matrices in fp32 or the checkpoint's bf16 widened
 * inside oneDNN sgemm (--precision fp32), or packed bf16 into oneDNN's bf16 matmul (--precision
 * bf16: cpu_gemm_bf16.c; the conv stem's later layers on oneDNN's bf16 convolution,
 * cpu_conv_dnnl.c; the KV cache in bf16), or per matrix shape and row count whichever of the two
 * was measured faster on this machine (auto: cpu_plan.h); sgemm for attention, OpenMP for the
 * rest. Every oneDNN
 * object (primitives, packed weights, converted kernels) belongs to one instance and goes with
 * it. This is the reference implementation of every backend op (the CUDA kernels are tested
 * against it) and the path users without a GPU run.
 * Why oneDNN and not OpenBLAS: Debian 12's OpenBLAS 0.3.21 does not recognise Sapphire Rapids
 * and later Xeons and falls back to its Prescott (SSE3) kernels: 27-37 GFLOP/s against
 * 140-200 for oneDNN on 2 cores of this machine. oneDNN picks its kernels from the CPU's feature
 * flags. It runs on OpenMP, so its threads and ours are one pool, and an sgemm issued inside
 * an OpenMP region runs single-threaded instead of oversubscribing. */
#include "backend_cpu.h"

#include <malloc.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpus.h"
#include "cpu_attention.h"
#include "cpu_conv.h"
#include "cpu_conv_dnnl.h"
#include "cpu_gemm.h"
#include "cpu_gemm_bf16.h"
#include "cpu_math.h"
#include "cpu_plan.h"
#include "cpu_plan_cache.h"
#include "cpu_plan_measure.h"
#include "mel.h"
#include "stack_arena.h"
#include "util.h"

/* A weight: its elements and what the bf16 path makes of it, all freed with the backend. */
struct weight {
    void *p;               /* [n] fp32, or bf16 (matrices of the bf16 path, bf16 checkpoint matrices) */
    size_t n;
    int bf16;
    int table;             /* read by embed too: packed into a copy, not in place */
    int mapped;            /* p is the checkpoint's mapping (weight_map): not ours to free */
    bf16_weight_t *packed; /* bf16 path: packed for oneDNN at load (matrix_ready), in p itself unless a table */
    bf16_weight_t *plain;  /* a plan's bf16 products on p as it is (RUN_BF16_PLAIN), made at load */
    conv_bf16_t *conv;     /* bf16 path: a conv kernel's oneDNN convolutions, made at its first use */
    struct weight *next;   /* the backend's weights */
};

struct backend {
    char op_error[QASR_ERR_LEN]; /* an op that could not run since op_failed last asked, or "" */
    int threads;
    cpu_plan_t plan;          /* which products run in bf16 (cpu_plan.h) */
    char threads_desc[96];    /* "2 threads" and, when defaulted, where the count comes from */
    char desc[192];
    char plan_desc[4096];
    mel_t *mel;
    stack_arena_t scratch;
    bf16_gemm_t *gemm;       /* bf16 products: oneDNN's engine, stream, primitives */
    struct weight *weights;  /* every weight of this instance */
};

#define ALIGN 64

/* Large blocks are 2 MB aligned and their whole 2 MB pages marked for transparent huge pages:
 * loading the 0.6B model otherwise spends much of its time in 4 KB page faults, and huge pages
 * also spare the TLB when every decode step streams all the weights. The tail stays in small
 * pages: a huge page there would make a 6.1 MB encoder matrix cost 8 MB (90 MB over 0.6B).
 * NULL + qasr_fail() when the host has no memory for it. */
static void *host_block(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    const size_t align = bytes >= 2 * huge ? huge : ALIGN;
    void *p = NULL;
    bytes = (bytes + ALIGN - 1) / ALIGN * ALIGN;
    if (posix_memalign(&p, align, bytes ? bytes : align) != 0) {
        qasr_fail("out of host memory (allocating %zu bytes)", bytes);
        return NULL;
    }
    if (align == huge) madvise(p, bytes / huge * huge, MADV_HUGEPAGE);
    return p;
}

static void *arena_block(void *ctx, size_t bytes) { return host_block(bytes); }
static void arena_free(void *ctx, void *p) { free(p); }

/* ---------------- memory ---------------- */

static void cpu_destroy(backend_t *be)
{
    stack_arena_destroy(&be->scratch);
    for (struct weight *w = be->weights, *next; w; w = next) {
        next = w->next;
        if (!w->mapped) free(w->p);
        bf16_weight_free(w->packed);
        bf16_weight_free(w->plain);
        conv3x3s2_bf16_free(w->conv);
        free(w);
    }
    bf16_gemm_free(be->gemm);
    mel_free(be->mel);
    free(be);
}

static weight_t *weight_new(backend_t *be, struct weight w)
{
    weight_t *h = xmalloc(sizeof *h);
    *h = w;
    h->next = be->weights;
    be->weights = h;
    return h;
}

static weight_t *cpu_weight_alloc(backend_t *be, size_t n, weight_kind_t kind, dtype_t src)
{
    /* a plan with bf16 products keeps every matrix in bf16, the fp32 path those the checkpoint
     * has in bf16 */
    const int bf16 = kind != WEIGHT_PARAM && (be->plan.any_bf16 || src == DTYPE_BF16);
    void *p = host_block(n * (bf16 ? sizeof(uint16_t) : sizeof(float)));
    if (!p) return NULL;
    return weight_new(be, (struct weight){ .p = p, .n = n, .bf16 = bf16, .table = kind == WEIGHT_TABLE });
}

/* A table read in place from the checkpoint's mapping, when it is stored as this path would
 * store it (bf16 on the bf16 path, the checkpoint's bf16 or fp32 on the fp32 path). */
static weight_t *cpu_weight_map(backend_t *be, const void *src, size_t n, weight_kind_t kind, dtype_t dt)
{
    const int bf16 = be->plan.any_bf16 || dt == DTYPE_BF16;
    if (kind != WEIGHT_TABLE || dt != (bf16 ? DTYPE_BF16 : DTYPE_F32) || (uintptr_t)src % dtype_size(dt))
        return NULL;
    return weight_new(be, (struct weight){ .p = (void *)src, .n = n, .bf16 = bf16, .table = 1, .mapped = 1 });
}

static void cpu_weight_upload(backend_t *be, weight_t *w, size_t off, const void *src, dtype_t dt, size_t n)
{
    QASR_ASSERT(off + n <= w->n);
    if (w->bf16) {
        uint16_t *d = (uint16_t *)w->p + off;
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
    float *d = (float *)w->p + off;
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

/* Activations and weights other than bf16 matrices are fp32: their elements, as floats. */
static const float *fp32_of(const weight_t *w)
{
    QASR_ASSERT(!w->bf16);
    return w->p;
}

static void *cpu_buf_alloc(backend_t *be, size_t n) { return host_block(n * sizeof(float)); }
static void cpu_buf_free(backend_t *be, void *p) { free(p); }

static void *cpu_scratch(backend_t *be, size_t n) { return stack_arena_alloc(&be->scratch, n * sizeof(float)); }

static int *cpu_ints(backend_t *be, const int *src, size_t n)
{
    int *p = cpu_scratch(be, n); /* sizeof(int) == sizeof(float) */
    if (p) memcpy(p, src, n * sizeof(int));
    return p;
}

static size_t cpu_scratch_mark(backend_t *be) { return stack_arena_mark(&be->scratch); }

static void cpu_scratch_release(backend_t *be, size_t mark)
{
    /* a base block that cannot be regrown leaves the arena spilling: slower, not wrong */
    if (stack_arena_release(&be->scratch, mark) != 0) qasr_warn("%s", qasr_last_error());
}

static void cpu_download(backend_t *be, float *dst, const void *src, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

static void cpu_copy(backend_t *be, void *dst, const void *src, size_t n)
{
    memmove(dst, src, n * sizeof(float));
}

/* A bf16 decoder keeps keys and values in bf16 too: decode steps read the whole cache. */
static size_t cpu_kv_elem_bytes(backend_t *be) { return be->plan.kv_bf16 ? sizeof(uint16_t) : sizeof(float); }

static kv_cache_t *cpu_kv_alloc(backend_t *be, const kv_geom_t *g)
{
    size_t n = (size_t)g->n_layers * g->n_pages * 2 * g->n_kv_heads * g->page_size * g->head_dim;
    kv_cache_t *kv = xcalloc(1, sizeof *kv);
    kv->g = *g;
    kv->bf16 = be->plan.kv_bf16;
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

static void cpu_kv_free(backend_t *be, kv_cache_t *kv)
{
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

static void cpu_log_mel_batch(backend_t *be, void *const *outs, const float *const *samples,
                              const int64_t *n_samples, int n, int n_mels)
{
    for (int i = 0; i < n; i++) cpu_log_mel(be, outs[i], samples[i], n_samples[i], n_mels);
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

/* Work space of an op from the scratch stack; NULL (the op does nothing, op_failed says why)
 * when there is no memory for it. */
static void *op_scratch(backend_t *be, size_t n, const char *op)
{
    void *p = cpu_scratch(be, n);
    if (!p && !be->op_error[0]) snprintf(be->op_error, sizeof be->op_error, "%s: %s", op, qasr_last_error());
    return p;
}

static int cpu_op_failed(backend_t *be)
{
    if (!be->op_error[0]) return 0;
    qasr_fail("%s", be->op_error);
    be->op_error[0] = '\0';
    return -1;
}

static void cpu_conv3x3s2_gelu(backend_t *be, void *out, const void *in, const weight_t *w,
                               const weight_t *bias, int Cin, int Cout, int N, int Hin, int Win)
{
    const float *b = fp32_of(bias), *k = fp32_of(w);
    float *o = out;
    const size_t mark = cpu_scratch_mark(be);
    /* bf16: the layers after the first on oneDNN (the first, one input channel, is 1/50 of the
     * FLOPs, and im2col + sgemm does it in half the time oneDNN's fp32 kernel takes) */
    if (be->plan.conv_bf16 && Cin > 1) {
        weight_t *kw = (weight_t *)w; /* its convolutions are made at first use, kept with it */
        if (!kw->conv) kw->conv = conv3x3s2_bf16_new(k);
        const size_t work = conv3x3s2_bf16_work_bytes(kw->conv, Cin, Cout, N, Hin, Win);
        void *ws = op_scratch(be, (work + 3) / 4, "conv stem");
        if (ws) conv3x3s2_gelu_bf16(kw->conv, o, in, b, Cin, Cout, N, Hin, Win, ws);
        cpu_scratch_release(be, mark);
        return;
    }
    float *col = op_scratch(be, conv3x3s2_fp32_work(Cin, N, Hin, Win), "conv stem");
    if (!col) return;
    conv3x3s2_gelu_fp32(o, in, k, b, Cin, Cout, N, Hin, Win, col);
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

static void cpu_add_pos_emb(backend_t *be, void *xv, const weight_t *pew, int rows, int period, int D)
{
    float *x = xv;
    const float *pe = fp32_of(pew);
#pragma omp parallel for if (rows > 64)
    for (int r = 0; r < rows; r++) {
        const float *p = pe + (size_t)(r % period) * D;
        for (int d = 0; d < D; d++) x[(size_t)r * D + d] += p[d];
    }
}

/* ---------------- dense ---------------- */

/* A bf16-path matrix [N][K] packed for oneDNN, at load (matrix_ready): in place, so no second
 * copy is kept, except for a table, whose rows embed still reads. 0, or -1 + qasr_fail(). */
static int pack_matrix(backend_t *be, weight_t *w, int N, int K)
{
    if (w->packed) return 0;
    QASR_ASSERT(w->bf16 && (size_t)N * K == w->n);
    if (!(w->packed = bf16_weight_pack(be->gemm, w->p, N, K, !w->table))) return -1;
    if (w->mapped) st_release_bytes(w->p, w->n * sizeof(uint16_t)); /* a tied head, copied */
    return 0;
}

/* How the plan runs a product of w [N][K] over M rows (RUN_*). Only bf16 matrices have bf16
 * products; a shape the plan does not know runs as its other shapes default. */
static int run_of(const backend_t *be, const weight_t *w, int M, int N, int K)
{
    if (w->packed) return RUN_BF16_PACKED;
    if (!w->bf16) return RUN_FP32;
    const plan_matrix_t *m = plan_find(&be->plan, N, K);
    if (!m) return be->plan.other_bf16 ? RUN_BF16_PACKED : RUN_FP32;
    return m->run[plan_row_class(M)];
}

static int cpu_matrix_ready(backend_t *be, weight_t *w, int N, int K)
{
    if (!w->bf16) return 0;
    const plan_matrix_t *m = plan_find(&be->plan, N, K);
    if (m ? m->pack : be->plan.other_bf16) return pack_matrix(be, w, N, K);
    for (int c = 0; m && c < N_ROW_CLASSES; c++)
        if (m->run[c] == RUN_BF16_PLAIN && !w->plain) w->plain = bf16_weight_plain(w->p, N, K);
    return 0;
}

static void cpu_matmul(backend_t *be, void *out, const void *x, const weight_t *w, const weight_t *bias,
                       int M, int K, int N, int accumulate)
{
    const float *b = bias ? fp32_of(bias) : NULL;
    switch (run_of(be, w, M, N, K)) {
    case RUN_BF16_PACKED:
        /* packed at load; a caller that skipped matrix_ready (a benchmark) packs at first use */
        if (!w->packed && pack_matrix(be, (weight_t *)w, N, K) != 0) {
            fprintf(stderr, "%s: %s\n", qasr_program_name(), qasr_last_error());
            QASR_ASSERT(!"matrices are packed at load");
        }
        gemm_bf16_xwt(be->gemm, out, x, w->packed, b, M, accumulate);
        break;
    case RUN_BF16_PLAIN:
        if (!w->plain) ((weight_t *)w)->plain = bf16_weight_plain(w->p, N, K); /* a benchmark's */
        gemm_bf16_xwt(be->gemm, out, x, w->plain, b, M, accumulate);
        break;
    default:
        gemm_xwt(out, x, w->p, w->bf16, b, M, K, N, accumulate);
    }
}

static inline void layernorm_row(float *o, const float *x, const float *w, const float *b, int D, float eps)
{
    float sum = 0.0f, var = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int d = 0; d < D; d++) sum += x[d];
    const float mean = sum / D;
#pragma omp simd reduction(+ : var)
    for (int d = 0; d < D; d++) var += (x[d] - mean) * (x[d] - mean);
    const float inv = 1.0f / sqrtf(var / D + eps);
    for (int d = 0; d < D; d++) o[d] = (x[d] - mean) * inv * w[d] + b[d];
}

static void cpu_layernorm(backend_t *be, void *out, const void *x, const weight_t *wv, const weight_t *bv,
                          int rows, int D, float eps)
{
    const float *w = fp32_of(wv), *b = fp32_of(bv);
#pragma omp parallel for if (rows > 8)
    for (int r = 0; r < rows; r++)
        layernorm_row((float *)out + (size_t)r * D, (const float *)x + (size_t)r * D, w, b, D, eps);
}

static void cpu_add_layernorm(backend_t *be, void *out, void *xv, const void *deltav, const weight_t *wv,
                              const weight_t *bv, int rows, int D, float eps)
{
    const float *delta = deltav, *w = fp32_of(wv), *b = fp32_of(bv);
    float *x = xv;
#pragma omp parallel for if (rows > 8)
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * D;
        const float *dr = delta + (size_t)r * D;
        for (int d = 0; d < D; d++) xr[d] += dr[d];
        layernorm_row((float *)out + (size_t)r * D, xr, w, b, D, eps); /* after the add: out may be delta */
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

static void cpu_rmsnorm(backend_t *be, void *out, const void *x, const weight_t *wv, int rows, int D,
                        float eps)
{
    const float *w = fp32_of(wv);
#pragma omp parallel for if (rows > 8)
    for (int r = 0; r < rows; r++)
        rmsnorm_row((float *)out + (size_t)r * D, (const float *)x + (size_t)r * D, w, D, eps);
}

static void cpu_add_rmsnorm(backend_t *be, void *out, void *xv, const void *deltav, const weight_t *wv, int rows,
                            int D, float eps)
{
    const float *delta = deltav, *w = wv ? fp32_of(wv) : NULL;
    float *x = xv;
#pragma omp parallel for if (rows > 8)
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * D;
        const float *dr = delta + (size_t)r * D;
        for (int d = 0; d < D; d++) xr[d] += dr[d];
        if (w) rmsnorm_row((float *)out + (size_t)r * D, xr, w, D, eps); /* after the add: out may be delta */
    }
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

static void cpu_embed(backend_t *be, void *out, const weight_t *w, const int *ids, int n, int D)
{
    QASR_ASSERT(!w->packed || w->table); /* a matrix packed in place has no rows any more */
    for (int i = 0; i < n; i++) {
        float *o = (float *)out + (size_t)i * D;
        if (w->bf16)
            widen_bf16(o, (const uint16_t *)w->p + (size_t)ids[i] * D, D);
        else
            memcpy(o, (const float *)w->p + (size_t)ids[i] * D, D * sizeof(float));
    }
}

static void cpu_gather_rows(backend_t *be, void *out, const void *in, const int *idx, int n, int D)
{
    for (int i = 0; i < n; i++)
        memmove((float *)out + (size_t)i * D, (const float *)in + (size_t)idx[i] * D, D * sizeof(float));
}

/* ---------------- attention (cpu_attention.c) ---------------- */

/* cos then sin of each pair, in float32 as the reference computes the angles */
static void cpu_rope_table(backend_t *be, weight_t *rope, int n_pos, int Dh, float theta)
{
    QASR_ASSERT(!rope->bf16 && rope->n == (size_t)n_pos * Dh);
    const int half = Dh / 2;
    float *t = rope->p;
#pragma omp parallel for if (n_pos > 64)
    for (int p = 0; p < n_pos; p++)
        for (int i = 0; i < half; i++) {
            const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)Dh);
            const float a = (float)p * inv_freq;
            t[(size_t)p * Dh + i] = cosf(a);
            t[(size_t)p * Dh + half + i] = sinf(a);
        }
}

/* q and k normalised and rotated in place, then the k and v parts copied into the cache */
static void cpu_qk_norm_rope_store(backend_t *be, kv_cache_t *kv, int layer, void *qkvv, const weight_t *qww,
                                   const weight_t *kww, const weight_t *rope, const int *pos, const int *slot,
                                   int rows, int H, int Hkv, int Dh, float eps)
{
    float *qkv = qkvv;
    const float *qw = fp32_of(qww), *kw = fp32_of(kww), *table = fp32_of(rope);
    const int half = Dh / 2, stride = (H + 2 * Hkv) * Dh;
#pragma omp parallel for if (rows > 4)
    for (int r = 0; r < rows; r++) {
        const float *cs = table + (size_t)pos[r] * Dh, *sn = cs + half;
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
    cpu_attn_kv_store(kv, layer, qkv, slot, rows, H, Hkv, Dh);
}

static void cpu_window_attention(backend_t *be, void *out, const void *qkv, const int *win_start,
                                 const int *win_len, int n_win, int H, int Dh, float scale)
{
    cpu_attn_window(out, qkv, win_start, win_len, n_win, H, Dh, scale);
}

static void cpu_paged_attention(backend_t *be, void *out, const void *q, const kv_cache_t *kv, int layer,
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
    int bf16 = 0, fp32 = 0; /* which kinds of products the plan has */
    for (int i = 0; i < be->plan.n; i++)
        for (int c = 0; c < N_ROW_CLASSES; c++) *(be->plan.m[i].run[c] == RUN_FP32 ? &fp32 : &bf16) = 1;
    if (!be->plan.n) *(be->plan.other_bf16 ? &bf16 : &fp32) = 1;
    snprintf(be->desc, sizeof be->desc, "cpu, %s, %s matrix products%s%s%s", be->threads_desc,
             bf16 && fp32 ? "fp32 and bf16" : bf16 ? "bf16" : "fp32", bf16 ? " (" : "", bf16 ? isa : "",
             bf16 ? ")" : "");
    return be->desc;
}

static const char *cpu_plan_describe(backend_t *be)
{
    plan_describe(&be->plan, be->plan_desc, sizeof be->plan_desc);
    return be->plan_desc;
}

static const backend_ops_t cpu_ops = {
    .name = "cpu",
    .flags = BACKEND_HOST_MEMORY,
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
    .log_mel_batch = cpu_log_mel_batch,
    .mel_chunks = cpu_mel_chunks,
    .conv3x3s2_gelu = cpu_conv3x3s2_gelu,
    .conv_flatten = cpu_conv_flatten,
    .add_pos_emb = cpu_add_pos_emb,
    .matmul = cpu_matmul,
    .layernorm = cpu_layernorm,
    .add_layernorm = cpu_add_layernorm,
    .rmsnorm = cpu_rmsnorm,
    .add_rmsnorm = cpu_add_rmsnorm,
    .gelu = cpu_gelu,
    .swiglu = cpu_swiglu,
    .embed = cpu_embed,
    .gather_rows = cpu_gather_rows,
    .window_attention = cpu_window_attention,
    .rope_table = cpu_rope_table,
    .qk_norm_rope_store = cpu_qk_norm_rope_store,
    .paged_attention = cpu_paged_attention,
    .argmax = cpu_argmax,
    .sync = cpu_sync,
    .op_failed = cpu_op_failed,
    .describe = cpu_describe,
    .plan = cpu_plan_describe,
};

int backend_cpu_create(backend_ref_t *out, int threads, int n_mels, precision_t precision)
{
    backend_t *be = xcalloc(1, sizeof *be);
    plan_uniform(&be->plan, precision == PRECISION_BF16);
    snprintf(be->plan.source, sizeof be->plan.source, "--precision %s", precision == PRECISION_BF16 ? "bf16" : "fp32");
    /* default: the CPUs this process may use (affinity, cgroup quota), not the machine's */
    const cpus_t cpus = cpus_usable();
    be->threads = threads > 0 ? threads : cpus.usable;
    if (threads > 0)
        snprintf(be->threads_desc, sizeof be->threads_desc, "%d thread%s", threads, threads == 1 ? "" : "s");
    else
        cpus_describe(&cpus, be->threads_desc, sizeof be->threads_desc);
    omp_set_num_threads(be->threads);
    /* Blocks from 256 KB up get their own mapping, returned to the system when freed. glibc's
     * default threshold rises with every large block freed (to 32 MB), after which per-step
     * buffers pile up in the heap: ~60 MB more at the peak of a 32-clip batch. Hot loops keep
     * their blocks between calls instead (thread_scratch), so they pay no mapping per call. */
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
    stack_arena_init(&be->scratch, arena_block, arena_free, be, ALIGN, (size_t)2 << 20);
    if (be->plan.any_bf16) be->gemm = bf16_gemm_new();
    if (!(be->mel = mel_init(n_mels))) {
        cpu_destroy(be);
        return -1;
    }
    out->ops = &cpu_ops;
    out->be = be;
    return 0;
}

/* auto: where this CPU has native bf16, the plan measured (or read from the cache) on the
 * model's shapes, with the backend's threads; else fp32 throughout. The measuring runs before
 * any weight is loaded, since the plan decides how the weights are kept. */
static int cpu_create_auto(backend_ref_t *out, const backend_params_t *p)
{
    const char *isa;
    if (!bf16_gemm_native(&isa) || !p->config) {
        const int bf16 = p->config == NULL && bf16_gemm_native(NULL); /* no shapes to time: by flags */
        if (backend_cpu_create(out, p->threads, p->n_mels, bf16 ? PRECISION_BF16 : PRECISION_FP32) != 0) return -1;
        snprintf(out->be->plan.source, sizeof out->be->plan.source, "%s",
                 bf16 ? "auto without the model's shapes: bf16 throughout, as the CPU has it natively"
                      : "auto: fp32 throughout, as this CPU has no native bf16 (oneDNN's needs AVX512-BF16 or AMX)");
        return 0;
    }
    if (backend_cpu_create(out, p->threads, p->n_mels, PRECISION_FP32) != 0) return -1;
    backend_t *be = out->be;
    plan_shapes(&be->plan, p->config);
    char key[1024], dir[2048];
    plan_cache_key(&be->plan, be->threads, isa, key, sizeof key);
    be->gemm = bf16_gemm_new();
    plan_auto(&be->plan, plan_cache_dir(dir, sizeof dir) == 0 ? dir : NULL, key, plan_measure, be->gemm);
    return 0;
}

/* The precision asked for, or the one measured faster (auto). */
static int cpu_create(backend_ref_t *out, const backend_params_t *p)
{
    const char *isa;
    const int native = bf16_gemm_native(&isa);
    if (!p->precision || !strcmp(p->precision, "auto")) return cpu_create_auto(out, p);
    if (!strcmp(p->precision, "fp32")) return backend_cpu_create(out, p->threads, p->n_mels, PRECISION_FP32);
    if (!native) /* bf16 asked for */
        return qasr_fail("--precision bf16: this CPU has no native bf16 arithmetic (oneDNN finds %s; it needs "
                         "AVX512-BF16 or AMX): use --precision fp32 or auto", isa);
    return backend_cpu_create(out, p->threads, p->n_mels, PRECISION_BF16);
}

const backend_kind_t backend_cpu_kind = { .name = "cpu", .create = cpu_create };
