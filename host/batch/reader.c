#include "reader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "segment.h"
#include "util.h"

struct reader {
    const char *const *paths;
    int n_jobs, max_items;
    int64_t max_samples, max_piece;
    pthread_t *threads;
    int n_threads;

    pthread_mutex_t mu;
    pthread_cond_t room;      /* signalled when the queue shrinks or on cancel */
    pthread_cond_t ready;     /* signalled when a piece is queued or a thread exits */
    int next_job;             /* next job to claim */
    int returned;             /* files whose last piece went to the caller */
    int running;              /* decoder threads still alive */
    int cancelled;
    decoded_t *queue;         /* FIFO ring of decoded pieces, capacity n_threads + max_items */
    int q_head, q_count, q_cap;
    int64_t q_samples, q_peak;
};

static void decoded_free(decoded_t *d)
{
    free(d->samples);
    free(d->error);
    free(d->warning);
}

/* Called with the lock held: whether the queue has room for another piece. */
static int has_room(const reader_t *r) { return r->q_count < r->max_items && r->q_samples < r->max_samples; }

/* Queue d, first waiting for room if wait is set. 0 after a cancel (d is freed then). */
static int push(reader_t *r, decoded_t *d, int wait)
{
    pthread_mutex_lock(&r->mu);
    while (wait && !r->cancelled && !has_room(r)) pthread_cond_wait(&r->room, &r->mu);
    const int ok = !r->cancelled;
    if (ok) {
        QASR_ASSERT(r->q_count < r->q_cap);
        r->queue[(r->q_head + r->q_count++) % r->q_cap] = *d;
        r->q_samples += d->n_samples;
        r->q_peak = MAX(r->q_peak, r->q_samples);
        pthread_cond_broadcast(&r->ready);
    }
    pthread_mutex_unlock(&r->mu);
    if (!ok) decoded_free(d);
    return ok;
}

/* One file into the queue: whole if it fits a piece, else cut into pieces as it streams (the
 * cuts of segment_plan: segment_cut on the next max_piece samples). */
static void decode_file(reader_t *r, int job)
{
    const char *path = r->paths[job];
    double t0 = now_seconds();
    char *warning = NULL;
    audio_stream_t *st = audio_stream_open(path, r->max_piece, &warning);
    if (!st) {
        decoded_t d = { .job = job, .last = 1, .error = xstrdup(qasr_last_error()), .decode_seconds = now_seconds() - t0 };
        push(r, &d, 0);
        return;
    }
    const int64_t n = audio_stream_length(st);
    float *whole = audio_stream_take(st);
    if (whole) {
        decoded_t d = { .job = job, .last = 1, .samples = whole, .n_samples = n, .warning = warning,
                        .decode_seconds = now_seconds() - t0 };
        push(r, &d, 0);
        audio_stream_close(st);
        return;
    }
    float *buf = xmalloc(sizeof(float) * (size_t)r->max_piece);
    int64_t have = 0, start = 0;
    for (int index = 0;; index++) {
        const int64_t want = MIN(r->max_piece, n - start);
        for (int64_t got = 1; have < want && got > 0;)
            if ((got = audio_stream_read(st, buf + have, want - have)) > 0) have += got;
        decoded_t d = { .job = job, .index = index, .start = start };
        if (have < want) { /* a decode error in the second pass */
            d.last = 1;
            d.error = xstrdup(qasr_last_error());
        } else {
            const int64_t cut = n - start > r->max_piece ? segment_cut(buf, r->max_piece) : have;
            d.samples = buf; /* the piece; what follows the cut (under 5 s) starts a new buffer */
            d.n_samples = cut;
            buf = xmalloc(sizeof(float) * (size_t)r->max_piece);
            memcpy(buf, d.samples + cut, sizeof(float) * (size_t)(have - cut));
            have -= cut;
            start += cut;
            d.last = start == n;
            if (d.last) d.warning = warning, warning = NULL;
        }
        const double t = now_seconds();
        d.decode_seconds = t - t0;
        t0 = t;
        if (!push(r, &d, index > 0) || d.last) break;
    }
    free(warning);
    free(buf);
    audio_stream_close(st);
}

static void *decode_loop(void *arg)
{
    reader_t *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->cancelled && r->next_job < r->n_jobs && !has_room(r)) pthread_cond_wait(&r->room, &r->mu);
        if (r->cancelled || r->next_job >= r->n_jobs) break;
        const int job = r->next_job++;
        pthread_mutex_unlock(&r->mu);
        decode_file(r, job);
        pthread_mutex_lock(&r->mu);
    }
    r->running--;
    pthread_cond_broadcast(&r->ready);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

reader_t *reader_start(const char *const *paths, int n_jobs, int n_threads, int max_items,
                       int64_t max_samples, int64_t max_piece)
{
    QASR_ASSERT(max_piece > SEGMENT_SEARCH_SAMPLES);
    reader_t *r = xcalloc(1, sizeof *r);
    r->paths = paths;
    r->n_jobs = n_jobs;
    r->n_threads = MAX(1, n_threads);
    r->max_items = MAX(1, max_items);
    r->max_samples = MAX(1, max_samples);
    r->max_piece = max_piece;
    /* a thread checks for room before each piece, so at most n_threads pieces overshoot */
    r->q_cap = r->max_items + r->n_threads;
    r->queue = xcalloc(r->q_cap, sizeof *r->queue);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->room, NULL);
    pthread_cond_init(&r->ready, NULL);
    r->threads = xcalloc(r->n_threads, sizeof *r->threads);
    r->running = r->n_threads;
    for (int i = 0; i < r->n_threads; i++)
        if (pthread_create(&r->threads[i], NULL, decode_loop, r) != 0)
            qasr_die(3, "cannot start audio decoding threads");
    return r;
}

/* Called with the lock held: pop the oldest item into out if there is one. */
static int pop_locked(reader_t *r, decoded_t *out)
{
    if (r->q_count == 0) return 0;
    *out = r->queue[r->q_head];
    r->q_head = (r->q_head + 1) % r->q_cap;
    r->q_count--;
    r->q_samples -= out->n_samples;
    r->returned += out->last;
    pthread_cond_broadcast(&r->room);
    return 1;
}

int reader_next(reader_t *r, decoded_t *out)
{
    pthread_mutex_lock(&r->mu);
    int got;
    while (!(got = pop_locked(r, out)) && !r->cancelled && r->returned < r->n_jobs && r->running > 0)
        pthread_cond_wait(&r->ready, &r->mu);
    pthread_mutex_unlock(&r->mu);
    return got;
}

int reader_try_next(reader_t *r, decoded_t *out)
{
    pthread_mutex_lock(&r->mu);
    int got = pop_locked(r, out);
    const int done = !got && (r->cancelled || r->returned >= r->n_jobs || r->running == 0);
    pthread_mutex_unlock(&r->mu);
    return got ? 1 : done ? -1 : 0;
}

int64_t reader_peak_samples(reader_t *r)
{
    pthread_mutex_lock(&r->mu);
    const int64_t peak = r->q_peak;
    pthread_mutex_unlock(&r->mu);
    return peak;
}

void reader_cancel(reader_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->cancelled = 1;
    pthread_cond_broadcast(&r->room);
    pthread_cond_broadcast(&r->ready);
    pthread_mutex_unlock(&r->mu);
}

void reader_free(reader_t *r)
{
    if (!r) return;
    reader_cancel(r);
    for (int i = 0; i < r->n_threads; i++) pthread_join(r->threads[i], NULL);
    decoded_t d;
    while (pop_locked(r, &d)) decoded_free(&d);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->room);
    pthread_cond_destroy(&r->ready);
    free(r->threads);
    free(r->queue);
    free(r);
}

typedef struct {
    const char *const *paths;
    double *seconds;
    int n;
    int next; /* claimed with an atomic add */
    int (*stop)(void);
} probe_t;

static void *probe_loop(void *arg)
{
    probe_t *p = arg;
    for (int i; (i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED)) < p->n;) {
        if (p->stop && p->stop()) p->seconds[i] = -1;
        else if (audio_probe_duration(p->paths[i], &p->seconds[i]) != 0) p->seconds[i] = -1;
    }
    return NULL;
}

void reader_probe_durations(const char *const *paths, int n, int n_threads, double *seconds, int (*stop)(void))
{
    probe_t p = { paths, seconds, n, 0, stop };
    n_threads = MAX(1, MIN(n_threads, n));
    pthread_t *t = xcalloc(n_threads, sizeof *t);
    for (int i = 0; i < n_threads; i++)
        if (pthread_create(&t[i], NULL, probe_loop, &p) != 0) qasr_die(3, "cannot start threads");
    for (int i = 0; i < n_threads; i++) pthread_join(t[i], NULL);
    free(t);
}

int reader_default_threads(int on_device, int usable_cpus, int n_devices)
{
    if (!on_device) return 2;
    return MAX(2, MIN(usable_cpus - n_devices, 16 * n_devices));
}
