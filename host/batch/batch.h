/* qasr-batch: a manifest in, one JSONL line per entry out, for runs of hours.
 *
 * manifest -> skip ids already in the output (resume) -> durations from the manifest or file
 * headers -> order by duration (bucketing) -> decoder threads read audio ahead into a bounded
 * queue -> long files split at quiet points into segments -> a session decodes everything with
 * continuous batching -> a file's line is written (one write, flushed) when its last segment is
 * done. With several GPUs, one worker thread per device (its own model copy and session) pulls
 * files from the same reader and writes to the same output; the files of a device that fails go
 * to the others. Signals stop the intake; in-flight files finish; a second signal exits at once. */
#ifndef QASR_BATCH_H
#define QASR_BATCH_H

#include "qasr.h"

/* Exit codes of qasr-batch (also in --help and README). */
enum {
    BATCH_OK = 0,          /* every entry has a transcript */
    BATCH_SOME_FAILED = 1, /* some entries have an error line, or manifest lines were malformed */
    BATCH_USAGE = 2,       /* bad invocation, unreadable manifest, duplicate ids, output unusable */
    BATCH_MODEL = 3,       /* the model could not be loaded */
    BATCH_INTERRUPTED = 4, /* stopped by SIGINT/SIGTERM; rerun to resume */
    BATCH_DEVICE_FAILED = 5, /* devices failed and no device was left for some files; rerun */
};

typedef struct {
    const char *manifest;        /* path or "-" */
    const char *manifest_format; /* auto|tsv|jsonl|list */
    const char *model;
    const char *output;          /* results JSONL path or "-" (stdout, no resume) */
    const char *format;          /* srt|vtt|txt per-file outputs, or NULL */
    const char *output_dir;      /* where per-file outputs go */
    qasr_options_t qopt;
    const int *gpus;             /* --gpus: CUDA devices, one worker each (n_gpus 0: qopt.device) */
    int n_gpus;
    const char *language;        /* default for entries without one, or NULL */
    const char *context;         /* default for entries without one, or NULL */
    int max_new_tokens;          /* 0: scaled to each segment's duration */
    int ignore_eos;
    double tokens_per_second;    /* > 0 (with ignore_eos): 4 + ceil(rate x seconds) tokens per segment */
    int full_batches;            /* a step waits for a batch of decoded pieces (benchmarks) */
    double max_segment_seconds;
    int retry_errors, overwrite, quiet, no_bucketing;
    int readers;                 /* audio decoding threads; 0: chosen after the load (batch.c) */
    double progress_interval;    /* seconds between progress lines when stderr is not a tty */
    double fsync_seconds;        /* see results.h */
    const char *shard;           /* --shard K/N or none; NULL: from the Slurm environment (shard.h) */
    const char *aligner;         /* --aligner: a Qwen3-ForcedAligner directory (word times), or NULL */
    int timestamps;              /* word times when an aligner is given (--timestamps word: 1, none: 0) */
    int align_reference;         /* align each entry's text column instead of transcribing (no model) */
} batch_opts_t;

/* The longest piece the aligner takes at once: the official wrapper's cut (aligner spec 9). */
#define ALIGN_MAX_SECONDS 180

void batch_opts_default(batch_opts_t *o);
/* Run; returns one of the exit codes above. */
int batch_run(const batch_opts_t *o);

#endif
