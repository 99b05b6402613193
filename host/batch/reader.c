#include "reader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "util.h"

struct reader {
    const char *const *paths;
    int n_jobs, max_items;
    int64_t max_samples;
    pthread_t *threads;
    int n_threads;

    pthread_mutex_t mu;
    pthread_cond_t room;      /* signalled when the queue shrinks or on cancel */
    pthread_cond_t ready;     /* signalled when an item is queued or a thread exits */
    int next_job;             /* next job to claim */
    int returned;             /* items handed to the caller */
    int running;              /* decoder threads still alive */
    int cancelled;
    decoded_t *queue;         /* FIFO ring of finished items, capacity n_threads + max_items */
    int q_head, q_count, q_cap;
    int64_t q_samples;
};

static void *decode_loop(void *arg)
{
    reader_t *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->cancelled && r->next_job < r->n_jobs &&
               (r->q_count >= r->max_items || r->q_samples >= r->max_samples))
            pthread_cond_wait(&r->room, &r->mu);
        if (r->cancelled || r->next_job >= r->n_jobs) break;
        const int job = r->next_job++;
        pthread_mutex_unlock(&r->mu);

        decoded_t d = { .job = job };
        const double t0 = now_seconds();
        const int rc = audio_load(r->paths[job], &d.samples, &d.n_samples, &d.warning);
        d.decode_seconds = now_seconds() - t0;
        if (rc != 0) {
            d.error = xstrdup(qasr_last_error());
            d.samples = NULL;
            d.n_samples = 0;
        }

        pthread_mutex_lock(&r->mu);
        if (r->cancelled) {
            free(d.samples);
            free(d.error);
            free(d.warning);
            break;
        }
        QASR_ASSERT(r->q_count < r->q_cap);
        r->queue[(r->q_head + r->q_count++) % r->q_cap] = d;
        r->q_samples += d.n_samples;
        pthread_cond_broadcast(&r->ready);
    }
    r->running--;
    pthread_cond_broadcast(&r->ready);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

reader_t *reader_start(const char *const *paths, int n_jobs, int n_threads, int max_items,
                       int64_t max_samples)
{
    reader_t *r = xcalloc(1, sizeof *r);
    r->paths = paths;
    r->n_jobs = n_jobs;
    r->n_threads = MAX(1, n_threads);
    r->max_items = MAX(1, max_items);
    r->max_samples = MAX(1, max_samples);
    /* a thread checks for room before decoding, so at most n_threads items overshoot */
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
    r->returned++;
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
    while (pop_locked(r, &d)) {
        free(d.samples);
        free(d.error);
        free(d.warning);
    }
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
