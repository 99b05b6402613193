/* The device workers of a run: one thread per model instance pulls files from the shared reader
 * (or the retry queue), splits them into segments, feeds its session and writes each file's line
 * as its last segment finishes. A device that fails hands its files in progress to the others. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "run.h"
#include "segment.h"
#include "util.h"

/* Split a file into segments and submit them to w's session; it is then in flight on w. */
static void start_item(worker_t *w, item_t *it)
{
    run_t *run = w->run;
    const batch_opts_t *o = run->o;
    it->duration = (double)it->n_samples / QASR_SAMPLE_RATE;
    it->n_seg = segment_plan(it->samples, it->n_samples, (int64_t)(o->max_segment_seconds * QASR_SAMPLE_RATE),
                             &it->bounds);
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
    it->warning = d->warning;
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

/* w's work loop until the files are done or the intake stops. 0, or -1 + qasr_last_error() when
 * its device failed. */
static int work(worker_t *w)
{
    run_t *run = w->run;
    const batch_opts_t *o = run->o;
    const int batch = o->qopt.max_batch > 0 ? o->qopt.max_batch : 32;
    for (;;) {
        const int stop = batch_interrupted() || __atomic_load_n(&run->stopping, __ATOMIC_RELAXED);
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
        if (qasr_session_step(w->s) != 0) return -1;
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
    return 0;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    if (!(w->s = qasr_session_new(w->q))) {
        device_lost(w, qasr_last_error());
        return NULL;
    }
    if (work(w) != 0) { /* its device failed */
        device_lost(w, qasr_last_error());
        return NULL;
    }
    pthread_mutex_lock(&w->run->mu);
    w->run->alive--;
    pthread_cond_broadcast(&w->run->changed);
    pthread_mutex_unlock(&w->run->mu);
    return NULL;
}

long run_workers(run_t *run, qasr_t **models, const int *devices, size_t n, const char **paths)
{
    const batch_opts_t *o = run->o;
    const int batch = o->qopt.max_batch > 0 ? o->qopt.max_batch : 32;
    /* every worker keeps up to a batch of files waiting, plus a batch of decoded ones ahead */
    run->reader = reader_start(paths, (int)n, o->readers, (run->n_workers + 1) * batch + 8,
                               (int64_t)1800 * QASR_SAMPLE_RATE);
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
