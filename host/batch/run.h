/* The parts of a qasr-batch run (batch.h) and what they share: the run's files on their way
 * through (item_t), the device workers (workers.c) and the writing of a file's line (write.c).
 * Internal to host/batch. */
#ifndef QASR_RUN_H
#define QASR_RUN_H

#include <pthread.h>
#include <stdint.h>

#include "batch.h"
#include "manifest.h"
#include "progress.h"
#include "reader.h"
#include "results.h"

/* One manifest entry on its way through the run. */
typedef struct item {
    const manifest_entry_t *e;
    double duration;          /* from the manifest or the header; < 0 unknown */
    int n_seg, n_done;
    int64_t *bounds;          /* segment boundaries in samples */
    qasr_result_t *seg;       /* per-segment results */
    struct seg_tag { struct item *item; int i; } *tags;
    double t_submit, decode_seconds;
    char *warning;            /* the decoder's (audio_load), for the line; malloc'd or NULL */
    char *subtitle_path;      /* with --format: the file to write (subtitles_paths); NULL: a clash */
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

/* write.c: the file's line (thread-safe: any worker), or its error line when error is given;
 * then what the file held is released. */
void write_item(run_t *run, item_t *it, const char *error);
void item_release(item_t *it);

/* workers.c: decode ahead and run one worker per model instance until the files are done or a
 * signal stops the intake. Returns the files left without a line because devices failed. */
long run_workers(run_t *run, qasr_t **models, const int *devices, size_t n, const char **paths);

/* batch.c: a first SIGINT or SIGTERM has come. */
int batch_interrupted(void);

#endif
