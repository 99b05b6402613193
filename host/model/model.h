/* Model weights and the two forward passes, written once against the backend ops.
 *
 * Dimensions (all from config.json, see config.h):
 *   encoder: D = enc_d, H = enc_heads, Dh = enc_head_dim, F = enc_ffn, C = conv_ch,
 *            Fq = conv output height (16), chunk = 2 * n_window mel frames (100)
 *   decoder: Hd = dec_hidden, Hq = dec_heads, Hkv = dec_kv_heads, Dh = dec_head_dim,
 *            I = dec_inter, V = vocab
 * Fused at load (one GEMM instead of several): encoder q|k|v, decoder q|k|v and gate|up.
 * Weights are read-only after load and shared by every batch; per-batch state (KV pages,
 * scratch) lives elsewhere. */
#ifndef QASR_MODEL_H
#define QASR_MODEL_H

#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "observer.h"
#include "safetensors.h"

typedef struct {
    weight_t *ln1_w, *ln1_b;   /* [D] self_attn_layer_norm */
    weight_t *wqkv, *bqkv;     /* [3D][D], [3D] */
    weight_t *wo, *bo;         /* [D][D], [D] out_proj */
    weight_t *ln2_w, *ln2_b;   /* [D] final_layer_norm */
    weight_t *fc1_w, *fc1_b;   /* [F][D], [F] */
    weight_t *fc2_w, *fc2_b;   /* [D][F], [D] */
} enc_layer_t;

typedef struct {
    weight_t *conv1_w, *conv1_b; /* [C][1][3][3], [C] */
    weight_t *conv2_w, *conv2_b; /* [C][C][3][3], [C] */
    weight_t *conv3_w, *conv3_b; /* [C][C][3][3], [C] */
    weight_t *conv_out_w;        /* [D][C*Fq] */
    weight_t *pos_emb;           /* [tokens_per_chunk][D] sinusoids (computed, not stored) */
    enc_layer_t *layers;
    weight_t *ln_post_w, *ln_post_b; /* [D] */
    weight_t *proj1_w, *proj1_b;     /* [D][D], [D] */
    weight_t *proj2_w, *proj2_b;     /* [Hd][D], [Hd] */
} encoder_weights_t;

typedef struct {
    weight_t *in_norm;         /* [Hd] input_layernorm */
    weight_t *wqkv;            /* [(Hq + 2 Hkv) Dh][Hd] */
    weight_t *q_norm, *k_norm; /* [Dh] */
    weight_t *wo;              /* [Hd][Hq Dh] */
    weight_t *post_norm;       /* [Hd] post_attention_layernorm */
    weight_t *w_gate_up;       /* [2I][Hd] */
    weight_t *w_down;          /* [Hd][I] */
} dec_layer_t;

typedef struct {
    weight_t *embed;           /* [V][Hd] */
    dec_layer_t *layers;
    weight_t *norm;            /* [Hd] */
    weight_t *rope;            /* [max_positions][Dh] RoPE cos | sin (computed, not stored) */
    weight_t *lm_head;         /* [V][Hd]; == embed when the checkpoint has no separate head */
} decoder_weights_t;

typedef struct {
    model_config_t cfg;
    backend_ref_t bk;
    encoder_weights_t enc;
    decoder_weights_t dec;
    int lm_head_tied;      /* 1 if lm_head shares the embedding (no thinker.lm_head.weight) */
    size_t n_params;       /* parameters loaded */
    st_model_t *st;        /* the checkpoint, kept mapped when a weight reads it in place */
} model_t;

/* Load config.json and every tensor of the checkpoint in dir onto the backend.
 * -1 + qasr_fail() naming the file/tensor on any problem. upload 0: allocate every weight and
 * check every tensor's header, but read no data (the backend's broadcast_weights fills them). */
int model_load(model_t *m, const char *dir, backend_ref_t bk, int upload);
void model_free(model_t *m);

/* ---- encoder (encoder.c) ---- */

/* One utterance on its way through the front end and the encoder. */
typedef struct {
    const float *samples; /* 16 kHz mono, at least MEL_MIN_SAMPLES */
    int64_t n_samples;
    void *out;            /* [A][Hd] audio embeddings, A = model_audio_tokens(m, n_samples);
                           * the caller allocates (buf_alloc) */
} enc_item_t;

/* Audio embeddings of n_samples of audio: the encoder's output rows (A). */
int model_audio_tokens(const model_t *m, int64_t n_samples);

/* Log-mel and encoder for n utterances together (all their conv chunks and attention windows
 * batched). max_rows bounds the rows of one pass (memory); 0 = everything in one pass.
 * 0, or -1 + qasr_fail() when backend memory runs out or the device fails. */
int encoder_forward(const model_t *m, const enc_item_t *items, int n, int max_rows, observer_t *ob);

/* ---- decoder (decoder.c) ---- */

/* Rows copied from a sequence's audio embeddings into the step's input (replacing the
 * embeddings of its <|audio_pad|> tokens). */
typedef struct {
    const void *src;   /* [*][Hd] encoder output of the sequence */
    int src_row;       /* first audio row used */
    int dst_row;       /* first step row it lands in */
    int n;
} audio_span_t;

/* One decoder step over a mix of prefill rows and decode rows of several sequences. */
typedef struct {
    int n_rows;
    const int *ids;           /* [n_rows] input token ids; < 0: the previous step's kept token of
                               * out row -ids[i] - 1 (backend.h fetch_ids) */
    const int *pos;           /* [n_rows] positions */
    const int *slot;          /* [n_rows] KV slot: page * page_size + offset */
    const int *row_seq;       /* [n_rows] index into block_tables */
    const int *ctx_len;       /* [n_rows] keys visible: pos + 1 */
    const int *block_tables;  /* [n_seqs][max_blocks] */
    int n_seqs, max_blocks, max_ctx;
    const audio_span_t *audio;
    int n_audio;
    const int *out_rows;      /* [n_out] rows whose next token is wanted */
    int n_out;
    int prefill;              /* the step has prompt rows (its layers are the prefill stage) */
    int graph;                /* a decode step may run as a graph (backend.h step_begin) ... */
    int pad_page, pad_slot;   /* ... padded to its size by rows that write to this KV page (and
                               * its first slot), which no sequence reads */
} dec_batch_t;

/* Run the step; writes the greedy next token of each out row to h_next[n_out] (their logits go
 * to the observer as "logits" [n_out][V]); h_next NULL (backends with fetch_ids): keeps them on
 * the device for the next step and fetch_ids, and returns without waiting for the step. 0, or
 * -1 + qasr_fail() when backend memory runs out or the device fails (h_next is then undefined). */
int decoder_forward(const model_t *m, kv_cache_t *kv, const dec_batch_t *b, int *h_next, observer_t *ob);

#endif
