/* The backend ops table: the model code (encoder.c, decoder.c) is written once against it and
 * never dereferences an activation, so each backend picks its own storage (CPU: fp32; CUDA:
 * bf16 activations with fp32 accumulation). Shapes are row-major; "[M][K]" means M rows of K.
 *
 * Argument order: backend, outputs, inputs, weights, sizes, params.
 * Pointers named h_* are host memory; other void pointers are activations in backend memory
 * from buf_alloc / scratch / ints. Weights and the KV cache are typed handles that each backend
 * defines for itself (struct weight, struct kv_cache): what a backend keeps with a weight (a
 * packed copy, a convolution kernel) lives in its handle and is freed with the backend.
 *
 * Errors: allocations return NULL and record why with qasr_fail() (naming the memory and the
 * size); the caller gives up the pass and says so. An op that finds no memory for its own work
 * space does nothing and says so through `op_failed`, which the model code asks at the end of
 * each pass. A device can also fail for good (a lost GPU, an asynchronous kernel fault): `fault`
 * then returns the reason, every later op does nothing, and what download and argmax hand back
 * is zeros. Nothing here exits the process; a violated shape assumption is a programmer error
 * and aborts (QASR_ASSERT).
 *
 * Dimension vocabulary (model.h): N chunks, T frames, D model width, H query heads, Hkv kv heads,
 * Dh head dim, P page size, V vocab. H and Hkv always count heads; widths are H * Dh. */
#ifndef QASR_BACKEND_H
#define QASR_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "safetensors.h"

typedef struct backend backend_t;   /* one backend instance's state */
typedef struct weight weight_t;     /* a weight stored on a backend */
typedef struct kv_cache kv_cache_t; /* the paged KV cache's storage on a backend */

/* Decoder attention over the paged KV cache, one query row at a time. Row i is a token of
 * sequence row_seq[i] that sees keys at positions 0 .. ctx_len[i]-1 (causal prefill and decode
 * are the same operation). Page j of sequence s is physical page block_tables[s*max_blocks+j]. */
typedef struct {
    int n_rows;
    int n_heads, n_kv_heads, head_dim; /* query head h uses kv head h / (n_heads / n_kv_heads) */
    int q_stride;                      /* elements between consecutive query rows */
    float scale;                       /* 1 / sqrt(head_dim) */
    const int *ctx_len;                /* [n_rows] */
    const int *row_seq;                /* [n_rows] */
    const int *block_tables;           /* [n_seqs][max_blocks] */
    int max_blocks;
    int max_ctx;                       /* max over ctx_len (host-known, sizes scratch) */
} paged_attn_t;

/* KV cache geometry. Storage per layer: [n_pages][2 (K, V)][Hkv][P][Dh]: a page holds P
 * consecutive positions of one sequence, keys then values, head-major so that one kv head's
 * keys of a page are contiguous ([P][Dh]). Keys are stored after RoPE. */
typedef struct {
    int n_layers, n_pages, page_size, n_kv_heads, head_dim;
} kv_geom_t;

/* How a weight is used. Matrices are the w operand of matmul, and a backend may keep them in
 * the checkpoint's compact dtype or in a layout of its own (the CPU's fp32 path keeps bf16
 * matrices as bf16 and widens them inside the product; its bf16 path packs them for oneDNN).
 * A table is the table of embed, and also a matrix when the LM head is tied to it: its rows
 * must stay readable as they are. Everything else (norms, biases, conv kernels, positional
 * tables) is read directly by the ops. */
typedef enum { WEIGHT_MATRIX, WEIGHT_TABLE, WEIGHT_PARAM } weight_kind_t;

/* CPU arithmetic of the matrix products: fp32 (the reference), or bf16 inputs with fp32
 * accumulation (oneDNN on AVX512-BF16 / AMX). Norms, softmax and activations are fp32 on both. */
typedef enum { PRECISION_FP32, PRECISION_BF16 } precision_t;

/* Capability flags (backend_ops_t.flags). */
enum {
    /* Activations and the KV cache live in host RAM, next to everything else of the process
     * (a GPU's cache can take most of its device memory; a CPU's must not take most of RAM). */
    BACKEND_HOST_MEMORY = 1 << 0,
};

/* Lanes (backend_ops_t.lane): streams of device work that may run at the same time. */
typedef enum { BACKEND_LANE_DECODER, BACKEND_LANE_ENCODER } backend_lane_t;

typedef struct backend_ops {
    const char *name;
    unsigned flags;  /* BACKEND_* */
    size_t act_size; /* bytes per activation element (for act_offset) */

    void (*destroy)(backend_t *be);

    /* ---- memory ---- */
    /* A weight of n_elems, converted from the checkpoint dtype once at load; freed by destroy. */
    weight_t *(*weight_alloc)(backend_t *be, size_t n_elems, weight_kind_t kind, dtype_t src_dtype);
    void (*weight_upload)(backend_t *be, weight_t *dst, size_t dst_offset, const void *h_src,
                          dtype_t src_dtype, size_t n_elems);
    /* Optional (NULL: not offered): the weight is h_src itself, host memory mapped from the
     * checkpoint that stays valid while the weight is in use; NULL where this backend cannot read
     * it in place (then weight_alloc + weight_upload). */
    weight_t *(*weight_map)(backend_t *be, const void *h_src, size_t n_elems, weight_kind_t kind,
                            dtype_t src_dtype);
    /* Optional: matrix w [N][K] (a WEIGHT_MATRIX, or the table when the LM head is tied to it)
     * is fully uploaded; a backend may put it in a layout of its own now rather than at its
     * first product (the CPU's bf16 path packs it for oneDNN, at load). 0, or -1 + qasr_fail. */
    int (*matrix_ready)(backend_t *be, weight_t *w, int N, int K);
    /* Activation buffers that outlive a forward call (audio embeddings). */
    void *(*buf_alloc)(backend_t *be, size_t n_elems);
    void (*buf_free)(backend_t *be, void *p);
    /* Scratch: a stack. Allocations stay valid until released past them; mark 0 = all. */
    void *(*scratch)(backend_t *be, size_t n_elems);
    int *(*ints)(backend_t *be, const int *h_src, size_t n); /* scratch copy of host ints */
    size_t (*scratch_mark)(backend_t *be);
    void (*scratch_release)(backend_t *be, size_t mark);
    void (*download)(backend_t *be, float *h_dst, const void *src, size_t n_elems);
    void (*copy)(backend_t *be, void *dst, const void *src, size_t n_elems);
    kv_cache_t *(*kv_alloc)(backend_t *be, const kv_geom_t *g);
    size_t (*kv_elem_bytes)(backend_t *be); /* bytes per KV element; NULL: act_size */
    /* Bytes the backend can still allocate (free RAM or free device memory), for defaults. */
    size_t (*mem_available)(backend_t *be);
    /* Optional: device memory allocations made so far (a warmed-up run makes none). */
    long (*device_allocs)(backend_t *be);
    void (*kv_free)(backend_t *be, kv_cache_t *kv);

    /* ---- audio front end ---- */
    /* out [T][n_mels] with T = mel_frames(n): the spec's log-mel (section 4), frame-major. */
    void (*log_mel)(backend_t *be, void *out, const float *h_samples, int64_t n, int n_mels);
    /* log_mel of n utterances in one call: outs[i] [T_i][n_mels] from h_samples[i] [n_samples[i]],
     * each normalised by its own maximum, as log_mel does it (a GPU batches the copies, FFTs and
     * the filterbank over all of them). The samples may be freed when it returns. */
    void (*log_mel_batch)(backend_t *be, void *const *outs, const float *const *h_samples,
                          const int64_t *n_samples, int n, int n_mels);
    /* out [N][n_mels][W]: chunk c = frames start[c] .. start[c]+len[c]-1 of mel [*][n_mels],
     * transposed to mel-major, zero-padded to W frames. */
    void (*mel_chunks)(backend_t *be, void *out, const void *mel, const int *start,
                       const int *len, int N, int n_mels, int W);
    /* 3x3 conv, stride 2, zero padding 1, bias, then exact GELU. Channel-outermost layout:
     * in [Cin][N][Hin][Win] -> out [Cout][N][Hout][Wout], Hout = (Hin-1)/2+1. w [Cout][Cin][3][3]. */
    void (*conv3x3s2_gelu)(backend_t *be, void *out, const void *in, const weight_t *w,
                           const weight_t *bias, int Cin, int Cout, int N, int Hin, int Win);
    /* in [C][N][F][W] -> out [N*W][C*F], row n*W+w = (c*F + f) for c, f: the spec's
     * channel-major flatten of each time column (5.3). */
    void (*conv_flatten)(backend_t *be, void *out, const void *in, int C, int N, int F, int W);
    /* x [rows][D] += pe [period][D] row (r % period) */
    void (*add_pos_emb)(backend_t *be, void *x, const weight_t *pe, int rows, int period, int D);

    /* ---- dense ---- */
    /* out [M][N] (= or +=) x [M][K] w^T, w [N][K] (PyTorch Linear layout), + bias [N] if given. */
    void (*matmul)(backend_t *be, void *out, const void *x, const weight_t *w, const weight_t *bias,
                   int M, int K, int N, int accumulate);
    void (*layernorm)(backend_t *be, void *out, const void *x, const weight_t *w, const weight_t *b,
                      int rows, int D, float eps);
    /* The residual add and the next LayerNorm in one pass: x [rows][D] += delta [rows][D]
     * (rounded as the backend's residual stream), then out [rows][D] = layernorm(x) with w, b.
     * out may be delta. */
    void (*add_layernorm)(backend_t *be, void *out, void *x, const void *delta, const weight_t *w,
                          const weight_t *b, int rows, int D, float eps);
    void (*rmsnorm)(backend_t *be, void *out, const void *x, const weight_t *w, int rows, int D,
                    float eps);
    /* The residual add and the next norm in one pass: x [rows][D] += delta [rows][D] (rounded as
     * the backend's residual stream), then out [rows][D] = rmsnorm(x) with w; w and out NULL:
     * the add alone. out may be delta. */
    void (*add_rmsnorm)(backend_t *be, void *out, void *x, const void *delta, const weight_t *w, int rows, int D,
                        float eps);
    void (*gelu)(backend_t *be, void *x, size_t n); /* in place, exact (erf) GELU */
    /* out [rows][Dff] = silu(gu[:, :Dff]) * gu[:, Dff:], gu [rows][2 Dff] */
    void (*swiglu)(backend_t *be, void *out, const void *gu, int rows, int Dff);
    /* out [n][D] = table [*][D] rows ids[i]. ids[i] < 0 (backends with fetch_ids): the id that
     * the last argmax before it found in row -ids[i] - 1 (read on the device). */
    void (*embed)(backend_t *be, void *out, const weight_t *table, const int *ids, int n, int D);
    /* out [n][D] = in rows idx[i] */
    void (*gather_rows)(backend_t *be, void *out, const void *in, const int *idx, int n, int D);

    /* ---- attention ---- */
    /* Encoder self-attention, bidirectional inside each window, nothing across windows.
     * qkv [rows][3*H*Dh] (q | k | v), out [rows][H*Dh]; window w = rows win_start[w] ..
     * win_start[w]+win_len[w]-1. */
    void (*window_attention)(backend_t *be, void *out, const void *qkv, const int *win_start,
                             const int *win_len, int n_win, int H, int Dh, float scale);
    /* rope [n_pos][Dh] (a WEIGHT_PARAM of n_pos * Dh) = the rotate-half RoPE table of base
     * theta: row p holds cos(p * inv_freq_i) for pairs i < Dh/2, then sin(p * inv_freq_i), with
     * the arithmetic and the rounding of the backend (fp32 on the CPU; bf16 on CUDA, MODEL.md 12.7).
     * Filled once at load; read by qk_norm_rope_store. */
    void (*rope_table)(backend_t *be, weight_t *rope, int n_pos, int Dh, float theta);
    /* On qkv rows [rows][(H + 2 Hkv) * Dh]: RMSNorm each q head with qw [Dh] and each k head
     * with kw [Dh], rotate them at position pos[r] (< rope_table's n_pos) with rope, q in place;
     * the rotated k and the v of row r go into the cache at slot[r] = page * P + offset. The k
     * part of qkv is undefined afterwards (attention reads keys from the cache only). */
    void (*qk_norm_rope_store)(backend_t *be, kv_cache_t *kv, int layer, void *qkv, const weight_t *qw,
                               const weight_t *kw, const weight_t *rope, const int *pos, const int *slot,
                               int rows, int H, int Hkv, int Dh, float eps);
    /* out [n_rows][H*Dh]; q = qkv rows (q part first, row stride p->q_stride). */
    void (*paged_attention)(backend_t *be, void *out, const void *q, const kv_cache_t *kv, int layer,
                            const paged_attn_t *p);

    /* ---- output ---- */
    /* h_ids[i] = argmax of logits row i [n][V]; lowest index on an exact tie. h_ids NULL
     * (backends with fetch_ids): the ids are kept, for the next pass's embed and fetch_ids. */
    void (*argmax)(backend_t *be, int *h_ids, const void *logits, int n, int V);
    /* Optional (NULL, as on the CPU): decoder steps that do not wait for their tokens. An argmax
     * with h_ids NULL returns at once; its ids stay on the device, where the next step's embed
     * reads them (ids < 0), and on their way to the host. fetch_ids waits for the oldest kept
     * argmax not fetched yet and copies its first n ids (zeros on a failed device); so the host
     * reads step t's tokens while step t+1 runs. At most two kept argmaxes wait to be fetched.
     * h_ids NULL: forget every one not fetched (after a step that failed). */
    void (*fetch_ids)(backend_t *be, int *h_ids, int n);

    void (*sync)(backend_t *be);
    /* -1 + qasr_fail() if an op could not run since the last call (no memory for its work
     * space: what it should have written is undefined), and clears that; else 0. */
    int (*op_failed)(backend_t *be);
    /* Optional: NULL while the device works; once it has failed for good, why (see the top). */
    const char *(*fault)(backend_t *be);
    /* Make this host thread ready to use the backend (CUDA: select its device); NULL if none is
     * needed. Called before a thread other than the loading one drives it. */
    void (*bind)(backend_t *be);
    /* Optional (NULL, as on the CPU: one lane, every op in call order): the ops that follow run
     * on this lane, the decoder's until told otherwise. A lane has its own scratch, int
     * parameters and buffer cache, and its work is ordered after its own earlier work only:
     * the encoder's kernels run beside the decoder's. buf_free of another lane's buffer is
     * safe (the owner's later work waits for the freeing lane's work queued so far). sync waits
     * for the current lane. encoder_done marks the encoder work submitted so far; join_encoder
     * makes the decoder's later work wait for the last mark (on the device, no host wait). */
    void (*lane)(backend_t *be, backend_lane_t lane);
    void (*encoder_done)(backend_t *be);
    void (*join_encoder)(backend_t *be);
    /* Optional (NULL, as on the CPU): decode steps replayed as CUDA graphs. The model code
     * brackets a step whose launches are the same for every step of one key (the same sizes, the
     * same scratch and int parameter addresses, inputs only in ints) with step_begin(key)
     * and step_end. The backend runs the first such step of a key directly (the scratch reaches
     * its size), captures the next and replays it from then on: between the two calls the ops
     * then only stage their int parameters, and argmax's h_ids are written by step_end. The model
     * code stays one sequence of ops and the backend decides what to launch, rather than the
     * model asking for input buffers and launching graphs itself. step_end: 0
     * (the step ran), 1 (it did not, a capture failed: graphs are off from now on, run the step
     * again without step_begin), -1 + qasr_fail() (the device failed). */
    void (*step_begin)(backend_t *be, uint64_t key);
    int (*step_end)(backend_t *be);
    /* What it computes with, for logs ("cpu, bf16 (AVX512-BF16)"); NULL: the name says it. */
    const char *(*describe)(backend_t *be);
    /* Optional: how it chose the arithmetic of each op, in words, for -v (the CPU backend's
     * precision plan); NULL: nothing chosen. */
    const char *(*plan)(backend_t *be);
    /* Optional: copy every weight of bes[0] into bes[1..n-1], instances of this backend on
     * which the same model_load ran (the others without uploading): NCCL broadcast on CUDA.
     * 0, or -1 + qasr_fail() (then the caller uploads to each instead). */
    int (*broadcast_weights)(backend_t *const *bes, int n);
} backend_ops_t;

/* A backend instance: its ops and its opaque state. */
typedef struct {
    const backend_ops_t *ops;
    backend_t *be;
} backend_ref_t;

static inline void *act_offset(const backend_ops_t *ops, const void *p, size_t n_elems)
{
    return (char *)p + n_elems * ops->act_size;
}

/* The device's failure, or NULL while it works (backends without a `fault` op never fail). */
static inline const char *backend_fault(const backend_ref_t *bk)
{
    return bk->ops->fault ? bk->ops->fault(bk->be) : NULL;
}

#ifdef __cplusplus
extern "C" {
#endif
/* At the end of a pass: 0 if every op ran; else -1 + qasr_fail() with the reason (the device's
 * failure first). */
int backend_check(const backend_ref_t *bk);
#ifdef __cplusplus
}
#endif

/* What the engine needs to make an instance of a backend. */
typedef struct {
    int device;            /* device index (backends with devices) */
    int threads;           /* CPU threads; <= 0: all cores */
    int n_mels;            /* the model's mel bins (the front end's filterbank) */
    const char *precision; /* "fp32", "bf16", "auto" or NULL (auto); each backend decides what
                            * it offers and says so when it cannot */
    const model_config_t *config; /* the model's (auto times the CPU's kernels on its shapes); may be NULL */
} backend_params_t;

/* A kind of backend, as the engine finds it (engine/backend_select.c): compiled in (the CPU, the
 * emulated CUDA backend of the test commands) or in a module loaded at run time (CUDA). */
typedef struct {
    const char *name;
    int (*device_count)(void); /* devices it can use now; NULL: the host, always there */
    int (*create)(backend_ref_t *out, const backend_params_t *p); /* -1 + qasr_fail() */
} backend_kind_t;

#endif
