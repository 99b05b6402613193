/* Device memory planned before the KV cache takes what is left (engine.h engine_warm_up).
 *
 * A device's KV cache defaults to most of its free memory. What a run needs beside it (the
 * scratch arena at its peak, cuBLAS and cuFFT workspaces, the caching allocator's blocks) only
 * appears as the first steps run: measured after the cache, it would have to be found mid-run,
 * where a failed allocation costs the files of that pass. So the largest passes a run with these
 * options makes are run once first, on synthetic input: a full encoder pass (as many seconds of
 * audio as fill one, within the per-step budget) and a decoder step of the full row budget with
 * an LM-head row per sequence (an aligner: per row). Their memory stays with the backend for the
 * run; the KV cache is then sized from what is left. The batch, when not given, is chosen between
 * the two passes (engine_default_max_seqs). A longer single input can still need a little more (its log-mel
 * grows with its length): that allocation failing is an error for that input, not an abort. */
#include <math.h>
#include <stdlib.h>

#include "audio.h"
#include "engine.h"
#include "util.h"

/* Seconds of audio in one full encoder pass: max_rows rows of tokens_per_chunk per second. */
static double pass_seconds(const model_t *m, const engine_opts_t *o)
{
    const model_config_t *c = &m->cfg;
    const double chunks = (double)o->enc_max_rows / config_tokens_per_chunk(c);
    return chunks * config_conv_chunk(c) * QASR_HOP / QASR_SAMPLE_RATE;
}

/* Samples of one full encoder pass. */
static int64_t pass_samples(const model_t *m, const engine_opts_t *o)
{
    const double seconds = MIN(o->enc_max_seconds, pass_seconds(m, o));
    return MAX((int64_t)(seconds * QASR_SAMPLE_RATE), MEL_MIN_SAMPLES);
}

/* Elements of the larger of a pass's log-mel and audio embeddings: a buffer a sequence holds. */
static size_t held_elems(const model_t *m, int64_t n)
{
    const size_t mel = (size_t)mel_frames(n) * m->cfg.n_mels, emb = (size_t)model_audio_tokens(m, n) * m->cfg.enc_out;
    return MAX(mel, emb);
}

/* A full encoder pass. */
static int warm_encoder(const model_t *m, const engine_opts_t *o)
{
    const backend_ops_t *ops = m->bk.ops;
    const int64_t n = pass_samples(m, o);
    float *silence = xcalloc((size_t)n, sizeof *silence);
    void *out = ops->buf_alloc(m->bk.be, (size_t)model_audio_tokens(m, n) * m->cfg.enc_out);
    int rc = -1;
    if (out) {
        const enc_item_t item = { .samples = silence, .n_samples = n, .out = out };
        rc = encoder_forward(m, &item, 1, o->enc_max_rows, NULL);
        ops->buf_free(m->bk.be, out);
    }
    free(silence);
    return rc;
}

/* The buffers that sequences hold between admission and prefill (their log-mel while encoding,
 * their audio embeddings until prefilled): one of each per sequence, as large as one pass's,
 * left in the backend's buffer cache. */
static int warm_held(const model_t *m, const engine_opts_t *o)
{
    const backend_ops_t *ops = m->bk.ops;
    const size_t elems = held_elems(m, pass_samples(m, o));
    const int k = 2 * o->max_seqs;
    void **held = xcalloc(k, sizeof *held);
    int rc = 0;
    for (int i = 0; i < k && rc == 0; i++)
        if (!(held[i] = ops->buf_alloc(m->bk.be, elems))) rc = -1;
    for (int i = 0; i < k; i++)
        if (held[i]) ops->buf_free(m->bk.be, held[i]);
    free(held);
    return rc;
}

static int warm_decoder(const model_t *m, const engine_opts_t *o)
{
    const backend_ops_t *ops = m->bk.ops;
    const model_config_t *c = &m->cfg;
    /* a step's rows: up to max_step_tokens, or one per sequence when they are more; head rows: one
     * per sequence, or for an aligner any row (its slots) */
    const int R = MAX(1, MIN(MAX(o->max_step_tokens, o->max_seqs), c->max_positions));
    const int n_out = c->aligner ? R : MIN(o->max_seqs, R);
    const int pages = CEIL_DIV(R, o->page_size);
    const kv_geom_t g = { c->dec_layers, pages, o->page_size, c->dec_kv_heads, c->dec_head_dim };
    kv_cache_t *kv = ops->kv_alloc(m->bk.be, &g);
    if (!kv) return -1;
    int *ids = xcalloc(R, sizeof *ids), *pos = xmalloc(R * sizeof *pos), *row_seq = xcalloc(R, sizeof *row_seq);
    int *ctx = xmalloc(R * sizeof *ctx), *table = xmalloc(pages * sizeof *table);
    int *out_rows = xmalloc(n_out * sizeof *out_rows), *next = xmalloc(n_out * sizeof *next);
    for (int r = 0; r < R; r++) pos[r] = r, ctx[r] = r + 1;
    for (int p = 0; p < pages; p++) table[p] = p;
    for (int i = 0; i < n_out; i++) out_rows[i] = R - n_out + i;
    /* one sequence's prompt of R rows: slot = position (its pages are 0, 1, ... in order) */
    const dec_batch_t b = { .n_rows = R, .ids = ids, .pos = pos, .slot = pos, .row_seq = row_seq, .ctx_len = ctx,
                            .block_tables = table, .n_seqs = 1, .max_blocks = pages, .max_ctx = R,
                            .out_rows = out_rows, .n_out = n_out, .prefill = 1 };
    const int rc = decoder_forward(m, kv, &b, next, NULL);
    ops->kv_free(m->bk.be, kv);
    free(ids), free(pos), free(row_seq), free(ctx), free(table), free(out_rows), free(next);
    return rc;
}

int engine_default_max_seqs(const model_t *m, const engine_opts_t *o, double mem_gb, int with_held)
{
    if (m->bk.ops->flags & BACKEND_HOST_MEMORY) return 32;
    const int64_t n = (int64_t)(ENGINE_PLAN_SECONDS * QASR_SAMPLE_RATE);
    /* the prompt's text around the audio is a few dozen tokens: 64 bounds it */
    const double tokens = model_audio_tokens(m, n) + 64 + engine_auto_max_new(ENGINE_PLAN_SECONDS);
    const size_t act = m->bk.ops->act_size;
    /* warm_held's two buffers and warm_decoder's LM-head row (its logits) per sequence */
    const double held = with_held ? (2.0 * held_elems(m, pass_samples(m, o)) + m->cfg.head_rows) * act : 0;
    const double seqs = mem_gb * 1e9 / (engine_kv_token_bytes(m) * tokens + held);
    return (int)fmax(32, fmin(ENGINE_DEVICE_MAX_SEQS, seqs));
}

/* Run the following passes on a lane, where the backend has lanes (each has its own memory). */
static void on_lane(const model_t *m, backend_lane_t lane)
{
    if (m->bk.ops->lane) m->bk.ops->lane(m->bk.be, lane);
}

int engine_warm_up(const model_t *m, engine_opts_t *o)
{
    /* the batch, when not given, from what the encoder pass leaves; the decoder step and the
     * held buffers grow with it, so they come after. Each pass on the lane the engine runs it
     * on: the encoder's pass and the buffers it allocates (log-mel, audio embeddings) on the
     * encoder lane, the decoder's step on the decoder lane. */
    on_lane(m, BACKEND_LANE_ENCODER);
    int rc = warm_encoder(m, o);
    if (rc == 0 && o->max_seqs <= 0) o->max_seqs = engine_default_max_seqs(m, o, engine_default_kv_gb(&m->bk), 1);
    if (rc == 0) rc = warm_held(m, o);
    if (m->bk.ops->lane) m->bk.ops->sync(m->bk.be);
    on_lane(m, BACKEND_LANE_DECODER);
    if (rc == 0) rc = warm_decoder(m, o);
    if (rc != 0) return qasr_fail_prefix("device memory for a run's passes (lower --batch or --step-tokens)");
    m->bk.ops->sync(m->bk.be);
    return backend_check(&m->bk);
}
