#include "batch.h"

#include <pthread.h>
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
#include "shard.h"
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
    float *samples;           /* kept until written when another device may have to redo it */
    int64_t n_samples;
    struct item *next;        /* in a worker's in-flight list or the retry queue */
} item_t;

struct run;

/* One device (or the CPU) with its own model instance and session, on its own thread. */
typedef struct {
    struct run *run;
    int index, device;        /* device: CUDA index, -1 for the CPU */
    qasr_t *q;
    qasr_session_t *s;
    pthread_t thread;
    item_t *inflight;         /* started here, not yet written (under run->mu) */
    long files;               /* written by this worker */
    int dead;
} worker_t;

typedef struct run {
    const batch_opts_t *o;
    results_t *out;
    progress_t *progress;
    item_t *items;
    reader_t *reader;
    worker_t *workers;
    int n_workers, keep_samples;
    /* under mu: */
    pthread_mutex_t mu;
    pthread_cond_t changed;   /* retry queue, idle or alive counts, stop */
    item_t *retry;            /* files of a lost device, for the others */
    int alive;                /* workers running */
    int idle;                 /* of those, waiting with the intake over */
    int stopping;             /* first signal seen: no new files */
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

/* Free what a file holds while in flight (its results, segments, kept samples). */
static void item_release(item_t *it)
{
    for (int i = 0; i < it->n_seg && it->seg; i++) qasr_result_free(&it->seg[i]);
    free(it->seg);
    free(it->tags);
    free(it->bounds);
    free(it->samples);
    it->seg = NULL;
    it->tags = NULL;
    it->bounds = NULL;
    it->samples = NULL;
    it->n_seg = it->n_done = 0;
}

/* Write the file's line (thread-safe: any worker). */
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
    pthread_mutex_lock(&run->mu);
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
    pthread_mutex_unlock(&run->mu);
    item_release(it);
    free(segs);
    free(cues);
    free(text);
    free(language);
    free(error);
}

/* Split a file into segments and submit them to w's session; it is then in flight on w. */
static void start_item(worker_t *w, item_t *it)
{
    run_t *run = w->run;
    const batch_opts_t *o = run->o;
    it->duration = it->n_samples / 16000.0;
    it->n_seg = segment_plan(it->samples, it->n_samples, (int64_t)(o->max_segment_seconds * 16000), &it->bounds);
    it->seg = xcalloc(it->n_seg, sizeof *it->seg);
    it->tags = xcalloc(it->n_seg, sizeof *it->tags);
    it->t_submit = now_seconds();
    pthread_mutex_lock(&run->mu);
    it->next = w->inflight;
    w->inflight = it;
    pthread_mutex_unlock(&run->mu);
    float pad[SEGMENT_MIN_SAMPLES];
    for (int i = 0; i < it->n_seg; i++) {
        const float *x = it->samples + it->bounds[i];
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
        qasr_session_submit(w->s, &in, &it->tags[i]);
    }
    if (!run->keep_samples) { /* the session has its copy */
        free(it->samples);
        it->samples = NULL;
    }
}

/* A decoded file: its error line, or start it on w. Takes the samples. */
static void start_decoded(worker_t *w, decoded_t *d)
{
    item_t *it = &w->run->items[d->job];
    it->decode_seconds = d->decode_seconds;
    if (d->error) {
        write_item(w->run, it, d->error);
        free(d->error);
        return;
    }
    it->samples = d->samples;
    it->n_samples = d->n_samples;
    start_item(w, it);
}

/* Called with run->mu held: take it off w's in-flight list. */
static void unlink_inflight(worker_t *w, item_t *it)
{
    for (item_t **p = &w->inflight; *p; p = &(*p)->next)
        if (*p == it) {
            *p = it->next;
            it->next = NULL;
            return;
        }
    QASR_ASSERT(!"item not in flight on this worker");
}

/* The next file for w when it has nothing to compute: a lost device's file first, else one from
 * the reader (blocking). 0 when there is no more work for it: the intake is over and every live
 * worker is idle too, so no device can still fail and hand files back. */
static int wait_for_work(worker_t *w)
{
    run_t *run = w->run;
    for (;;) {
        pthread_mutex_lock(&run->mu);
        item_t *it = run->retry;
        if (it && !run->stopping) {
            run->retry = it->next;
            pthread_mutex_unlock(&run->mu);
            start_item(w, it);
            return 1;
        }
        const int stopping = run->stopping;
        pthread_mutex_unlock(&run->mu);
        decoded_t d;
        if (!stopping && reader_next(run->reader, &d)) {
            start_decoded(w, &d);
            return 1;
        }
        pthread_mutex_lock(&run->mu);
        run->idle++;
        pthread_cond_broadcast(&run->changed);
        while (!run->retry && !run->stopping && run->idle < run->alive) pthread_cond_wait(&run->changed, &run->mu);
        const int more = run->retry && !run->stopping;
        if (more) run->idle--;
        pthread_mutex_unlock(&run->mu);
        if (!more) return 0;
    }
}

/* On the first signal: no new files; the ones not started are dropped (a rerun does them). */
static void stop_intake(worker_t *w)
{
    run_t *run = w->run;
    pthread_mutex_lock(&run->mu);
    const int first = !run->stopping;
    __atomic_store_n(&run->stopping, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&run->changed);
    pthread_mutex_unlock(&run->mu);
    if (first) reader_cancel(run->reader);
    qasr_session_cancel_waiting(w->s);
}

static void work(worker_t *w)
{
    run_t *run = w->run;
    const batch_opts_t *o = run->o;
    const int batch = o->qopt.max_batch > 0 ? o->qopt.max_batch : 32;
    for (;;) {
        const int stop = interrupted || __atomic_load_n(&run->stopping, __ATOMIC_RELAXED);
        if (stop) stop_intake(w);
        decoded_t d;
        /* alone: keep a batch waiting behind the running ones; with other devices: take only
         * what can run now, so that files go to whichever device is free */
        while (!stop && (run->n_workers > 1 ? qasr_session_pending(w->s) : qasr_session_waiting(w->s)) < batch) {
            pthread_mutex_lock(&run->mu);
            item_t *it = run->retry;
            if (it) run->retry = it->next;
            pthread_mutex_unlock(&run->mu);
            if (it)
                start_item(w, it);
            else if (reader_try_next(run->reader, &d) == 1)
                start_decoded(w, &d);
            else
                break;
        }
        if (qasr_session_pending(w->s) == 0) {
            if (stop || !wait_for_work(w)) break;
            continue;
        }
        qasr_session_step(w->s);
        qasr_result_t res;
        void *tag;
        while (qasr_session_poll(w->s, &res, &tag)) {
            struct seg_tag *t = tag;
            item_t *it = t->item;
            it->seg[t->i] = res;
            if (++it->n_done < it->n_seg) continue;
            pthread_mutex_lock(&run->mu);
            unlink_inflight(w, it);
            w->files++;
            pthread_mutex_unlock(&run->mu);
            write_item(run, it, NULL);
        }
        pthread_mutex_lock(&run->mu);
        progress_tick(run->progress);
        pthread_mutex_unlock(&run->mu);
    }
    /* stopped: files cut short by the interrupt are abandoned (a rerun does them) */
    pthread_mutex_lock(&run->mu);
    while (w->inflight) {
        item_t *it = w->inflight;
        unlink_inflight(w, it);
        item_release(it);
    }
    pthread_mutex_unlock(&run->mu);
}

/* w's device failed: its files go to the retry queue for the other devices (or, if none is
 * left, stay without a line, for a rerun). Nothing of w's device state is freed: it is dead. */
static void device_lost(worker_t *w, const char *why)
{
    run_t *run = w->run;
    pthread_mutex_lock(&run->mu);
    int n = 0;
    while (w->inflight) {
        item_t *it = w->inflight;
        unlink_inflight(w, it);
        for (int i = 0; i < it->n_seg; i++) qasr_result_free(&it->seg[i]);
        free(it->seg);
        free(it->tags);
        free(it->bounds);
        it->seg = NULL, it->tags = NULL, it->bounds = NULL, it->n_seg = it->n_done = 0;
        it->next = run->retry;
        run->retry = it;
        n++;
    }
    w->dead = 1;
    run->alive--;
    char msg[QASR_ERR_LEN + 256];
    snprintf(msg, sizeof msg, "qasr-batch: device %d failed (%s): %s", w->device, why,
             run->alive ? (n ? "its files in progress go to the other devices" : "the other devices go on")
                        : "no device left; rerun to do the remaining files");
    progress_message(run->progress, msg);
    pthread_cond_broadcast(&run->changed);
    pthread_mutex_unlock(&run->mu);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    qasr_fault_trap_t trap;
    if (setjmp(trap.env)) { /* a CUDA call failed on this thread */
        device_lost(w, trap.message);
        return NULL;
    }
    if (w->run->n_workers > 1) qasr_fault_trap_set(&trap); /* alone, a fault aborts with its message */
    if (!(w->s = qasr_session_new(w->q))) {
        device_lost(w, qasr_last_error());
        qasr_fault_trap_set(NULL);
        return NULL;
    }
    work(w);
    qasr_fault_trap_set(NULL);
    pthread_mutex_lock(&w->run->mu);
    w->run->alive--;
    pthread_cond_broadcast(&w->run->changed);
    pthread_mutex_unlock(&w->run->mu);
    return NULL;
}

static int by_duration_desc(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if ((x->duration < 0) != (y->duration < 0)) return x->duration < 0 ? 1 : -1; /* unknown last */
    if (x->duration != y->duration) return x->duration > y->duration ? -1 : 1;
    return x->e->line - y->e->line;
}

/* This shard's entries still to do, with durations; NULL-free. Sets *n. */
static item_t *plan_items(const manifest_t *m, const shard_plan_t *sp, results_t *out, const batch_opts_t *o,
                          size_t *n, size_t *prior_failed)
{
    item_t *items = xcalloc(MAX(1, m->n_entries), sizeof *items);
    *n = *prior_failed = 0;
    for (size_t i = 0; i < m->n_entries; i++) {
        if (!shard_plan_has(sp, i)) continue;
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
/* Decode ahead and run one worker per model instance until the files are done or a signal
 * stops the intake. Returns the files left without a line because devices failed. */
static long run_workers(run_t *run, qasr_t **models, const int *devices, size_t n, const char **paths)
{
    const batch_opts_t *o = run->o;
    const int batch = o->qopt.max_batch > 0 ? o->qopt.max_batch : 32;
    /* every worker keeps up to a batch of files waiting, plus a batch of decoded ones ahead */
    run->reader = reader_start(paths, (int)n, o->readers, (run->n_workers + 1) * batch + 8, (int64_t)1800 * 16000);
    run->keep_samples = run->n_workers > 1; /* another device may have to redo a file */
    run->alive = run->n_workers;
    pthread_mutex_init(&run->mu, NULL);
    pthread_cond_init(&run->changed, NULL);
    run->workers = xcalloc(run->n_workers, sizeof *run->workers);
    for (int i = 0; i < run->n_workers; i++) {
        worker_t *w = &run->workers[i];
        *w = (worker_t){ .run = run, .index = i, .device = devices ? devices[i] : -1, .q = models[i] };
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) qasr_die(BATCH_MODEL, "cannot start a worker thread");
    }
    for (int i = 0; i < run->n_workers; i++) pthread_join(run->workers[i].thread, NULL);
    long lost = 0;
    for (item_t *it = run->retry; it; it = it->next, lost++) item_release(it);
    if (run->n_workers > 1 && !o->quiet)
        for (int i = 0; i < run->n_workers; i++)
            fprintf(stderr, "qasr-batch: device %d: %ld files%s\n", run->workers[i].device, run->workers[i].files,
                    run->workers[i].dead ? " (failed)" : "");
    for (int i = 0; i < run->n_workers; i++)
        if (!run->workers[i].dead) qasr_session_free(run->workers[i].s); /* a dead device's state is left */
    reader_free(run->reader);
    pthread_cond_destroy(&run->changed);
    pthread_mutex_destroy(&run->mu);
    return lost;
}

/* The model instances: one per --gpus device (NCCL-copied weights), else one. */
static int load_models(const batch_opts_t *o, qasr_t ***models, int *n)
{
    *n = MAX(1, o->n_gpus);
    *models = xcalloc(*n, sizeof **models);
    qasr_options_t qo = o->qopt;
    qo.verbose = !o->quiet; /* how the weights reached the devices */
    if (o->n_gpus > 1) return qasr_load_devices(o->model, &qo, o->gpus, o->n_gpus, *models);
    qo.verbose = o->qopt.verbose;
    if (o->n_gpus == 1) qo.device = o->gpus[0];
    return ((*models)[0] = qasr_load(o->model, &qo)) ? 0 : -1;
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
    shard_plan_t *sp = shard_plan_new(o->shard, m); /* this task's entries: all unless sharded */
    char *output = sp ? shard_output_path(o->output, sp->shard) : NULL, shard_msg[512];
    if (sp && sp->shard.n && !o->quiet) {
        shard_plan_describe(sp, shard_msg, sizeof shard_msg);
        fprintf(stderr, "qasr-batch: %s -> %s\n", shard_msg, output);
    }
    const results_mode_t mode = o->overwrite ? RESULTS_OVERWRITE : o->retry_errors ? RESULTS_RETRY_ERRORS : RESULTS_RESUME;
    results_t *out = sp ? results_open(output, mode, o->fsync_seconds) : NULL;
    if (!out) {
        fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
        shard_plan_free(sp);
        free(output);
        manifest_free(m);
        return BATCH_USAGE;
    }
    size_t n_notes;
    const char *const *notes = results_notes(out, &n_notes);
    for (size_t i = 0; i < n_notes; i++) fprintf(stderr, "qasr-batch: %s\n", notes[i]);

    size_t n, prior_failed;
    item_t *items = plan_items(m, sp, out, o, &n, &prior_failed);
    const size_t prior_done = sp->n_mine - n - prior_failed;
    if (!o->quiet && (prior_done || prior_failed))
        fprintf(stderr, "qasr-batch: resuming %s: %zu done, %zu failed earlier%s, %zu to do\n", output,
                prior_done, prior_failed, prior_failed ? " (--retry-errors re-runs them)" : "", n);

    int code = (prior_failed || m->n_problems) ? BATCH_SOME_FAILED : BATCH_OK;
    run_t run = { .o = o, .out = out, .items = items };
    qasr_t **models = NULL;
    int n_models = 0;
    if (n > 0) {
        if (load_models(o, &models, &n_models) != 0) {
            fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
            code = BATCH_MODEL;
        }
        run.n_workers = n_models;
        if (code != BATCH_MODEL && !o->quiet)
            fprintf(stderr, "qasr-batch: model loaded in %.2f s (%s)\n", qasr_load_seconds(models[0]),
                    qasr_backend_describe(models[0]));
    } else if (!o->quiet) {
        fprintf(stderr, "qasr-batch: nothing to do: every entry%s of %s has a line in %s\n",
                sp->shard.n ? " of this shard" : "", o->manifest, output);
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
        const long lost = run_workers(&run, models, o->n_gpus ? o->gpus : NULL, n, paths);
        const int stopped = run.stopping;
        char status[256], left[96] = "";
        if (lost) snprintf(left, sizeof left, ", %ld left undone by failed devices", lost);
        snprintf(status, sizeof status, "qasr-batch: %s: %ld transcribed, %ld failed%s%s", stopped ? "interrupted" : "done",
                 run.done - run.failed, run.failed, left, stopped || lost ? "; rerun the same command to resume" : "");
        progress_finish(run.progress, status);
        free(paths);
        code = stopped ? BATCH_INTERRUPTED
             : lost    ? BATCH_DEVICE_FAILED
             : (run.failed || prior_failed || m->n_problems) ? BATCH_SOME_FAILED : BATCH_OK;
    }
    for (int i = 0; i < n_models; i++)
        if (!run.workers || !run.workers[i].dead) qasr_free(models[i]);
    free(models);
    free(run.workers);
    free(items);
    if (results_close(out) != 0) {
        fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
        if (code == BATCH_OK) code = BATCH_SOME_FAILED;
    }
    shard_plan_free(sp);
    free(output);
    manifest_free(m);
    return code;
}
