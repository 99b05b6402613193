#include "batch.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manifest.h"
#include "progress.h"
#include "reader.h"
#include "results.h"
#include "segment.h"
#include "subtitles.h"
#include "util.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    static const char msg[] = "\nqasr-batch: interrupted: finishing the files in progress "
                              "(signal again to stop at once; rerun to resume)\n";
    if (interrupted) _exit(BATCH_INTERRUPTED); /* lines already written are complete */
    interrupted = 1;
    ssize_t rc = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)rc;
    (void)sig;
}

void batch_opts_default(batch_opts_t *o)
{
    memset(o, 0, sizeof *o);
    qasr_options_default(&o->qopt);
    o->manifest_format = "auto";
    o->output = "results.jsonl";
    /* 300 s: the official code decodes up to 1200 s per pass, but a pass that long needs
     * ~31k positions of KV cache per sequence, which starves the batch, and long passes are where
     * repetition loops and quality loss are reported. Five minutes keeps cuts rare (they land in
     * the quietest 100 ms of the preceding 5 s) while a sequence needs at most ~7.5k positions. */
    o->max_segment_seconds = 300;
    o->readers = 2;
    o->progress_interval = 30;
    o->fsync_seconds = 10;
}

/* One manifest entry on its way through the run. */
typedef struct item {
    const manifest_entry_t *e;
    double duration;          /* from the manifest or the header; < 0 unknown */
    int n_seg, n_done;
    int64_t *bounds;          /* segment boundaries in samples */
    qasr_result_t *seg;       /* per-segment results */
    struct seg_tag { struct item *item; int i; } *tags;
    double t_submit, decode_seconds;
} item_t;

typedef struct {
    const batch_opts_t *o;
    qasr_session_t *s;
    results_t *out;
    progress_t *progress;
    long done, failed;
} run_t;

/* No space is added at a segment boundary next to scripts written without spaces (CJK, kana,
 * Thai), as the official joiner does for them; elsewhere the words would run together. */
static int spaceless_script(unsigned c)
{
    return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF00 && c <= 0xFFEF) ||
           (c >= 0x0E00 && c <= 0x0E7F) || (c >= 0x20000 && c <= 0x3FFFF);
}

static unsigned first_cp(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) return u[0];
    if ((u[0] & 0xE0) == 0xC0) return (u[0] & 0x1Fu) << 6 | (u[1] & 0x3Fu);
    if ((u[0] & 0xF0) == 0xE0) return (u[0] & 0x0Fu) << 12 | (u[1] & 0x3Fu) << 6 | (u[2] & 0x3Fu);
    return (u[0] & 0x07u) << 18 | (u[1] & 0x3Fu) << 12 | (u[2] & 0x3Fu) << 6 | (u[3] & 0x3Fu);
}

static unsigned last_cp(const char *s, size_t n)
{
    size_t i = n - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return first_cp(s + i);
}

static char *join_texts(const item_t *it)
{
    size_t cap = 1;
    for (int i = 0; i < it->n_seg; i++) cap += strlen(it->seg[i].text ? it->seg[i].text : "") + 1;
    char *out = xmalloc(cap);
    size_t n = 0;
    for (int i = 0; i < it->n_seg; i++) {
        const char *t = it->seg[i].text;
        if (!t || !*t) continue;
        if (n > 0 && !spaceless_script(last_cp(out, n)) && !spaceless_script(first_cp(t)) && out[n - 1] != ' ' && t[0] != ' ')
            out[n++] = ' ';
        memcpy(out + n, t, strlen(t));
        n += strlen(t);
    }
    out[n] = '\0';
    return out;
}

/* Languages of the segments, empties and consecutive repeats dropped, joined with ",". */
static char *join_languages(const item_t *it)
{
    size_t cap = 1;
    for (int i = 0; i < it->n_seg; i++) cap += strlen(it->seg[i].language ? it->seg[i].language : "") + 1;
    char *out = xcalloc(cap, 1);
    const char *prev = "";
    for (int i = 0; i < it->n_seg; i++) {
        const char *l = it->seg[i].language;
        if (!l || !*l || !strcmp(l, prev)) continue;
        if (*out) strcat(out, ",");
        strcat(out, l);
        prev = l;
    }
    return out;
}

static void write_item(run_t *run, item_t *it, const char *error_in)
{
    const batch_opts_t *o = run->o;
    char *error = error_in ? xstrdup(error_in) : NULL;
    for (int i = 0; i < it->n_seg && !error; i++)
        if (it->seg[i].error) {
            char msg[QASR_ERR_LEN];
            if (it->n_seg > 1)
                snprintf(msg, sizeof msg, "segment %d (%.1f-%.1f s): %s", i + 1, it->bounds[i] / 16000.0,
                         it->bounds[i + 1] / 16000.0, it->seg[i].error);
            else
                snprintf(msg, sizeof msg, "%s", it->seg[i].error);
            error = xstrdup(msg);
        }
    char *text = error ? NULL : join_texts(it), *language = error ? NULL : join_languages(it);
    result_segment_t *segs = xcalloc(MAX(1, it->n_seg), sizeof *segs);
    cue_t *cues = xcalloc(MAX(1, it->n_seg), sizeof *cues);
    int n_tokens = 0, truncated = 0;
    for (int i = 0; i < it->n_seg && !error; i++) {
        segs[i] = (result_segment_t){ it->bounds[i] / 16000.0, it->bounds[i + 1] / 16000.0, it->seg[i].text };
        cues[i] = (cue_t){ segs[i].start, segs[i].end, it->seg[i].text };
        n_tokens += it->seg[i].n_tokens;
        truncated |= it->seg[i].truncated;
    }
    if (!error && o->format && subtitles_write(o->output_dir, it->e->id, o->format, cues, it->n_seg) != 0)
        error = xstrdup(qasr_last_error());
    const result_timing_t timings[] = {
        { "decode_audio", it->decode_seconds },
        { "transcribe", it->t_submit > 0 ? now_seconds() - it->t_submit : 0 },
    };
    const result_record_t rec = {
        .id = it->e->id, .path = it->e->path, .line = it->e->line, .text = text, .language = language,
        .duration = it->duration, .segments = segs, .n_segments = error ? 0 : it->n_seg,
        .n_tokens = n_tokens, .truncated = truncated, .error = error, .reference = it->e->text,
        .timings = timings, .n_timings = 2,
    };
    if (results_append(run->out, &rec) != 0) /* a full disk is not a per-file problem */
        qasr_die(BATCH_USAGE, "%s", qasr_last_error());
    char msg[QASR_ERR_LEN + 512] = "";
    if (error) {
        run->failed++;
        if (strstr(error, it->e->path)) /* decode errors name the file already */
            snprintf(msg, sizeof msg, "qasr-batch: %s", error);
        else
            snprintf(msg, sizeof msg, "qasr-batch: %s: %s", it->e->path, error);
    } else if (truncated) {
        snprintf(msg, sizeof msg, "qasr-batch: %s: transcript cut at the token limit without an end token", it->e->path);
    }
    if (*msg) progress_message(run->progress, msg);
    run->done++;
    progress_add(run->progress, it->duration > 0 ? it->duration : 0, error != NULL);
    for (int i = 0; i < it->n_seg; i++) qasr_result_free(&it->seg[i]);
    free(it->seg);
    free(it->tags);
    free(it->bounds);
    it->seg = NULL;
    it->tags = NULL;
    it->bounds = NULL;
    free(segs);
    free(cues);
    free(text);
    free(language);
    free(error);
}

/* Split a decoded file into segments and submit them. Takes the samples. */
static void start_item(run_t *run, item_t *it, decoded_t *d)
{
    const batch_opts_t *o = run->o;
    it->decode_seconds = d->decode_seconds;
    if (d->error) {
        write_item(run, it, d->error);
        free(d->error);
        return;
    }
    it->duration = d->n_samples / 16000.0;
    it->n_seg = segment_plan(d->samples, d->n_samples, (int64_t)(o->max_segment_seconds * 16000), &it->bounds);
    it->seg = xcalloc(it->n_seg, sizeof *it->seg);
    it->tags = xcalloc(it->n_seg, sizeof *it->tags);
    it->t_submit = now_seconds();
    float pad[SEGMENT_MIN_SAMPLES];
    for (int i = 0; i < it->n_seg; i++) {
        const float *x = d->samples + it->bounds[i];
        int64_t n = it->bounds[i + 1] - it->bounds[i];
        if (it->n_seg > 1 && n < SEGMENT_MIN_SAMPLES) { /* official: short pieces padded to 0.5 s */
            memset(pad, 0, sizeof pad);
            memcpy(pad, x, n * sizeof(float));
            x = pad;
            n = SEGMENT_MIN_SAMPLES;
        }
        const qasr_input_t in = {
            .samples = x, .n_samples = n,
            .context = it->e->context ? it->e->context : o->context,
            .language = it->e->language ? it->e->language : o->language,
            .max_new_tokens = o->max_new_tokens, .ignore_eos = o->ignore_eos,
        };
        it->tags[i] = (struct seg_tag){ it, i };
        qasr_session_submit(run->s, &in, &it->tags[i]);
    }
    free(d->samples);
}

static int by_duration_desc(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if ((x->duration < 0) != (y->duration < 0)) return x->duration < 0 ? 1 : -1; /* unknown last */
    if (x->duration != y->duration) return x->duration > y->duration ? -1 : 1;
    return x->e->line - y->e->line;
}

/* Entries still to do, with durations; NULL-free. Sets *n. */
static item_t *plan_items(const manifest_t *m, results_t *out, const batch_opts_t *o, size_t *n,
                          size_t *prior_failed)
{
    item_t *items = xcalloc(MAX(1, m->n_entries), sizeof *items);
    *n = *prior_failed = 0;
    for (size_t i = 0; i < m->n_entries; i++) {
        const result_status_t st = results_status(out, m->entries[i].id);
        *prior_failed += st == RESULT_FAILED;
        if (st == RESULT_NEW) items[(*n)++] = (item_t){ .e = &m->entries[i], .duration = m->entries[i].duration };
    }
    size_t unknown = 0;
    for (size_t i = 0; i < *n; i++) unknown += items[i].duration < 0;
    if (unknown) { /* headers only: cheap even for many files */
        const char **paths = xmalloc(unknown * sizeof *paths);
        double *sec = xmalloc(unknown * sizeof *sec);
        size_t k = 0;
        for (size_t i = 0; i < *n; i++)
            if (items[i].duration < 0) paths[k++] = items[i].e->path;
        if (!o->quiet && unknown > 1000) fprintf(stderr, "qasr-batch: reading the durations of %zu files\n", unknown);
        reader_probe_durations(paths, (int)unknown, MAX(2, o->readers), sec);
        k = 0;
        for (size_t i = 0; i < *n; i++)
            if (items[i].duration < 0) items[i].duration = sec[k++];
        free(paths);
        free(sec);
    }
    if (!o->no_bucketing) qsort(items, *n, sizeof *items, by_duration_desc);
    return items;
}

/* The decode/compute loop. Returns 1 if interrupted. */
static int run_loop(run_t *run, item_t *items, size_t n, const char **paths)
{
    const batch_opts_t *o = run->o;
    const int batch = o->qopt.max_batch > 0 ? o->qopt.max_batch : 32;
    reader_t *r = reader_start(paths, (int)n, o->readers, 2 * batch + 8, (int64_t)1800 * 16000);
    int reader_done = n == 0, stopping = 0;
    for (;;) {
        if (interrupted && !stopping) {
            stopping = 1;
            reader_cancel(r);
            qasr_session_cancel_waiting(run->s); /* files not started: redone on resume */
        }
        decoded_t d;
        while (!stopping && !reader_done && qasr_session_waiting(run->s) < batch) {
            const int rc = reader_try_next(r, &d);
            if (rc == 1) start_item(run, &items[d.job], &d);
            if (rc != 1) {
                reader_done = rc < 0;
                break;
            }
        }
        if (qasr_session_pending(run->s) == 0) {
            if (stopping || reader_done) break;
            if (reader_next(r, &d)) /* nothing to compute: wait for audio */
                start_item(run, &items[d.job], &d);
            else
                reader_done = 1;
            continue;
        }
        qasr_session_step(run->s);
        qasr_result_t res;
        void *tag;
        while (qasr_session_poll(run->s, &res, &tag)) {
            struct seg_tag *t = tag;
            t->item->seg[t->i] = res;
            if (++t->item->n_done == t->item->n_seg) write_item(run, t->item, NULL);
        }
        progress_tick(run->progress);
    }
    reader_free(r);
    return stopping;
}

int batch_run(const batch_opts_t *o)
{
    manifest_format_t mf;
    if (manifest_format_parse(o->manifest_format, &mf) != 0) {
        fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
        return BATCH_USAGE;
    }
    if (!strcmp(o->output, "-") && (o->retry_errors || o->overwrite)) {
        fputs("qasr-batch: --retry-errors and --overwrite need an output file (-o FILE), not stdout\n", stderr);
        return BATCH_USAGE;
    }
    if (o->format && !o->output_dir) {
        fputs("qasr-batch: --format needs --output-dir DIR\n", stderr);
        return BATCH_USAGE;
    }
    manifest_t *m = manifest_load(o->manifest, mf);
    if (!m) {
        fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
        return BATCH_USAGE;
    }
    for (size_t i = 0; i < m->n_problems; i++)
        fprintf(stderr, "qasr-batch: skipped %s\n", m->problems[i].message);
    const results_mode_t mode = o->overwrite ? RESULTS_OVERWRITE : o->retry_errors ? RESULTS_RETRY_ERRORS : RESULTS_RESUME;
    results_t *out = results_open(o->output, mode, o->fsync_seconds);
    if (!out) {
        fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
        manifest_free(m);
        return BATCH_USAGE;
    }
    size_t n_notes;
    const char *const *notes = results_notes(out, &n_notes);
    for (size_t i = 0; i < n_notes; i++) fprintf(stderr, "qasr-batch: %s\n", notes[i]);

    size_t n, prior_failed;
    item_t *items = plan_items(m, out, o, &n, &prior_failed);
    const size_t prior_done = m->n_entries - n - prior_failed;
    if (!o->quiet && (prior_done || prior_failed))
        fprintf(stderr, "qasr-batch: resuming %s: %zu done, %zu failed earlier%s, %zu to do\n", o->output,
                prior_done, prior_failed, prior_failed ? " (--retry-errors re-runs them)" : "", n);

    int code = (prior_failed || m->n_problems) ? BATCH_SOME_FAILED : BATCH_OK;
    run_t run = { .o = o, .out = out };
    qasr_t *q = NULL;
    if (n > 0) {
        q = qasr_load(o->model, &o->qopt);
        if (!q || !(run.s = qasr_session_new(q))) {
            fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
            code = BATCH_MODEL;
        }
    } else if (!o->quiet) {
        fprintf(stderr, "qasr-batch: nothing to do: every entry of %s has a line in %s\n", o->manifest, o->output);
    }
    if (n > 0 && code != BATCH_MODEL) {
        struct sigaction sa = { .sa_handler = on_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN); /* a closed stdout becomes a write error with a message */
        double total = 0;
        const char **paths = xmalloc(MAX(1, n) * sizeof *paths);
        for (size_t i = 0; i < n; i++) {
            paths[i] = items[i].e->path;
            total += items[i].duration > 0 ? items[i].duration : 0;
        }
        run.progress = progress_new((long)n, total, o->quiet, o->progress_interval);
        const int stopped = run_loop(&run, items, n, paths);
        char status[256];
        snprintf(status, sizeof status, "qasr-batch: %s: %ld transcribed, %ld failed%s", stopped ? "interrupted" : "done",
                 run.done - run.failed, run.failed, stopped ? "; rerun the same command to resume" : "");
        progress_finish(run.progress, status);
        free(paths);
        code = stopped ? BATCH_INTERRUPTED : (run.failed || prior_failed || m->n_problems) ? BATCH_SOME_FAILED : BATCH_OK;
    }
    qasr_session_free(run.s);
    qasr_free(q);
    for (size_t i = 0; i < n; i++) { /* files cut short by an interrupt */
        for (int k = 0; k < items[i].n_seg && items[i].seg; k++) qasr_result_free(&items[i].seg[k]);
        free(items[i].seg);
        free(items[i].tags);
        free(items[i].bounds);
    }
    free(items);
    if (results_close(out) != 0) {
        fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
        if (code == BATCH_OK) code = BATCH_SOME_FAILED;
    }
    manifest_free(m);
    return code;
}
