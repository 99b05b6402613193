/* CUDA backend: the ops of host/backend.h on one device, one stream.
 *
 * Activations and weights are bf16; math inside kernels and cuBLAS GEMMs is fp32
 * (CUBLAS_COMPUTE_32F), results rounded to bf16 at each op's output, as the official bf16 model
 * rounds (MODEL.md section 12). Memory:
 *  - weights: one cudaMalloc each at load (converted to bf16 on the host; never an fp32 copy);
 *  - scratch: a device arena with stack semantics (mark/release) that only grows while the first
 *    steps find the peak (warm-up); after that no cudaMalloc/cudaFree happens per step;
 *  - small int arrays (positions, slots, block tables, windows) go to their own device arena
 *    through a pinned host mirror, so kernels read them on the device and launchers can plan
 *    with the host copy without reading device memory;
 *  - persistent buffers (mel, audio embeddings) come from a caching allocator (size classes).
 * Nothing here synchronises except download and argmax, which hand results to the host. */
#include "common.cuh"

#include <string.h>

#include "kernels/kernels.h"

extern "C" {
#include "mel.h"
#include "util.h"
}

namespace {

/* A device stack allocator; allocations past the block spill into separate cudaMallocs until
 * the next full release, which regrows the block to the peak seen. */
struct arena {
    char *base = nullptr;
    size_t cap = 0, used = 0, peak = 0;
    struct spill { void *p; size_t bytes; };
    spill *spills = nullptr;
    int n_spills = 0, cap_spills = 0;
};

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

size_t arena_top(const arena &a)
{
    size_t t = a.used;
    for (int i = 0; i < a.n_spills; i++) t += a.spills[i].bytes;
    return t;
}

void *arena_alloc(arena &a, size_t bytes)
{
    bytes = round_up(bytes ? bytes : 1, 256);
    void *p;
    if (a.n_spills == 0 && a.used + bytes <= a.cap) {
        p = a.base + a.used;
        a.used += bytes;
    } else {
        if (a.n_spills == a.cap_spills) {
            a.cap_spills = a.cap_spills ? 2 * a.cap_spills : 16;
            a.spills = (arena::spill *)xrealloc(a.spills, a.cap_spills * sizeof *a.spills);
        }
        CUDA_CHECK(cudaMalloc(&p, bytes));
        a.spills[a.n_spills++] = { p, bytes };
    }
    a.peak = MAX(a.peak, arena_top(a));
    return p;
}

void arena_release(arena &a, size_t mark)
{
    size_t top = arena_top(a);
    while (a.n_spills > 0 && top - a.spills[a.n_spills - 1].bytes >= mark) {
        top -= a.spills[a.n_spills - 1].bytes;
        CUDA_CHECK(cudaFree(a.spills[--a.n_spills].p)); /* waits for the work using it */
    }
    if (a.n_spills == 0 && mark < a.used) a.used = mark;
    if (mark == 0 && a.peak > a.cap) { /* warm-up: grow to the peak so later steps fit */
        CUDA_CHECK(cudaFree(a.base));
        a.cap = round_up(a.peak + a.peak / 8, 1 << 20);
        CUDA_CHECK(cudaMalloc(&a.base, a.cap));
    }
}

struct kv_cache {
    kv_geom_t g;
    bf16_t *data; /* [layers][pages][2][Hkv][P][Dh] */
};

/* Caching allocator for buf_alloc: freed blocks are kept by size class (powers of two). */
struct block_cache {
    struct entry { void *p; int cls; };
    entry *free_list = nullptr;
    int n_free = 0, cap_free = 0;
    entry *live = nullptr;
    int n_live = 0, cap_live = 0;
};

}  // namespace

struct backend {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    arena scratch;
    /* int arrays: device arena + pinned host mirror at the same offsets */
    int *d_ints, *h_ints;
    size_t ints_cap, ints_used;
    /* mel front end */
    int n_mels;
    float *d_filters;   /* [201][n_mels] */
    cufftHandle fft;
    int fft_batch;      /* frames per cufftExecR2C */
    /* staging for download/argmax results */
    void *h_stage;
    size_t stage_bytes;
    void **weights;         /* in allocation order, the same on every device (broadcast) */
    size_t *weight_elems;
    int n_weights, cap_weights;
    block_cache bufs;
};

static const size_t INTS_CAP = (size_t)16 << 20; /* ints per forward pass (64 MB) */
static const int FFT_BATCH = 256;                 /* frames per FFT call: one plan serves every length */

static void *stage(backend_t *be, size_t bytes)
{
    if (bytes > be->stage_bytes) {
        if (be->h_stage) CUDA_CHECK(cudaFreeHost(be->h_stage));
        be->stage_bytes = round_up(bytes, 1 << 20);
        CUDA_CHECK(cudaMallocHost((void **)&be->h_stage, be->stage_bytes));
    }
    return be->h_stage;
}

/* ---------------- memory ---------------- */

static void *cu_weight_alloc(backend_t *be, size_t n, weight_kind_t, dtype_t) /* all bf16 here */
{
    void *p;
    if (cudaMalloc(&p, n * sizeof(bf16_t)) != cudaSuccess) { /* start-up: exit 3 with the sizes */
        cudaGetLastError();
        size_t free_b = 0, total = 0;
        cudaMemGetInfo(&free_b, &total);
        qasr_die(3, "device %d: out of memory loading the model weights (%.1f MB more needed, %.2f of %.2f GB "
                 "free): use a device with more memory or the smaller model", be->device, n * 2.0 / 1e6,
                 free_b / 1e9, total / 1e9);
    }
    if (be->n_weights == be->cap_weights) {
        be->cap_weights = be->cap_weights ? 2 * be->cap_weights : 256;
        be->weights = (void **)xrealloc(be->weights, be->cap_weights * sizeof(void *));
        be->weight_elems = (size_t *)xrealloc(be->weight_elems, be->cap_weights * sizeof(size_t));
    }
    be->weight_elems[be->n_weights] = n;
    be->weights[be->n_weights++] = p;
    return p;
}

static void cu_weight_upload(backend_t *, void *dst, size_t off, const void *src, dtype_t dt, size_t n)
{
    bf16_t *h = (bf16_t *)xmalloc(n * sizeof(bf16_t));
    const uint16_t *s16 = (const uint16_t *)src;
    const float *s32 = (const float *)src;
    for (size_t i = 0; i < n; i++)
        h[i] = dt == DTYPE_BF16 ? s16[i] : f32_to_bf16(dt == DTYPE_F32 ? s32[i] : f16_to_f32(s16[i]));
    CUDA_CHECK(cudaMemcpy((bf16_t *)dst + off, h, n * sizeof(bf16_t), cudaMemcpyHostToDevice));
    free(h);
}

static int size_class(size_t bytes)
{
    int c = 8; /* 256 bytes */
    while (((size_t)1 << c) < bytes) c++;
    return c;
}

static void *cu_buf_alloc(backend_t *be, size_t n)
{
    block_cache &bc = be->bufs;
    const int cls = size_class(n * sizeof(bf16_t));
    void *p = nullptr;
    for (int i = 0; i < bc.n_free; i++)
        if (bc.free_list[i].cls == cls) {
            p = bc.free_list[i].p;
            bc.free_list[i] = bc.free_list[--bc.n_free];
            break;
        }
    if (!p) CUDA_CHECK(cudaMalloc(&p, (size_t)1 << cls));
    if (bc.n_live == bc.cap_live) {
        bc.cap_live = bc.cap_live ? 2 * bc.cap_live : 64;
        bc.live = (block_cache::entry *)xrealloc(bc.live, bc.cap_live * sizeof *bc.live);
    }
    bc.live[bc.n_live++] = { p, cls };
    return p;
}

static void cu_buf_free(backend_t *be, void *p)
{
    block_cache &bc = be->bufs;
    for (int i = 0; i < bc.n_live; i++)
        if (bc.live[i].p == p) {
            if (bc.n_free == bc.cap_free) {
                bc.cap_free = bc.cap_free ? 2 * bc.cap_free : 64;
                bc.free_list = (block_cache::entry *)xrealloc(bc.free_list, bc.cap_free * sizeof *bc.free_list);
            }
            /* the stream still orders later kernels after the ones using it: reuse is safe */
            bc.free_list[bc.n_free++] = bc.live[i];
            bc.live[i] = bc.live[--bc.n_live];
            return;
        }
    QASR_ASSERT(!"buf_free of a pointer buf_alloc did not return");
}

static void *cu_scratch(backend_t *be, size_t n) { return arena_alloc(be->scratch, n * sizeof(bf16_t)); }

static int *cu_ints(backend_t *be, const int *h, size_t n)
{
    if (be->ints_used + n > be->ints_cap)
        qasr_die(3, "CUDA backend: more than %zu int parameters in one pass", be->ints_cap);
    int *d = be->d_ints + be->ints_used, *mirror = be->h_ints + be->ints_used;
    memcpy(mirror, h, n * sizeof(int));
    /* pinned source: the copy reads the mirror when the stream reaches it, so a mirror slot is
     * not reused before the pass ends: only scratch_release(0), which waits for the stream
     * first, frees int slots (a nested release reusing them raced with the queued copies) */
    CUDA_CHECK(cudaMemcpyAsync(d, mirror, n * sizeof(int), cudaMemcpyHostToDevice, be->stream));
    be->ints_used += round_up(n, 64);
    return d;
}

/* The host copy of an array cu_ints returned (for launchers that plan on the host). */
static const int *host_ints(const backend_t *be, const int *d)
{
    return be->h_ints + (d - be->d_ints);
}

/* Marks encode both stacks: scratch bytes in the low 40 bits, int slots above. */
static size_t cu_scratch_mark(backend_t *be) { return arena_top(be->scratch) | (size_t)be->ints_used << 40; }

static void cu_scratch_release(backend_t *be, size_t mark)
{
    /* mark 0 (nothing of either stack held): the pass is over; once its copies have run, the int
     * mirror is free. A partial release frees scratch only: stream-ordered reuse is safe there. */
    if (mark == 0) {
        CUDA_CHECK(cudaStreamSynchronize(be->stream));
        be->ints_used = 0;
    }
    arena_release(be->scratch, mark & (((size_t)1 << 40) - 1));
}

static void cu_download(backend_t *be, float *h_dst, const void *src, size_t n)
{
    uint16_t *h = (uint16_t *)stage(be, n * sizeof(bf16_t));
    CUDA_CHECK(cudaMemcpyAsync(h, src, n * sizeof(bf16_t), cudaMemcpyDeviceToHost, be->stream));
    CUDA_CHECK(cudaStreamSynchronize(be->stream));
    for (size_t i = 0; i < n; i++) h_dst[i] = bf16_to_f32(h[i]);
}

static void cu_copy(backend_t *be, void *dst, const void *src, size_t n)
{
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(bf16_t), cudaMemcpyDeviceToDevice, be->stream));
}

static void *cu_kv_alloc(backend_t *be, const kv_geom_t *g)
{
    const size_t n = (size_t)g->n_layers * g->n_pages * 2 * g->n_kv_heads * g->page_size * g->head_dim;
    kv_cache *kv = (kv_cache *)xcalloc(1, sizeof *kv);
    kv->g = *g;
    if (cudaMalloc(&kv->data, n * sizeof(bf16_t)) != cudaSuccess) {
        cudaGetLastError();
        size_t free_b = 0, total = 0;
        cudaMemGetInfo(&free_b, &total);
        free(kv);
        qasr_fail("device %d: cannot allocate %.2f GB for the KV cache (%.2f GB free of %.2f GB): lower --kv-gb",
                  be->device, n * 2.0 / 1e9, free_b / 1e9, total / 1e9);
        return nullptr;
    }
    return kv;
}

static size_t cu_mem_available(backend_t *be)
{
    size_t free_b = 0, total = 0;
    CUDA_CHECK(cudaSetDevice(be->device));
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
    return free_b;
}

static void cu_kv_free(backend_t *, void *p)
{
    kv_cache *kv = (kv_cache *)p;
    if (kv) CUDA_CHECK(cudaFree(kv->data));
    free(kv);
}

static bf16_t *kv_layer(const kv_cache *kv, int layer)
{
    const kv_geom_t &g = kv->g;
    return kv->data + (size_t)layer * g.n_pages * 2 * g.n_kv_heads * g.page_size * g.head_dim;
}

/* ---------------- GEMM ---------------- */

/* Row-major out [M][N] (= or +=) x [M][K] w^T + bias, w [N][K], all bf16, fp32 accumulation. In
 * cuBLAS's column-major terms: out^T [N][M] = op_T(w as [K][N]) * (x as [K][M]). */
static void cu_matmul(backend_t *be, void *out, const void *x, const void *w, const void *bias,
                      int M, int K, int N, int accumulate)
{
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    CUBLAS_CHECK(cublasGemmEx(be->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w, CUDA_R_16BF, K, x,
                              CUDA_R_16BF, K, &beta, out, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (bias) CUDA_CHECK(cuda_add_bias((bf16_t *)out, (const bf16_t *)bias, M, N, be->stream));
}

/* ---------------- audio front end ---------------- */

static void cu_log_mel(backend_t *be, void *out, const float *h_samples, int64_t n, int n_mels)
{
    QASR_ASSERT(n_mels == be->n_mels && n >= 201);
    const int T = (int)(n / QASR_HOP);
    const size_t mark = cu_scratch_mark(be);
    float *d_x = (float *)arena_alloc(be->scratch, n * sizeof(float));
    float *frames = (float *)arena_alloc(be->scratch, (size_t)FFT_BATCH * QASR_N_FFT * sizeof(float));
    float *spec = (float *)arena_alloc(be->scratch, (size_t)FFT_BATCH * QASR_N_FREQ * 2 * sizeof(float));
    float *power = (float *)arena_alloc(be->scratch, (size_t)T * QASR_N_FREQ * sizeof(float));
    float *mel = (float *)arena_alloc(be->scratch, (size_t)T * n_mels * sizeof(float));
    float *d_max = (float *)arena_alloc(be->scratch, sizeof(float));
    CUDA_CHECK(cudaMemcpyAsync(d_x, h_samples, n * sizeof(float), cudaMemcpyHostToDevice, be->stream));
    /* frames and FFTs in fixed batches: one cuFFT plan serves every length */
    for (int t0 = 0; t0 < T; t0 += FFT_BATCH) {
        const int nt = MIN(FFT_BATCH, T - t0);
        CUDA_CHECK(cuda_mel_frames(frames, d_x, n, t0, nt, be->stream));
        CUFFT_CHECK(cufftExecR2C(be->fft, frames, (cufftComplex *)spec));
        CUDA_CHECK(cuda_mel_power(power + (size_t)t0 * QASR_N_FREQ, spec, nt, be->stream));
    }
    /* mel [T][n_mels] = power [T][201] x filters [201][n_mels] (fp32) */
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(be->blas, CUBLAS_OP_N, CUBLAS_OP_N, n_mels, T, QASR_N_FREQ, &alpha, be->d_filters,
                              CUDA_R_32F, n_mels, power, CUDA_R_32F, QASR_N_FREQ, &beta, mel, CUDA_R_32F, n_mels,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    CUDA_CHECK(cuda_mel_log(mel, (int64_t)T * n_mels, d_max, be->stream));
    CUDA_CHECK(cuda_mel_finish((bf16_t *)out, mel, (int64_t)T * n_mels, d_max, be->stream));
    cu_scratch_release(be, mark);
}

static void cu_mel_chunks(backend_t *be, void *out, const void *mel, const int *start, const int *len, int N,
                          int n_mels, int W)
{
    CUDA_CHECK(cuda_mel_chunks((bf16_t *)out, (const bf16_t *)mel, start, len, N, n_mels, W, be->stream));
}

static void cu_conv3x3s2_gelu(backend_t *be, void *out, const void *in, const void *w, const void *bias,
                              int Cin, int Cout, int N, int Hin, int Win)
{
    const int Ho = (Hin - 1) / 2 + 1, Wo = (Win - 1) / 2 + 1, K = Cin * 9;
    const int NP = N * Ho * Wo;
    const size_t mark = cu_scratch_mark(be);
    bf16_t *col = (bf16_t *)cu_scratch(be, (size_t)K * NP);
    CUDA_CHECK(cuda_im2col3x3s2(col, (const bf16_t *)in, Cin, N, Hin, Win, be->stream));
    /* out [Cout][NP] = w [Cout][K] . col [K][NP]: column-major out^T [NP][Cout] = col^T w^T */
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(be->blas, CUBLAS_OP_N, CUBLAS_OP_N, NP, Cout, K, &alpha, col, CUDA_R_16BF, NP, w,
                              CUDA_R_16BF, K, &beta, out, CUDA_R_16BF, NP, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    CUDA_CHECK(cuda_bias_gelu_rows((bf16_t *)out, (const bf16_t *)bias, Cout, NP, be->stream));
    cu_scratch_release(be, mark);
}

static void cu_conv_flatten(backend_t *be, void *out, const void *in, int C, int N, int F, int W)
{
    CUDA_CHECK(cuda_conv_flatten((bf16_t *)out, (const bf16_t *)in, C, N, F, W, be->stream));
}

static void cu_add_pos_emb(backend_t *be, void *x, const void *pe, int rows, int period, int D)
{
    CUDA_CHECK(cuda_add_pos_emb((bf16_t *)x, (const bf16_t *)pe, rows, period, D, be->stream));
}

/* ---------------- dense ---------------- */

static void cu_layernorm(backend_t *be, void *out, const void *x, const void *w, const void *b, int rows, int D,
                         float eps)
{
    CUDA_CHECK(cuda_layernorm((bf16_t *)out, (const bf16_t *)x, (const bf16_t *)w, (const bf16_t *)b, rows, D, eps,
                              be->stream));
}

static void cu_rmsnorm(backend_t *be, void *out, const void *x, const void *w, int rows, int D, float eps)
{
    CUDA_CHECK(cuda_rmsnorm((bf16_t *)out, (const bf16_t *)x, (const bf16_t *)w, rows, D, eps, be->stream));
}

static void cu_gelu(backend_t *be, void *x, size_t n)
{
    CUDA_CHECK(cuda_gelu((bf16_t *)x, (int64_t)n, be->stream));
}

static void cu_swiglu(backend_t *be, void *out, const void *gu, int rows, int Dff)
{
    CUDA_CHECK(cuda_swiglu((bf16_t *)out, (const bf16_t *)gu, rows, Dff, be->stream));
}

static void cu_embed(backend_t *be, void *out, const void *table, const int *ids, int n, int D)
{
    CUDA_CHECK(cuda_embed((bf16_t *)out, (const bf16_t *)table, ids, n, D, be->stream));
}

static void cu_gather_rows(backend_t *be, void *out, const void *in, const int *idx, int n, int D)
{
    CUDA_CHECK(cuda_gather_rows((bf16_t *)out, (const bf16_t *)in, idx, n, D, be->stream));
}

/* ---------------- attention ---------------- */

static void cu_window_attention(backend_t *be, void *out, const void *qkv, const int *win_start,
                                const int *win_len, int n_win, int H, int Dh, float scale)
{
    const int *h_len = host_ints(be, win_len);
    int max_len = 1;
    for (int w = 0; w < n_win; w++) max_len = MAX(max_len, h_len[w]);
    CUDA_CHECK(cuda_window_attention((bf16_t *)out, (const bf16_t *)qkv, win_start, win_len, n_win, max_len, H, Dh,
                                     scale, be->stream));
}

static void cu_qk_norm_rope(backend_t *be, void *qkv, const void *qw, const void *kw, const int *pos, int rows,
                            int H, int Hkv, int Dh, float eps, float theta)
{
    CUDA_CHECK(cuda_qk_norm_rope((bf16_t *)qkv, (const bf16_t *)qw, (const bf16_t *)kw, pos, rows, H, Hkv, Dh, eps,
                                 theta, be->stream));
}

static void cu_kv_store(backend_t *be, void *kvp, int layer, const void *qkv, const int *slot, int rows, int H,
                        int Hkv, int Dh)
{
    const kv_cache *kv = (const kv_cache *)kvp;
    CUDA_CHECK(cuda_kv_store(kv_layer(kv, layer), (const bf16_t *)qkv, slot, rows, H, Hkv, Dh, kv->g.page_size,
                             be->stream));
}

static void cu_paged_attention(backend_t *be, void *out, const void *q, const void *kvp, int layer,
                               const paged_attn_t *p)
{
    const kv_cache *kv = (const kv_cache *)kvp;
    /* workspace for context splits: scratch, stream-ordered, so it is free again at once */
    const size_t mark = cu_scratch_mark(be);
    const size_t work_bytes = cuda_paged_attention_work_bytes(p->n_heads, p->n_kv_heads, p->head_dim);
    float *work = (float *)arena_alloc(be->scratch, work_bytes);
    CUDA_CHECK(cuda_paged_attention((bf16_t *)out, (const bf16_t *)q, kv_layer(kv, layer), kv->g.page_size, p,
                                    host_ints(be, p->ctx_len), host_ints(be, p->row_seq), work, work_bytes,
                                    be->stream));
    cu_scratch_release(be, mark);
}

/* ---------------- output ---------------- */

static void cu_argmax(backend_t *be, int *h_ids, const void *logits, int n, int V)
{
    int *d_ids = (int *)arena_alloc(be->scratch, n * sizeof(int));
    CUDA_CHECK(cuda_argmax(d_ids, (const bf16_t *)logits, n, V, be->stream));
    int *h = (int *)stage(be, n * sizeof(int));
    CUDA_CHECK(cudaMemcpyAsync(h, d_ids, n * sizeof(int), cudaMemcpyDeviceToHost, be->stream));
    CUDA_CHECK(cudaStreamSynchronize(be->stream));
    memcpy(h_ids, h, n * sizeof(int));
}

static void cu_sync(backend_t *be) { CUDA_CHECK(cudaStreamSynchronize(be->stream)); }

/* The current device is per host thread: a thread about to use this backend selects its device. */
static void cu_bind(backend_t *be) { CUDA_CHECK(cudaSetDevice(be->device)); }

static void cu_destroy(backend_t *be)
{
    CUDA_CHECK(cudaSetDevice(be->device));
    CUDA_CHECK(cudaStreamSynchronize(be->stream));
    for (int i = 0; i < be->n_weights; i++) CUDA_CHECK(cudaFree(be->weights[i]));
    free(be->weights);
    free(be->weight_elems);
    arena_release(be->scratch, 0);
    CUDA_CHECK(cudaFree(be->scratch.base));
    free(be->scratch.spills);
    for (int i = 0; i < be->bufs.n_free; i++) CUDA_CHECK(cudaFree(be->bufs.free_list[i].p));
    for (int i = 0; i < be->bufs.n_live; i++) CUDA_CHECK(cudaFree(be->bufs.live[i].p));
    free(be->bufs.free_list);
    free(be->bufs.live);
    CUDA_CHECK(cudaFree(be->d_ints));
    CUDA_CHECK(cudaFreeHost(be->h_ints));
    if (be->h_stage) CUDA_CHECK(cudaFreeHost(be->h_stage));
    CUDA_CHECK(cudaFree(be->d_filters));
    CUFFT_CHECK(cufftDestroy(be->fft));
    CUBLAS_CHECK(cublasDestroy(be->blas));
    CUDA_CHECK(cudaStreamDestroy(be->stream));
    free(be);
}

static const backend_ops_t cuda_ops = [] {
    backend_ops_t o = {};
    o.name = "cuda";
    o.act_size = sizeof(bf16_t);
    o.destroy = cu_destroy;
    o.weight_alloc = cu_weight_alloc;
    o.weight_upload = cu_weight_upload;
    o.buf_alloc = cu_buf_alloc;
    o.buf_free = cu_buf_free;
    o.scratch = cu_scratch;
    o.ints = cu_ints;
    o.scratch_mark = cu_scratch_mark;
    o.scratch_release = cu_scratch_release;
    o.download = cu_download;
    o.copy = cu_copy;
    o.kv_alloc = cu_kv_alloc;
    o.kv_free = cu_kv_free;
    o.mem_available = cu_mem_available;
    o.log_mel = cu_log_mel;
    o.mel_chunks = cu_mel_chunks;
    o.conv3x3s2_gelu = cu_conv3x3s2_gelu;
    o.conv_flatten = cu_conv_flatten;
    o.add_pos_emb = cu_add_pos_emb;
    o.matmul = cu_matmul;
    o.layernorm = cu_layernorm;
    o.rmsnorm = cu_rmsnorm;
    o.gelu = cu_gelu;
    o.swiglu = cu_swiglu;
    o.embed = cu_embed;
    o.gather_rows = cu_gather_rows;
    o.window_attention = cu_window_attention;
    o.qk_norm_rope = cu_qk_norm_rope;
    o.kv_store = cu_kv_store;
    o.paged_attention = cu_paged_attention;
    o.argmax = cu_argmax;
    o.sync = cu_sync;
    o.bind = cu_bind;
    return o;
}();

#ifdef QASR_HAVE_NCCL
#include <nccl.h>

/* -1 + qasr_fail() naming the failed NCCL call (the caller falls back to uploads). */
#define NCCL_TRY(x)                                                                                \
    do {                                                                                           \
        ncclResult_t r_ = (x);                                                                     \
        if (r_ != ncclSuccess) {                                                                   \
            qasr_fail("%s failed: %s", #x, ncclGetErrorString(r_));                                \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Copy every weight of bk[0] (loaded) into bk[1..n-1] (allocated by the same model_load, so the
 * same tensors in the same order): one NCCL communicator over the devices, one broadcast per
 * tensor from rank 0, grouped (one thread drives every rank), on each backend's stream. */
extern "C" int backend_cuda_broadcast_weights(const backend_ref_t *bk, int n)
{
    const backend_t *root = bk[0].be;
    int *devs = (int *)xmalloc(n * sizeof(int)), rc = -1;
    ncclComm_t *comms = (ncclComm_t *)xcalloc(n, sizeof(ncclComm_t));
    for (int r = 0; r < n; r++) {
        const backend_t *be = bk[r].be;
        devs[r] = be->device;
        QASR_ASSERT(be->n_weights == root->n_weights);
        for (int w = 0; w < be->n_weights; w++) QASR_ASSERT(be->weight_elems[w] == root->weight_elems[w]);
    }
    NCCL_TRY(ncclCommInitAll(comms, n, devs));
    for (int w0 = 0; w0 < root->n_weights; w0 += 256) { /* bounded groups */
        NCCL_TRY(ncclGroupStart());
        for (int w = w0; w < MIN(root->n_weights, w0 + 256); w++)
            for (int r = 0; r < n; r++)
                NCCL_TRY(ncclBroadcast(root->weights[w], bk[r].be->weights[w], root->weight_elems[w], ncclBfloat16, 0,
                                       comms[r], bk[r].be->stream));
        NCCL_TRY(ncclGroupEnd());
    }
    for (int r = 0; r < n; r++) {
        CUDA_CHECK(cudaSetDevice(devs[r]));
        CUDA_CHECK(cudaStreamSynchronize(bk[r].be->stream));
    }
    rc = 0;
out:
    for (int r = 0; r < n; r++)
        if (comms[r]) ncclCommDestroy(comms[r]);
    free(comms);
    free(devs);
    return rc;
}
#else
extern "C" int backend_cuda_broadcast_weights(const backend_ref_t *, int)
{
    return qasr_fail("this build has no NCCL");
}
#endif

extern "C" int backend_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* no driver / no device: not an error for the caller */
        return 0;
    }
    return n;
}

extern "C" int backend_cuda_create(backend_ref_t *out, int device, int n_mels)
{
    const int count = backend_cuda_device_count();
    if (device < 0 || device >= count)
        return qasr_fail(count == 0 ? "no CUDA device found (use --backend cpu)"
                                    : "CUDA device %d does not exist (this machine has %d)", device, count);
    CUDA_CHECK(cudaSetDevice(device));
    backend_t *be = (backend_t *)xcalloc(1, sizeof *be);
    be->device = device;
    be->n_mels = n_mels;
    CUDA_CHECK(cudaStreamCreateWithFlags(&be->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&be->blas));
    CUBLAS_CHECK(cublasSetStream(be->blas, be->stream));
    be->ints_cap = INTS_CAP;
    CUDA_CHECK(cudaMalloc(&be->d_ints, be->ints_cap * sizeof(int)));
    CUDA_CHECK(cudaMallocHost((void **)&be->h_ints, be->ints_cap * sizeof(int)));
    mel_t *m = mel_init(n_mels);
    if (!m) {
        free(be);
        return -1;
    }
    CUDA_CHECK(cudaMalloc(&be->d_filters, (size_t)QASR_N_FREQ * n_mels * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(be->d_filters, mel_filters(m), (size_t)QASR_N_FREQ * n_mels * sizeof(float),
                          cudaMemcpyHostToDevice));
    mel_free(m);
    int nfft = QASR_N_FFT;
    be->fft_batch = FFT_BATCH;
    CUFFT_CHECK(cufftPlanMany(&be->fft, 1, &nfft, nullptr, 1, QASR_N_FFT, nullptr, 1, QASR_N_FREQ, CUFFT_R2C,
                              be->fft_batch));
    CUFFT_CHECK(cufftSetStream(be->fft, be->stream));
    out->ops = &cuda_ops;
    out->be = be;
    return 0;
}
