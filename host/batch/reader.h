/* Audio decoding ahead of compute: a pool of threads decodes files (libsndfile + libsoxr, see
 * audio.h) in a given order into a bounded queue, so the engine never waits for I/O and memory
 * stays bounded however long the manifest or a file is. A file comes out in pieces of at most
 * max_piece samples, cut as segment_plan cuts (segment.h) while it streams: a file longer than a
 * piece is decoded twice (audio_stream_open), never held whole. A decoder thread does not queue
 * another piece while the queue holds max_items pieces or max_samples samples, so the queue holds
 * at most max_samples + n_threads * max_piece samples. */
#ifndef QASR_READER_H
#define QASR_READER_H

#include <stdint.h>

/* qasr-batch's bound on the audio decoded ahead in the queue, in seconds (run.h). */
#define READER_SECONDS 1800

typedef struct {
    int job;          /* index into the order given to reader_start */
    int index;        /* of the piece in its file: 0, 1, ... in queue order */
    int last;         /* the file's last piece, or its error */
    int64_t start;    /* offset of samples[0] in the file (16 kHz samples) */
    float *samples;   /* 16 kHz mono (malloc'd, caller frees), NULL on error */
    int64_t n_samples;
    char *error;      /* malloc'd message naming the file (on a last piece: the file failed), or NULL */
    char *warning;    /* malloc'd, on a last piece (audio_stream_open's: the file was cut short), or NULL */
    double decode_seconds; /* spent on this piece */
} decoded_t;

typedef struct reader reader_t;

/* Decoding threads when the user names none. Beside a CPU model 2: the model needs the cores.
 * Beside GPUs, which transcribe thousands of seconds of audio per second while one thread decodes
 * 400-3,400 (bench/bench_readers.sh: Vorbis to 16 kHz WAV), every usable CPU but one per device
 * (its worker), at least 2 and at most 16 per device. */
int reader_default_threads(int on_device, int usable_cpus, int n_devices);

/* Decode paths[0..n_jobs-1] in that order with n_threads threads. The strings must outlive
 * the reader. max_piece must exceed SEGMENT_SEARCH_SAMPLES. */
reader_t *reader_start(const char *const *paths, int n_jobs, int n_threads, int max_items,
                       int64_t max_samples, int64_t max_piece);
/* Next decoded piece (files in any order of completion, a file's pieces in order). Blocks while
 * none is ready; returns 0 once every file's last piece has been returned or after
 * reader_cancel, 1 otherwise. */
int reader_next(reader_t *r, decoded_t *out);
/* Non-blocking form: 1 with an item, 0 if none is ready right now, -1 when all are done. */
int reader_try_next(reader_t *r, decoded_t *out);
/* The most samples the queue has held at once. */
int64_t reader_peak_samples(reader_t *r);
/* Stop decoding (pieces being decoded are dropped). */
void reader_cancel(reader_t *r);
/* Cancel, join the threads and free everything not yet returned. */
void reader_free(reader_t *r);

/* Durations from file headers (audio_probe_duration), n_threads in parallel: seconds[i], or -1
 * where the header does not tell (the file is then decoded to find out, or to report why not).
 * stop (optional): polled before each file; once it returns nonzero the rest are left -1. */
void reader_probe_durations(const char *const *paths, int n, int n_threads, double *seconds, int (*stop)(void));

#endif
