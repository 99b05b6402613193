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

#include "backend.h"
#include "config.h"
#include "util.h"

typedef struct {
    void *ln1_w, *ln1_b;   /* [D] self_attn_layer_norm */
    void *wqkv, *bqkv;     /* [3D][D], [3D] */
    void *wo, *bo;         /* [D][D], [D] out_proj */
    void *ln2_w, *ln2_b;   /* [D] final_layer_norm */
    void *fc1_w, *fc1_b;   /* [F][D], [F] */
    void *fc2_w, *fc2_b;   /* [D][F], [D] */
} enc_layer_t;

typedef struct {
    void *conv1_w, *conv1_b; /* [C][1][3][3], [C] */
    void *conv2_w, *conv2_b; /* [C][C][3][3], [C] */
    void *conv3_w, *conv3_b; /* [C][C][3][3], [C] */
    void *conv_out_w;        /* [D][C*Fq] */
    void *pos_emb;           /* [tokens_per_chunk][D] sinusoids (computed, not stored) */
    enc_layer_t *layers;
    void *ln_post_w, *ln_post_b; /* [D] */
    void *proj1_w, *proj1_b;     /* [D][D], [D] */
    void *proj2_w, *proj2_b;     /* [Hd][D], [Hd] */
} encoder_weights_t;

typedef struct {
    void *in_norm;         /* [Hd] input_layernorm */
    void *wqkv;            /* [(Hq + 2 Hkv) Dh][Hd] */
    void *q_norm, *k_norm; /* [Dh] */
    void *wo;              /* [Hd][Hq Dh] */
    void *post_norm;       /* [Hd] post_attention_layernorm */
    void *w_gate_up;       /* [2I][Hd] */
    void *w_down;          /* [Hd][I] */
} dec_layer_t;

typedef struct {
    void *embed;           /* [V][Hd] */
    dec_layer_t *layers;
    void *norm;            /* [Hd] */
    void *lm_head;         /* [V][Hd]; == embed when the checkpoint has no separate head */
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
 * check every tensor's header, but read no data (backend_broadcast_weights fills them). */
int model_load(model_t *m, const char *dir, backend_ref_t bk, int upload);
void model_free(model_t *m);

/* ---- optional tensor dumps for the reference comparison (see tap.h) ---- */
typedef struct tap tap_t;

/* ---- optional stage timing ---- */
/* Seconds and floating-point operations (matrix products and attention, 2 per multiply-add)
 * of one stage. A forward call given a fwd_prof_t syncs the backend at its stage edges, so
 * the times are true on asynchronous devices too (at the cost of those syncs). */
typedef enum {
    STAGE_CONV,       /* conv stem, flatten, conv_out, positions */
    STAGE_ENC_LAYERS, /* encoder layers and output projections */
    STAGE_DEC_LAYERS, /* embeddings and decoder layers */
    STAGE_LM_HEAD,    /* final norm, LM head, argmax */
    N_FWD_STAGES
} fwd_stage_t;

typedef struct {
    double seconds[N_FWD_STAGES], flop[N_FWD_STAGES];
} fwd_prof_t;

/* Now, once the backend has finished its queued work; 0 (and no sync) when p is NULL. */
static inline double prof_clock(const model_t *m, const fwd_prof_t *p)
{
    if (!p) return 0.0;
    m->bk.ops->sync(m->bk.be);
    return now_seconds();
}

/* Charge the time since *t (a prof_clock value) and flop to stage s; *t moves to now. */
static inline void prof_add(const model_t *m, fwd_prof_t *p, fwd_stage_t s, double *t, double flop)
{
    if (!p) return;
    const double now = prof_clock(m, p);
    p->seconds[s] += now - *t;
    p->flop[s] += flop;
    *t = now;
}

/* ---- encoder (encoder.c) ---- */

/* Audio of one utterance on its way through the encoder. */
typedef struct {
    const void *mel;   /* [T][n_mels] from ops->log_mel */
    int frames;        /* T */
    void *out;         /* [A][Hd] audio embeddings, A = config_audio_tokens(T); caller allocates */
} enc_item_t;

/* Encode n utterances together (all their conv chunks and attention windows batched).
 * max_rows bounds the rows of one pass (memory); 0 = everything in one pass. */
void encoder_forward(const model_t *m, enc_item_t *items, int n, int max_rows, fwd_prof_t *prof,
                     tap_t *tap);

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
    const int *ids;           /* [n_rows] input token ids */
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
} dec_batch_t;

/* Run the step; writes the greedy next token of each out row to h_next[n_out], and, when
 * h_logits is not NULL, the out rows' logits to h_logits[n_out][V] (for comparisons). */
void decoder_forward(const model_t *m, void *kv, const dec_batch_t *b, int *h_next,
                     float *h_logits, fwd_prof_t *prof, tap_t *tap);

#endif
