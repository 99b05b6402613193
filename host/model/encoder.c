/* Front end and audio encoder ("AuT"), spec sections 4 and 5, for a batch of utterances at once.
 *
 * Per utterance: log-mel of the samples (log_mel_batch, one call for all) -> T mel frames -> conv chunks
 * of 2*n_window (100) frames, the short tail chunk zero-padded to 100 (a clip shorter than one chunk runs unpadded at its own width) ->
 * conv stem (3x [3x3 stride-2 conv + GELU]) -> channel-major flatten -> conv_out -> sinusoid
 * positions restarting at 0 in every chunk -> valid rows of all chunks packed (A rows).
 * Then L layers: LayerNorm -> q|k|v -> attention inside windows of 8 chunks (104 tokens) ->
 * out_proj + residual -> LayerNorm -> fc1 -> GELU -> fc2 + residual (each residual add in one op
 * with the LayerNorm after it); finally ln_post -> proj1 -> GELU -> proj2: A audio embeddings of
 * the decoder's width.
 *
 * Windows never interact, so the work is cut into passes of whole windows (from any
 * utterances) bounded by max_rows: memory stays flat however long the audio is. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "mel.h"
#include "model.h"
#include "util.h"

/* Conv chunks per conv-stem call: bounds the im2col/activation memory of the stem. */
#define CONV_BATCH 8

typedef struct {
    int item, start, len, width, valid; /* frames [start, start+len), run at width, valid rows */
} chunk_t;

typedef struct {
    int item, first_chunk, n_chunks, rows, out_row; /* out_row: first row in the item's output */
} window_t;

/* One utterance's log-mel, [T][n_mels] on the backend. */
typedef struct {
    void *mel;
    int frames; /* T */
} enc_mel_t;

typedef struct {
    chunk_t *chunks;
    window_t *windows;
    int n_chunks, n_windows;
} enc_plan_t;

int model_audio_tokens(const model_t *m, int64_t n_samples)
{
    return config_audio_tokens(&m->cfg, (int)mel_frames(n_samples));
}

static void plan_build(enc_plan_t *p, const model_config_t *c, const enc_mel_t *items, int n)
{
    const int C = config_conv_chunk(c), per_window = c->n_window_infer / C;
    int max_chunks = 0;
    for (int u = 0; u < n; u++) max_chunks += CEIL_DIV(items[u].frames, C);
    p->chunks = xmalloc(max_chunks * sizeof *p->chunks);
    p->windows = xmalloc(max_chunks * sizeof *p->windows);
    p->n_chunks = p->n_windows = 0;
    for (int u = 0; u < n; u++) {
        const int T = items[u].frames, n_ch = CEIL_DIV(T, C);
        const int width = T >= C ? C : T; /* official: pad to the longest chunk of the utterance */
        int out_row = 0;
        for (int k0 = 0; k0 < n_ch; k0 += per_window) {
            window_t *w = &p->windows[p->n_windows++];
            *w = (window_t){ .item = u, .first_chunk = p->n_chunks, .out_row = out_row };
            for (int k = k0; k < MIN(n_ch, k0 + per_window); k++) {
                const int start = k * C, len = MIN(C, T - start);
                const int valid = config_audio_tokens(c, len);
                p->chunks[p->n_chunks++] = (chunk_t){ u, start, len, width, valid };
                w->n_chunks++;
                w->rows += valid;
            }
            out_row += w->rows;
        }
    }
}

/* Conv stem of chunks[0..N-1] (same utterance, same width) into X rows [dst, dst + valid);
 * adds its flop to *flop. 0, or -1 when scratch memory runs out. */
static int conv_stem(const model_t *m, const enc_mel_t *item, const chunk_t *chunks, int N, void *X, double *flop)
{
    const backend_ops_t *o = m->bk.ops;
    backend_t *be = m->bk.be;
    const model_config_t *c = &m->cfg;
    const encoder_weights_t *e = &m->enc;
    const int Cc = c->conv_ch, D = c->enc_d, W = chunks[0].width;
    const int H1 = (c->n_mels - 1) / 2 + 1, H2 = (H1 - 1) / 2 + 1, H3 = (H2 - 1) / 2 + 1;
    const int W1 = (W - 1) / 2 + 1, W2 = (W1 - 1) / 2 + 1, W3 = (W2 - 1) / 2 + 1;
    int start[CONV_BATCH], len[CONV_BATCH], idx[CONV_BATCH * 64], n_valid = 0;
    QASR_ASSERT(N <= CONV_BATCH && W3 <= 64);
    for (int k = 0; k < N; k++) {
        start[k] = chunks[k].start;
        len[k] = chunks[k].len;
        for (int r = 0; r < chunks[k].valid; r++) idx[n_valid++] = k * W3 + r;
    }
    const size_t mark = o->scratch_mark(be);
    void *in = o->scratch(be, (size_t)N * c->n_mels * W);
    void *c1 = o->scratch(be, (size_t)Cc * N * H1 * W1);
    void *c2 = o->scratch(be, (size_t)Cc * N * H2 * W2);
    void *c3 = o->scratch(be, (size_t)Cc * N * H3 * W3);
    const int *d_start = o->ints(be, start, N), *d_len = o->ints(be, len, N), *d_idx = o->ints(be, idx, n_valid);
    if (!in || !c1 || !c2 || !c3 || !d_start || !d_len || !d_idx) {
        o->scratch_release(be, mark);
        return -1;
    }
    o->mel_chunks(be, in, item->mel, d_start, d_len, N, c->n_mels, W);
    o->conv3x3s2_gelu(be, c1, in, e->conv1_w, e->conv1_b, 1, Cc, N, c->n_mels, W);
    o->conv3x3s2_gelu(be, c2, c1, e->conv2_w, e->conv2_b, Cc, Cc, N, H1, W1);
    o->conv3x3s2_gelu(be, c3, c2, e->conv3_w, e->conv3_b, Cc, Cc, N, H2, W2);
    /* after the convolutions, whose im2col work space is the stem's peak */
    void *flat = o->scratch(be, (size_t)N * W3 * Cc * H3);
    void *y = o->scratch(be, (size_t)N * W3 * D);
    if (!flat || !y) {
        o->scratch_release(be, mark);
        return -1;
    }
    o->conv_flatten(be, flat, c3, Cc, N, H3, W3);
    o->matmul(be, y, flat, e->conv_out_w, NULL, N * W3, Cc * H3, D, 0);
    o->add_pos_emb(be, y, e->pos_emb, N * W3, W3, D);
    o->gather_rows(be, X, y, d_idx, n_valid, D);
    o->scratch_release(be, mark);
    *flop += 2.0 * 9 * N * Cc * (H1 * W1 + (double)Cc * (H2 * W2 + H3 * W3)) + 2.0 * N * W3 * Cc * H3 * D;
    return 0;
}

/* Encoder layers and output projections of X [rows][D] into out [rows][Hd]; adds the flop to
 * *flop. 0, or -1 when scratch memory runs out. */
static int layers_and_head(const model_t *m, void *X, int rows, const int *win_start, const int *win_len,
                           int n_win, void *out, double *flop, observer_t *ob)
{
    const backend_ops_t *o = m->bk.ops;
    backend_t *be = m->bk.be;
    const model_config_t *c = &m->cfg;
    const encoder_weights_t *e = &m->enc;
    const int D = c->enc_d, F = c->enc_ffn;
    const float eps = 1e-5f, scale = 1.0f / sqrtf((float)c->enc_head_dim);
    const size_t mark = o->scratch_mark(be);
    void *h = o->scratch(be, (size_t)rows * D);
    void *qkv = o->scratch(be, (size_t)rows * 3 * D);
    void *att = o->scratch(be, (size_t)rows * D);
    void *f = o->scratch(be, (size_t)rows * F);
    const int *ws = o->ints(be, win_start, n_win), *wl = o->ints(be, win_len, n_win);
    if (!h || !qkv || !att || !f || !ws || !wl) {
        o->scratch_release(be, mark);
        return -1;
    }
    /* Each residual add is fused with the LayerNorm after it (after the MLP: the next layer's
     * first norm, or ln_post after the last layer): the projections (their bias in the GEMM)
     * write to h, which add_layernorm folds into X. */
    o->layernorm(be, h, X, e->layers[0].ln1_w, e->layers[0].ln1_b, rows, D, eps);
    for (int i = 0; i < c->enc_layers; i++) {
        const enc_layer_t *l = &e->layers[i];
        const weight_t *next_w = i + 1 < c->enc_layers ? e->layers[i + 1].ln1_w : e->ln_post_w;
        const weight_t *next_b = i + 1 < c->enc_layers ? e->layers[i + 1].ln1_b : e->ln_post_b;
        o->matmul(be, qkv, h, l->wqkv, l->bqkv, rows, D, 3 * D, 0);
        o->window_attention(be, att, qkv, ws, wl, n_win, c->enc_heads, c->enc_head_dim, scale);
        o->matmul(be, h, att, l->wo, l->bo, rows, D, D, 0);
        o->add_layernorm(be, h, X, h, l->ln2_w, l->ln2_b, rows, D, eps);
        o->matmul(be, f, h, l->fc1_w, l->fc1_b, rows, D, F, 0);
        o->gelu(be, f, (size_t)rows * F);
        o->matmul(be, h, f, l->fc2_w, l->fc2_b, rows, F, D, 0);
        o->add_layernorm(be, h, X, h, next_w, next_b, rows, D, eps);
        if (observe_tensors(ob)) {
            char name[32];
            snprintf(name, sizeof name, "enc_layer_%02d", i);
            observe_tensor(ob, name, X, rows, D);
        }
    }
    o->matmul(be, att, h, e->proj1_w, e->proj1_b, rows, D, D, 0);
    o->gelu(be, att, (size_t)rows * D);
    o->matmul(be, out, att, e->proj2_w, e->proj2_b, rows, D, c->enc_out, 0);
    o->scratch_release(be, mark);
    double attn = 0.0; /* q.k and p.v: 2 * L^2 * D each per window */
    for (int w = 0; w < n_win; w++) attn += 4.0 * win_len[w] * win_len[w] * D;
    *flop += c->enc_layers * (2.0 * rows * (4.0 * D * D + 2.0 * D * F) + attn) + 2.0 * rows * D * ((double)D + c->enc_out);
    return 0;
}

/* One pass over windows [w0, w1) of the plan. 0, or -1 when scratch memory runs out. */
static int encode_pass(const model_t *m, const enc_item_t *items, const enc_mel_t *mels, const enc_plan_t *p,
                       int w0, int w1, observer_t *ob)
{
    const backend_ops_t *o = m->bk.ops;
    backend_t *be = m->bk.be;
    const int D = m->cfg.enc_d, Hd = m->cfg.enc_out, n_win = w1 - w0;
    int rows = 0, rc = -1;
    int *win_start = xmalloc(n_win * sizeof(int)), *win_len = xmalloc(n_win * sizeof(int));
    for (int w = w0; w < w1; w++) {
        win_start[w - w0] = rows;
        win_len[w - w0] = p->windows[w].rows;
        rows += p->windows[w].rows;
    }
    const size_t mark = o->scratch_mark(be);
    void *X = o->scratch(be, (size_t)rows * D);
    void *out = o->scratch(be, (size_t)rows * Hd);
    if (!X || !out) goto done;
    const int c0 = p->windows[w0].first_chunk;
    const int c1 = p->windows[w1 - 1].first_chunk + p->windows[w1 - 1].n_chunks;
    int dst = 0;
    double flop = 0.0;
    for (int k = c0; k < c1;) { /* runs of chunks of one utterance, CONV_BATCH at a time */
        int n = 1, valid = p->chunks[k].valid;
        while (k + n < c1 && n < CONV_BATCH && p->chunks[k + n].item == p->chunks[k].item)
            valid += p->chunks[k + n++].valid;
        if (conv_stem(m, &mels[p->chunks[k].item], &p->chunks[k], n, act_offset(o, X, (size_t)dst * D), &flop) != 0)
            goto done;
        dst += valid;
        k += n;
    }
    observe_stage(ob, STAGE_CONV, flop);
    observe_tensor(ob, "enc_conv", X, rows, D);
    flop = 0.0;
    if (layers_and_head(m, X, rows, win_start, win_len, n_win, out, &flop, ob) != 0) goto done;
    observe_stage(ob, STAGE_ENC_LAYERS, flop);
    observe_tensor(ob, "enc_out", out, rows, Hd);
    for (int w = w0; w < w1; w++) {
        const window_t *win = &p->windows[w];
        o->copy(be, act_offset(o, items[win->item].out, (size_t)win->out_row * Hd),
                act_offset(o, out, (size_t)win_start[w - w0] * Hd), (size_t)win->rows * Hd);
    }
    rc = 0;
done:
    o->scratch_release(be, mark);
    free(win_start);
    free(win_len);
    return rc;
}

/* The log-mel of each item into its own buffer (freed by the caller), in as few backend calls as
 * keep a call's frames within max_frames (<= 0: one call), the frames of one encoder pass: the
 * warm-up's pass then reaches the scratch peak of every call but that of a single longer item.
 * 0, or -1 when backend memory runs out. The dump is in the spec's layout, [n_mels][T]. */
static int front_end(const model_t *m, const enc_item_t *items, int n, enc_mel_t *mels, int64_t max_frames,
                     observer_t *ob)
{
    const backend_ops_t *o = m->bk.ops;
    backend_t *be = m->bk.be;
    const int n_mels = m->cfg.n_mels;
    void **outs = xmalloc(n * sizeof *outs);
    const float **samples = xmalloc(n * sizeof *samples);
    int64_t *n_samples = xmalloc(n * sizeof *n_samples);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        QASR_ASSERT(items[i].n_samples >= MEL_MIN_SAMPLES); /* callers reject shorter audio */
        mels[i].frames = (int)mel_frames(items[i].n_samples);
        if (!(mels[i].mel = o->buf_alloc(be, (size_t)mels[i].frames * n_mels))) rc = -1;
        outs[i] = mels[i].mel;
        samples[i] = items[i].samples;
        n_samples[i] = items[i].n_samples;
    }
    for (int i0 = 0; i0 < n && rc == 0;) {
        int i1 = i0 + 1;
        int64_t frames = mels[i0].frames;
        while (i1 < n && (max_frames <= 0 || frames + mels[i1].frames <= max_frames)) frames += mels[i1++].frames;
        o->log_mel_batch(be, outs + i0, samples + i0, n_samples + i0, i1 - i0, n_mels);
        i0 = i1;
    }
    for (int i = 0; i < n && rc == 0; i++)
        if (observe_tensors(ob)) ob->tensor(ob, "mel", mels[i].mel, mels[i].frames, n_mels, DUMP_TRANSPOSED);
    free(outs);
    free(samples);
    free(n_samples);
    return rc;
}

int encoder_forward(const model_t *m, const enc_item_t *items, int n, int max_rows, observer_t *ob)
{
    const backend_ops_t *o = m->bk.ops;
    enc_mel_t *mels = xcalloc(n, sizeof *mels);
    enc_plan_t p = { 0 };
    int rc = -1;
    observe_begin(ob);
    const int64_t pass_frames = max_rows > 0 ? (int64_t)max_rows / config_tokens_per_chunk(&m->cfg) * config_conv_chunk(&m->cfg) : 0;
    if (front_end(m, items, n, mels, pass_frames, ob) != 0) goto done;
    observe_stage(ob, STAGE_MEL, 0.0);
    plan_build(&p, &m->cfg, mels, n);
    for (int w0 = 0; w0 < p.n_windows;) {
        int w1 = w0 + 1, rows = p.windows[w0].rows;
        while (w1 < p.n_windows && (max_rows <= 0 || rows + p.windows[w1].rows <= max_rows))
            rows += p.windows[w1++].rows;
        if (encode_pass(m, items, mels, &p, w0, w1, ob) != 0) goto done;
        w0 = w1;
    }
    rc = 0;
done:
    for (int i = 0; i < n; i++)
        if (mels[i].mel) o->buf_free(m->bk.be, mels[i].mel);
    free(mels);
    free(p.chunks);
    free(p.windows);
    return backend_check(&m->bk) != 0 ? -1 : rc; /* an op that could not run, a failed device */
}
