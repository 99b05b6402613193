/* Audio encoder ("AuT"), spec section 5, for a batch of utterances at once.
 *
 * Per utterance: T mel frames -> conv chunks of 2*n_window (100) frames, the short tail chunk
 * zero-padded to 100 (a clip shorter than one chunk runs unpadded at its own width) ->
 * conv stem (3x [3x3 stride-2 conv + GELU]) -> channel-major flatten -> conv_out -> sinusoid
 * positions restarting at 0 in every chunk -> valid rows of all chunks packed (A rows).
 * Then L layers: LayerNorm -> q|k|v -> attention inside windows of 8 chunks (104 tokens) ->
 * out_proj + residual -> LayerNorm -> fc1 -> GELU -> fc2 + residual; finally ln_post ->
 * proj1 -> GELU -> proj2: A audio embeddings of the decoder's width.
 *
 * Windows never interact, so the work is cut into passes of whole windows (from any
 * utterances) bounded by max_rows: memory stays flat however long the audio is. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model.h"
#include "tap.h"
#include "util.h"

/* Conv chunks per conv-stem call: bounds the im2col/activation memory of the stem. */
#define CONV_BATCH 8

typedef struct {
    int item, start, len, width, valid; /* frames [start, start+len), run at width, valid rows */
} chunk_t;

typedef struct {
    int item, first_chunk, n_chunks, rows, out_row; /* out_row: first row in the item's output */
} window_t;

typedef struct {
    chunk_t *chunks;
    window_t *windows;
    int n_chunks, n_windows;
} enc_plan_t;

static void plan_build(enc_plan_t *p, const model_config_t *c, const enc_item_t *items, int n)
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
 * returns its flop. */
static double conv_stem(const model_t *m, const enc_item_t *item, const chunk_t *chunks, int N, void *X)
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
    o->mel_chunks(be, in, item->mel, o->ints(be, start, N), o->ints(be, len, N), N, c->n_mels, W);
    void *c1 = o->scratch(be, (size_t)Cc * N * H1 * W1);
    o->conv3x3s2_gelu(be, c1, in, e->conv1_w, e->conv1_b, 1, Cc, N, c->n_mels, W);
    void *c2 = o->scratch(be, (size_t)Cc * N * H2 * W2);
    o->conv3x3s2_gelu(be, c2, c1, e->conv2_w, e->conv2_b, Cc, Cc, N, H1, W1);
    void *c3 = o->scratch(be, (size_t)Cc * N * H3 * W3);
    o->conv3x3s2_gelu(be, c3, c2, e->conv3_w, e->conv3_b, Cc, Cc, N, H2, W2);
    void *flat = o->scratch(be, (size_t)N * W3 * Cc * H3);
    o->conv_flatten(be, flat, c3, Cc, N, H3, W3);
    void *y = o->scratch(be, (size_t)N * W3 * D);
    o->matmul(be, y, flat, e->conv_out_w, NULL, N * W3, Cc * H3, D, 0);
    o->add_pos_emb(be, y, e->pos_emb, N * W3, W3, D);
    o->gather_rows(be, X, y, o->ints(be, idx, n_valid), n_valid, D);
    o->scratch_release(be, mark);
    return 2.0 * 9 * N * Cc * (H1 * W1 + (double)Cc * (H2 * W2 + H3 * W3)) + 2.0 * N * W3 * Cc * H3 * D;
}

/* Returns its flop. */
static double layers_and_head(const model_t *m, void *X, int rows, const int *win_start,
                              const int *win_len, int n_win, void *out, tap_t *tap)
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
    for (int i = 0; i < c->enc_layers; i++) {
        const enc_layer_t *l = &e->layers[i];
        o->layernorm(be, h, X, l->ln1_w, l->ln1_b, rows, D, eps);
        o->matmul(be, qkv, h, l->wqkv, l->bqkv, rows, D, 3 * D, 0);
        o->window_attention(be, att, qkv, ws, wl, n_win, c->enc_heads, c->enc_head_dim, scale);
        o->matmul(be, X, att, l->wo, l->bo, rows, D, D, 1);
        o->layernorm(be, h, X, l->ln2_w, l->ln2_b, rows, D, eps);
        o->matmul(be, f, h, l->fc1_w, l->fc1_b, rows, D, F, 0);
        o->gelu(be, f, (size_t)rows * F);
        o->matmul(be, X, f, l->fc2_w, l->fc2_b, rows, F, D, 1);
        if (tap) {
            char name[32];
            snprintf(name, sizeof name, "enc_layer_%02d", i);
            tap_tensor(tap, m->bk, name, X, rows, D);
        }
    }
    o->layernorm(be, h, X, e->ln_post_w, e->ln_post_b, rows, D, eps);
    o->matmul(be, att, h, e->proj1_w, e->proj1_b, rows, D, D, 0);
    o->gelu(be, att, (size_t)rows * D);
    o->matmul(be, out, att, e->proj2_w, e->proj2_b, rows, D, c->enc_out, 0);
    o->scratch_release(be, mark);
    double attn = 0.0; /* q.k and p.v: 2 * L^2 * D each per window */
    for (int w = 0; w < n_win; w++) attn += 4.0 * win_len[w] * win_len[w] * D;
    return c->enc_layers * (2.0 * rows * (4.0 * D * D + 2.0 * D * F) + attn) +
           2.0 * rows * D * ((double)D + c->enc_out);
}

/* One pass over windows [w0, w1) of the plan. */
static void encode_pass(const model_t *m, enc_item_t *items, const enc_plan_t *p, int w0, int w1,
                        fwd_prof_t *prof, tap_t *tap)
{
    const backend_ops_t *o = m->bk.ops;
    backend_t *be = m->bk.be;
    const int D = m->cfg.enc_d, Hd = m->cfg.enc_out, n_win = w1 - w0;
    int rows = 0;
    int *win_start = xmalloc(n_win * sizeof(int)), *win_len = xmalloc(n_win * sizeof(int));
    for (int w = w0; w < w1; w++) {
        win_start[w - w0] = rows;
        win_len[w - w0] = p->windows[w].rows;
        rows += p->windows[w].rows;
    }
    const size_t mark = o->scratch_mark(be);
    void *X = o->scratch(be, (size_t)rows * D);
    void *out = o->scratch(be, (size_t)rows * Hd);
    const int c0 = p->windows[w0].first_chunk;
    const int c1 = p->windows[w1 - 1].first_chunk + p->windows[w1 - 1].n_chunks;
    int dst = 0;
    double t = prof_clock(m, prof), conv_flop = 0.0;
    for (int k = c0; k < c1;) { /* runs of chunks of one utterance, CONV_BATCH at a time */
        int n = 1, valid = p->chunks[k].valid;
        while (k + n < c1 && n < CONV_BATCH && p->chunks[k + n].item == p->chunks[k].item)
            valid += p->chunks[k + n++].valid;
        conv_flop += conv_stem(m, &items[p->chunks[k].item], &p->chunks[k], n, act_offset(o, X, (size_t)dst * D));
        dst += valid;
        k += n;
    }
    prof_add(m, prof, STAGE_CONV, &t, conv_flop);
    tap_tensor(tap, m->bk, "enc_conv", X, rows, D);
    const double layer_flop = layers_and_head(m, X, rows, win_start, win_len, n_win, out, tap);
    prof_add(m, prof, STAGE_ENC_LAYERS, &t, layer_flop);
    tap_tensor(tap, m->bk, "enc_out", out, rows, Hd);
    for (int w = w0; w < w1; w++) {
        const window_t *win = &p->windows[w];
        o->copy(be, act_offset(o, items[win->item].out, (size_t)win->out_row * Hd),
                act_offset(o, out, (size_t)win_start[w - w0] * Hd), (size_t)win->rows * Hd);
    }
    o->scratch_release(be, mark);
    free(win_start);
    free(win_len);
}

void encoder_forward(const model_t *m, enc_item_t *items, int n, int max_rows, fwd_prof_t *prof,
                     tap_t *tap)
{
    enc_plan_t p;
    plan_build(&p, &m->cfg, items, n);
    for (int w0 = 0; w0 < p.n_windows;) {
        int w1 = w0 + 1, rows = p.windows[w0].rows;
        while (w1 < p.n_windows && (max_rows <= 0 || rows + p.windows[w1].rows <= max_rows))
            rows += p.windows[w1++].rows;
        encode_pass(m, items, &p, w0, w1, prof, tap);
        w0 = w1;
    }
    free(p.chunks);
    free(p.windows);
}
