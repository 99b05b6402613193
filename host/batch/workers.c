/* The device workers of a run: one thread per model instance pulls pieces of files (segments,
 * cut by the reader) from the shared reader or the retry queue, feeds its session and writes a
 * file's line when its last piece's result is in, whichever device ran the others. A device
 * that fails hands its pieces in flight to the others. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "run.h"
#include "segment.h"
#include "util.h"

/* p's samples as the model takes them (segment_padded). */
static const float *piece_audio(const piece_t *p, float pad[SEGMENT_MIN_SAMPLES], int64_t *n)
{
    return segment_padded(p->samples, p->n_samples, p->i, pad, n);
}

/* Submit piece p to w's session; it is then in flight on w. */
static void start_piece(worker_t *w, piece_t *p)
{
    run_t *run = w->run;
    const batch_opts_t *o = run->o;
    item_t *it = p->item;
    pthread_mutex_lock(&run->mu);
    if (it->t_submit == 0) it->t_submit = now_seconds();
    p->next = w->inflight;
    w->inflight = p;
    p->aligning = 0;
    pthread_mutex_unlock(&run->mu);
    float pad[SEGMENT_MIN_SAMPLES];
    int64_t n;
    const float *x = piece_audio(p, pad, &n);
    const qasr_input_t in = {
        .samples = x, .n_samples = n,
        .context = it->e->context ? it->e->context : o->context,
        .language = it->e->language ? it->e->language : o->language,
        .max_new_tokens = o->tokens_per_second > 0 ? 4 + (int)ceil(o->tokens_per_second * (double)n / QASR_SAMPLE_RATE)
                                                   : o->max_new_tokens,
        .ignore_eos = o->ignore_eos,
        /* the model is then the aligner; an empty text column is no text */
        .align_text = o->align_reference && it->e->text && it->e->text[0] ? it->e->text : NULL,
    };
    qasr_session_submit(w->s, &in, p);
    if (!run->keep_samples && !w->sa) { /* the session has its copy (the aligner needs them later) */
        free(p->samples);
        p->samples = NULL;
    }
}

/* A transcribed piece to the aligner on w's device (its transcript is on the item already).
 * Called with run->mu held. */
static void start_alignment(worker_t *w, piece_t *p, const qasr_result_t *res)
{
    float pad[SEGMENT_MIN_SAMPLES];
    int64_t n;
    const float *x = piece_audio(p, pad, &n);
    const qasr_input_t in = { .samples = x, .n_samples = n, .language = res->language[0] ? res->language : NULL,
                              .align_text = res->text };
    p->aligning = 1;
    p->t_align = now_seconds();
    qasr_session_submit(w->sa, &in, p);
    if (!w->run->keep_samples) {
        free(p->samples);
        p->samples = NULL;
    }
}

/* Called with run->mu held: whether every piece of it is in, so that its line can be written. */
static int item_finished(const item_t *it) { return it->complete && it->n_in == it->n_seg && it->n_done == it->n_seg; }

/* A decoded piece: recorded on its file, then submitted on w (the file's line is written when it
 * is the error that ends a file whose pieces are all done). Takes d's allocations. Pieces of a
 * file come in order from the reader but two workers may handle two of them in either order. */
static void start_decoded(worker_t *w, decoded_t *d)
{
    run_t *run = w->run;
    item_t *it = &run->items[d->job];
    pthread_mutex_lock(&run->mu);
    it->decode_seconds += d->decode_seconds;
    if (d->last) {
        it->complete = 1;
        it->n_seg = d->samples ? d->index + 1 : d->index;
        it->warning = d->warning;
        it->error = d->error;
    }
    piece_t *p = NULL;
    if (d->samples) {
        if (d->index + 2 > it->cap_seg) {
            const int cap = MAX(4, MAX(2 * it->cap_seg, d->index + 2));
            it->bounds = xrealloc(it->bounds, cap * sizeof *it->bounds);
            it->seg = xrealloc(it->seg, cap * sizeof *it->seg);
            memset(it->seg + it->cap_seg, 0, (cap - it->cap_seg) * sizeof *it->seg);
            it->cap_seg = cap;
        }
        it->bounds[d->index] = d->start;
        it->bounds[d->index + 1] = d->start + d->n_samples; /* the next piece's start: the pieces tile the file */
        it->n_seg = MAX(it->n_seg, d->index + 1);
        it->n_in++;
        if (d->last) it->duration = (double)(d->start + d->n_samples) / QASR_SAMPLE_RATE;
        p = xmalloc(sizeof *p);
        *p = (piece_t){ .item = it, .i = d->index, .samples = d->samples, .n_samples = d->n_samples };
    }
    if (p && run->o->align_reference && !(d->index == 0 && d->last)) {
        /* a reference text cannot be split with the audio: only a file of one piece is aligned */
        char msg[QASR_ERR_LEN];
        snprintf(msg, sizeof msg, "longer than %.0f s: a reference text is aligned with its whole audio, at most "
                 "%.0f s at once (the aligner's limit); transcribe it with --model and --aligner instead",
                 run->o->max_segment_seconds, run->o->max_segment_seconds);
        it->seg[d->index] = (qasr_result_t){ .error = xstrdup(msg) };
        it->n_done++;
        free(p->samples);
        free(p);
        p = NULL;
    }
    const int finished = item_finished(it);
    pthread_mutex_unlock(&run->mu);
    if (p) start_piece(w, p);
    else if (finished) write_item(run, it, it->error);
}

/* A piece's result is in: kept on its file, whose line is written if it was the last one. With
 * an aligner, a transcript goes on to it first (res is the aligner's when p->aligning). */
static void finish_piece(worker_t *w, piece_t *p, qasr_result_t *res)
{
    run_t *run = w->run;
    item_t *it = p->item;
    pthread_mutex_lock(&run->mu);
    if (p->aligning) { /* the words join the transcript */
        qasr_result_t *seg = &it->seg[p->i];
        it->align_seconds += now_seconds() - p->t_align;
        if (res->error && !it->words_error) {
            char msg[QASR_ERR_LEN];
            if (it->n_seg > 1) snprintf(msg, sizeof msg, "segment %d: %s", p->i + 1, res->error);
            else snprintf(msg, sizeof msg, "%s", res->error);
            it->words_error = xstrdup(msg);
        }
        seg->words = res->words, seg->n_words = res->n_words;
        res->words = NULL, res->n_words = 0;
        qasr_result_free(res);
    } else {
        qasr_result_free(&it->seg[p->i]); /* a result from a device that failed before aligning it */
        it->seg[p->i] = *res;
        if (w->sa && !res->error && res->text[0]) { /* an empty transcript has no words (official) */
            start_alignment(w, p, res);
            pthread_mutex_unlock(&run->mu);
            return;
        }
    }
    for (piece_t **q = &w->inflight; *q; q = &(*q)->next)
        if (*q == p) {
            *q = p->next;
            break;
        }
    it->n_done++;
    const int finished = item_finished(it);
    if (finished) w->files++;
    pthread_mutex_unlock(&run->mu);
    free(p->samples);
    free(p);
    if (finished) write_item(run, it, it->error);
}

/* The next piece for w when it has nothing to compute: a lost device's piece first, else one from
 * the reader (blocking). 0 when there is no more work for it: the intake is over and every live
 * worker is idle too, so no device can still fail and hand pieces back. */
static int wait_for_work(worker_t *w)
{
    run_t *run = w->run;
    for (;;) {
        pthread_mutex_lock(&run->mu);
        piece_t *p = run->retry;
        if (p && !run->stopping) {
            run->retry = p->next;
            pthread_mutex_unlock(&run->mu);
            start_piece(w, p);
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

/* On the first signal: no new pieces; the ones not started are dropped (a rerun does their files). */
static void stop_intake(worker_t *w)
{
    run_t *run = w->run;
    pthread_mutex_lock(&run->mu);
    const int first = !run->stopping;
    __atomic_store_n(&run->stopping, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&run->changed);
    pthread_mutex_unlock(&run->mu);
    if (first) reader_cancel(run->reader);
    qasr_session_cancel_waiting(w->s); /* the aligner's waiting pieces finish: their files are in progress */
}

/* w's device failed: its files go to the retry queue for the other devices (or, if none is
 * left, stay without a line, for a rerun). Nothing of w's device state is freed: it is dead. */
static void device_lost(worker_t *w, const char *why)
{
    run_t *run = w->run;
    pthread_mutex_lock(&run->mu);
    int n = 0;
    while (w->inflight) { /* results not yet in are lost with the device */
        piece_t *p = w->inflight;
        w->inflight = p->next;
        p->next = run->retry;
        run->retry = p;
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
    const int batch = qasr_max_batch(w->q);
    for (;;) {
        const int stop = batch_interrupted() || __atomic_load_n(&run->stopping, __ATOMIC_RELAXED);
        if (stop) stop_intake(w);
        decoded_t d;
        /* alone: keep a batch waiting behind the running ones; with other devices: take only
         * what can run now, so that files go to whichever device is free. Either way no more
         * than WAITING_SECONDS of audio waits (a batch of long pieces would be hours of it). */
        while (!stop && (run->n_workers > 1 ? qasr_session_pending(w->s) : qasr_session_waiting(w->s)) < batch &&
               qasr_session_waiting_seconds(w->s) < run->waiting_seconds) {
            pthread_mutex_lock(&run->mu);
            piece_t *p = run->retry;
            if (p) run->retry = p->next;
            pthread_mutex_unlock(&run->mu);
            if (p)
                start_piece(w, p);
            else if ((o->full_batches ? reader_next(run->reader, &d) : reader_try_next(run->reader, &d)) == 1)
                start_decoded(w, &d);
            else
                break;
        }
        const int aligning = w->sa && qasr_session_pending(w->sa) > 0;
        if (qasr_session_pending(w->s) == 0 && !aligning) {
            if (stop || !wait_for_work(w)) break;
            continue;
        }
        if (qasr_session_step(w->s) != 0) return -1;
        qasr_result_t res;
        void *tag;
        while (qasr_session_poll(w->s, &res, &tag)) finish_piece(w, tag, &res);
        /* the aligner: its own batched stage, a step per transcription step */
        const double t_align = now_seconds();
        if (w->sa && qasr_session_step(w->sa) != 0) return -1;
        const double align_step = w->sa && qasr_session_pending(w->sa) ? now_seconds() - t_align : 0;
        while (w->sa && qasr_session_poll(w->sa, &res, &tag)) finish_piece(w, tag, &res);
        pthread_mutex_lock(&run->mu);
        progress_align(run->progress, align_step);
        progress_tick(run->progress);
        pthread_mutex_unlock(&run->mu);
    }
    /* stopped: pieces cut short by the interrupt are abandoned (a rerun does their files) */
    pthread_mutex_lock(&run->mu);
    while (w->inflight) {
        piece_t *p = w->inflight;
        w->inflight = p->next;
        free(p->samples);
        free(p);
    }
    pthread_mutex_unlock(&run->mu);
    return 0;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    if (!(w->s = qasr_session_new(w->q)) || (w->qa && !(w->sa = qasr_session_new(w->qa)))) {
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

long run_workers(run_t *run, qasr_t **models, qasr_t **aligners, const int *devices, size_t n, const char **paths)
{
    const batch_opts_t *o = run->o;
    const int batch = qasr_max_batch(models[0]);
    /* every worker keeps up to a batch of pieces waiting, plus a batch of decoded ones ahead */
    const int64_t max_piece = (int64_t)(o->max_segment_seconds * QASR_SAMPLE_RATE);
    run->reader = reader_start(paths, (int)n, o->readers, (run->n_workers + 1) * batch + 8,
                               (int64_t)READER_SECONDS * QASR_SAMPLE_RATE, max_piece);
    const double enc = o->qopt.encoder_seconds > 0 ? o->qopt.encoder_seconds : 600;
    run->waiting_seconds = MAX(WAITING_SECONDS, 2 * enc); /* an encoder pass always finds enough */
    run->keep_samples = run->n_workers > 1; /* another device may have to redo a piece */
    run->alive = run->n_workers;
    pthread_mutex_init(&run->mu, NULL);
    pthread_cond_init(&run->changed, NULL);
    run->workers = xcalloc(run->n_workers, sizeof *run->workers);
    run->align_stats = xcalloc(run->n_workers, sizeof *run->align_stats);
    for (int i = 0; i < run->n_workers; i++) {
        worker_t *w = &run->workers[i];
        *w = (worker_t){ .run = run, .index = i, .device = devices ? devices[i] : -1, .q = models[i],
                         .qa = aligners ? aligners[i] : NULL };
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) qasr_die(BATCH_MODEL, "cannot start a worker thread");
    }
    for (int i = 0; i < run->n_workers; i++) pthread_join(run->workers[i].thread, NULL);
    long lost = 0; /* files with a piece no device is left to run */
    for (piece_t *p = run->retry, *next; p; p = next) {
        next = p->next;
        lost += !p->item->orphaned;
        p->item->orphaned = 1;
        free(p->samples);
        free(p);
    }
    if (run->n_workers > 1 && !o->quiet)
        for (int i = 0; i < run->n_workers; i++)
            fprintf(stderr, "qasr-batch: device %d: %ld files%s\n", run->workers[i].device, run->workers[i].files,
                    run->workers[i].dead ? " (failed)" : "");
    for (int i = 0; i < run->n_workers; i++)
        if (!run->workers[i].dead) { /* a dead device's state is left */
            qasr_session_t *aligner = run->workers[i].sa ? run->workers[i].sa : o->align_reference ? run->workers[i].s : NULL;
            if (aligner) qasr_session_stats(aligner, &run->align_stats[i]);
            qasr_session_free(run->workers[i].s);
            qasr_session_free(run->workers[i].sa);
        }
    reader_free(run->reader);
    for (size_t i = 0; i < n; i++) item_release(&run->items[i]); /* the files left without a line */
    pthread_cond_destroy(&run->changed);
    pthread_mutex_destroy(&run->mu);
    return lost;
}
