#include "engine.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "dump.h"
#include "kv_pages.h"
#include "observe.h"
#include "util.h"

/* The automatic token limit's floor: a language tag, <asr_text> and a short transcript. */
#define AUTO_MIN_NEW 32

/* SEQ_ENCODING: its encoder work was submitted on the backend's encoder lane and may still run;
 * it joins the decoder's steps (as SEQ_PREFILL) from the next step, whose work waits for it. */
typedef enum { SEQ_ENCODING, SEQ_PREFILL, SEQ_DECODE } seq_state_t;

typedef struct seq {
    engine_req_t req;     /* context/language are owned copies */
    seq_state_t state;
    prompt_t prompt;
    int *slots;           /* aligner: prompt rows of the <timestamp> slots [n_slots] */
    int n_slots, next_slot;
    align_words_t words;  /* aligner: the transcript's words, until the result takes them */
    kv_seq_t kv;
    void *audio;          /* [A][Hd] encoder output, until the prompt is prefilled */
    int len;              /* tokens in the KV cache */
    int last;             /* last generated token (input of the next decode row) */
    int max_new;
    int n_planned;        /* tokens asked of the steps planned so far */
    int out_at;           /* its latest token: out row out_at of step out_step */
    long out_step;
    engine_result_t res;
} seq_t;

/* The host side of one decoder step: its rows and what the model needs to know of them. The
 * arrays are the engine's, kept from step to step and grown when a step needs more. */
typedef struct {
    long step;                                 /* steps planned before it + 1 */
    int *ids, *pos, *slot, *row_seq, *ctx_len; /* [n_rows] */
    int *out_rows;                             /* [n_out]: rows whose next token (an aligner's: class)
                                                * is wanted */
    struct seq **out_seq;                      /* [n_out] their sequence; NULL: it has ended since */
    int *next;                                 /* [n_out] the step's greedy tokens */
    audio_span_t *audio;                       /* [n_audio] */
    int *tables;                               /* [n_active][max_blocks] */
    int n_rows, n_out, n_audio, n_decode_rows, max_blocks, max_ctx;
    int cap_rows, cap_seqs, cap_out;
    size_t cap_tables;
} step_plan_t;

struct engine {
    const model_t *m;
    const tokenizer_t *tok;
    special_ids_t sp;
    align_ids_t align_ids; /* an aligner's prompt tokens */
    engine_opts_t opt;
    kv_pool_t pool;
    kv_seq_t pad;         /* graph steps: the page their padding rows write to (none: no graphs) */
    kv_cache_t *kv;
    engine_observer_t obs;
    double t0;

    seq_t **waiting;      /* FIFO ring */
    int w_head, w_count, w_cap;
    seq_t **active;       /* admission order */
    int n_active;
    seq_t **fresh;        /* admitted this step, to encode */
    engine_result_t *done;/* FIFO of finished results */
    int d_head, d_count, d_cap;
    int in_flight;
    /* Steps overlapped with the host (backend fetch_ids): step t+1 is planned and launched before
     * step t's tokens are read, its decode rows taking their input from step t's argmax on the
     * device. A sequence that ended at step t has a spare row in step t+1 (within its KV
     * reservation: prompt + max_new slots, of which it uses prompt + max_new - 1 at most), whose
     * token is dropped. */
    int overlap;
    step_plan_t plans[2]; /* the step being planned, and the one whose tokens are not read yet */
    step_plan_t *pending;
    long n_steps;
    long allocs0;         /* the backend's device allocations when the engine was made */
    engine_stats_t stats;
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
    /* a device is there to hold the cache; in host memory, leave most to everything else */
    return bk->ops->flags & BACKEND_HOST_MEMORY ? fmin(16.0, fmax(1.0, 0.25 * avail_gb)) : 0.8 * avail_gb;
}

int engine_auto_max_new(double seconds) { return AUTO_MIN_NEW + (int)ceil(24.0 * seconds); }

double engine_kv_token_bytes(const model_t *m)
{
    const model_config_t *c = &m->cfg;
    const backend_ops_t *o = m->bk.ops;
    const size_t elem = o->kv_elem_bytes ? o->kv_elem_bytes(m->bk.be) : o->act_size;
    return (double)c->dec_layers * 2 * c->dec_kv_heads * c->dec_head_dim * elem;
}

static double clock_now(const engine_t *e) { return now_seconds() - e->t0; }

/* The observer for the forward passes (NULL when nothing watches). */
static observer_t *observer(engine_t *e) { return engine_observer(&e->obs); }

engine_t *engine_create(const model_t *m, const tokenizer_t *tok, const special_ids_t *sp,
                        const engine_opts_t *opts)
{
    const model_config_t *c = &m->cfg;
    engine_t *e = xcalloc(1, sizeof *e);
    e->m = m;
    e->tok = tok;
    e->sp = *sp;
    e->align_ids = (align_ids_t){ .audio_start = sp->audio_start, .audio_pad = sp->audio_pad,
                                  .audio_end = sp->audio_end, .timestamp = c->timestamp_token_id };
    e->opt = *opts;
    e->t0 = now_seconds();
    const backend_ops_t *o = m->bk.ops;
    const double token_bytes = engine_kv_token_bytes(m);
    const int n_pages = (int)fmin(INT_MAX / 2, e->opt.kv_gb * 1e9 / (token_bytes * e->opt.page_size));
    if (n_pages < 1) {
        qasr_fail("--kv-gb %.3f is too small for one KV page (%.1f MB)", e->opt.kv_gb,
                  token_bytes * e->opt.page_size / 1e6);
        free(e);
        return NULL;
    }
    kv_pool_init(&e->pool, n_pages, e->opt.page_size);
    if (!e->opt.no_cuda_graphs && o->step_begin && n_pages > 1) kv_seq_reserve(&e->pool, &e->pad, 1);
    const kv_geom_t g = { c->dec_layers, n_pages, e->opt.page_size, c->dec_kv_heads, c->dec_head_dim };
    if (!(e->kv = m->bk.ops->kv_alloc(m->bk.be, &g)) ||
        engine_observer_init(&e->obs, m->bk, opts->profile, opts->dump_dir) != 0) {
        engine_free(e, NULL);
        return NULL;
    }
    e->overlap = o->fetch_ids && !opts->sync_steps && !opts->profile && !opts->dump_dir;
    e->allocs0 = o->device_allocs ? o->device_allocs(m->bk.be) : -1;
    e->stats.device_allocs = o->device_allocs ? 0 : -1;
    e->active = xcalloc(e->opt.max_seqs, sizeof *e->active);
    e->fresh = xcalloc(e->opt.max_seqs, sizeof *e->fresh);
    return e;
}

static void seq_free(const engine_t *e, seq_t *s)
{
    free(s->req.samples);
    free((char *)s->req.context);
    free((char *)s->req.language);
    free((char *)s->req.align_text);
    prompt_free(&s->prompt);
    free(s->slots);
    align_words_free(&s->words);
    if (s->audio) e->m->bk.ops->buf_free(e->m->bk.be, s->audio);
    free(s);
}

static void plan_free(step_plan_t *p)
{
    free(p->ids), free(p->pos), free(p->slot), free(p->row_seq), free(p->ctx_len);
    free(p->out_rows), free(p->out_seq), free(p->next), free(p->audio), free(p->tables);
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
    if (e->pending) e->m->bk.ops->fetch_ids(e->m->bk.be, NULL, 0);
    if (e->kv) e->m->bk.ops->kv_free(e->m->bk.be, e->kv);
    kv_seq_release(&e->pool, &e->pad);
    kv_pool_free(&e->pool);
    engine_observer_free(&e->obs);
    plan_free(&e->plans[0]);
    plan_free(&e->plans[1]);
    free(e->waiting);
    free(e->active);
    free(e->fresh);
    free(e->done);
    free(e);
}

void engine_submit(engine_t *e, const engine_req_t *r)
{
    seq_t *s = xcalloc(1, sizeof *s);
    s->req = *r;
    s->req.context = r->context ? xstrdup(r->context) : NULL;
    s->req.language = r->language ? xstrdup(r->language) : NULL;
    s->req.align_text = r->align_text ? xstrdup(r->align_text) : NULL;
    s->res.tag = r->tag;
    s->res.audio_seconds = (double)r->n_samples / QASR_SAMPLE_RATE;
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
double engine_waiting_seconds(const engine_t *e)
{
    double sec = 0;
    for (int i = 0; i < e->w_count; i++) sec += e->waiting[(e->w_head + i) % e->w_cap]->res.audio_seconds;
    return sec;
}
int engine_ready(const engine_t *e) { return e->d_count; }

static void push_result(engine_t *e, seq_t *s)
{
    s->res.t_done = clock_now(e);
    const char *dir = e->obs.dump_dir;
    if (dir && !s->res.error) {
        dump_i32(dir, "prompt_ids", s->prompt.ids, s->prompt.n);
        if (s->n_slots) { /* an alignment: the slot logits were dumped by the observer */
            dump_i32(dir, "classes", s->res.tokens, s->res.n_tokens);
            dump_i32(dir, "times_ms", s->res.times_ms, s->n_slots);
        } else {
            dump_i32(dir, "tokens", s->res.tokens, s->res.n_tokens);
            dump_f32(dir, "logits", e->obs.step_logits, -1, e->m->cfg.head_rows);
            dump_f32(dir, "step_logits", e->obs.step_logits, e->obs.n_step_logits, e->m->cfg.head_rows);
        }
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

/* Active sequence i ends with an error: its pages go back, its result says why. */
static void fail_active(engine_t *e, int i, const char *why)
{
    seq_t *s = e->active[i];
    kv_seq_release(&e->pool, &s->kv);
    fail_seq(e, s, "%s", why);
    e->active[i] = NULL;
}

/* Drop the ended sequences from the active list, keeping admission order. */
static void compact_active(engine_t *e)
{
    int k = 0;
    for (int i = 0; i < e->n_active; i++)
        if (e->active[i]) e->active[k++] = e->active[i];
    e->n_active = k;
}

/* KV pages for the prompt and token limit must exist. 0, or -1 after failing s. */
static int check_pages(engine_t *e, seq_t *s)
{
    const int pages = kv_pages_for(&e->pool, s->prompt.n + s->max_new);
    if (pages > e->pool.n_pages - e->pad.n_pages) {
        fail_seq(e, s, "audio too long for the KV cache: %d tokens need %.3g GB, the cache has %.3g GB "
                 "(raise --kv-gb or split the audio)", s->prompt.n + s->max_new,
                 e->opt.kv_gb * pages / e->pool.n_pages, e->opt.kv_gb);
        return -1;
    }
    return 0;
}

/* An aligner's request (aligner spec 5-6): the transcript's words, the input with two
 * <timestamp> slots after each, one prefill and no decoding. 0, or -1 after failing it. */
static int prepare_align(engine_t *e, seq_t *s, int A)
{
    const model_config_t *c = &e->m->cfg;
    if (!s->req.align_text) {
        fail_seq(e, s, "no transcript to align");
        return -1;
    }
    align_prompt_t ap;
    if (align_split_words(s->req.align_text, s->req.language, &s->words) != 0 ||
        align_prompt_build(&ap, e->tok, &e->align_ids, A, &s->words) != 0) {
        fail_seq(e, s, "%s", qasr_last_error());
        return -1;
    }
    s->prompt = (prompt_t){ .ids = ap.ids, .n = ap.n, .audio_at = ap.audio_at, .n_audio = ap.n_audio };
    s->slots = ap.slots;
    s->n_slots = ap.n_slots;
    s->res.audio_tokens = A;
    s->res.prompt_tokens = s->prompt.n;
    if (s->words.n == 0) { /* the official code computes two slots and discards them */
        fail_seq(e, s, "no word to align: the transcript has no letters or digits");
        return -1;
    }
    if (s->prompt.n > c->max_positions) {
        fail_seq(e, s, "too long to align in one pass: %.1f s of audio and %d words need %d positions, "
                 "the aligner has %d; split the audio (the official wrapper aligns at most 180 s at once)",
                 s->res.audio_seconds, s->words.n, s->prompt.n, c->max_positions);
        return -1;
    }
    return check_pages(e, s);
}

/* Tokens, prompt and limits of a waiting request. 0, or -1 after failing it. */
static int prepare(engine_t *e, seq_t *s)
{
    const model_config_t *c = &e->m->cfg;
    if (s->req.n_samples < MEL_MIN_SAMPLES) {
        fail_seq(e, s, "audio too short: %lld samples at %d Hz (at least %d needed)",
                 (long long)s->req.n_samples, QASR_SAMPLE_RATE, MEL_MIN_SAMPLES);
        return -1;
    }
    if (mel_frames(s->req.n_samples) > INT_MAX / 2) {
        fail_seq(e, s, "audio too long: %.0f s", s->res.audio_seconds);
        return -1;
    }
    const int A = model_audio_tokens(e->m, s->req.n_samples);
    if (c->aligner) return prepare_align(e, s, A);
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
    /* the automatic limit never fails a file that the cache can transcribe: it shrinks to what
     * the whole cache holds beside the prompt (a transcript that reaches it is reported cut, as
     * at any limit); a limit the user gave is kept, and fails the file if the cache is smaller */
    const int room = (e->pool.n_pages - e->pad.n_pages) * e->pool.page_size - s->prompt.n;
    if (s->req.max_new_tokens <= 0 && room >= AUTO_MIN_NEW && room < s->max_new) s->max_new = room;
    s->res.max_new_tokens = s->max_new;
    return check_pages(e, s);
}

/* Move waiting requests into the active set while there is a slot, KV pages for their prompt
 * and token limit, and room in this step's encoder budget; returns how many (in e->fresh). */
static int admit(engine_t *e)
{
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
        e->fresh[n_fresh++] = s;
        seconds += s->res.audio_seconds;
    }
    return n_fresh;
}

/* Front end + encoder for the n freshly admitted sequences, all in one batched encoder call.
 * With an encoder lane the work is only submitted there (no host wait): the sequences are
 * SEQ_ENCODING until a step joins it. 0; -1 + qasr_fail() when the device failed. Out of
 * backend memory, those sequences fail. */
static int encode(engine_t *e, int n)
{
    const backend_ops_t *o = e->m->bk.ops;
    backend_t *be = e->m->bk.be;
    enc_item_t *items = xmalloc(n * sizeof *items);
    int ok = 1;
    if (o->lane) o->lane(be, BACKEND_LANE_ENCODER);
    for (int i = 0; i < n; i++) {
        seq_t *s = e->fresh[i];
        if (!(s->audio = o->buf_alloc(be, (size_t)s->prompt.n_audio * e->m->cfg.enc_out))) ok = 0;
        items[i] = (enc_item_t){ .samples = s->req.samples, .n_samples = s->req.n_samples, .out = s->audio };
        e->stats.audio_seconds += s->res.audio_seconds;
    }
    const double t0 = now_seconds(), mel0 = e->obs.seconds[STAGE_MEL];
    e->obs.dump_layers = 1;
    if (ok) ok = encoder_forward(e->m, items, n, e->obs.dump_dir ? 0 : e->opt.enc_max_rows, observer(e)) == 0;
    if (!o->lane || e->opt.profile) o->sync(be); /* profiling times the encoder on its own */
    if (o->lane) {
        o->encoder_done(be);
        o->lane(be, BACKEND_LANE_DECODER);
    }
    free(items);
    const double mel = e->obs.seconds[STAGE_MEL] - mel0;
    e->stats.t_mel += mel;
    e->stats.t_encoder += now_seconds() - t0 - mel;
    e->stats.encoder_calls++;
    if (!ok && backend_fault(&e->m->bk)) return qasr_fail("%s", backend_fault(&e->m->bk));
    const double t = clock_now(e);
    for (int i = 0; i < n; i++) {
        seq_t *s = e->fresh[i];
        free(s->req.samples); /* encoded (staged, on a lane): the audio is no longer needed */
        s->req.samples = NULL;
        s->res.t_encoded = t;
        s->state = o->lane ? SEQ_ENCODING : SEQ_PREFILL;
    }
    if (!ok) { /* out of backend memory: these sequences end, the others go on */
        char why[QASR_ERR_LEN];
        snprintf(why, sizeof why, "%s", qasr_last_error());
        for (int i = 0; i < e->n_active; i++)
            for (int j = 0; j < n; j++)
                if (e->active[i] == e->fresh[j]) fail_active(e, i, why);
        compact_active(e);
    }
    return 0;
}

static void plan_grow(step_plan_t *p, int rows, int seqs, size_t tables)
{
    if (rows > p->cap_out) { /* at most one wanted token per row */
        p->cap_out = MAX(rows, 2 * p->cap_out);
        p->out_rows = xrealloc(p->out_rows, p->cap_out * sizeof(int));
        p->out_seq = xrealloc(p->out_seq, p->cap_out * sizeof *p->out_seq);
        p->next = xrealloc(p->next, p->cap_out * sizeof(int));
    }
    if (rows > p->cap_rows) {
        p->cap_rows = MAX(rows, 2 * p->cap_rows);
        int **a[] = { &p->ids, &p->pos, &p->slot, &p->row_seq, &p->ctx_len };
        for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) *a[i] = xrealloc(*a[i], p->cap_rows * sizeof(int));
    }
    if (seqs > p->cap_seqs) {
        p->cap_seqs = MAX(seqs, 2 * p->cap_seqs);
        p->audio = xrealloc(p->audio, p->cap_seqs * sizeof(audio_span_t));
    }
    if (tables > p->cap_tables) {
        p->cap_tables = MAX(tables, 2 * p->cap_tables);
        p->tables = xrealloc(p->tables, p->cap_tables * sizeof(int));
    }
}

static void add_row(step_plan_t *p, const engine_t *e, const seq_t *s, int seq_index, int pos, int id)
{
    const int i = p->n_rows++;
    p->ids[i] = id;
    p->pos[i] = pos;
    p->slot[i] = kv_slot(&e->pool, &s->kv, pos);
    p->row_seq[i] = seq_index;
    p->ctx_len[i] = pos + 1;
}

/* Row `row` of the step gives a token (an aligner's slot: a class) of s. */
static void add_out(step_plan_t *p, seq_t *s, int row)
{
    p->out_seq[p->n_out] = s;
    p->out_rows[p->n_out] = row;
    s->out_at = p->n_out++;
    s->out_step = p->step;
    s->n_planned++;
}

/* A decode row for s in the next step: it decodes, and (steps overlapped) its token limit is not
 * reached by the tokens already asked for. */
static int wants_decode_row(const seq_t *s) { return s->state == SEQ_DECODE && s->n_planned < s->max_new; }

/* The rows of the next decoder step into p: one per decoding sequence, then as many prompt rows
 * of prefilling sequences as the step budget allows. Advances each sequence's length; a sequence
 * whose prompt completes decodes from the next step on. Returns the rows (0: no step). */
static int plan_step(engine_t *e, step_plan_t *p)
{
    const int budget = e->obs.dump_dir ? INT_MAX : e->opt.max_step_tokens;
    int n_rows = 0;
    p->max_blocks = 1;
    for (int i = 0; i < e->n_active; i++) { /* size the step: decode rows first, then prefill */
        const seq_t *s = e->active[i];
        n_rows += wants_decode_row(s);
        p->max_blocks = MAX(p->max_blocks, s->kv.n_pages);
    }
    for (int i = 0; i < e->n_active; i++) {
        const seq_t *s = e->active[i];
        if (s->state == SEQ_PREFILL) n_rows += MIN(s->prompt.n - s->len, MAX(0, budget - n_rows));
    }
    if (n_rows == 0) return 0;
    plan_grow(p, n_rows, e->n_active, (size_t)e->n_active * p->max_blocks);
    p->step = ++e->n_steps;
    p->n_rows = p->n_out = p->n_audio = 0;
    p->max_ctx = 1;
    memset(p->tables, 0, (size_t)e->n_active * p->max_blocks * sizeof(int));
    for (int i = 0; i < e->n_active; i++) {
        seq_t *s = e->active[i];
        memcpy(p->tables + (size_t)i * p->max_blocks, s->kv.pages, s->kv.n_pages * sizeof(int));
        if (!wants_decode_row(s)) continue;
        /* overlapped: the token is the previous step's, still on the device */
        QASR_ASSERT(!e->overlap || s->out_step == p->step - 1);
        const int id = e->overlap ? -(s->out_at + 1) : s->last;
        add_out(p, s, p->n_rows);
        add_row(p, e, s, i, s->len, id);
        s->len++;
    }
    p->n_decode_rows = p->n_rows;
    for (int i = 0; i < e->n_active && p->n_rows < n_rows; i++) {
        seq_t *s = e->active[i];
        if (s->state != SEQ_PREFILL) continue;
        const int k = MIN(s->prompt.n - s->len, n_rows - p->n_rows), first = s->len;
        const int a0 = MAX(first, s->prompt.audio_at), a1 = MIN(first + k, s->prompt.audio_at + s->prompt.n_audio);
        if (a1 > a0)
            p->audio[p->n_audio++] = (audio_span_t){ .src = s->audio, .src_row = a0 - s->prompt.audio_at,
                                                     .dst_row = p->n_rows + a0 - first, .n = a1 - a0 };
        const int row0 = p->n_rows;
        for (int pos = first; pos < first + k; pos++) add_row(p, e, s, i, pos, s->prompt.ids[pos]);
        s->len += k;
        for (; s->next_slot < s->n_slots && s->slots[s->next_slot] < s->len; s->next_slot++)
            add_out(p, s, row0 + s->slots[s->next_slot] - first); /* an aligner's slot: its class is wanted */
        if (s->len == s->prompt.n && !s->n_slots) { /* prompt complete: its first token */
            add_out(p, s, p->n_rows - 1);
            s->state = SEQ_DECODE;
        }
    }
    for (int i = 0; i < p->n_rows; i++) p->max_ctx = MAX(p->max_ctx, p->ctx_len[i]);
    return p->n_rows;
}

/* Run the planned step: its greedy tokens go to p->next, or (steps overlapped) stay on the
 * device until fetch(). 0; 1 when backend memory ran out (qasr_fail() says why); -1 + qasr_fail()
 * when the device failed. */
static int decode(engine_t *e, step_plan_t *p)
{
    const dec_batch_t b = {
        .n_rows = p->n_rows, .ids = p->ids, .pos = p->pos, .slot = p->slot, .row_seq = p->row_seq,
        .ctx_len = p->ctx_len, .block_tables = p->tables, .n_seqs = e->n_active,
        .max_blocks = p->max_blocks, .max_ctx = p->max_ctx, .audio = p->audio, .n_audio = p->n_audio,
        .out_rows = p->out_rows, .n_out = p->n_out, .prefill = p->n_rows > p->n_decode_rows,
        .graph = e->pad.n_pages > 0, .pad_page = e->pad.n_pages ? e->pad.pages[0] : 0,
        .pad_slot = e->pad.n_pages ? kv_slot(&e->pool, &e->pad, 0) : 0,
    };
    /* layer dumps describe the prompt pass: the step that prefills the (single) sequence */
    e->obs.dump_layers = b.prefill;
    const double t0 = now_seconds();
    const int rc = decoder_forward(e->m, e->kv, &b, e->overlap ? NULL : p->next, observer(e));
    *(b.prefill ? &e->stats.t_prefill : &e->stats.t_decode) += now_seconds() - t0;
    e->stats.steps++;
    e->stats.decode_tokens += p->n_decode_rows;
    e->stats.prefill_tokens += p->n_rows - p->n_decode_rows;
    if (rc == 0) return 0;
    return backend_fault(&e->m->bk) ? -1 : 1;
}

static int is_stop(const engine_t *e, int t) { return t == e->sp.im_end || t == e->sp.endoftext; }

/* An aligner's slot class; after the last, the words' times (aligner spec 8). 1 when that was
 * the last: the result is complete. */
static int collect_slot(engine_t *e, seq_t *s, int cls, double t)
{
    if (s->res.n_tokens == 0) s->res.t_first = t;
    s->res.tokens = xrealloc(s->res.tokens, (s->res.n_tokens + 1) * sizeof(int));
    s->res.tokens[s->res.n_tokens++] = cls;
    if (s->res.n_tokens < s->n_slots) return 0;
    double *ms = xmalloc(sizeof(double) * (size_t)s->n_slots);
    for (int i = 0; i < s->n_slots; i++) ms[i] = (double)s->res.tokens[i] * e->m->cfg.timestamp_ms;
    s->res.times_ms = xmalloc(sizeof(int) * (size_t)s->n_slots);
    align_repair(ms, s->n_slots, s->res.times_ms);
    free(ms);
    s->res.words = s->words;
    memset(&s->words, 0, sizeof s->words);
    s->res.stopped = 1;
    return 1;
}

/* s has its result: it leaves the active set (and `later`, a step launched since, drops its
 * token there), gives its pages back and its result out. */
static void finish(engine_t *e, seq_t *s, step_plan_t *later)
{
    for (int i = 0; i < e->n_active; i++)
        if (e->active[i] == s) e->active[i] = NULL;
    if (later && s->out_step == later->step) later->out_seq[s->out_at] = NULL;
    kv_seq_release(&e->pool, &s->kv);
    push_result(e, s);
}

/* Step p's tokens into their sequences; finished sequences give up their pages and results.
 * later: the step launched after p (steps overlapped), or NULL. */
static void collect(engine_t *e, step_plan_t *p, step_plan_t *later)
{
    const double t = clock_now(e);
    for (int j = 0; j < p->n_out; j++) {
        seq_t *s = p->out_seq[j];
        if (!s) continue; /* a spare row of a sequence that had ended */
        if (s->n_slots) {
            if (collect_slot(e, s, p->next[j], t)) finish(e, s, later);
            continue;
        }
        if (s->audio) { /* prompt complete: the audio embeddings are no longer needed */
            e->m->bk.ops->buf_free(e->m->bk.be, s->audio);
            s->audio = NULL;
            s->res.t_first = t;
        }
        s->res.tokens = xrealloc(s->res.tokens, (s->res.n_tokens + 1) * sizeof(int));
        s->res.tokens[s->res.n_tokens++] = s->last = p->next[j];
        s->res.stopped = !s->req.ignore_eos && is_stop(e, p->next[j]);
        if (s->res.stopped || s->res.n_tokens >= s->max_new) {
            s->res.truncated = !s->res.stopped && !s->req.ignore_eos;
            finish(e, s, later);
        }
    }
    compact_active(e);
}

/* Step p's tokens from the device (steps overlapped): waits for p to finish. */
static void fetch(engine_t *e, step_plan_t *p)
{
    const double t0 = now_seconds();
    e->m->bk.ops->fetch_ids(e->m->bk.be, p->next, p->n_out);
    *(p->n_rows > p->n_decode_rows ? &e->stats.t_prefill : &e->stats.t_decode) += now_seconds() - t0;
}

/* Sequences encoded on the encoder lane (SEQ_ENCODING) prefill from now on: the decoder's
 * later work waits for the encoder work submitted so far. Called before the next encode()
 * marks newer encoder work, so the wait covers only what these sequences need. */
static void join_encoded(engine_t *e)
{
    int n = 0;
    for (int i = 0; i < e->n_active; i++)
        if (e->active[i]->state == SEQ_ENCODING) {
            e->active[i]->state = SEQ_PREFILL;
            n++;
        }
    if (n) e->m->bk.ops->join_encoder(e->m->bk.be);
}

/* Anything for this step's decoder work besides the sequences still encoding? */
static int step_has_work(const engine_t *e)
{
    for (int i = 0; i < e->n_active; i++)
        if (e->active[i]->state != SEQ_ENCODING) return 1;
    return 0;
}

int engine_step(engine_t *e)
{
    /* With an encoder lane, last step's encoding joins now and this step's fresh sequences are
     * encoded while this step decodes (they prefill in the next one), unless nothing else would
     * run: then they join at once, adding no step of latency. Without one (the CPU), encode
     * runs first and its sequences prefill in this step, as always. */
    join_encoded(e);
    const int n_fresh = admit(e);
    if (n_fresh && encode(e, n_fresh) != 0) return -1;
    if (!step_has_work(e)) join_encoded(e);
    /* Overlapped, this step is launched before the previous one's tokens are read. */
    step_plan_t *p = &e->plans[e->pending == &e->plans[0]], *prev = e->pending;
    e->pending = NULL;
    const int ran = e->n_active > 0 && plan_step(e, p) > 0;
    const int rc = ran ? decode(e, p) : 0;
    if (rc < 0) return -1;
    char why[QASR_ERR_LEN] = "";
    if (rc == 1) snprintf(why, sizeof why, "%s", qasr_last_error());
    if (prev) {
        fetch(e, prev);
        collect(e, prev, ran && rc == 0 ? p : NULL);
    }
    if (rc == 1) { /* out of backend memory: the step's sequences end, later ones go on */
        if (e->overlap) e->m->bk.ops->fetch_ids(e->m->bk.be, NULL, 0);
        for (int i = 0; i < e->n_active; i++) fail_active(e, i, why);
        compact_active(e);
    } else if (ran && e->overlap) {
        e->pending = p;
    } else if (ran) {
        collect(e, p, NULL);
    }
    for (int i = 0; i < N_STAGES; i++) {
        e->stats.stage_seconds[i] = e->obs.seconds[i];
        e->stats.stage_flop[i] = e->obs.flop[i];
    }
    const backend_ops_t *o = e->m->bk.ops;
    if (o->device_allocs) e->stats.device_allocs = o->device_allocs(e->m->bk.be) - e->allocs0;
    return 0;
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
    free(r->times_ms);
    align_words_free(&r->words);
    memset(r, 0, sizeof *r);
}
