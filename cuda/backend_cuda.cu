/* CUDA backend: the ops of host/model/backend.h on one device, with two lanes (streams): the
 * encoder's work runs beside the decoder's (struct lane; backend.h backend_ops_t.lane).
 *
 * Activations and weights are bf16; math inside kernels and cuBLAS GEMMs is fp32
 * (CUBLAS_COMPUTE_32F), results rounded to bf16 at each op's output, as the official bf16 model
 * rounds (MODEL.md section 12). Memory:
 *  - weights: one cudaMalloc each at load (converted to bf16 on the host; never an fp32 copy);
 *  - scratch (per lane): a device arena with stack semantics (mark/release) that only grows while
 *    the first steps find the peak (warm-up); after that no cudaMalloc/cudaFree happens per step;
 *  - small int arrays (positions, slots, block tables, windows) go to their lane's device arena
 *    through a pinned host mirror, those of a pass in as few copies as its ops allow
 *    (send_ints), so kernels read them on the device and launchers can plan with the host copy
 *    without reading device memory;
 *  - a step's argmax ids stay on the device (d_kept), where the next step's embed reads them,
 *    and go to the host through two pinned buffers, read a step later (cu_fetch_ids);
 *  - persistent buffers (audio embeddings) come from a caching allocator (size classes, per lane);
 *  - log_mel_batch stages all utterances' samples in one pinned buffer for one copy.
 * Decode steps run as CUDA graphs, one per size (cu_step_begin: a step's launches are captured
 * once and replayed, its int parameters at the same device addresses).
 * Nothing here synchronises except download, argmax with host ids and fetch_ids, which hand
 * results to the host, log_mel_batch, which waits for its previous copy out of the staging buffer
 * before refilling it (an encoder call back: done unless the encoder lane is far behind), and a
 * lane's first int parameters of a pass, which wait for the pass that last used that slice of the
 * mirror (the decoder's pass before last, whose tokens the host has fetched by then; the
 * encoder's eight passes back).
 *
 * Errors: an allocation that finds no device memory returns NULL with the sizes (qasr_fail);
 * any other failed CUDA, cuBLAS or cuFFT call is the device's fault, kept for good (the `fault`
 * op): from then on every op returns at once and download and argmax give zeros, so the caller
 * learns of it at the end of the pass, by return codes, and nothing unwinds through this code. */
#include "common.cuh"

#include <cublasLt.h>
#include <string.h>

#include "kernels/kernels.h"

extern "C" {
#include "mel.h"
#include "stack_arena.h"
#include "util.h"
}

/* A weight on the device. */
struct weight {
    bf16_t *d;
    size_t n;
};

/* The KV cache. */
struct kv_cache {
    kv_geom_t g;
    bf16_t *data; /* [layers][pages][2][Hkv][P][Dh] */
};

namespace {

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* Caching allocator for buf_alloc: freed blocks are kept by size class (powers of two) and a
 * request takes the smallest free block that is large enough. */
struct block_cache {
    struct entry { void *p; int cls; };
    entry *free_list = nullptr;
    int n_free = 0, cap_free = 0;
    entry *live = nullptr;
    int n_live = 0, cap_live = 0;
};

}  // namespace

/* Frames per FFT call: plans for FFT_BATCH_MIN .. FFT_BATCH_MIN << (FFT_PLANS - 1) (8192, 82 s of
 * audio) frames; a call's frames go through the largest plan, the rest through the smallest that
 * holds it, so an FFT pads at most the tail, to under twice its size. */
#define FFT_BATCH_MIN 256
#define FFT_PLANS 6

/* A GEMM with a bias through cuBLASLt (cu_matmul): the layouts of one shape and the algorithm its
 * heuristic chose. A lane keeps the last LT_PLANS shapes: an encoder pass has five (qkv, o and
 * proj1, fc1, fc2, proj2) at one row count, so the heuristic runs once per shape and pass, not
 * once per layer. */
#define LT_PLANS 8
#define LT_WORKSPACE ((size_t)4 << 20) /* per lane; what the heuristic may use (split-K) */
struct lt_plan {
    int M, K, N;     /* 0: unused */
    unsigned align;  /* of x, w and out, as the heuristic was told */
    cublasLtMatrixLayout_t w, x, out;
    cublasLtMatmulAlgo_t algo;
};

/* A lane: a stream and what its work needs for itself, so that work on two lanes (the encoder's
 * beside the decoder's) runs concurrently without one lane's reuse of memory racing with the
 * other's kernels. Each has its own cuBLAS and cuBLASLt handles and workspace: a workspace serves
 * all its handle's calls, so one handle re-bound to two streams would let concurrent GEMMs share it. */
#define INT_SLICES_MAX 8
struct lane {
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t lt_bias; /* out^T = op_T(w) x^T + bias, the BIAS epilogue */
    cublasLtMatmulPreference_t lt_pref;
    void *lt_work; /* LT_WORKSPACE bytes, allocated with the lane (none after warm-up) */
    lt_plan plans[LT_PLANS];
    int next_plan; /* the plan to replace next */
    stack_arena_t scratch; /* stream-ordered: reuse inside the lane is safe */
    /* int arrays: device arena [ints_cap] + pinned host mirror, a pass's ints at the same offsets
     * in both. The device arena is reused by every pass (its copies and kernels are ordered on
     * the lane's stream), but the pinned source of a copy is read only when the stream reaches
     * it, so a pass's mirror slots are reused only once its copies have run: the mirror is cut in
     * `slices` of ints_cap, one per pass in turn, and a slice is taken again once the event
     * recorded at the end of its last pass has completed. The decoder lane has two slices (the
     * host stages step t+1 while step t runs), the encoder's several, so starting a pass rarely
     * waits for the GPU and never waits for the decoder's work. */
    int *d_ints, *h_ints;
    size_t ints_cap, ints_used; /* per slice; ints_used counts from the slice's start */
    size_t ints_sent;           /* ... of which copied to the device (send_ints) */
    int slices, slice;
    cudaEvent_t slice_done[INT_SLICES_MAX];
    bool slice_pending[INT_SLICES_MAX];
    block_cache bufs; /* the blocks this lane allocated, live and free */
};

/* Decode-step graphs (cu_step_begin). */
typedef enum { STEP_DIRECT, STEP_CAPTURE, STEP_REPLAY } step_mode_t;
#define STEP_INTS_MAX 16
struct step_graph {
    uint64_t key;
    long runs;                 /* steps of this key so far */
    cudaGraphExec_t exec;      /* NULL until captured */
    const char *arena_base;    /* the decoder's scratch block and mark it was captured at */
    size_t mark;
    const int *ints[STEP_INTS_MAX]; /* its int parameters' device addresses, in call order */
    int n_ints;
};

struct backend {
    int device;
    char fault[QASR_ERR_LEN]; /* the device's failure, for good; "" while it works */
    char op_error[QASR_ERR_LEN]; /* an op that found no memory for its work space, or "" */
    long allocs;                 /* successful cudaMalloc calls so far */
    lane lanes[2];               /* by backend_lane_t */
    lane *cur;                   /* the lane that ops run on (backend_ops_t.lane) */
    cudaEvent_t enc_done;        /* recorded by encoder_done, waited for by join_encoder */
    cudaEvent_t freed;           /* a block freed by another lane than its owner (cu_buf_free) */
    /* mel front end */
    int n_mels;
    float *d_filters;   /* [201][n_mels] */
    /* plan p: FFT_BATCH_MIN << p frames per cufftExecR2C, bound to the calling lane's stream at
     * each call; their work areas are shared, so the front end runs on one lane at a time (the
     * encoder's where the engine has lanes, else the decoder's) */
    cufftHandle fft[FFT_PLANS];
    unsigned char *h_mel;       /* pinned staging of log_mel_batch: its index arrays and samples */
    size_t mel_bytes;
    cudaEvent_t mel_copied;     /* the last copy out of h_mel has run */
    bool mel_pending;           /* ... was recorded: wait for it before refilling h_mel */
    /* staging for download/argmax results */
    void *h_stage;
    size_t stage_bytes;
    weight_t **weights;     /* in allocation order, the same on every device (broadcast) */
    int n_weights, cap_weights;
    /* decode-step graphs */
    step_graph **graphs;
    int n_graphs, cap_graphs;
    step_graph *step;       /* the step between step_begin and step_end, or NULL */
    step_mode_t mode;
    int step_ints;          /* int parameters of this step so far */
    bool argmax_called;     /* ... and its argmax: step_end hands its ids on */
    int *argmax_dst, argmax_n;
    /* argmax ids (cu_argmax): d_kept [KEEP_CAP] on the device, read by the next step's embed;
     * h_kept [2][KEEP_CAP] pinned, each step's copy in the buffer after the last one's, so that
     * the host reads step t's ids while step t+1 runs; kept lists those not fetched yet, oldest
     * first */
    int *d_kept, *h_kept;
    cudaEvent_t kept_copied[2];
    int kept_next;          /* the pinned buffer of the next argmax */
    struct { int buf; bool copied; } kept[2];
    int n_kept;
    bool graphs_off;        /* a capture failed: steps launch op by op from then on */
    char capture_error[QASR_ERR_LEN]; /* a call that failed while capturing (not the device's fault) */
};

static void graphs_drop(backend_t *be);

/* ---------------- errors ---------------- */

/* A failed call: the device is lost from now on; the first failure is the reason. */
static void device_failed(backend_t *be, const char *stmt, const char *why, const char *file, int line)
{
    if (be->mode == STEP_CAPTURE) { /* nothing runs while capturing: the capture failed, not the device */
        if (!be->capture_error[0])
            snprintf(be->capture_error, sizeof be->capture_error, "%s: %s (at %s:%d)", stmt, why, file, line);
        return;
    }
    if (!be->fault[0])
        snprintf(be->fault, sizeof be->fault, "device %d failed: %s: %s (at %s:%d)", be->device, stmt, why, file, line);
}

static bool cuda_ok(backend_t *be, cudaError_t e, const char *stmt, const char *file, int line)
{
    if (e == cudaSuccess) return true;
    device_failed(be, stmt, cudaGetErrorString(e), file, line);
    return false;
}
static bool cublas_ok(backend_t *be, cublasStatus_t s, const char *stmt, const char *file, int line)
{
    if (s == CUBLAS_STATUS_SUCCESS) return true;
    device_failed(be, stmt, cublasGetStatusName(s), file, line);
    return false;
}
static bool cufft_ok(backend_t *be, cufftResult r, const char *stmt, const char *file, int line)
{
    if (r == CUFFT_SUCCESS) return true;
    device_failed(be, stmt, cufft_result_name(r), file, line);
    return false;
}
/* true if the call succeeded; else the device is marked failed */
#define CU_OK(be, x) cuda_ok(be, (x), #x, __FILE__, __LINE__)
#define BLAS_OK(be, x) cublas_ok(be, (x), #x, __FILE__, __LINE__)
#define FFT_OK(be, x) cufft_ok(be, (x), #x, __FILE__, __LINE__)

static bool dead(const backend_t *be) { return be->fault[0] != 0; }

/* Ops launch nothing on a failed device, nor while a step replays its graph (the graph has them). */
static bool idle(const backend_t *be) { return dead(be) || be->mode == STEP_REPLAY; }

/* bytes of device memory, or NULL + qasr_fail(): out of memory (with the sizes), or the device's
 * failure. */
static void *dev_alloc(backend_t *be, size_t bytes, const char *what)
{
    void *p = nullptr;
    if (dead(be)) {
        qasr_fail("%s", be->fault);
        return nullptr;
    }
    QASR_ASSERT(be->mode != STEP_CAPTURE && "no device allocation while capturing a decode step (the scratch grows "
                                           "in the step of that size run before it)");
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaSuccess) {
        be->allocs++;
        return p;
    }
    if (e != cudaErrorMemoryAllocation) {
        CU_OK(be, e);
        qasr_fail("%s", be->fault);
        return nullptr;
    }
    cudaGetLastError(); /* not sticky: clear it */
    size_t free_b = 0, total = 0;
    cudaMemGetInfo(&free_b, &total);
    qasr_fail("device %d: out of memory for %s (%.1f MB more needed, %.2f of %.2f GB free)", be->device, what,
              bytes / 1e6, free_b / 1e9, total / 1e9);
    return nullptr;
}

static void dev_free(backend_t *be, void *p)
{
    if (p && !dead(be)) CU_OK(be, cudaFree(p)); /* a failed device's memory goes with its context */
}

static void *arena_block(void *ctx, size_t bytes) { return dev_alloc((backend_t *)ctx, bytes, "scratch"); }
static void arena_free(void *ctx, void *p) { dev_free((backend_t *)ctx, p); }

/* Work space of an op; NULL (the op does nothing, op_failed says why) when there is none. */
static void *op_scratch(backend_t *be, size_t bytes, const char *op)
{
    void *p = stack_arena_alloc(&be->cur->scratch, bytes);
    if (!p && !dead(be) && !be->op_error[0])
        snprintf(be->op_error, sizeof be->op_error, "%s: %s", op, qasr_last_error());
    return p;
}

static const size_t INTS_CAP = (size_t)8 << 20; /* ints per decoder pass (32 MB, two mirror slices) */
static const size_t KEEP_CAP = (size_t)1 << 20; /* argmax rows per decoder pass */
static const size_t ENC_INTS_SLICE = (size_t)128 << 10; /* ints per encoder pass (~24k rows' conv indices) */

/* Pinned host memory for results on their way to the host; NULL when the device failed. */
static void *stage(backend_t *be, size_t bytes)
{
    if (bytes > be->stage_bytes) {
        if (be->h_stage) CU_OK(be, cudaFreeHost(be->h_stage));
        be->h_stage = nullptr;
        be->stage_bytes = round_up(bytes, 1 << 20);
        if (!CU_OK(be, cudaMallocHost((void **)&be->h_stage, be->stage_bytes))) {
            be->h_stage = nullptr;
            be->stage_bytes = 0;
        }
    }
    return be->h_stage;
}

/* ---------------- memory ---------------- */

static weight_t *cu_weight_alloc(backend_t *be, size_t n, weight_kind_t, dtype_t) /* all bf16 here */
{
    bf16_t *d = (bf16_t *)dev_alloc(be, n * sizeof(bf16_t), "the model weights");
    if (!d) return nullptr;
    if (be->n_weights == be->cap_weights) {
        be->cap_weights = be->cap_weights ? 2 * be->cap_weights : 256;
        be->weights = (weight_t **)xrealloc(be->weights, be->cap_weights * sizeof *be->weights);
    }
    weight_t *w = (weight_t *)xmalloc(sizeof *w);
    *w = { d, n };
    be->weights[be->n_weights++] = w;
    return w;
}

static void cu_weight_upload(backend_t *be, weight_t *w, size_t off, const void *src, dtype_t dt, size_t n)
{
    QASR_ASSERT(off + n <= w->n);
    if (dead(be)) return;
    bf16_t *h = (bf16_t *)xmalloc(n * sizeof(bf16_t));
    const uint16_t *s16 = (const uint16_t *)src;
    const float *s32 = (const float *)src;
    for (size_t i = 0; i < n; i++)
        h[i] = dt == DTYPE_BF16 ? s16[i] : f32_to_bf16(dt == DTYPE_F32 ? s32[i] : f16_to_f32(s16[i]));
    CU_OK(be, cudaMemcpy(w->d + off, h, n * sizeof(bf16_t), cudaMemcpyHostToDevice));
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
    block_cache &bc = be->cur->bufs;
    int cls = size_class(n * sizeof(bf16_t)), best = -1;
    void *p = nullptr;
    for (int i = 0; i < bc.n_free; i++) /* the smallest free block that is large enough */
        if (bc.free_list[i].cls >= cls && (best < 0 || bc.free_list[i].cls < bc.free_list[best].cls)) best = i;
    if (best >= 0) {
        p = bc.free_list[best].p;
        cls = bc.free_list[best].cls;
        bc.free_list[best] = bc.free_list[--bc.n_free];
    } else if (!(p = dev_alloc(be, (size_t)1 << cls, "activations"))) {
        return nullptr;
    }
    if (bc.n_live == bc.cap_live) {
        bc.cap_live = bc.cap_live ? 2 * bc.cap_live : 64;
        bc.live = (block_cache::entry *)xrealloc(bc.live, bc.cap_live * sizeof *bc.live);
    }
    bc.live[bc.n_live++] = { p, cls };
    return p;
}

/* A block goes back to the free list of the lane that allocated it, whose stream orders its
 * next use after the earlier ones on that lane. Freed from another lane (audio embeddings that
 * the decoder read), the owner's stream first waits for the work queued so far on the freeing
 * lane: the block is never handed to the owner's work while the other lane's kernels may still
 * read it (after the decoder's step has synchronised, as in the engine, the wait costs nothing). */
static void cu_buf_free(backend_t *be, void *p)
{
    for (lane &l : be->lanes) {
        block_cache &bc = l.bufs;
        for (int i = 0; i < bc.n_live; i++)
            if (bc.live[i].p == p) {
                if (&l != be->cur && !dead(be) && CU_OK(be, cudaEventRecord(be->freed, be->cur->stream)))
                    CU_OK(be, cudaStreamWaitEvent(l.stream, be->freed, 0));
                if (bc.n_free == bc.cap_free) {
                    bc.cap_free = bc.cap_free ? 2 * bc.cap_free : 64;
                    bc.free_list = (block_cache::entry *)xrealloc(bc.free_list, bc.cap_free * sizeof *bc.free_list);
                }
                bc.free_list[bc.n_free++] = bc.live[i];
                bc.live[i] = bc.live[--bc.n_live];
                return;
            }
    }
    QASR_ASSERT(!"buf_free of a pointer buf_alloc did not return");
}

static void *cu_scratch(backend_t *be, size_t n) { return stack_arena_alloc(&be->cur->scratch, n * sizeof(bf16_t)); }

/* A pass's first ints: its slice's last copies must have run (see struct lane). */
static bool slice_free(backend_t *be, lane *l)
{
    if (l->ints_used == 0 && l->slice_pending[l->slice]) {
        if (!CU_OK(be, cudaEventSynchronize(l->slice_done[l->slice]))) return false;
        l->slice_pending[l->slice] = false;
    }
    return true;
}

static int *cu_ints(backend_t *be, const int *h, size_t n)
{
    lane *l = be->cur;
    if (dead(be)) {
        qasr_fail("%s", be->fault);
        return nullptr;
    }
    if (l->ints_used + n > l->ints_cap) {
        qasr_fail("device %d: more than %zu int parameters in one pass (lower --batch or --step-tokens)", be->device,
                  l->ints_cap);
        return nullptr;
    }
    if (!slice_free(be, l)) {
        qasr_fail("%s", be->fault);
        return nullptr;
    }
    int *d = l->d_ints + l->ints_used, *mirror = l->h_ints + (size_t)l->slice * l->ints_cap + l->ints_used;
    memcpy(mirror, h, n * sizeof(int));
    l->ints_used += round_up(n, 64);
    if (be->mode != STEP_DIRECT) { /* a graph step's: copied by step_end, before the graph runs */
        step_graph *g = be->step;
        QASR_ASSERT(be->step_ints < STEP_INTS_MAX);
        if (be->mode == STEP_CAPTURE) g->ints[g->n_ints++] = d;
        else QASR_ASSERT(be->step_ints < g->n_ints && g->ints[be->step_ints] == d && "a replayed step's ints moved");
        be->step_ints++;
    }
    return d;
}

/* Ops whose kernels read int parameters call this first: the ints staged since the last such op
 * go to the device in one copy, queued before the kernels (a pass stages most of its ints
 * up front: one copy instead of one per array). A graph step's go with its graph (step_end).
 * Pinned source: the copy reads the mirror when the stream reaches it, so a mirror slot is not
 * reused before the pass ends: only scratch_release(0) frees int slots (a nested release reusing
 * them raced with the queued copies). */
static void send_ints(backend_t *be)
{
    lane *l = be->cur;
    if (be->mode != STEP_DIRECT || dead(be) || l->ints_sent == l->ints_used) return;
    const size_t from = l->ints_sent;
    CU_OK(be, cudaMemcpyAsync(l->d_ints + from, l->h_ints + (size_t)l->slice * l->ints_cap + from,
                              (l->ints_used - from) * sizeof(int), cudaMemcpyHostToDevice, l->stream));
    l->ints_sent = l->ints_used;
}

/* The host copy of an array cu_ints returned (for launchers that plan on the host). */
static const int *host_ints(const backend_t *be, const int *d)
{
    const lane *l = be->cur;
    return l->h_ints + (size_t)l->slice * l->ints_cap + (d - l->d_ints);
}

/* Marks encode both stacks: scratch bytes in the low 40 bits, int slots above. */
static size_t cu_scratch_mark(backend_t *be) { return stack_arena_mark(&be->cur->scratch) | (size_t)be->cur->ints_used << 40; }

static void cu_scratch_release(backend_t *be, size_t mark)
{
    /* mark 0 (nothing of either stack held): the pass is over; its int slice is free once the
     * event recorded now has completed, and the next pass takes the next slice. A partial release
     * frees scratch only: stream-ordered reuse is safe there. */
    lane *l = be->cur;
    if (mark == 0 && l->ints_used > 0) {
        if (!dead(be) && CU_OK(be, cudaEventRecord(l->slice_done[l->slice], l->stream)))
            l->slice_pending[l->slice] = true;
        l->slice = (l->slice + 1) % l->slices;
        l->ints_used = l->ints_sent = 0;
    }
    /* a base block that cannot be regrown leaves the arena spilling: slower, not wrong */
    if (stack_arena_release(&l->scratch, mark & (((size_t)1 << 40) - 1)) != 0 && !dead(be))
        qasr_warn("%s", qasr_last_error());
}

static void cu_download(backend_t *be, float *h_dst, const void *src, size_t n)
{
    uint16_t *h = dead(be) ? nullptr : (uint16_t *)stage(be, n * sizeof(bf16_t));
    if (!h || !CU_OK(be, cudaMemcpyAsync(h, src, n * sizeof(bf16_t), cudaMemcpyDeviceToHost, be->cur->stream)) ||
        !CU_OK(be, cudaStreamSynchronize(be->cur->stream))) {
        memset(h_dst, 0, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) h_dst[i] = bf16_to_f32(h[i]);
}

static void cu_copy(backend_t *be, void *dst, const void *src, size_t n)
{
    if (idle(be)) return;
    CU_OK(be, cudaMemcpyAsync(dst, src, n * sizeof(bf16_t), cudaMemcpyDeviceToDevice, be->cur->stream));
}

static kv_cache_t *cu_kv_alloc(backend_t *be, const kv_geom_t *g)
{
    const size_t n = (size_t)g->n_layers * g->n_pages * 2 * g->n_kv_heads * g->page_size * g->head_dim;
    bf16_t *d = (bf16_t *)dev_alloc(be, n * sizeof(bf16_t), "the KV cache");
    if (!d) {
        char why[QASR_ERR_LEN];
        snprintf(why, sizeof why, "%s", qasr_last_error());
        qasr_fail("%s: lower --kv-gb", why);
        return nullptr;
    }
    kv_cache_t *kv = (kv_cache_t *)xcalloc(1, sizeof *kv);
    *kv = { *g, d };
    return kv;
}

static size_t cu_mem_available(backend_t *be)
{
    size_t free_b = 0, total = 0;
    if (!CU_OK(be, cudaSetDevice(be->device)) || !CU_OK(be, cudaMemGetInfo(&free_b, &total))) return 0;
    return free_b;
}

static long cu_device_allocs(backend_t *be) { return be->allocs; }

static void cu_kv_free(backend_t *be, kv_cache_t *kv)
{
    if (kv) graphs_drop(be); /* they write into it */
    if (kv) dev_free(be, kv->data);
    free(kv);
}

static bf16_t *kv_layer(const kv_cache_t *kv, int layer)
{
    const kv_geom_t &g = kv->g;
    return kv->data + (size_t)layer * g.n_pages * 2 * g.n_kv_heads * g.page_size * g.head_dim;
}

/* ---------------- GEMM ---------------- */

static void lt_plan_clear(backend_t *be, lt_plan *p)
{
    if (p->w) BLAS_OK(be, cublasLtMatrixLayoutDestroy(p->w));
    if (p->x) BLAS_OK(be, cublasLtMatrixLayoutDestroy(p->x));
    if (p->out) BLAS_OK(be, cublasLtMatrixLayoutDestroy(p->out));
    memset(p, 0, sizeof *p);
}

/* The largest power of two up to 256 (cuBLASLt's default assumption) that divides every address
 * or'ed into bits. */
static unsigned alignment(uintptr_t bits)
{
    unsigned a = 256;
    while (bits % a) a /= 2;
    return a;
}

/* The current lane's plan for this shape and alignment, made (layouts, heuristic) on a miss with
 * the bias pointer already in lt_bias: the heuristic takes the bias's alignment from it, the same
 * for every bias (weights, one cudaMalloc each). NULL when the device failed. */
static const lt_plan *lt_plan_for(backend_t *be, int M, int K, int N, unsigned align)
{
    lane *l = be->cur;
    for (const lt_plan &p : l->plans)
        if (p.M == M && p.K == K && p.N == N && p.align == align) return &p;
    lt_plan *p = &l->plans[l->next_plan];
    l->next_plan = (l->next_plan + 1) % LT_PLANS;
    lt_plan_clear(be, p);
    cublasLtMatmulHeuristicResult_t r;
    int found = 0;
    const uint32_t a32 = align;
    bool ok = BLAS_OK(be, cublasLtMatrixLayoutCreate(&p->w, CUDA_R_16BF, K, N, K)) &&
              BLAS_OK(be, cublasLtMatrixLayoutCreate(&p->x, CUDA_R_16BF, K, M, K)) &&
              BLAS_OK(be, cublasLtMatrixLayoutCreate(&p->out, CUDA_R_16BF, N, M, N));
    for (int i = 0; ok && i < 4; i++)
        ok = BLAS_OK(be, cublasLtMatmulPreferenceSetAttribute(
                             l->lt_pref, (cublasLtMatmulPreferenceAttributes_t)(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + i),
                             &a32, sizeof a32));
    ok = ok && BLAS_OK(be, cublasLtMatmulAlgoGetHeuristic(l->lt, l->lt_bias, p->w, p->x, p->out, p->out, l->lt_pref, 1,
                                                          &r, &found));
    if (ok && found == 0) {
        device_failed(be, "cublasLtMatmulAlgoGetHeuristic", "no algorithm", __FILE__, __LINE__);
        ok = false;
    }
    if (!ok) {
        lt_plan_clear(be, p);
        return nullptr;
    }
    p->M = M, p->K = K, p->N = N, p->align = align;
    p->algo = r.algo;
    return p;
}

/* Row-major out [M][N] (= or +=) x [M][K] w^T + bias, w [N][K], all bf16, fp32 accumulation. In
 * cuBLAS's column-major terms: out^T [N][M] = op_T(w as [K][N]) * (x as [K][M]); the bias, one
 * value per row of out^T, is the BIAS epilogue's vector. With a bias it is one cublasLtMatmul
 * that adds it before the one rounding to bf16, as the official model's Linear does (torch's addmm
 * uses this epilogue; MODEL.md 12 point 5); with accumulate, out = bf16(out + x w^T + bias).
 * fc1's GELU stays a separate kernel: cuBLASLt documents CUBLASLT_EPILOGUE_GELU only as "GELU(x)",
 * and it is the tanh approximation (torch fuses it only for gelu(approximate='tanh'), pytorch
 * PR 104061), where the encoder's GELU is the exact (erf) one. */
static void cu_matmul(backend_t *be, void *out, const void *x, const weight_t *w, const weight_t *bias,
                      int M, int K, int N, int accumulate)
{
    if (idle(be)) return;
    lane *l = be->cur;
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    if (!bias) {
        BLAS_OK(be, cublasGemmEx(l->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w->d, CUDA_R_16BF, K, x,
                                 CUDA_R_16BF, K, &beta, out, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        return;
    }
    const unsigned align = alignment((uintptr_t)out | (uintptr_t)x | (uintptr_t)w->d);
    const lt_plan *p;
    if (BLAS_OK(be, cublasLtMatmulDescSetAttribute(l->lt_bias, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias->d,
                                                   sizeof bias->d)) &&
        (p = lt_plan_for(be, M, K, N, align)))
        BLAS_OK(be, cublasLtMatmul(l->lt, l->lt_bias, &alpha, w->d, p->w, x, p->x, &beta, out, p->out, out, p->out,
                                   &p->algo, l->lt_work, LT_WORKSPACE, l->stream));
}

/* ---------------- audio front end ---------------- */

/* The pinned staging buffer of log_mel_batch, at least bytes large; NULL when the device failed.
 * Its last copy to the device may still be queued (a pinned source is read when the stream
 * reaches the copy), so it waits for that copy's event before the caller refills it. */
static unsigned char *mel_stage(backend_t *be, size_t bytes)
{
    if (be->mel_pending && !CU_OK(be, cudaEventSynchronize(be->mel_copied))) return nullptr;
    be->mel_pending = false;
    if (bytes > be->mel_bytes) {
        if (be->h_mel && !CU_OK(be, cudaFreeHost(be->h_mel))) return nullptr;
        be->h_mel = nullptr;
        be->mel_bytes = 0;
        if (!CU_OK(be, cudaMallocHost((void **)&be->h_mel, round_up(bytes, 1 << 20)))) return nullptr;
        be->mel_bytes = round_up(bytes, 1 << 20);
    }
    return be->h_mel;
}

/* The smallest FFT plan that holds nt frames (or the largest). */
static int fft_plan(int nt)
{
    int p = 0;
    while (p + 1 < FFT_PLANS && (FFT_BATCH_MIN << p) < nt) p++;
    return p;
}

/* All utterances' samples and the index arrays go to the device in one pinned copy; then frames,
 * FFT and power per FFT batch over the frames of all utterances, one filterbank GEMM, and the log
 * and finish per utterance (each clamped to its own maximum). Layout of the staging buffer, the
 * same on the device: outs [n] (pointers), x_off [n], x_len [n] (int64), f_off [n+1] (int), then
 * the samples from byte `head`, utterance after utterance. */
static void cu_log_mel_batch(backend_t *be, void *const *outs, const float *const *h_samples,
                             const int64_t *n_samples, int n, int n_mels)
{
    QASR_ASSERT(n_mels == be->n_mels && n >= 1);
    if (idle(be)) return;
    int64_t S = 0, F = 0;
    int max_T = 0;
    for (int i = 0; i < n; i++) {
        QASR_ASSERT(n_samples[i] >= MEL_MIN_SAMPLES);
        S += n_samples[i];
        F += mel_frames(n_samples[i]);
        max_T = MAX(max_T, (int)mel_frames(n_samples[i]));
    }
    QASR_ASSERT(F <= INT32_MAX);
    const size_t head = round_up((size_t)n * (sizeof(void *) + 2 * sizeof(int64_t)) + (n + 1) * sizeof(int), 256);
    const size_t bytes = head + (size_t)S * sizeof(float);
    unsigned char *h = mel_stage(be, bytes);
    if (!h) return;
    void **h_outs = (void **)h;
    int64_t *h_x_off = (int64_t *)(h_outs + n), *h_x_len = h_x_off + n;
    int *h_f_off = (int *)(h_x_len + n);
    float *h_x = (float *)(h + head);
    h_f_off[0] = 0;
    for (int i = 0, f = 0; i < n; i++) {
        h_outs[i] = outs[i];
        h_x_off[i] = i ? h_x_off[i - 1] + h_x_len[i - 1] : 0;
        h_x_len[i] = n_samples[i];
        memcpy(h_x + h_x_off[i], h_samples[i], n_samples[i] * sizeof(float));
        h_f_off[i + 1] = f += (int)mel_frames(n_samples[i]);
    }
    const int big = fft_plan((int)F), fb = FFT_BATCH_MIN << big;
    const size_t mark = cu_scratch_mark(be);
    unsigned char *d = (unsigned char *)op_scratch(be, bytes, "log-mel");
    float *frames = (float *)op_scratch(be, (size_t)fb * QASR_N_FFT * sizeof(float), "log-mel");
    float *spec = (float *)op_scratch(be, (size_t)fb * QASR_N_FREQ * 2 * sizeof(float), "log-mel");
    float *power = (float *)op_scratch(be, (size_t)F * QASR_N_FREQ * sizeof(float), "log-mel");
    float *mel = (float *)op_scratch(be, (size_t)F * n_mels * sizeof(float), "log-mel");
    float *partial = (float *)op_scratch(be, (size_t)n * MEL_MAX_SEG_BLOCKS * sizeof(float), "log-mel");
    const int64_t *d_x_off = (const int64_t *)(d + ((unsigned char *)h_x_off - h));
    const int64_t *d_x_len = (const int64_t *)(d + ((unsigned char *)h_x_len - h));
    const int *d_f_off = (const int *)(d + ((unsigned char *)h_f_off - h));
    bool ok = d && frames && spec && power && mel && partial &&
              CU_OK(be, cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, be->cur->stream)) &&
              CU_OK(be, cudaEventRecord(be->mel_copied, be->cur->stream));
    be->mel_pending = ok;
    for (int f0 = 0; ok && f0 < F; f0 += fb) {
        const int nt = (int)MIN((int64_t)fb, F - f0);
        ok = CU_OK(be, cuda_mel_frames(frames, (const float *)(d + head), d_x_off, d_x_len, d_f_off, n, f0, nt,
                                       h_f_off, h_x_len, be->cur->stream)) &&
             FFT_OK(be, cufftSetStream(be->fft[fft_plan(nt)], be->cur->stream)) &&
             FFT_OK(be, cufftExecR2C(be->fft[fft_plan(nt)], frames, (cufftComplex *)spec)) &&
             CU_OK(be, cuda_mel_power(power + (size_t)f0 * QASR_N_FREQ, spec, nt, be->cur->stream));
    }
    /* mel [F][n_mels] = power [F][201] x filters [201][n_mels] (fp32) */
    const float alpha = 1.0f, beta = 0.0f;
    ok = ok && BLAS_OK(be, cublasGemmEx(be->cur->blas, CUBLAS_OP_N, CUBLAS_OP_N, n_mels, (int)F, QASR_N_FREQ, &alpha,
                                        be->d_filters, CUDA_R_32F, n_mels, power, CUDA_R_32F, QASR_N_FREQ, &beta, mel,
                                        CUDA_R_32F, n_mels, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    ok = ok && CU_OK(be, cuda_mel_log(mel, d_f_off, n, n_mels, (int)F, max_T, partial, be->cur->stream));
    ok = ok && CU_OK(be, cuda_mel_finish((bf16_t *const *)d, mel, d_f_off, n, n_mels, (int)F, max_T, partial,
                                         be->cur->stream));
    cu_scratch_release(be, mark);
}

static void cu_log_mel(backend_t *be, void *out, const float *h_samples, int64_t n, int n_mels)
{
    cu_log_mel_batch(be, &out, &h_samples, &n, 1, n_mels);
}

static void cu_mel_chunks(backend_t *be, void *out, const void *mel, const int *start, const int *len, int N,
                          int n_mels, int W)
{
    if (idle(be)) return;
    send_ints(be);
    CU_OK(be, cuda_mel_chunks((bf16_t *)out, (const bf16_t *)mel, start, len, N, n_mels, W, be->cur->stream));
}

static void cu_conv3x3s2_gelu(backend_t *be, void *out, const void *in, const weight_t *w, const weight_t *bias,
                              int Cin, int Cout, int N, int Hin, int Win)
{
    if (idle(be)) return;
    CU_OK(be, cuda_conv3x3s2_gelu((bf16_t *)out, (const bf16_t *)in, w->d, bias->d, Cin, Cout, N, Hin, Win,
                                  be->cur->stream));
}

static void cu_conv_flatten(backend_t *be, void *out, const void *in, int C, int N, int F, int W)
{
    if (idle(be)) return;
    CU_OK(be, cuda_conv_flatten((bf16_t *)out, (const bf16_t *)in, C, N, F, W, be->cur->stream));
}

static void cu_add_pos_emb(backend_t *be, void *x, const weight_t *pe, int rows, int period, int D)
{
    if (idle(be)) return;
    CU_OK(be, cuda_add_pos_emb((bf16_t *)x, pe->d, rows, period, D, be->cur->stream));
}

/* ---------------- dense ---------------- */

static void cu_layernorm(backend_t *be, void *out, const void *x, const weight_t *w, const weight_t *b, int rows,
                         int D, float eps)
{
    if (idle(be)) return;
    CU_OK(be, cuda_layernorm((bf16_t *)out, (const bf16_t *)x, w->d, b->d, rows, D, eps, be->cur->stream));
}

static void cu_add_layernorm(backend_t *be, void *out, void *x, const void *delta, const weight_t *w,
                             const weight_t *b, int rows, int D, float eps)
{
    if (idle(be)) return;
    CU_OK(be, cuda_add_layernorm((bf16_t *)out, (bf16_t *)x, (const bf16_t *)delta, w->d, b->d, rows, D, eps,
                                 be->cur->stream));
}

static void cu_rmsnorm(backend_t *be, void *out, const void *x, const weight_t *w, int rows, int D, float eps)
{
    if (idle(be)) return;
    CU_OK(be, cuda_rmsnorm((bf16_t *)out, (const bf16_t *)x, w->d, rows, D, eps, be->cur->stream));
}

static void cu_add_rmsnorm(backend_t *be, void *out, void *x, const void *delta, const weight_t *w, int rows, int D,
                           float eps)
{
    if (idle(be)) return;
    CU_OK(be, cuda_add_rmsnorm((bf16_t *)out, (bf16_t *)x, (const bf16_t *)delta, w ? w->d : nullptr, rows, D, eps,
                               be->cur->stream));
}

static void cu_gelu(backend_t *be, void *x, size_t n)
{
    if (idle(be)) return;
    CU_OK(be, cuda_gelu((bf16_t *)x, (int64_t)n, be->cur->stream));
}

static void cu_swiglu(backend_t *be, void *out, const void *gu, int rows, int Dff)
{
    if (idle(be)) return;
    CU_OK(be, cuda_swiglu((bf16_t *)out, (const bf16_t *)gu, rows, Dff, be->cur->stream));
}

static void cu_embed(backend_t *be, void *out, const weight_t *table, const int *ids, int n, int D)
{
    if (idle(be)) return;
    send_ints(be);
    CU_OK(be, cuda_embed((bf16_t *)out, table->d, ids, be->d_kept, n, D, be->cur->stream));
}

static void cu_gather_rows(backend_t *be, void *out, const void *in, const int *idx, int n, int D)
{
    if (idle(be)) return;
    send_ints(be);
    CU_OK(be, cuda_gather_rows((bf16_t *)out, (const bf16_t *)in, idx, n, D, be->cur->stream));
}

/* ---------------- attention ---------------- */

static void cu_window_attention(backend_t *be, void *out, const void *qkv, const int *win_start,
                                const int *win_len, int n_win, int H, int Dh, float scale)
{
    if (idle(be)) return;
    send_ints(be);
    const int *h_len = host_ints(be, win_len);
    int max_len = 1;
    for (int w = 0; w < n_win; w++) max_len = MAX(max_len, h_len[w]);
    CU_OK(be, cuda_window_attention((bf16_t *)out, (const bf16_t *)qkv, win_start, win_len, n_win, max_len, H, Dh,
                                    scale, be->cur->stream));
}

static void cu_rope_table(backend_t *be, weight_t *rope, int n_pos, int Dh, float theta)
{
    QASR_ASSERT(rope->n == (size_t)n_pos * Dh);
    if (dead(be)) return;
    CU_OK(be, cuda_rope_table(rope->d, n_pos, Dh, theta, be->cur->stream));
}

static void cu_qk_norm_rope_store(backend_t *be, kv_cache_t *kv, int layer, void *qkv, const weight_t *qw,
                                  const weight_t *kw, const weight_t *rope, const int *pos, const int *slot, int rows,
                                  int H, int Hkv, int Dh, float eps)
{
    if (idle(be)) return;
    send_ints(be);
    QASR_ASSERT(kv->g.n_kv_heads == Hkv && kv->g.head_dim == Dh);
    CU_OK(be, cuda_qk_norm_rope_store(kv_layer(kv, layer), (bf16_t *)qkv, qw->d, kw->d, rope->d, pos, slot, rows, H,
                                      Hkv, Dh, kv->g.page_size, eps, be->cur->stream));
}

static void cu_paged_attention(backend_t *be, void *out, const void *q, const kv_cache_t *kv, int layer,
                               const paged_attn_t *p)
{
    if (idle(be)) return;
    send_ints(be);
    /* workspace for context splits: scratch, stream-ordered, so it is free again at once */
    const size_t mark = cu_scratch_mark(be);
    size_t work_bytes = 0;
    if (CU_OK(be, cuda_paged_attention_work_bytes(p->n_heads, p->n_kv_heads, p->head_dim, &work_bytes))) {
        float *work = (float *)op_scratch(be, work_bytes, "decoder attention");
        if (work)
            CU_OK(be, cuda_paged_attention((bf16_t *)out, (const bf16_t *)q, kv_layer(kv, layer), kv->g.page_size, p,
                                           host_ints(be, p->ctx_len), host_ints(be, p->row_seq), work, work_bytes,
                                           be->cur->stream));
    }
    cu_scratch_release(be, mark);
}

/* ---------------- output ---------------- */

/* h_ids [n] = the ids in pinned buffer b once its copy has run; zeros when there was none or
 * the device failed. */
static void kept_read(backend_t *be, int b, bool copied, int *h_ids, int n)
{
    if (copied && !dead(be) && CU_OK(be, cudaEventSynchronize(be->kept_copied[b])))
        memcpy(h_ids, be->h_kept + (size_t)b * KEEP_CAP, n * sizeof(int));
    else
        memset(h_ids, 0, n * sizeof(int));
}

/* The n ids of the last argmax (d_kept) on their way to the host, into the pinned buffer after
 * the last one's: then into h_ids (waiting for them), or, h_ids NULL, kept for cu_fetch_ids. */
static void argmax_out(backend_t *be, int *h_ids, int n)
{
    QASR_ASSERT(be->n_kept < 2 && "a third kept argmax before fetch_ids");
    const int b = be->kept_next;
    int *h = be->h_kept + (size_t)b * KEEP_CAP;
    lane *l = be->cur;
    const bool copied = n <= (int)KEEP_CAP && !dead(be) && /* more rows: the op failed (cu_argmax) */
                        CU_OK(be, cudaMemcpyAsync(h, be->d_kept, n * sizeof(int), cudaMemcpyDeviceToHost, l->stream)) &&
                        CU_OK(be, cudaEventRecord(be->kept_copied[b], l->stream));
    if (h_ids) {
        kept_read(be, b, copied, h_ids, n);
        return;
    }
    be->kept[be->n_kept++] = { b, copied };
    be->kept_next = b ^ 1;
}

/* The ids go to d_kept (for the next step's embed), then to the host (argmax_out); in a graph
 * step, step_end sends them once the graph is launched. */
static void cu_argmax(backend_t *be, int *h_ids, const void *logits, int n, int V)
{
    QASR_ASSERT(be->cur == &be->lanes[BACKEND_LANE_DECODER]);
    const size_t work_bytes = cuda_argmax_work_bytes(n, V);
    void *work = nullptr;
    if (n > (int)KEEP_CAP) {
        if (!dead(be) && !be->op_error[0])
            snprintf(be->op_error, sizeof be->op_error, "argmax: %d rows in one step, at most %zu (lower --step-tokens)",
                     n, KEEP_CAP);
    } else if (!dead(be)) {
        work = op_scratch(be, work_bytes, "argmax");
    }
    if (work && be->mode != STEP_REPLAY)
        CU_OK(be, cuda_argmax(be->d_kept, (const bf16_t *)logits, n, V, work, work_bytes, be->cur->stream));
    if (be->mode != STEP_DIRECT) {
        be->argmax_called = true;
        be->argmax_dst = h_ids;
        be->argmax_n = n;
        return;
    }
    argmax_out(be, h_ids, n);
}

static void cu_fetch_ids(backend_t *be, int *h_ids, int n)
{
    if (!h_ids) {
        be->n_kept = 0;
        return;
    }
    QASR_ASSERT(be->n_kept > 0 && n <= (int)KEEP_CAP);
    const int b = be->kept[0].buf;
    const bool copied = be->kept[0].copied;
    be->kept[0] = be->kept[1];
    be->n_kept--;
    kept_read(be, b, copied, h_ids, n);
}

static void cu_sync(backend_t *be)
{
    if (!dead(be)) CU_OK(be, cudaStreamSynchronize(be->cur->stream));
}

/* ---------------- decode steps as graphs ---------------- */

/* A decode step of one key (backend.h step_begin) has the same launches with the same arguments
 * every time: the same sizes, the same scratch addresses (the decoder's arena, from the same mark
 * in the same block) and int parameters at the same offsets of the mirror, whose pinned h2d copies
 * are read when the graph runs. So the first step of a key runs directly (the scratch grows to
 * it, the only allocations a step makes), the second is captured and launched, and later ones
 * only stage their ints and launch the graph. One graph launch replaces ~11 launches per layer. */
static void cu_step_begin(backend_t *be, uint64_t key)
{
    lane *l = be->cur;
    QASR_ASSERT(l == &be->lanes[BACKEND_LANE_DECODER] && be->mode == STEP_DIRECT && !be->step);
    step_graph *g = nullptr;
    for (int i = 0; i < be->n_graphs && !g; i++)
        if (be->graphs[i]->key == key) g = be->graphs[i];
    if (!g) {
        if (be->n_graphs == be->cap_graphs) {
            be->cap_graphs = be->cap_graphs ? 2 * be->cap_graphs : 16;
            be->graphs = (step_graph **)xrealloc(be->graphs, be->cap_graphs * sizeof *be->graphs);
        }
        g = be->graphs[be->n_graphs++] = (step_graph *)xcalloc(1, sizeof *g);
        g->key = key;
    }
    be->step = g;
    be->step_ints = 0;
    be->argmax_called = false;
    /* the first step of a key runs directly (its scratch found); no base block: every pass spills */
    if (dead(be) || be->graphs_off || g->runs++ == 0 || !l->scratch.base || !slice_free(be, l)) return;
    const size_t mark = cu_scratch_mark(be);
    if (g->exec && (g->arena_base != l->scratch.base || g->mark != mark)) { /* the scratch moved: capture again */
        CU_OK(be, cudaGraphExecDestroy(g->exec));
        g->exec = nullptr;
    }
    if (g->exec) {
        be->mode = STEP_REPLAY;
        return;
    }
    g->arena_base = l->scratch.base;
    g->mark = mark;
    g->n_ints = 0;
    /* thread-local: other threads (other devices' workers) may allocate meanwhile */
    const cudaError_t e = cudaStreamBeginCapture(l->stream, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) {
        be->mode = STEP_CAPTURE;
        return;
    }
    qasr_warn("device %d: CUDA graphs off, a capture could not begin (%s); steps launch kernel by kernel", be->device,
              cudaGetErrorString(e));
    cudaGetLastError(); /* not the device's fault */
    be->graphs_off = true;
}

static int cu_step_end(backend_t *be)
{
    step_graph *g = be->step;
    const step_mode_t mode = be->mode;
    lane *l = be->cur;
    be->step = nullptr;
    be->mode = STEP_DIRECT;
    if (mode == STEP_DIRECT) return 0; /* ran op by op; argmax wrote the ids */
    if (mode == STEP_CAPTURE) {
        cudaGraph_t graph = nullptr;
        cudaError_t e = cudaStreamEndCapture(l->stream, &graph);
        if (e == cudaSuccess && !be->capture_error[0]) e = cudaGraphInstantiate(&g->exec, graph, 0);
        if (graph) cudaGraphDestroy(graph);
        if (e != cudaSuccess || be->capture_error[0] || be->step_ints != g->n_ints) {
            qasr_warn("device %d: CUDA graphs off, capturing a decode step failed (%s); steps launch kernel by "
                      "kernel", be->device, be->capture_error[0] ? be->capture_error : cudaGetErrorString(e));
            cudaGetLastError(); /* not the device's fault */
            be->capture_error[0] = '\0';
            be->graphs_off = true;
            if (g->exec) cudaGraphExecDestroy(g->exec);
            g->exec = nullptr;
            return 1;
        }
    }
    QASR_ASSERT(be->step_ints == g->n_ints && be->argmax_called);
    /* the step's ints in one copy, the graph, then its ids on their way to the host */
    if (!dead(be) && CU_OK(be, cudaMemcpyAsync(l->d_ints, l->h_ints + (size_t)l->slice * l->ints_cap,
                                               l->ints_used * sizeof(int), cudaMemcpyHostToDevice, l->stream)))
        CU_OK(be, cudaGraphLaunch(g->exec, l->stream));
    l->ints_sent = l->ints_used;
    argmax_out(be, be->argmax_dst, be->argmax_n);
    return 0;
}

/* Every graph (the KV cache they write goes away, or the backend does). */
static void graphs_drop(backend_t *be)
{
    for (int i = 0; i < be->n_graphs; i++) {
        step_graph *g = be->graphs[i];
        if (!dead(be) && g->exec) CU_OK(be, cudaGraphExecDestroy(g->exec));
        free(g);
    }
    be->n_graphs = 0;
}

static void cu_lane(backend_t *be, backend_lane_t which) { be->cur = &be->lanes[which]; }

/* The encoder's work submitted so far is what join_encoder waits for. */
static void cu_encoder_done(backend_t *be)
{
    if (!dead(be)) CU_OK(be, cudaEventRecord(be->enc_done, be->lanes[BACKEND_LANE_ENCODER].stream));
}

/* The decoder's later work runs after that encoder work (stream order on the GPU, no host wait). */
static void cu_join_encoder(backend_t *be)
{
    if (!dead(be)) CU_OK(be, cudaStreamWaitEvent(be->lanes[BACKEND_LANE_DECODER].stream, be->enc_done, 0));
}

static int cu_op_failed(backend_t *be)
{
    if (!be->op_error[0]) return 0;
    qasr_fail("%s", be->op_error);
    be->op_error[0] = '\0';
    return -1;
}

static const char *cu_fault(backend_t *be) { return dead(be) ? be->fault : nullptr; }

/* The current device is per host thread: a thread about to use this backend selects its device. */
static void cu_bind(backend_t *be)
{
    if (!dead(be)) CU_OK(be, cudaSetDevice(be->device));
}

/* A lane's stream, cuBLAS handle, int arena of `cap` ints with `slices` mirror slices, and events. */
static bool lane_init(backend_t *be, lane *l, size_t cap, int slices)
{
    l->ints_cap = cap;
    l->slices = slices;
    stack_arena_init(&l->scratch, arena_block, arena_free, be, 256, (size_t)1 << 20);
    const cublasOperation_t op_t = CUBLAS_OP_T;
    const uint32_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const uint64_t work = LT_WORKSPACE;
    bool ok = CU_OK(be, cudaStreamCreateWithFlags(&l->stream, cudaStreamNonBlocking)) &&
              BLAS_OK(be, cublasCreate(&l->blas)) && BLAS_OK(be, cublasSetStream(l->blas, l->stream)) &&
              BLAS_OK(be, cublasLtCreate(&l->lt)) &&
              BLAS_OK(be, cublasLtMatmulDescCreate(&l->lt_bias, CUBLAS_COMPUTE_32F, CUDA_R_32F)) &&
              BLAS_OK(be, cublasLtMatmulDescSetAttribute(l->lt_bias, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof op_t)) &&
              BLAS_OK(be, cublasLtMatmulDescSetAttribute(l->lt_bias, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                         sizeof epilogue)) &&
              BLAS_OK(be, cublasLtMatmulPreferenceCreate(&l->lt_pref)) &&
              BLAS_OK(be, cublasLtMatmulPreferenceSetAttribute(l->lt_pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                               &work, sizeof work)) &&
              (l->lt_work = dev_alloc(be, LT_WORKSPACE, "the cuBLASLt workspace")) &&
              (l->d_ints = (int *)dev_alloc(be, cap * sizeof(int), "int parameters")) &&
              CU_OK(be, cudaMallocHost((void **)&l->h_ints, cap * slices * sizeof(int)));
    for (int i = 0; ok && i < slices; i++) ok = CU_OK(be, cudaEventCreateWithFlags(&l->slice_done[i], cudaEventDisableTiming));
    return ok;
}

/* A lane's memory and handles; live: the device still works (else they go with its context). */
static void lane_destroy(backend_t *be, lane *l, bool live)
{
    stack_arena_destroy(&l->scratch);
    for (int i = 0; i < l->bufs.n_free; i++) dev_free(be, l->bufs.free_list[i].p);
    for (int i = 0; i < l->bufs.n_live; i++) dev_free(be, l->bufs.live[i].p);
    free(l->bufs.free_list);
    free(l->bufs.live);
    if (!live) return;
    dev_free(be, l->d_ints);
    if (l->h_ints) CU_OK(be, cudaFreeHost(l->h_ints));
    for (int i = 0; i < l->slices; i++)
        if (l->slice_done[i]) CU_OK(be, cudaEventDestroy(l->slice_done[i]));
    if (l->blas) BLAS_OK(be, cublasDestroy(l->blas));
    for (lt_plan &p : l->plans) lt_plan_clear(be, &p);
    if (l->lt_pref) BLAS_OK(be, cublasLtMatmulPreferenceDestroy(l->lt_pref));
    if (l->lt_bias) BLAS_OK(be, cublasLtMatmulDescDestroy(l->lt_bias));
    if (l->lt) BLAS_OK(be, cublasLtDestroy(l->lt));
    dev_free(be, l->lt_work);
    if (l->stream) CU_OK(be, cudaStreamDestroy(l->stream));
}

/* Everything of the instance. On a failed device nothing is asked of it any more: its memory
 * goes with its context when the process ends. */
static void cu_destroy(backend_t *be)
{
    const bool live = !dead(be) && CU_OK(be, cudaSetDevice(be->device)) && CU_OK(be, cudaDeviceSynchronize());
    for (int i = 0; i < be->n_weights; i++) {
        dev_free(be, be->weights[i]->d);
        free(be->weights[i]);
    }
    free(be->weights);
    graphs_drop(be);
    free(be->graphs);
    for (lane &l : be->lanes) lane_destroy(be, &l, live);
    if (live) {
        if (be->h_stage) CU_OK(be, cudaFreeHost(be->h_stage));
        dev_free(be, be->d_filters);
        dev_free(be, be->d_kept);
        if (be->h_kept) CU_OK(be, cudaFreeHost(be->h_kept));
        for (cudaEvent_t ev : be->kept_copied)
            if (ev) CU_OK(be, cudaEventDestroy(ev));
        if (be->h_mel) CU_OK(be, cudaFreeHost(be->h_mel));
        if (be->mel_copied) CU_OK(be, cudaEventDestroy(be->mel_copied));
        if (be->enc_done) CU_OK(be, cudaEventDestroy(be->enc_done));
        if (be->freed) CU_OK(be, cudaEventDestroy(be->freed));
        for (int p = 0; p < FFT_PLANS; p++)
            if (be->fft[p]) FFT_OK(be, cufftDestroy(be->fft[p]));
    }
    free(be);
}

#ifdef QASR_HAVE_NCCL
#include <dlfcn.h>
#include <nccl.h>
#include <pthread.h>
#include <stdlib.h>

/* NCCL, only for copying the weights to the other devices of --gpus: loaded at run time, so the
 * module loads (and one device works) where the runtime has no NCCL (minimal containers,
 * pip-installed CUDA). The emulation links its NCCL shim instead. QASR_NCCL=0 turns it off. */
struct nccl_api {
    pthread_once_t once = PTHREAD_ONCE_INIT;
    char error[512] = "";
    decltype(&ncclCommInitAll) CommInitAll = nullptr;
    decltype(&ncclGroupStart) GroupStart = nullptr;
    decltype(&ncclGroupEnd) GroupEnd = nullptr;
    decltype(&ncclBroadcast) Broadcast = nullptr;
    decltype(&ncclCommDestroy) CommDestroy = nullptr;
    decltype(&ncclGetErrorString) GetErrorString = nullptr;
};
static nccl_api nccl;

static void nccl_load(void)
{
    const char *off = getenv("QASR_NCCL");
    if (off && !strcmp(off, "0")) {
        snprintf(nccl.error, sizeof nccl.error, "NCCL is turned off (QASR_NCCL=0)");
        return;
    }
#ifdef CUEMU
    nccl.CommInitAll = ncclCommInitAll, nccl.GroupStart = ncclGroupStart, nccl.GroupEnd = ncclGroupEnd;
    nccl.Broadcast = ncclBroadcast, nccl.CommDestroy = ncclCommDestroy, nccl.GetErrorString = ncclGetErrorString;
#else
    void *h = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(nccl.error, sizeof nccl.error, "NCCL is not available (%s)", dlerror());
        return;
    }
    *(void **)&nccl.CommInitAll = dlsym(h, "ncclCommInitAll");
    *(void **)&nccl.GroupStart = dlsym(h, "ncclGroupStart");
    *(void **)&nccl.GroupEnd = dlsym(h, "ncclGroupEnd");
    *(void **)&nccl.Broadcast = dlsym(h, "ncclBroadcast");
    *(void **)&nccl.CommDestroy = dlsym(h, "ncclCommDestroy");
    *(void **)&nccl.GetErrorString = dlsym(h, "ncclGetErrorString");
    if (!nccl.CommInitAll || !nccl.GroupStart || !nccl.GroupEnd || !nccl.Broadcast || !nccl.CommDestroy ||
        !nccl.GetErrorString) {
        snprintf(nccl.error, sizeof nccl.error, "libnccl.so.2 lacks a function qasr uses (too old an NCCL)");
        nccl.CommInitAll = nullptr;
        dlclose(h);
    }
#endif
}

/* -1 + qasr_fail() naming the failed NCCL call (the caller falls back to uploads). */
#define NCCL_TRY(x)                                                                                \
    do {                                                                                           \
        ncclResult_t r_ = (x);                                                                     \
        if (r_ != ncclSuccess) {                                                                   \
            qasr_fail("%s failed: %s", #x, nccl.GetErrorString(r_));                               \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Copy every weight of bes[0] (loaded) into bes[1..n-1] (allocated by the same model_load, so the
 * same tensors in the same order): one NCCL communicator over the devices, one broadcast per
 * tensor from rank 0, grouped (one thread drives every rank), on each backend's stream. */
static int cu_broadcast_weights(backend_t *const *bes, int n)
{
    pthread_once(&nccl.once, nccl_load);
    if (!nccl.CommInitAll) return qasr_fail("%s", nccl.error);
    const backend_t *root = bes[0];
    int *devs = (int *)xmalloc(n * sizeof(int)), rc = -1;
    ncclComm_t *comms = (ncclComm_t *)xcalloc(n, sizeof(ncclComm_t));
    for (int r = 0; r < n; r++) {
        const backend_t *be = bes[r];
        devs[r] = be->device;
        QASR_ASSERT(be->n_weights == root->n_weights);
        for (int w = 0; w < be->n_weights; w++) QASR_ASSERT(be->weights[w]->n == root->weights[w]->n);
    }
    NCCL_TRY(nccl.CommInitAll(comms, n, devs));
    for (int w0 = 0; w0 < root->n_weights; w0 += 256) { /* bounded groups */
        NCCL_TRY(nccl.GroupStart());
        for (int w = w0; w < MIN(root->n_weights, w0 + 256); w++)
            for (int r = 0; r < n; r++)
                NCCL_TRY(nccl.Broadcast(root->weights[w]->d, bes[r]->weights[w]->d, root->weights[w]->n, ncclBfloat16, 0,
                                        comms[r], bes[r]->cur->stream));
        NCCL_TRY(nccl.GroupEnd());
    }
    for (int r = 0; r < n; r++)
        if (!CU_OK(bes[r], cudaSetDevice(devs[r])) || !CU_OK(bes[r], cudaStreamSynchronize(bes[r]->cur->stream))) {
            qasr_fail("%s", bes[r]->fault);
            goto out;
        }
    rc = 0;
out:
    for (int r = 0; r < n; r++)
        if (comms[r]) nccl.CommDestroy(comms[r]);
    free(comms);
    free(devs);
    return rc;
}
#endif

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
    o.device_allocs = cu_device_allocs;
    o.log_mel = cu_log_mel;
    o.log_mel_batch = cu_log_mel_batch;
    o.mel_chunks = cu_mel_chunks;
    o.conv3x3s2_gelu = cu_conv3x3s2_gelu;
    o.conv_flatten = cu_conv_flatten;
    o.add_pos_emb = cu_add_pos_emb;
    o.matmul = cu_matmul;
    o.layernorm = cu_layernorm;
    o.add_layernorm = cu_add_layernorm;
    o.rmsnorm = cu_rmsnorm;
    o.add_rmsnorm = cu_add_rmsnorm;
    o.gelu = cu_gelu;
    o.swiglu = cu_swiglu;
    o.embed = cu_embed;
    o.gather_rows = cu_gather_rows;
    o.window_attention = cu_window_attention;
    o.rope_table = cu_rope_table;
    o.qk_norm_rope_store = cu_qk_norm_rope_store;
    o.paged_attention = cu_paged_attention;
    o.argmax = cu_argmax;
    o.fetch_ids = cu_fetch_ids;
    o.sync = cu_sync;
    o.op_failed = cu_op_failed;
    o.fault = cu_fault;
    o.bind = cu_bind;
    o.lane = cu_lane;
    o.encoder_done = cu_encoder_done;
    o.join_encoder = cu_join_encoder;
    o.step_begin = cu_step_begin;
    o.step_end = cu_step_end;
#ifdef QASR_HAVE_NCCL
    o.broadcast_weights = cu_broadcast_weights;
#endif
    return o;
}();

static int cu_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* no driver / no device: not an error for the caller */
        return 0;
    }
    return n;
}

/* An instance on p->device: bf16 arithmetic (fp32 accumulation) only. */
static int cu_create(backend_ref_t *out, const backend_params_t *p)
{
    if (p->precision && strcmp(p->precision, "auto") && strcmp(p->precision, "bf16"))
        return qasr_fail("--precision %s: the CUDA backend computes in bf16 with fp32 accumulation only (fp32 "
                         "is a choice of the CPU backend: --backend cpu)", p->precision);
    const int count = cu_device_count(), device = p->device;
    if (device < 0 || device >= count)
        return qasr_fail(count == 0 ? "no CUDA device found (use --backend cpu)"
                                    : "CUDA device %d does not exist (this machine has %d)", device, count);
    backend_t *be = (backend_t *)xcalloc(1, sizeof *be);
    be->device = device;
    be->n_mels = p->n_mels;
    be->cur = &be->lanes[BACKEND_LANE_DECODER];
    mel_t *m = mel_init(p->n_mels);
    int nfft = QASR_N_FFT;
    bool ok = m && CU_OK(be, cudaSetDevice(device)) &&
              lane_init(be, &be->lanes[BACKEND_LANE_DECODER], INTS_CAP, 2) &&
              (be->d_kept = (int *)dev_alloc(be, KEEP_CAP * sizeof(int), "argmax ids")) &&
              CU_OK(be, cudaMallocHost((void **)&be->h_kept, 2 * KEEP_CAP * sizeof(int))) &&
              CU_OK(be, cudaEventCreateWithFlags(&be->kept_copied[0], cudaEventDisableTiming)) &&
              CU_OK(be, cudaEventCreateWithFlags(&be->kept_copied[1], cudaEventDisableTiming)) &&
              lane_init(be, &be->lanes[BACKEND_LANE_ENCODER], ENC_INTS_SLICE, INT_SLICES_MAX) &&
              (be->d_filters = (float *)dev_alloc(be, (size_t)QASR_N_FREQ * p->n_mels * sizeof(float),
                                                  "the mel filterbank")) &&
              CU_OK(be, cudaMemcpy(be->d_filters, mel_filters(m), (size_t)QASR_N_FREQ * p->n_mels * sizeof(float),
                                   cudaMemcpyHostToDevice)) &&
              CU_OK(be, cudaEventCreateWithFlags(&be->mel_copied, cudaEventDisableTiming)) &&
              CU_OK(be, cudaEventCreateWithFlags(&be->enc_done, cudaEventDisableTiming)) &&
              CU_OK(be, cudaEventCreateWithFlags(&be->freed, cudaEventDisableTiming));
    for (int p = 0; ok && p < FFT_PLANS; p++)
        ok = FFT_OK(be, cufftPlanMany(&be->fft[p], 1, &nfft, nullptr, 1, QASR_N_FFT, nullptr, 1, QASR_N_FREQ, CUFFT_R2C,
                                      FFT_BATCH_MIN << p));
    mel_free(m);
    if (!ok) {
        if (dead(be)) qasr_fail("%s", be->fault); /* else dev_alloc or mel_init said why */
        cu_destroy(be);
        return -1;
    }
    out->ops = &cuda_ops;
    out->be = be;
    return 0;
}

/* What backend selection (engine/backend_select.c) finds, linked in or through dlsym. */
extern "C" const backend_kind_t backend_cuda_kind = { "cuda", cu_device_count, cu_create };
