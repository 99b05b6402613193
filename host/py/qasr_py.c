/* qasr_py_load and qasr_py_transcribe (qasr_py.h): inputs decoded and cut as qasr-batch does
 * (audio.h, segment.h, the padding of workers.c), decoded in one session, joined as write.c
 * joins, written as JSON lines. */
#include "qasr_py.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "batch.h"
#include "cues.h"
#include "join.h"
#include "segment.h"
#include "util.h"

/* Most audio submitted but not started, as qasr-batch's WAITING_SECONDS: inputs are decoded as
 * the session takes them, so a long list is never all in memory at once. */
#define PY_WAITING_SECONDS 1200.0

typedef struct job job_t;
typedef struct {
    job_t *job;
    int i;                  /* segment index */
} piece_t;

struct job {
    const qasr_py_input_t *src;
    int64_t n;              /* 16 kHz samples; -1 until decoded */
    int64_t *bounds;        /* segment i is bounds[i]..bounds[i + 1] */
    int n_seg, n_done;
    piece_t *pieces;
    qasr_result_t *seg;
    float *samples;         /* kept for the aligner until its pieces are aligned */
    int n_aligned;          /* pieces whose alignment is in (or that have nothing to align) */
    char *error, *warning, *words_error;
};

static qasr_options_t py_options(const char *backend, int device, int threads, const char *precision, int max_batch,
                                 double kv_gb, int verbose)
{
    qasr_options_t o;
    qasr_options_default(&o);
    o.backend = backend;
    o.device = device;
    o.threads = threads;
    o.precision = precision;
    o.max_batch = max_batch;
    o.kv_gb = kv_gb;
    o.verbose = verbose;
    return o;
}

qasr_t *qasr_py_load(const char *model_dir, const char *backend, int device, int threads,
                     const char *precision, int max_batch, double kv_gb, int verbose)
{
    const qasr_options_t o = py_options(backend, device, threads, precision, max_batch, kv_gb, verbose);
    return qasr_load(model_dir, &o);
}

qasr_t *qasr_py_load_aligner(const char *aligner_dir, const char *backend, int device, int threads,
                             const char *precision, int max_batch, double kv_gb, int verbose)
{
    const qasr_options_t o = py_options(backend, device, threads, precision, max_batch, kv_gb, verbose);
    return qasr_load_aligner(aligner_dir, &o);
}

void qasr_py_free(void *p) { free(p); }

/* An array input to 16 kHz mono, conditioned: the steps audio_load takes after decoding. */
static float *array_to_16k(const qasr_py_input_t *in, int64_t *n)
{
    if (in->channels < 1 || in->frames <= 0) {
        qasr_fail("array input: no audio samples");
        return NULL;
    }
    const int64_t total = in->frames * in->channels;
    for (int64_t i = 0; i < total; i++)
        if (!isfinite(in->samples[i])) {
            qasr_fail("array input: non-finite sample value near frame %lld", (long long)(i / in->channels));
            return NULL;
        }
    float *mono = NULL;
    if (in->channels > 1) {
        mono = xmalloc(sizeof(float) * (size_t)in->frames);
        audio_downmix(mono, in->samples, in->frames, in->channels);
    }
    float *x = audio_resample_16k(mono ? mono : in->samples, in->frames, in->sample_rate, n);
    free(mono);
    if (!x) return NULL;
    audio_condition(x, *n);
    return x;
}

/* Piece i of j's samples x as the model takes it (segment_padded). */
static const float *piece_samples(const job_t *j, const float *x, int i, float pad[SEGMENT_MIN_SAMPLES], int64_t *len)
{
    return segment_padded(x + j->bounds[i], j->bounds[i + 1] - j->bounds[i], i, pad, len);
}

/* Decode j's audio, cut it and submit its pieces; on failure j->error is set and nothing is
 * submitted. keep: the samples stay on j (for the aligner). */
static void start_job(qasr_session_t *s, job_t *j, int max_new_tokens, int64_t max_len, int keep)
{
    float *x = NULL;
    int rc = j->src->path ? audio_load(j->src->path, &x, &j->n, &j->warning) : (x = array_to_16k(j->src, &j->n)) ? 0 : -1;
    if (rc != 0) {
        j->error = xstrdup(qasr_last_error());
        j->n = -1;
        return;
    }
    j->n_seg = segment_plan(x, j->n, max_len, &j->bounds);
    j->pieces = xcalloc((size_t)j->n_seg, sizeof *j->pieces);
    j->seg = xcalloc((size_t)j->n_seg, sizeof *j->seg);
    for (int i = 0; i < j->n_seg; i++) {
        float pad[SEGMENT_MIN_SAMPLES];
        int64_t len;
        const float *p = piece_samples(j, x, i, pad, &len);
        j->pieces[i] = (piece_t){ j, i };
        const qasr_input_t in = { .samples = p, .n_samples = len, .context = j->src->context,
                                  .language = j->src->language, .max_new_tokens = max_new_tokens };
        qasr_session_submit(s, &in, &j->pieces[i]); /* the session copies the samples */
    }
    if (keep) j->samples = x;
    else free(x);
}

/* A transcribed piece: kept, and on to the aligner's session sa (if any) when it has text. */
static void piece_transcribed(qasr_session_t *sa, piece_t *p, const qasr_result_t *r)
{
    job_t *j = p->job;
    j->seg[p->i] = *r;
    j->n_done++;
    if (!sa || r->error || !r->text[0]) { /* nothing to align (an empty transcript has no words) */
        j->n_aligned++;
    } else {
        float pad[SEGMENT_MIN_SAMPLES];
        int64_t len;
        const float *x = piece_samples(j, j->samples, p->i, pad, &len);
        const qasr_input_t in = { .samples = x, .n_samples = len, .language = r->language[0] ? r->language : NULL,
                                  .align_text = r->text };
        qasr_session_submit(sa, &in, p);
    }
    if (j->n_aligned == j->n_seg) { /* the audio is no longer needed */
        free(j->samples);
        j->samples = NULL;
    }
}

/* A piece's words are in (or why it has none). */
static void piece_aligned(piece_t *p, qasr_result_t *r)
{
    job_t *j = p->job;
    if (r->error && !j->words_error) j->words_error = xstrdup(r->error);
    j->seg[p->i].words = r->words, j->seg[p->i].n_words = r->n_words;
    r->words = NULL, r->n_words = 0;
    qasr_result_free(r);
    if (++j->n_aligned == j->n_seg) {
        free(j->samples);
        j->samples = NULL;
    }
}

static double seconds_at(int64_t sample) { return (double)sample / QASR_SAMPLE_RATE; }

static void add_string_or_null(cJSON *o, const char *key, const char *s)
{
    if (s) cJSON_AddStringToObject(o, key, s);
    else cJSON_AddNullToObject(o, key);
}

static cJSON *words_json(const qasr_word_t *w, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "word", w[i].word);
        cJSON_AddNumberToObject(o, "start", w[i].start_ms / 1000.0);
        cJSON_AddNumberToObject(o, "end", w[i].end_ms / 1000.0);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* j's line (no newline), malloc'd. aligned: word times were asked for. */
static char *job_line(job_t *j, int aligned)
{
    if (!j->error) j->error = join_first_error(j->seg, j->bounds, j->n_seg);
    cJSON *o = cJSON_CreateObject();
    add_string_or_null(o, "path", j->src->path);
    const char **texts = xcalloc((size_t)MAX(1, j->n_seg), sizeof *texts);
    const char **langs = xcalloc((size_t)MAX(1, j->n_seg), sizeof *langs);
    cJSON *ids = cJSON_CreateArray(), *segs = cJSON_CreateArray();
    size_t raw_len = 1;
    int n_tokens = 0, truncated = 0;
    for (int i = 0; i < j->n_seg && !j->error; i++) {
        const qasr_result_t *r = &j->seg[i];
        texts[i] = r->text;
        langs[i] = r->language;
        raw_len += strlen(r->raw ? r->raw : "");
        n_tokens += r->n_tokens;
        truncated |= r->truncated;
        for (int k = 0; k < r->n_tokens; k++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(r->token_ids[k]));
        cJSON *sg = cJSON_CreateObject();
        cJSON_AddNumberToObject(sg, "start", seconds_at(j->bounds[i]));
        cJSON_AddNumberToObject(sg, "end", seconds_at(j->bounds[i + 1]));
        cJSON_AddStringToObject(sg, "text", r->text);
        cJSON_AddItemToArray(segs, sg);
    }
    char *text = NULL, *language = NULL, *raw = NULL;
    if (!j->error) {
        text = join_texts(texts, j->n_seg);
        language = join_languages(langs, j->n_seg);
        raw = xcalloc(raw_len, 1); /* the segments' decoded outputs, one after the other */
        for (int i = 0; i < j->n_seg; i++) strcat(raw, j->seg[i].raw ? j->seg[i].raw : "");
    }
    /* word times: the words in file time, and the segments become subtitle cues cut from them */
    if (aligned && !j->error && !j->words_error) {
        int n_words;
        qasr_word_t *w = cues_file_words(j->seg, j->bounds, j->n_seg, &n_words);
        cue_t *cues;
        const int n_cues = cues_from_words(text, w, n_words, &cues);
        cJSON_Delete(segs);
        segs = cJSON_CreateArray();
        for (int c = 0; c < n_cues; c++) {
            cJSON *sg = cJSON_CreateObject();
            cJSON_AddNumberToObject(sg, "start", cues[c].start);
            cJSON_AddNumberToObject(sg, "end", cues[c].end);
            cJSON_AddStringToObject(sg, "text", cues[c].text);
            cJSON_AddItemToArray(segs, sg);
        }
        cJSON_AddItemToObject(o, "words", words_json(w, n_words));
        cues_free(cues, n_cues);
        free(w);
    } else {
        cJSON_AddNullToObject(o, "words");
    }
    if (aligned && !j->error && j->words_error) cJSON_AddStringToObject(o, "words_error", j->words_error);
    add_string_or_null(o, "text", text);
    add_string_or_null(o, "language", language);
    add_string_or_null(o, "raw", raw);
    cJSON_AddItemToObject(o, "token_ids", ids);
    cJSON_AddNumberToObject(o, "n_tokens", n_tokens);
    cJSON_AddBoolToObject(o, "truncated", truncated);
    if (j->n >= 0) cJSON_AddNumberToObject(o, "duration", seconds_at(j->n));
    else cJSON_AddNullToObject(o, "duration");
    cJSON_AddItemToObject(o, "segments", segs);
    add_string_or_null(o, "error", j->error);
    add_string_or_null(o, "warning", j->error ? NULL : j->warning);
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    free(texts), free(langs), free(text), free(language), free(raw);
    return line;
}

static void job_free(job_t *j)
{
    for (int i = 0; i < j->n_seg; i++) qasr_result_free(&j->seg[i]);
    free(j->seg), free(j->pieces), free(j->bounds), free(j->error), free(j->warning);
    free(j->samples), free(j->words_error);
}

char *qasr_py_transcribe(qasr_t *q, qasr_t *aligner, const qasr_py_input_t *in, int n, int max_new_tokens,
                         double max_segment_seconds)
{
    if (aligner && (max_segment_seconds <= 0 || max_segment_seconds > ALIGN_MAX_SECONDS))
        max_segment_seconds = ALIGN_MAX_SECONDS; /* the aligner's limit (aligner spec 9) */
    const int64_t max_len = max_segment_seconds > 0 ? (int64_t)(max_segment_seconds * QASR_SAMPLE_RATE) : 0;
    if (max_segment_seconds > 0 && max_len <= SEGMENT_SEARCH_SAMPLES + SEGMENT_WINDOW_SAMPLES) {
        qasr_fail("max_segment_seconds must be more than 6 (the cut is searched in the 5 s before it), or 0");
        return NULL;
    }
    qasr_session_t *s = qasr_session_new(q), *sa = NULL;
    if (!s) return NULL;
    if (aligner && !(sa = qasr_session_new(aligner))) {
        qasr_session_free(s);
        return NULL;
    }
    job_t *jobs = xcalloc((size_t)MAX(1, n), sizeof *jobs);
    int next = 0;
    for (int i = 0; i < n; i++) jobs[i] = (job_t){ .src = &in[i], .n = -1 };
    char *failure = NULL; /* the session's, when a step fails: every input not done gets it */
    while (!failure) {
        while (next < n && qasr_session_waiting_seconds(s) < PY_WAITING_SECONDS)
            start_job(s, &jobs[next++], max_new_tokens, max_len, sa != NULL);
        if (qasr_session_pending(s) == 0 && (!sa || qasr_session_pending(sa) == 0)) {
            if (next == n) break;
            continue;
        }
        if (qasr_session_step(s) != 0 || (sa && qasr_session_step(sa) != 0)) {
            failure = xstrdup(qasr_last_error());
            break;
        }
        qasr_result_t r;
        void *tag;
        while (qasr_session_poll(s, &r, &tag)) piece_transcribed(sa, tag, &r);
        while (sa && qasr_session_poll(sa, &r, &tag)) piece_aligned(tag, &r);
    }
    qasr_session_free(s);
    qasr_session_free(sa);
    size_t cap = 1, len = 0;
    char **lines = xcalloc((size_t)MAX(1, n), sizeof *lines);
    for (int i = 0; i < n; i++) {
        job_t *j = &jobs[i];
        if (!j->error && (i >= next || j->n_done < j->n_seg || j->n_aligned < j->n_seg))
            j->error = xstrdup(failure ? failure : "not transcribed");
        lines[i] = job_line(j, sa != NULL);
        cap += strlen(lines[i]) + 1;
        job_free(j);
    }
    char *out = xmalloc(cap);
    for (int i = 0; i < n; i++) {
        const size_t k = strlen(lines[i]);
        memcpy(out + len, lines[i], k);
        out[len + k] = '\n';
        len += k + 1;
        free(lines[i]);
    }
    out[len] = 0;
    free(lines);
    free(jobs);
    free(failure);
    return out;
}
