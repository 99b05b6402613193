#include "engine.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv_pages.h"
#include "tap.h"
#include "util.h"

typedef enum { SEQ_PREFILL, SEQ_DECODE } seq_state_t;

typedef struct {
    engine_req_t req;     /* context/language are owned copies */
    seq_state_t state;
    prompt_t prompt;
    kv_seq_t kv;
    void *audio;          /* [A][Hd] encoder output, until the prompt is prefilled */
    int len;              /* tokens in the KV cache */
    int last;             /* last generated token (input of the next decode row) */
    int max_new;
    engine_result_t res;
} seq_t;

struct engine {
    const model_t *m;
    const tokenizer_t *tok;
    special_ids_t sp;
    engine_opts_t opt;
    kv_pool_t pool;
    void *kv;
    tap_t *tap;
    double t0;

    seq_t **waiting;      /* FIFO ring */
    int w_head, w_count, w_cap;
    seq_t **active;       /* admission order */
    int n_active;
    engine_result_t *done;/* FIFO of finished results */
    int d_head, d_count, d_cap;
    int in_flight;
    engine_stats_t stats;
    float *step_logits;   /* dump mode: logits of every generated token, [n][V] */
    int n_step_logits;
};

void engine_opts_default(engine_opts_t *o)
{
    *o = (engine_opts_t){
        .max_seqs = 32,
        .max_step_tokens = 2048,
        .enc_max_rows = 16 * 104,
        .enc_max_seconds = 600,
        .page_size = 16,
    };
}

double engine_default_kv_gb(const backend_ref_t *bk)
{
    const double avail_gb = bk->ops->mem_available(bk->be) / 1e9;
    /* a GPU is there to hold the cache; on the host, leave most memory to everything else */
    return !strcmp(bk->ops->name, "cpu") ? fmin(16.0, fmax(1.0, 0.25 * avail_gb)) : 0.8 * avail_gb;
}

int engine_auto_max_new(double seconds) { return 32 + (int)ceil(12.0 * seconds); }

static double clock_now(const engine_t *e) { return now_seconds() - e->t0; }

engine_t *engine_create(const model_t *m, const tokenizer_t *tok, const special_ids_t *sp,
                        const engine_opts_t *opts)
{
    const model_config_t *c = &m->cfg;
    engine_t *e = xcalloc(1, sizeof *e);
    e->m = m;
    e->tok = tok;
    e->sp = *sp;
    e->opt = *opts;
    e->t0 = now_seconds();
    const backend_ops_t *o = m->bk.ops;
    const size_t elem = o->kv_elem_bytes ? o->kv_elem_bytes(m->bk.be) : o->act_size;
    const double token_bytes = (double)c->dec_layers * 2 * c->dec_kv_heads * c->dec_head_dim * elem;
    const int n_pages = (int)fmin(INT_MAX / 2, e->opt.kv_gb * 1e9 / (token_bytes * e->opt.page_size));
    if (n_pages < 1) {
        qasr_fail("--kv-gb %.3f is too small for one KV page (%.1f MB)", e->opt.kv_gb,
                  token_bytes * e->opt.page_size / 1e6);
        free(e);
        return NULL;
    }
    kv_pool_init(&e->pool, n_pages, e->opt.page_size);
    const kv_geom_t g = { c->dec_layers, n_pages, e->opt.page_size, c->dec_kv_heads, c->dec_head_dim };
    e->kv = m->bk.ops->kv_alloc(m->bk.be, &g);
    if (!e->kv) {
        kv_pool_free(&e->pool);
        free(e);
        return NULL;
    }
    if (opts->dump_dir && !(e->tap = tap_open(opts->dump_dir))) {
        engine_free(e, NULL);
        return NULL;
    }
    e->active = xcalloc(e->opt.max_seqs, sizeof *e->active);
    return e;
}

static void seq_free(const engine_t *e, seq_t *s)
{
    free(s->req.samples);
    free((char *)s->req.context);
    free((char *)s->req.language);
    prompt_free(&s->prompt);
    if (s->audio) e->m->bk.ops->buf_free(e->m->bk.be, s->audio);
    free(s);
}

void engine_free(engine_t *e, void (*drop)(void *tag))
{
    if (!e) return;
    engine_cancel_waiting(e, drop);
    for (int i = 0; i < e->n_active; i++) {
        if (drop) drop(e->active[i]->req.tag);
        kv_seq_release(&e->pool, &e->active[i]->kv);
        free(e->active[i]->res.tokens);
        seq_free(e, e->active[i]);
    }
    for (int i = 0; i < e->d_count; i++) {
        engine_result_t *r = &e->done[(e->d_head + i) % e->d_cap];
        if (drop) drop(r->tag);
        engine_result_free(r);
    }
    if (e->kv) e->m->bk.ops->kv_free(e->m->bk.be, e->kv);
    kv_pool_free(&e->pool);
    tap_close(e->tap);
    free(e->step_logits);
    free(e->waiting);
    free(e->active);
    free(e->done);
    free(e);
}

void engine_submit(engine_t *e, const engine_req_t *r)
{
    seq_t *s = xcalloc(1, sizeof *s);
    s->req = *r;
    s->req.context = r->context ? xstrdup(r->context) : NULL;
    s->req.language = r->language ? xstrdup(r->language) : NULL;
    s->res.tag = r->tag;
    s->res.audio_seconds = (double)r->n_samples / 16000.0;
    s->res.t_submit = clock_now(e);
    if (e->w_count == e->w_cap) { /* grow the ring, unwrapping it */
        int cap = e->w_cap ? 2 * e->w_cap : 64;
        seq_t **q = xmalloc(cap * sizeof *q);
        for (int i = 0; i < e->w_count; i++) q[i] = e->waiting[(e->w_head + i) % e->w_cap];
        free(e->waiting);
        e->waiting = q;
        e->w_cap = cap;
        e->w_head = 0;
    }
    e->waiting[(e->w_head + e->w_count++) % e->w_cap] = s;
    e->in_flight++;
}

int engine_cancel_waiting(engine_t *e, void (*drop)(void *tag))
{
    const int n = e->w_count;
    for (int i = 0; i < n; i++) {
        seq_t *s = e->waiting[(e->w_head + i) % e->w_cap];
        if (drop) drop(s->req.tag);
        free(s->res.tokens);
        free(s->res.error);
        seq_free(e, s);
    }
    e->w_count = 0;
    e->in_flight -= n;
    return n;
}

int engine_in_flight(const engine_t *e) { return e->in_flight; }
int engine_waiting(const engine_t *e) { return e->w_count; }
int engine_ready(const engine_t *e) { return e->d_count; }

static void push_result(engine_t *e, seq_t *s)
{
    s->res.t_done = clock_now(e);
    if (e->tap && !s->res.error) {
        tap_host_i32(e->tap, "prompt_ids", s->prompt.ids, s->prompt.n);
        tap_host_i32(e->tap, "tokens", s->res.tokens, s->res.n_tokens);
        tap_host_f32(e->tap, "logits", e->step_logits, -1, e->m->cfg.vocab);
        tap_host_f32(e->tap, "step_logits", e->step_logits, e->n_step_logits, e->m->cfg.vocab);
    }
    if (e->d_count == e->d_cap) {
        int cap = e->d_cap ? 2 * e->d_cap : 64;
        engine_result_t *q = xmalloc(cap * sizeof *q);
        for (int i = 0; i < e->d_count; i++) q[i] = e->done[(e->d_head + i) % e->d_cap];
        free(e->done);
        e->done = q;
        e->d_cap = cap;
        e->d_head = 0;
    }
    e->done[(e->d_head + e->d_count++) % e->d_cap] = s->res;
    s->res.tokens = NULL;
    s->res.error = NULL;
    seq_free(e, s);
}

static void fail_seq(engine_t *e, seq_t *s, const char *fmt, ...) QASR_PRINTF(3, 4);
static void fail_seq(engine_t *e, seq_t *s, const char *fmt, ...)
{
    char msg[QASR_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(s->res.error);
    s->res.error = xstrdup(msg);
    push_result(e, s);
}

/* Tokens, prompt and limits of a waiting request. 0, or -1 after failing it. */
static int prepare(engine_t *e, seq_t *s)
{
    const model_config_t *c = &e->m->cfg;
    if (s->req.n_samples < ENGINE_MIN_SAMPLES) {
        fail_seq(e, s, "audio too short: %lld samples at 16 kHz (at least %d needed)",
                 (long long)s->req.n_samples, ENGINE_MIN_SAMPLES);
        return -1;
    }
    const int64_t frames = s->req.n_samples / 160;
    if (frames > INT_MAX / 2) {
        fail_seq(e, s, "audio too long: %.0f s", s->res.audio_seconds);
        return -1;
    }
    const int A = config_audio_tokens(c, (int)frames);
    if (prompt_build(&s->prompt, e->tok, &e->sp, A, s->req.context, s->req.language) != 0) {
        fail_seq(e, s, "%s", qasr_last_error());
        return -1;
    }
    s->res.audio_tokens = A;
    s->res.prompt_tokens = s->prompt.n;
    s->max_new = s->req.max_new_tokens > 0 ? s->req.max_new_tokens : engine_auto_max_new(s->res.audio_seconds);
    if (s->prompt.n + 1 > c->max_positions) {
        fail_seq(e, s, "audio too long for one pass: the prompt needs %d positions, the model has %d; "
                 "split the audio", s->prompt.n, c->max_positions);
        return -1;
    }
    s->max_new = MIN(s->max_new, c->max_positions - s->prompt.n);
    s->res.max_new_tokens = s->max_new;
    const int pages = kv_pages_for(&e->pool, s->prompt.n + s->max_new);
    if (pages > e->pool.n_pages) {
        fail_seq(e, s, "audio too long for the KV cache: %d tokens need %.2f GB, the cache has %.2f GB "
                 "(raise --kv-gb or split the audio)", s->prompt.n + s->max_new,
                 e->opt.kv_gb * pages / e->pool.n_pages, e->opt.kv_gb);
        return -1;
    }
    return 0;
}

/* Mel + encoder for the newly admitted sequences, all in one batched encoder call. */
static void encode(engine_t *e, seq_t **seqs, int n)
{
    const backend_ops_t *o = e->m->bk.ops;
    backend_t *be = e->m->bk.be;
    const model_config_t *c = &e->m->cfg;
    enc_item_t *items = xmalloc(n * sizeof *items);
    double t0 = now_seconds();
    for (int i = 0; i < n; i++) {
        seq_t *s = seqs[i];
        const int T = (int)(s->req.n_samples / 160);
        void *mel = o->buf_alloc(be, (size_t)T * c->n_mels);
        o->log_mel(be, mel, s->req.samples, s->req.n_samples, c->n_mels);
        if (e->tap) { /* the spec's layout is [n_mels][T] */
            float *h = xmalloc((size_t)T * c->n_mels * sizeof(float)), *t = xmalloc((size_t)T * c->n_mels * sizeof(float));
            o->download(be, h, mel, (size_t)T * c->n_mels);
            for (int f = 0; f < T; f++)
                for (int k = 0; k < c->n_mels; k++) t[(size_t)k * T + f] = h[(size_t)f * c->n_mels + k];
            tap_host_f32(e->tap, "mel", t, c->n_mels, T);
            free(h);
            free(t);
        }
        free(s->req.samples);
        s->req.samples = NULL;
        s->audio = o->buf_alloc(be, (size_t)s->prompt.n_audio * c->enc_out);
        items[i] = (enc_item_t){ .mel = mel, .frames = T, .out = s->audio };
        e->stats.audio_seconds += s->res.audio_seconds;
    }
    o->sync(be);
    const double t1 = now_seconds();
    fwd_prof_t prof = { 0 };
    encoder_forward(e->m, items, n, e->tap ? 0 : e->opt.enc_max_rows, e->opt.profile ? &prof : NULL, e->tap);
    o->sync(be);
    e->stats.stage_seconds[ENGINE_STAGE_MEL] += t1 - t0;
    e->stats.stage_seconds[ENGINE_STAGE_CONV] += prof.seconds[STAGE_CONV];
    e->stats.stage_flop[ENGINE_STAGE_CONV] += prof.flop[STAGE_CONV];
    e->stats.stage_seconds[ENGINE_STAGE_ENC_LAYERS] += prof.seconds[STAGE_ENC_LAYERS];
    e->stats.stage_flop[ENGINE_STAGE_ENC_LAYERS] += prof.flop[STAGE_ENC_LAYERS];
    e->stats.t_mel += t1 - t0;
    e->stats.t_encoder += now_seconds() - t1;
    e->stats.encoder_calls++;
    for (int i = 0; i < n; i++) o->buf_free(be, (void *)items[i].mel);
    free(items);
    const double t = clock_now(e);
    for (int i = 0; i < n; i++) seqs[i]->res.t_encoded = t;
}

static void admit(engine_t *e)
{
    seq_t **fresh = xmalloc(e->opt.max_seqs * sizeof *fresh);
    int n_fresh = 0;
    double seconds = 0;
    /* static batching: a new batch only once the previous one has completely finished */
    const int closed = e->opt.static_batching && e->n_active > 0;
    while (!closed && e->w_count > 0 && e->n_active < e->opt.max_seqs &&
           (n_fresh == 0 || seconds + e->waiting[e->w_head]->res.audio_seconds <= e->opt.enc_max_seconds)) {
        seq_t *s = e->waiting[e->w_head];
        if (s->prompt.ids == NULL && prepare(e, s) != 0) {
            e->w_head = (e->w_head + 1) % e->w_cap;
            e->w_count--;
            continue;
        }
        if (kv_seq_reserve(&e->pool, &s->kv, s->prompt.n + s->max_new) != 0) break; /* wait for pages */
        e->w_head = (e->w_head + 1) % e->w_cap;
        e->w_count--;
        s->state = SEQ_PREFILL;
        s->res.t_admit = clock_now(e);
        e->active[e->n_active++] = s;
        fresh[n_fresh++] = s;
        seconds += s->res.audio_seconds;
    }
    if (n_fresh) encode(e, fresh, n_fresh);
    free(fresh);
}

static int is_stop(const engine_t *e, int t) { return t == e->sp.im_end || t == e->sp.endoftext; }

/* Host-side arrays of one decoder step. */
typedef struct {
    int *ids, *pos, *slot, *row_seq, *ctx_len, *out_rows, *out_seq;
    audio_span_t *audio;
    int n_rows, n_out, n_audio;
} step_rows_t;

static void add_row(step_rows_t *r, const engine_t *e, const seq_t *s, int seq_index, int pos, int id)
{
    const int i = r->n_rows++;
    r->ids[i] = id;
    r->pos[i] = pos;
    r->slot[i] = kv_slot(&e->pool, &s->kv, pos);
    r->row_seq[i] = seq_index;
    r->ctx_len[i] = pos + 1;
}

void engine_step(engine_t *e)
{
    admit(e);
    if (e->n_active == 0) return;
    const int budget = e->tap ? INT_MAX : e->opt.max_step_tokens;
    int n_rows = 0, max_blocks = 1, max_ctx = 1;
    for (int i = 0; i < e->n_active; i++) { /* size the step: decode rows first, then prefill */
        const seq_t *s = e->active[i];
        n_rows += s->state == SEQ_DECODE ? 1 : 0;
        max_blocks = MAX(max_blocks, s->kv.n_pages);
    }
    for (int i = 0; i < e->n_active; i++) {
        const seq_t *s = e->active[i];
        if (s->state == SEQ_PREFILL) n_rows += MIN(s->prompt.n - s->len, MAX(0, budget - n_rows));
    }
    step_rows_t r = { 0 };
    r.ids = xmalloc(n_rows * sizeof(int));
    r.pos = xmalloc(n_rows * sizeof(int));
    r.slot = xmalloc(n_rows * sizeof(int));
    r.row_seq = xmalloc(n_rows * sizeof(int));
    r.ctx_len = xmalloc(n_rows * sizeof(int));
    r.out_rows = xmalloc(e->n_active * sizeof(int));
    r.out_seq = xmalloc(e->n_active * sizeof(int));
    r.audio = xmalloc(e->n_active * sizeof(audio_span_t));
    int *tables = xcalloc((size_t)e->n_active * max_blocks, sizeof(int));
    for (int i = 0; i < e->n_active; i++) {
        seq_t *s = e->active[i];
        memcpy(tables + (size_t)i * max_blocks, s->kv.pages, s->kv.n_pages * sizeof(int));
        if (s->state != SEQ_DECODE) continue;
        r.out_seq[r.n_out] = i;
        r.out_rows[r.n_out++] = r.n_rows;
        add_row(&r, e, s, i, s->len, s->last);
        s->len++;
    }
    const int n_decode_rows = r.n_rows;
    for (int i = 0; i < e->n_active && r.n_rows < n_rows; i++) {
        seq_t *s = e->active[i];
        if (s->state != SEQ_PREFILL) continue;
        const int k = MIN(s->prompt.n - s->len, n_rows - r.n_rows), first = s->len;
        const int a0 = MAX(first, s->prompt.audio_at), a1 = MIN(first + k, s->prompt.audio_at + s->prompt.n_audio);
        if (a1 > a0)
            r.audio[r.n_audio++] = (audio_span_t){ .src = s->audio, .src_row = a0 - s->prompt.audio_at,
                                                   .dst_row = r.n_rows + a0 - first, .n = a1 - a0 };
        for (int p = first; p < first + k; p++) add_row(&r, e, s, i, p, s->prompt.ids[p]);
        s->len += k;
        if (s->len == s->prompt.n) {
            r.out_seq[r.n_out] = i;
            r.out_rows[r.n_out++] = r.n_rows - 1;
        }
    }
    for (int i = 0; i < r.n_rows; i++) max_ctx = MAX(max_ctx, r.ctx_len[i]);

    const dec_batch_t b = {
        .n_rows = r.n_rows, .ids = r.ids, .pos = r.pos, .slot = r.slot, .row_seq = r.row_seq,
        .ctx_len = r.ctx_len, .block_tables = tables, .n_seqs = e->n_active,
        .max_blocks = max_blocks, .max_ctx = max_ctx, .audio = r.audio, .n_audio = r.n_audio,
        .out_rows = r.out_rows, .n_out = r.n_out,
    };
    int *next = xmalloc(MAX(1, r.n_out) * sizeof(int));
    /* layer dumps describe the prompt pass: the step that prefills the (single) sequence */
    tap_t *tap = e->tap && e->active[0]->state == SEQ_PREFILL ? e->tap : NULL;
    float *logits = NULL;
    if (e->tap && r.n_out == 1) {
        const size_t V = e->m->cfg.vocab;
        e->step_logits = xrealloc(e->step_logits, (e->n_step_logits + 1) * V * sizeof(float));
        logits = e->step_logits + e->n_step_logits++ * V;
    }
    const double t0 = now_seconds();
    fwd_prof_t prof = { 0 };
    decoder_forward(e->m, e->kv, &b, next, logits, e->opt.profile ? &prof : NULL, tap);
    const int prefill = r.n_rows > n_decode_rows;
    *(prefill ? &e->stats.t_prefill : &e->stats.t_decode) += now_seconds() - t0;
    const engine_stage_t layers = prefill ? ENGINE_STAGE_PREFILL : ENGINE_STAGE_DECODE;
    e->stats.stage_seconds[layers] += prof.seconds[STAGE_DEC_LAYERS];
    e->stats.stage_flop[layers] += prof.flop[STAGE_DEC_LAYERS];
    e->stats.stage_seconds[ENGINE_STAGE_LM_HEAD] += prof.seconds[STAGE_LM_HEAD];
    e->stats.stage_flop[ENGINE_STAGE_LM_HEAD] += prof.flop[STAGE_LM_HEAD];
    e->stats.steps++;
    e->stats.decode_tokens += n_decode_rows;
    e->stats.prefill_tokens += r.n_rows - n_decode_rows;

    const double t = clock_now(e);
    for (int j = 0; j < r.n_out; j++) {
        seq_t *s = e->active[r.out_seq[j]];
        if (s->state == SEQ_PREFILL) { /* prompt complete: the audio embeddings are no longer needed */
            s->state = SEQ_DECODE;
            e->m->bk.ops->buf_free(e->m->bk.be, s->audio);
            s->audio = NULL;
            s->res.t_first = t;
        }
        s->res.tokens = xrealloc(s->res.tokens, (s->res.n_tokens + 1) * sizeof(int));
        s->res.tokens[s->res.n_tokens++] = s->last = next[j];
        s->res.stopped = !s->req.ignore_eos && is_stop(e, next[j]);
        if (s->res.stopped || s->res.n_tokens >= s->max_new) {
            s->res.truncated = !s->res.stopped && !s->req.ignore_eos;
            kv_seq_release(&e->pool, &s->kv);
            push_result(e, s);
            e->active[r.out_seq[j]] = NULL;
        }
    }
    int k = 0; /* compact, keeping admission order */
    for (int i = 0; i < e->n_active; i++)
        if (e->active[i]) e->active[k++] = e->active[i];
    e->n_active = k;

    free(next);
    free(tables);
    free(r.ids);
    free(r.pos);
    free(r.slot);
    free(r.row_seq);
    free(r.ctx_len);
    free(r.out_rows);
    free(r.out_seq);
    free(r.audio);
}

int engine_pop(engine_t *e, engine_result_t *out)
{
    if (e->d_count == 0) return 0;
    *out = e->done[e->d_head];
    e->d_head = (e->d_head + 1) % e->d_cap;
    e->d_count--;
    e->in_flight--;
    return 1;
}

const engine_stats_t *engine_stats(const engine_t *e) { return &e->stats; }

void engine_result_free(engine_result_t *r)
{
    free(r->tokens);
    free(r->error);
    memset(r, 0, sizeof *r);
}
