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
    char *error, *warning;
};

qasr_t *qasr_py_load(const char *model_dir, const char *backend, int device, int threads,
                     const char *precision, int max_batch, double kv_gb, int verbose)
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
    return qasr_load(model_dir, &o);
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

/* Decode j's audio, cut it and submit its pieces; on failure j->error is set and nothing is
 * submitted. */
static void start_job(qasr_session_t *s, job_t *j, int max_new_tokens, int64_t max_len)
{
    float *x = NULL;
    int rc = j->src->path ? audio_load(j->src->path, &x, &j->n, &j->warning) : (x = array_to_16k(j->src, &j->n)) ? 0 : -1;
    if (rc != 0) {
        j->error = xstrdup(qasr_last_error());
        j->n = -1;
        return;
    }
    if (max_len > 0) {
        j->n_seg = segment_plan(x, j->n, max_len, &j->bounds);
    } else {
        j->n_seg = 1;
        j->bounds = xmalloc(2 * sizeof *j->bounds);
        j->bounds[0] = 0, j->bounds[1] = j->n;
    }
    j->pieces = xcalloc((size_t)j->n_seg, sizeof *j->pieces);
    j->seg = xcalloc((size_t)j->n_seg, sizeof *j->seg);
    for (int i = 0; i < j->n_seg; i++) {
        float pad[SEGMENT_MIN_SAMPLES]; /* a short last piece of a cut input: 0.5 s (official) */
        const float *p = x + j->bounds[i];
        int64_t len = j->bounds[i + 1] - j->bounds[i];
        if (i > 0 && len < SEGMENT_MIN_SAMPLES) {
            memset(pad, 0, sizeof pad);
            memcpy(pad, p, (size_t)len * sizeof(float));
            p = pad;
            len = SEGMENT_MIN_SAMPLES;
        }
        j->pieces[i] = (piece_t){ j, i };
        const qasr_input_t in = { .samples = p, .n_samples = len, .context = j->src->context,
                                  .language = j->src->language, .max_new_tokens = max_new_tokens };
        qasr_session_submit(s, &in, &j->pieces[i]); /* the session copies the samples */
    }
    free(x);
}

static double seconds_at(int64_t sample) { return (double)sample / QASR_SAMPLE_RATE; }

/* The first failed segment's error, as qasr-batch words it for a cut file; NULL if none. */
static char *segment_error(const job_t *j)
{
    for (int i = 0; i < j->n_seg; i++)
        if (j->seg[i].error) {
            char msg[QASR_ERR_LEN];
            if (j->n_seg > 1)
                snprintf(msg, sizeof msg, "segment %d (%.1f-%.1f s): %s", i + 1, seconds_at(j->bounds[i]),
                         seconds_at(j->bounds[i + 1]), j->seg[i].error);
            else
                snprintf(msg, sizeof msg, "%s", j->seg[i].error);
            return xstrdup(msg);
        }
    return NULL;
}

static void add_string_or_null(cJSON *o, const char *key, const char *s)
{
    if (s) cJSON_AddStringToObject(o, key, s);
    else cJSON_AddNullToObject(o, key);
}

/* j's line (no newline), malloc'd. */
static char *job_line(job_t *j)
{
    if (!j->error) j->error = segment_error(j);
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
}

char *qasr_py_transcribe(qasr_t *q, const qasr_py_input_t *in, int n, int max_new_tokens,
                         double max_segment_seconds)
{
    const int64_t max_len = max_segment_seconds > 0 ? (int64_t)(max_segment_seconds * QASR_SAMPLE_RATE) : 0;
    if (max_segment_seconds > 0 && max_len <= SEGMENT_SEARCH_SAMPLES + SEGMENT_WINDOW_SAMPLES) {
        qasr_fail("max_segment_seconds must be more than 6 (the cut is searched in the 5 s before it), or 0");
        return NULL;
    }
    qasr_session_t *s = qasr_session_new(q);
    if (!s) return NULL;
    job_t *jobs = xcalloc((size_t)MAX(1, n), sizeof *jobs);
    int next = 0;
    for (int i = 0; i < n; i++) jobs[i] = (job_t){ .src = &in[i], .n = -1 };
    char *failure = NULL; /* the session's, when a step fails: every input not done gets it */
    while (!failure) {
        while (next < n && qasr_session_waiting_seconds(s) < PY_WAITING_SECONDS)
            start_job(s, &jobs[next++], max_new_tokens, max_len);
        if (qasr_session_pending(s) == 0) {
            if (next == n) break;
            continue;
        }
        if (qasr_session_step(s) != 0) {
            failure = xstrdup(qasr_last_error());
            break;
        }
        qasr_result_t r;
        void *tag;
        while (qasr_session_poll(s, &r, &tag)) {
            piece_t *p = tag;
            p->job->seg[p->i] = r;
            p->job->n_done++;
        }
    }
    qasr_session_free(s);
    size_t cap = 1, len = 0;
    char **lines = xcalloc((size_t)MAX(1, n), sizeof *lines);
    for (int i = 0; i < n; i++) {
        job_t *j = &jobs[i];
        if (!j->error && (i >= next || j->n_done < j->n_seg))
            j->error = xstrdup(failure ? failure : "not transcribed");
        lines[i] = job_line(j);
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
