/* Library API: model + tokenizer + engine behind qasr.h. */
#include "qasr.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audio.h"
#include "backend.h"
#include "backend_select.h"
#include "engine.h"
#include "model.h"
#include "prompt.h"
#include "tokenizer.h"
#include "transcript.h"
#include "util.h"

struct qasr {
    backend_ref_t bk;
    model_t model;
    tokenizer_t *tok;
    special_ids_t sp;
    engine_opts_t eopt;
    double load_seconds;
    qasr_stats_t stats;
};

void qasr_options_default(qasr_options_t *o)
{
    memset(o, 0, sizeof *o);
}

/* One model instance on `device`; upload 0: weights allocated but left for the backend's
 * broadcast_weights. */
static qasr_t *load_one(const char *dir, const qasr_options_t *opt, int device, int upload, int aligner)
{
    const double t0 = now_seconds();
    qasr_t *q = xcalloc(1, sizeof *q);
    model_config_t cfg;
    if (config_load(&cfg, dir) != 0) goto fail;
    if (cfg.aligner && !aligner) {
        qasr_fail("%s: a Qwen3-ForcedAligner checkpoint (word timestamps: its thinker_config.model_type "
                  "is a forced aligner), not a speech recognition model; use a Qwen3-ASR checkpoint "
                  "(and give this one as --aligner)", dir);
        goto fail;
    }
    if (!cfg.aligner && aligner) {
        qasr_fail("%s: not a Qwen3-ForcedAligner checkpoint (its thinker_config has no forced-aligner "
                  "model_type: a speech recognition model?); --aligner takes a Qwen3-ForcedAligner "
                  "directory", dir);
        goto fail;
    }
    if (!(q->tok = tokenizer_load(dir))) goto fail;
    if (special_ids_load(&q->sp, q->tok, &cfg) != 0) {
        qasr_fail_prefix("%s", dir);
        goto fail;
    }
    if (aligner && tokenizer_token_id(q->tok, "<timestamp>") != cfg.timestamp_token_id) {
        qasr_fail("%s: config.json timestamp_token_id %d is not the tokenizer's <timestamp> (%d)", dir,
                  cfg.timestamp_token_id, tokenizer_token_id(q->tok, "<timestamp>"));
        goto fail;
    }
    const backend_params_t bp = { .device = device, .threads = opt->threads, .n_mels = cfg.n_mels,
                                  .precision = opt->precision, .config = &cfg };
    if (backend_create(&q->bk, opt->backend, &bp) != 0) goto fail;
    if (model_load(&q->model, dir, q->bk, upload) != 0) goto fail;
    engine_opts_default(&q->eopt);
    if (opt->step_tokens > 0) q->eopt.max_step_tokens = opt->step_tokens;
    if (opt->encoder_seconds > 0) q->eopt.enc_max_seconds = opt->encoder_seconds;
    /* the batch: given; or from the cache size given; or chosen by the warm-up */
    const int warm = opt->kv_gb <= 0 && !(q->bk.ops->flags & BACKEND_HOST_MEMORY);
    q->eopt.max_seqs = opt->max_batch > 0 ? opt->max_batch
                     : warm            ? 0
                                       : engine_default_max_seqs(&q->model, &q->eopt, opt->kv_gb, 0);
    q->eopt.profile = opt->profile;
    q->eopt.static_batching = opt->static_batching;
    q->eopt.no_cuda_graphs = opt->no_cuda_graphs;
    q->eopt.sync_steps = opt->sync_steps;
    q->eopt.dump_dir = opt->dump_dir;
    /* a device's cache takes what the run's passes leave (warmed up first); RAM is shared */
    if (warm && engine_warm_up(&q->model, &q->eopt) != 0) goto fail;
    q->eopt.kv_gb = opt->kv_gb > 0 ? opt->kv_gb : engine_default_kv_gb(&q->bk);
    q->load_seconds = now_seconds() - t0;
    return q;
fail:
    qasr_free(q);
    return NULL;
}

qasr_t *qasr_load(const char *dir, const qasr_options_t *opt)
{
    qasr_options_t def;
    if (!opt) {
        qasr_options_default(&def);
        opt = &def;
    }
    return load_one(dir, opt, opt->device, 1, 0);
}

qasr_t *qasr_load_aligner(const char *dir, const qasr_options_t *opt)
{
    qasr_options_t def;
    if (!opt) {
        qasr_options_default(&def);
        opt = &def;
    }
    return load_one(dir, opt, opt->device, 1, 1);
}

/* Copy out[0]'s weights to out[1..n-1] (loaded without uploading), where the backend can. */
static int broadcast(qasr_t **out, int n)
{
    const backend_ops_t *o = out[0]->bk.ops;
    if (!o->broadcast_weights) return qasr_fail("the %s backend cannot copy weights between devices", o->name);
    backend_t **bes = xmalloc(n * sizeof *bes);
    for (int k = 0; k < n; k++) bes[k] = out[k]->bk.be;
    const int rc = o->broadcast_weights(bes, n);
    free(bes);
    return rc;
}

int qasr_load_devices(const char *dir, const qasr_options_t *opt, const int *devices, int n, qasr_t **out)
{
    const double t0 = now_seconds();
    memset(out, 0, n * sizeof *out);
    int i = 0;
    for (; i < n; i++)
        if (!(out[i] = load_one(dir, opt, devices[i], i == 0, 0))) goto fail;
    const double t1 = now_seconds();
    if (n > 1 && broadcast(out, n) == 0) {
        if (opt->verbose)
            fprintf(stderr, "%s: weights read once, uploaded to device %d and copied to %d more with NCCL "
                    "broadcast (%.2f s)\n", qasr_program_name(), devices[0], n - 1, now_seconds() - t1);
    } else if (n > 1) {
        if (opt->verbose)
            fprintf(stderr, "%s: %s: each device uploads the weights itself\n", qasr_program_name(), qasr_last_error());
        for (i = 1; i < n; i++) {
            qasr_free(out[i]);
            if (!(out[i] = load_one(dir, opt, devices[i], 1, 0))) goto fail;
        }
    }
    for (i = 0; i < n; i++) out[i]->load_seconds = now_seconds() - t0;
    return 0;
fail:
    if (n > 1) qasr_fail_prefix("device %d", devices[i]);
    for (int k = 0; k < n; k++) qasr_free(out[k]);
    memset(out, 0, n * sizeof *out);
    return -1;
}

void qasr_free(qasr_t *q)
{
    if (!q) return;
    model_free(&q->model);
    if (q->bk.ops) q->bk.ops->destroy(q->bk.be);
    tokenizer_free(q->tok);
    free(q);
}

/* Normalised supported language name (malloc'd), or NULL + qasr_fail(). */
static char *check_language(const qasr_t *q, const char *name)
{
    char *norm = transcript_normalize_language(name);
    const model_config_t *c = &q->model.cfg;
    for (int i = 0; i < c->n_languages; i++)
        if (strcmp(norm, c->languages[i]) == 0) return norm;
    if (c->n_languages == 0) return norm; /* config lists none: accept any name */
    qasr_fail("unsupported language '%s' (supported: see `qasr --list-languages`)", name);
    free(norm);
    return NULL;
}

/* An alignment's result: the words and their times; text the transcript aligned. */
static void fill_alignment(const engine_result_t *er, const char *text, const char *language, qasr_result_t *r)
{
    r->text = xstrdup(text ? text : "");
    r->language = xstrdup(language ? language : "");
    r->raw = xstrdup("");
    r->n_words = er->words.n;
    r->words = xcalloc(MAX(1, er->words.n), sizeof *r->words);
    for (int i = 0; i < er->words.n; i++)
        r->words[i] = (qasr_word_t){ .word = xstrdup(er->words.words[i]), .start_ms = er->times_ms[2 * i],
                                     .end_ms = er->times_ms[2 * i + 1] };
}

static void fill_result(const qasr_t *q, const engine_result_t *er, const char *forced, const char *align_text,
                        qasr_result_t *r)
{
    r->audio_seconds = er->audio_seconds;
    if (er->error) {
        r->error = xstrdup(er->error);
        return;
    }
    r->token_ids = xmalloc(MAX(1, er->n_tokens) * sizeof(int));
    memcpy(r->token_ids, er->tokens, er->n_tokens * sizeof(int));
    r->n_tokens = er->n_tokens;
    r->encode_seconds = er->t_encoded - er->t_submit;
    r->first_token_seconds = er->t_first - er->t_submit;
    r->total_seconds = er->t_done - er->t_submit;
    if (q->model.cfg.aligner) {
        fill_alignment(er, align_text, forced, r);
        return;
    }
    r->truncated = er->truncated;
    r->raw = tokenizer_decode(q->tok, er->tokens, er->n_tokens, 1);
    transcript_parse(r->raw, forced, &r->language, &r->text);
}

/* ---- sessions: an engine fed incrementally ---- */

typedef struct {
    void *tag;      /* the caller's */
    char *forced;   /* normalised forced language, or NULL */
    char *align_text; /* an alignment's transcript, or NULL */
} request_t;

struct qasr_session {
    qasr_t *q;
    engine_t *e;
    double t0;
    /* inputs rejected before reaching the engine (unsupported language), FIFO */
    struct { qasr_result_t r; void *tag; } *early;
    int n_early, cap_early;
};

qasr_session_t *qasr_session_new(qasr_t *q)
{
    if (q->bk.ops->bind) q->bk.ops->bind(q->bk.be);
    engine_t *e = engine_create(&q->model, q->tok, &q->sp, &q->eopt);
    if (!e) return NULL;
    qasr_session_t *s = xcalloc(1, sizeof *s);
    s->q = q;
    s->e = e;
    s->t0 = now_seconds();
    return s;
}

/* A forced language that is empty or only whitespace asks for none, as in the official wrapper
 * (spec 7.4: `None if str(l).strip() == ""`). */
static const char *forced_language(const char *language)
{
    if (!language) return NULL;
    for (const char *p = language; *p; p++)
        if (!isspace((unsigned char)*p)) return language;
    return NULL;
}

void qasr_session_submit(qasr_session_t *s, const qasr_input_t *in, void *tag)
{
    char *forced = NULL;
    const int aligner = s->q->model.cfg.aligner;
    const char *language = forced_language(in->language);
    /* the aligner splits any language's text (unknown ones as space-separated): not refused */
    if (language && aligner) forced = transcript_normalize_language(language);
    else if (language && !(forced = check_language(s->q, language))) {
        if (s->n_early == s->cap_early) {
            s->cap_early = s->cap_early ? 2 * s->cap_early : 16;
            s->early = xrealloc(s->early, s->cap_early * sizeof *s->early);
        }
        s->early[s->n_early].r = (qasr_result_t){ .error = xstrdup(qasr_last_error()),
                                                  .audio_seconds = (double)in->n_samples / QASR_SAMPLE_RATE };
        s->early[s->n_early++].tag = tag;
        return;
    }
    request_t *rq = xmalloc(sizeof *rq);
    *rq = (request_t){ tag, forced, aligner && in->align_text ? xstrdup(in->align_text) : NULL };
    float *copy = xmalloc(MAX(1, in->n_samples) * sizeof(float));
    memcpy(copy, in->samples, in->n_samples * sizeof(float));
    const engine_req_t r = { .samples = copy, .n_samples = in->n_samples, .context = in->context,
                             .language = forced, .max_new_tokens = in->max_new_tokens,
                             .ignore_eos = in->ignore_eos, .align_text = aligner ? in->align_text : NULL,
                             .tag = rq };
    engine_submit(s->e, &r);
}

int qasr_session_pending(const qasr_session_t *s) { return s->n_early + engine_in_flight(s->e); }
int qasr_session_waiting(const qasr_session_t *s) { return engine_waiting(s->e); }
double qasr_session_waiting_seconds(const qasr_session_t *s) { return engine_waiting_seconds(s->e); }

static void drop_request(void *tag)
{
    request_t *rq = tag;
    free(rq->forced);
    free(rq->align_text);
    free(rq);
}

int qasr_session_cancel_waiting(qasr_session_t *s) { return engine_cancel_waiting(s->e, drop_request); }

int qasr_session_step(qasr_session_t *s)
{
    if (s->q->bk.ops->bind) s->q->bk.ops->bind(s->q->bk.be); /* a cudaSetDevice: costs nothing */
    return engine_in_flight(s->e) > engine_ready(s->e) ? engine_step(s->e) : 0;
}

int qasr_session_poll(qasr_session_t *s, qasr_result_t *out, void **tag)
{
    if (s->n_early > 0) {
        *out = s->early[0].r;
        *tag = s->early[0].tag;
        memmove(s->early, s->early + 1, --s->n_early * sizeof *s->early);
        return 1;
    }
    engine_result_t er;
    if (!engine_pop(s->e, &er)) return 0;
    request_t *rq = er.tag;
    memset(out, 0, sizeof *out);
    fill_result(s->q, &er, rq->forced, rq->align_text, out);
    *tag = rq->tag;
    engine_result_free(&er);
    drop_request(rq);
    return 1;
}

void qasr_session_stats(const qasr_session_t *s, qasr_stats_t *st)
{
    const engine_stats_t *es = engine_stats(s->e);
    *st = (qasr_stats_t){
        .wall_seconds = now_seconds() - s->t0, .audio_seconds = es->audio_seconds,
        .mel_seconds = es->t_mel, .encoder_seconds = es->t_encoder,
        .prefill_seconds = es->t_prefill, .decode_seconds = es->t_decode,
        .prefill_tokens = es->prefill_tokens, .decode_tokens = es->decode_tokens, .decoder_steps = es->steps,
        .device_allocs = es->device_allocs,
    };
    _Static_assert(QASR_N_STAGES == N_STAGES, "one qasr stage per model stage");
    for (int i = 0; i < QASR_N_STAGES; i++) {
        st->stage[i].seconds = es->stage_seconds[i];
        st->stage[i].gflop = es->stage_flop[i] / 1e9;
    }
}

const char *qasr_stage_name(int i)
{
    static const char *const names[QASR_N_STAGES] = { "mel", "conv stem", "encoder layers",
                                                      "prefill", "decode", "LM head" };
    return i >= 0 && i < QASR_N_STAGES ? names[i] : "?";
}

void qasr_session_free(qasr_session_t *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_early; i++) qasr_result_free(&s->early[i].r);
    free(s->early);
    engine_free(s->e, drop_request);
    free(s);
}

int qasr_transcribe(qasr_t *q, const qasr_input_t *in, int n, qasr_result_t *out)
{
    memset(out, 0, n * sizeof *out);
    if (q->eopt.dump_dir && n != 1) {
        for (int i = 0; i < n; i++) out[i].error = xstrdup("--dump-dir works with exactly one input");
        return n;
    }
    qasr_session_t *s = qasr_session_new(q);
    if (!s) {
        for (int i = 0; i < n; i++) out[i].error = xstrdup(qasr_last_error());
        return n;
    }
    for (int i = 0; i < n; i++) qasr_session_submit(s, &in[i], &out[i]);
    while (qasr_session_pending(s) > 0) {
        const int rc = qasr_session_step(s);
        qasr_result_t r;
        void *tag;
        while (qasr_session_poll(s, &r, &tag)) *(qasr_result_t *)tag = r;
        if (rc != 0) { /* the device failed: every input without a result gets its message */
            for (int i = 0; i < n; i++)
                if (!out[i].error && !out[i].token_ids) {
                    out[i].error = xstrdup(qasr_last_error());
                    out[i].audio_seconds = (double)in[i].n_samples / QASR_SAMPLE_RATE;
                }
            break;
        }
    }
    qasr_session_stats(s, &q->stats);
    qasr_session_free(s);
    int failed = 0;
    for (int i = 0; i < n; i++) failed += out[i].error != NULL;
    return failed;
}

void qasr_result_free(qasr_result_t *r)
{
    free(r->text);
    free(r->language);
    free(r->raw);
    free(r->token_ids);
    free(r->error);
    for (int i = 0; i < r->n_words; i++) free(r->words[i].word);
    free(r->words);
    memset(r, 0, sizeof *r);
}

void qasr_last_stats(const qasr_t *q, qasr_stats_t *s) { *s = q->stats; }

int qasr_n_languages(const qasr_t *q) { return q->model.cfg.n_languages; }
const char *qasr_language(const qasr_t *q, int i) { return q->model.cfg.languages[i]; }
double qasr_load_seconds(const qasr_t *q) { return q->load_seconds; }
int qasr_device_count(void) { return backend_device_count(); }
int qasr_precision_known(const char *s) { return backend_precision_known(s); }

const char *qasr_backend_plan(const qasr_t *q)
{
    return q->bk.ops->plan ? q->bk.ops->plan(q->bk.be) : NULL;
}

int qasr_max_batch(const qasr_t *q) { return q->eopt.max_seqs; }

int qasr_on_device(const qasr_t *q) { return !(q->bk.ops->flags & BACKEND_HOST_MEMORY); }

const char *qasr_backend_describe(const qasr_t *q)
{
    return q->bk.ops->describe ? q->bk.ops->describe(q->bk.be) : q->bk.ops->name;
}
