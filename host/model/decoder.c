/* Text decoder (Qwen3), spec section 6: one step over the rows of several sequences, each row
 * either a prompt token being prefilled or the last generated token being decoded.
 *
 * Embeddings (audio rows replaced by encoder output) -> per layer:
 *   RMSNorm -> q|k|v -> per-head RMSNorm of q and k -> RoPE -> store k, v in the paged cache
 *   -> causal GQA attention over the cache -> o_proj + residual
 *   -> RMSNorm -> gate|up -> SiLU(gate) * up -> down + residual
 * -> final RMSNorm and LM head on the rows whose next token is wanted -> greedy argmax. */
#include <math.h>
#include <stdio.h>

#include "model.h"
#include "tap.h"
#include "util.h"

void decoder_forward(const model_t *m, void *kv, const dec_batch_t *b, int *h_next,
                     float *h_logits, fwd_prof_t *prof, tap_t *tap)
{
    const backend_ops_t *o = m->bk.ops;
    backend_t *be = m->bk.be;
    const model_config_t *c = &m->cfg;
    const decoder_weights_t *w = &m->dec;
    const int n = b->n_rows, Hd = c->dec_hidden, Dh = c->dec_head_dim, Hq = c->dec_heads,
              Hkv = c->dec_kv_heads, I = c->dec_inter, QKV = (Hq + 2 * Hkv) * Dh;
    const float eps = c->rms_eps;
    const size_t mark = o->scratch_mark(be);

    const int *pos = o->ints(be, b->pos, n), *slot = o->ints(be, b->slot, n);
    const paged_attn_t attn = {
        .n_rows = n, .n_heads = Hq, .n_kv_heads = Hkv, .head_dim = Dh, .q_stride = QKV,
        .scale = 1.0f / sqrtf((float)Dh),
        .ctx_len = o->ints(be, b->ctx_len, n),
        .row_seq = o->ints(be, b->row_seq, n),
        .block_tables = o->ints(be, b->block_tables, (size_t)b->n_seqs * b->max_blocks),
        .max_blocks = b->max_blocks, .max_ctx = b->max_ctx,
    };
    void *x = o->scratch(be, (size_t)n * Hd);
    void *h = o->scratch(be, (size_t)n * Hd);
    void *qkv = o->scratch(be, (size_t)n * QKV);
    void *att = o->scratch(be, (size_t)n * Hq * Dh);
    void *gu = o->scratch(be, (size_t)n * 2 * I);
    void *act = o->scratch(be, (size_t)n * I);

    double t = prof_clock(m, prof);
    o->embed(be, x, w->embed, o->ints(be, b->ids, n), n, Hd);
    for (int a = 0; a < b->n_audio; a++) {
        const audio_span_t *s = &b->audio[a];
        o->copy(be, act_offset(o, x, (size_t)s->dst_row * Hd),
                act_offset(o, s->src, (size_t)s->src_row * Hd), (size_t)s->n * Hd);
    }
    tap_tensor(tap, m->bk, "dec_embed", x, n, Hd);

    for (int i = 0; i < c->dec_layers; i++) {
        const dec_layer_t *l = &w->layers[i];
        o->rmsnorm(be, h, x, l->in_norm, n, Hd, eps);
        o->matmul(be, qkv, h, l->wqkv, NULL, n, Hd, QKV, 0);
        o->qk_norm_rope(be, qkv, l->q_norm, l->k_norm, pos, n, Hq, Hkv, Dh, eps, c->rope_theta);
        o->kv_store(be, kv, i, qkv, slot, n, Hq, Hkv, Dh);
        o->paged_attention(be, att, qkv, kv, i, &attn);
        o->matmul(be, x, att, l->wo, NULL, n, Hq * Dh, Hd, 1);
        o->rmsnorm(be, h, x, l->post_norm, n, Hd, eps);
        o->matmul(be, gu, h, l->w_gate_up, NULL, n, Hd, 2 * I, 0);
        o->swiglu(be, act, gu, n, I);
        o->matmul(be, x, act, l->w_down, NULL, n, I, Hd, 1);
        if (tap) {
            char name[32];
            snprintf(name, sizeof name, "dec_layer_%02d", i);
            tap_tensor(tap, m->bk, name, x, n, Hd);
        }
    }

    double keys = 0.0; /* q.k and p.v: 2 * ctx * Hq * Dh each per row */
    for (int r = 0; r < n; r++) keys += b->ctx_len[r];
    prof_add(m, prof, STAGE_DEC_LAYERS, &t,
             c->dec_layers * (2.0 * n * Hd * ((double)QKV + Hq * Dh + 3.0 * I) + 4.0 * keys * Hq * Dh));
    if (b->n_out > 0) {
        void *xo = o->scratch(be, (size_t)b->n_out * Hd);
        void *logits = o->scratch(be, (size_t)b->n_out * c->vocab);
        o->gather_rows(be, xo, x, o->ints(be, b->out_rows, b->n_out), b->n_out, Hd);
        o->rmsnorm(be, xo, xo, w->norm, b->n_out, Hd, eps);
        o->matmul(be, logits, xo, w->lm_head, NULL, b->n_out, Hd, c->vocab, 0);
        if (h_logits) o->download(be, h_logits, logits, (size_t)b->n_out * c->vocab);
        o->argmax(be, h_next, logits, b->n_out, c->vocab);
        prof_add(m, prof, STAGE_LM_HEAD, &t, 2.0 * b->n_out * Hd * c->vocab);
    }
    o->scratch_release(be, mark);
}
