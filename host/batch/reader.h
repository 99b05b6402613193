/* Audio decoding ahead of compute: a pool of threads decodes files (libsndfile + libsoxr, see
 * audio.h) in a given order into a bounded queue, so the engine never waits for I/O and memory
 * stays bounded however long the manifest is: a decoder thread does not start another file while
 * the queue holds max_items files or max_samples samples. */
#ifndef QASR_READER_H
#define QASR_READER_H

#include <stdint.h>

typedef struct {
    int job;          /* index into the order given to reader_start */
    float *samples;   /* 16 kHz mono (malloc'd, caller frees), NULL on error */
    int64_t n_samples;
    char *error;      /* malloc'd message naming the file, or NULL */
    char *warning;    /* malloc'd (audio_load's: the file was cut short), or NULL */
    double decode_seconds;
} decoded_t;

typedef struct reader reader_t;

/* Decode paths[0..n_jobs-1] in that order with n_threads threads. The strings must outlive
 * the reader. */
reader_t *reader_start(const char *const *paths, int n_jobs, int n_threads, int max_items,
                       int64_t max_samples);
/* Next decoded file (any order of completion). Blocks while none is ready; returns 0 once
 * every job has been returned or after reader_cancel, 1 otherwise. */
int reader_next(reader_t *r, decoded_t *out);
/* Non-blocking form: 1 with an item, 0 if none is ready right now, -1 when all are done. */
int reader_try_next(reader_t *r, decoded_t *out);
/* Stop starting new files (files being decoded finish and are dropped). */
void reader_cancel(reader_t *r);
/* Cancel, join the threads and free everything not yet returned. */
void reader_free(reader_t *r);

/* Durations from file headers (audio_probe_duration), n_threads in parallel: seconds[i], or -1
 * where the header does not tell (the file is then decoded to find out, or to report why not).
 * stop (optional): polled before each file; once it returns nonzero the rest are left -1. */
void reader_probe_durations(const char *const *paths, int n, int n_threads, double *seconds, int (*stop)(void));

#endif
