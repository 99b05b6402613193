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

/* Audio in memory ahead of the encoder: at most READER_SECONDS (reader.h) decoded ahead in the
 * reader's queue (plus a piece per reader thread), and per device at most WAITING_SECONDS (or
 * twice --encoder-seconds, if more) submitted but not yet started (plus a piece). README states it. */
#define WAITING_SECONDS 1200

/* One manifest entry on its way through the run: its pieces (the reader's, one per segment)
 * arrive in order and may run on different devices. */
typedef struct item {
    const manifest_entry_t *e;
    double duration;          /* from the manifest or the header; < 0 unknown; the decoded length once complete */
    /* under run->mu once its first piece is out (two devices may take two pieces at once): */
    int n_seg;                /* segments known: final once complete */
    int n_in, n_done;         /* pieces arrived; results in */
    int complete;             /* its last piece (or its error) has arrived */
    int orphaned;             /* a piece was left on a lost device with no device to take it */
    int cap_seg;
    int64_t *bounds;          /* segment boundaries in samples: piece i is bounds[i]..bounds[i + 1] */
    qasr_result_t *seg;       /* per-segment results (zeroed until in) */
    double t_submit, decode_seconds;
    char *error;              /* the decoder's, when the file failed after some pieces; malloc'd or NULL */
    char *warning;            /* the decoder's (the file was cut short), for the line; malloc'd or NULL */
    char *subtitle_path;      /* with --format: the file to write (subtitles_paths); NULL: a clash */
    char *words_error;        /* the first piece the aligner could not align: why (malloc'd or NULL) */
    double align_seconds;     /* its pieces' time in the aligner (submission to result) */
} item_t;

/* A piece of an item in flight on a device: the session's tag for it. */
typedef struct piece {
    item_t *item;
    int i;                    /* its segment index */
    float *samples;           /* kept until its result is in when another device may have to redo it */
    int64_t n_samples;
    int aligning;             /* transcribed, now in the aligner (its result is on the item) */
    double t_align;           /* when it went to the aligner */
    struct piece *next;       /* in a worker's in-flight list or the retry queue */
} piece_t;

struct run;

/* One device (or the CPU) with its own model instance and session, on its own thread; with an
 * aligner (after transcription, word times: qa and its session sa) on the same device. */
typedef struct {
    struct run *run;
    int index, device;        /* device: CUDA index, -1 for the CPU */
    qasr_t *q, *qa;
    qasr_session_t *s, *sa;
    pthread_t thread;
    piece_t *inflight;        /* submitted here, result not yet in (under run->mu) */
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
    int aligned;              /* word times: an aligner after transcription, or --align-reference */
    qasr_stats_t *align_stats;/* [n_workers] each aligner session's work (with --align-reference, the
                               * only session's), filled at the end */
    double waiting_seconds;   /* most audio a worker keeps waiting in its session */
    /* under mu: */
    pthread_mutex_t mu;
    pthread_cond_t changed;   /* retry queue, idle or alive counts, stop */
    piece_t *retry;           /* pieces of a lost device, for the others */
    int alive;                /* workers running */
    int idle;                 /* of those, waiting with the intake over */
    int stopping;             /* first signal seen: no new files */
    long done, failed;
} run_t;

/* write.c: the file's line (thread-safe: any worker), or its error line when error is given;
 * then what the file held is released (item_release: also for a file left without a line). */
void write_item(run_t *run, item_t *it, const char *error);
void item_release(item_t *it);

/* workers.c: decode ahead and run one worker per model instance (aligners[i]: the aligner on
 * the same device, or aligners NULL) until the files are done or a signal stops the intake.
 * Returns the files left without a line because devices failed. */
long run_workers(run_t *run, qasr_t **models, qasr_t **aligners, const int *devices, size_t n, const char **paths);

/* batch.c: a first SIGINT or SIGTERM has come. */
int batch_interrupted(void);

#endif
