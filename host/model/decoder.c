/* Text decoder (Qwen3), spec section 6: one step over the rows of several sequences, each row
 * either a prompt token being prefilled or the last generated token being decoded.
 *
 * Embeddings (audio rows replaced by encoder output) -> per layer:
 *   RMSNorm -> q|k|v -> per-head RMSNorm of q and k, RoPE, k and v into the paged cache (one op)
 *   -> causal GQA attention over the cache -> o_proj -> residual + RMSNorm (one op)
 *   -> gate|up -> SiLU(gate) * up -> down -> residual (+ the next layer's RMSNorm, one op)
 * -> final RMSNorm and LM head on the rows whose next token is wanted -> greedy argmax (the
 * aligner: its timestamp-class head at the slot rows, aligner spec 7). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

/* The step; with key != 0 as a graph of that key (backend.h step_begin): 1 when the backend did
 * not run it (a failed capture). */
static int forward(const model_t *m, kv_cache_t *kv, const dec_batch_t *b, int *h_next, observer_t *ob,
                   uint64_t key)
{
    const backend_ops_t *o = m->bk.ops;
    backend_t *be = m->bk.be;
    const model_config_t *c = &m->cfg;
    const decoder_weights_t *w = &m->dec;
    const int n = b->n_rows, Hd = c->dec_hidden, Dh = c->dec_head_dim, Hq = c->dec_heads,
              Hkv = c->dec_kv_heads, I = c->dec_inter, QKV = (Hq + 2 * Hkv) * Dh;
    const float eps = c->rms_eps;
    const size_t mark = o->scratch_mark(be);
    int rc = -1;

    if (key) o->step_begin(be, key);
    const int *pos = o->ints(be, b->pos, n), *slot = o->ints(be, b->slot, n), *ids = o->ints(be, b->ids, n);
    const int *out_rows = b->n_out > 0 ? o->ints(be, b->out_rows, b->n_out) : NULL;
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
    void *xo = b->n_out > 0 ? o->scratch(be, (size_t)b->n_out * Hd) : NULL;
    void *logits = b->n_out > 0 ? o->scratch(be, (size_t)b->n_out * c->head_rows) : NULL;
    if (!pos || !slot || !ids || !attn.ctx_len || !attn.row_seq || !attn.block_tables || !x || !h || !qkv || !att ||
        !gu || !act || (b->n_out > 0 && (!out_rows || !xo || !logits)))
        goto done;

    for (int r = 0; r < n; r++) QASR_ASSERT(b->pos[r] >= 0 && b->pos[r] < c->max_positions); /* the RoPE table's rows */
    observe_begin(ob);
    o->embed(be, x, w->embed, ids, n, Hd);
    for (int a = 0; a < b->n_audio; a++) {
        const audio_span_t *s = &b->audio[a];
        o->copy(be, act_offset(o, x, (size_t)s->dst_row * Hd),
                act_offset(o, s->src, (size_t)s->src_row * Hd), (size_t)s->n * Hd);
    }
    observe_tensor(ob, "dec_embed", x, n, Hd);

    /* Each residual add is fused with the norm after it (the next layer's input norm after the
     * MLP; nothing after the last layer's, whose rows get the final norm once gathered): the
     * projections write their output to h, which add_rmsnorm folds into x. */
    o->rmsnorm(be, h, x, w->layers[0].in_norm, n, Hd, eps);
    for (int i = 0; i < c->dec_layers; i++) {
        const dec_layer_t *l = &w->layers[i];
        const weight_t *next_norm = i + 1 < c->dec_layers ? w->layers[i + 1].in_norm : NULL;
        o->matmul(be, qkv, h, l->wqkv, NULL, n, Hd, QKV, 0);
        o->qk_norm_rope_store(be, kv, i, qkv, l->q_norm, l->k_norm, w->rope, pos, slot, n, Hq, Hkv, Dh, eps);
        o->paged_attention(be, att, qkv, kv, i, &attn);
        o->matmul(be, h, att, l->wo, NULL, n, Hq * Dh, Hd, 0);
        o->add_rmsnorm(be, h, x, h, l->post_norm, n, Hd, eps);
        o->matmul(be, gu, h, l->w_gate_up, NULL, n, Hd, 2 * I, 0);
        o->swiglu(be, act, gu, n, I);
        o->matmul(be, h, act, l->w_down, NULL, n, I, Hd, 0);
        o->add_rmsnorm(be, next_norm ? h : NULL, x, h, next_norm, n, Hd, eps);
        if (observe_tensors(ob)) {
            char name[32];
            snprintf(name, sizeof name, "dec_layer_%02d", i);
            observe_tensor(ob, name, x, n, Hd);
        }
    }

    double keys = 0.0; /* q.k and p.v: 2 * ctx * Hq * Dh each per row */
    for (int r = 0; r < n; r++) keys += b->ctx_len[r];
    observe_stage(ob, b->prefill ? STAGE_PREFILL : STAGE_DECODE,
                  c->dec_layers * (2.0 * n * Hd * ((double)QKV + Hq * Dh + 3.0 * I) + 4.0 * keys * Hq * Dh));
    if (b->n_out > 0) {
        o->gather_rows(be, xo, x, out_rows, b->n_out, Hd);
        o->rmsnorm(be, xo, xo, w->norm, b->n_out, Hd, eps);
        o->matmul(be, logits, xo, w->lm_head, NULL, b->n_out, Hd, c->head_rows, 0);
        observe_tensor(ob, "logits", logits, b->n_out, c->head_rows);
        o->argmax(be, h_next, logits, b->n_out, c->head_rows);
        observe_stage(ob, STAGE_LM_HEAD, 2.0 * b->n_out * Hd * c->head_rows);
    }
    rc = 0;
done:
    if (key) {
        const int ran = o->step_end(be);
        rc = rc == 0 ? ran : rc;
    }
    o->scratch_release(be, mark);
    if (rc == 1) return 1;
    return backend_check(&m->bk) != 0 ? -1 : rc; /* an op that could not run, a failed device */
}

/* Rows of a decode step's graph: n rounded up to one of four sizes per octave (1 .. 7, 8, 10, 12,
 * 14, 16, 20, ...), so at most a quarter of the rows are padding while a batch of B sequences
 * makes about 4 log2(B) graphs (their capture costs time and device memory once each). */
static int graph_rows(int n)
{
    int lg = 0;
    while ((2 << lg) <= n) lg++;
    const int q = 1 << MAX(0, lg - 2);
    return CEIL_DIV(n, q) * q;
}

/* A decode step (one row per sequence, each row's token wanted) as a graph: rows padded to
 * graph_rows, each row's block table its own ([R][MB] with MB the power of two at or above the
 * longest table, padded with pad_page), so that every size and address is the same for all
 * steps of one (R, MB). Padding rows decode token ids[0] at position 0 into pad_slot and see only
 * that key; their tokens are dropped (kept ones come after the n real ones, which fetch_ids
 * copies). 1 when it did not run (run it directly). */
static int graph_step(const model_t *m, kv_cache_t *kv, const dec_batch_t *b, int *h_next)
{
    const int n = b->n_rows, R = graph_rows(n);
    int MB = 1;
    while (MB < b->max_blocks) MB *= 2;
    int *a = xmalloc(((size_t)6 * R + (size_t)R * MB) * sizeof(int));
    int *ids = a, *pos = a + R, *slot = a + 2 * R, *row = a + 3 * R, *ctx = a + 4 * R, *next = a + 5 * R;
    int *tables = a + 6 * R;
    for (int i = 0; i < R; i++) {
        const int real = i < n;
        QASR_ASSERT(!real || b->out_rows[i] == i);
        ids[i] = b->ids[real ? i : 0];
        pos[i] = real ? b->pos[i] : 0;
        slot[i] = real ? b->slot[i] : b->pad_slot;
        ctx[i] = real ? b->ctx_len[i] : 1;
        row[i] = i;
        int *t = tables + (size_t)i * MB, k = 0;
        if (real)
            for (; k < b->max_blocks; k++) t[k] = b->block_tables[(size_t)b->row_seq[i] * b->max_blocks + k];
        for (; k < MB; k++) t[k] = b->pad_page;
    }
    dec_batch_t g = *b;
    g.n_rows = g.n_out = g.n_seqs = R;
    g.ids = ids, g.pos = pos, g.slot = slot, g.row_seq = row, g.ctx_len = ctx, g.out_rows = row;
    g.block_tables = tables, g.max_blocks = MB;
    const int rc = forward(m, kv, &g, h_next ? next : NULL, NULL, (uint64_t)MB << 32 | (uint64_t)R);
    if (rc == 0 && h_next) memcpy(h_next, next, (size_t)n * sizeof(int));
    free(a);
    return rc;
}

int decoder_forward(const model_t *m, kv_cache_t *kv, const dec_batch_t *b, int *h_next, observer_t *ob)
{
    /* graphs for steps of decode rows only; an observer syncs and reads tensors inside the step */
    if (!b->graph || b->prefill || b->n_audio || b->n_out != b->n_rows || !m->bk.ops->step_begin || ob)
        return forward(m, kv, b, h_next, ob, 0);
    const int rc = graph_step(m, kv, b, h_next);
    return rc == 1 ? forward(m, kv, b, h_next, ob, 0) : rc;
}
