/* The C side of the Python package (python/qasr): what Python cannot do fast, in calls that take
 * no Python objects, so that ctypes runs each of them with the GIL released.
 *
 * Results come back as JSON lines (one per input, in input order; free the string with
 * qasr_py_free): the package parses them, so no C struct layout is shared with Python beyond
 * qasr_py_input_t. A bad input gives an error in its line, never a failed call. */
#ifndef QASR_PY_H
#define QASR_PY_H

#include <stdint.h>

#include "qasr.h"

typedef struct {
    const char *path;       /* a file to decode (any format audio_load reads), or NULL: samples */
    const float *samples;   /* interleaved frames [frames][channels] at sample_rate (not kept) */
    int64_t frames;
    int channels;
    double sample_rate;
    const char *language;   /* force a language, or NULL: detect */
    const char *context;    /* background text, or NULL */
} qasr_py_input_t;

/* qasr_load with the options the package exposes (NULL strings, zeros: the library's defaults).
 * NULL + qasr_last_error(). */
qasr_t *qasr_py_load(const char *model_dir, const char *backend, int device, int threads,
                     const char *precision, int max_batch, double kv_gb, int verbose);

/* Decode, resample and condition each input as qasr-batch does, cut those longer than
 * max_segment_seconds (<= 0: never) at quiet points, decode all pieces in one session
 * (continuous batching), join each input's pieces. With an aligner (qasr_load_aligner, else
 * NULL), as qasr-batch --aligner: pieces of at most 180 s, each transcript aligned in a second
 * session on the same device, words in file time, segments cut into subtitle cues from them.
 * One JSON object per input and line:
 *   path, words [{word, start, end}] or null, words_error (only when alignment failed), text,
 *   language, raw, token_ids, n_tokens, truncated, duration, segments [{start, end, text}],
 *   error, warning
 * NULL + qasr_last_error() only when no session could be made or the options are invalid. */
char *qasr_py_transcribe(qasr_t *q, qasr_t *aligner, const qasr_py_input_t *in, int n, int max_new_tokens,
                         double max_segment_seconds);

/* qasr_load_aligner with the same options as qasr_py_load. */
qasr_t *qasr_py_load_aligner(const char *aligner_dir, const char *backend, int device, int threads,
                             const char *precision, int max_batch, double kv_gb, int verbose);

/* A qasr-batch run (batch_run) configured by n key/value pairs named like qasr-batch's long
 * options with '_' for '-' (manifest, model, output, backend, precision, threads, batch, kv_gb,
 * language, context, max_new_tokens, max_segment_seconds, retry_errors, overwrite, quiet, ...;
 * flags take "0"/"1"). Returns qasr-batch's exit code; -1 + qasr_last_error() for an unknown key.
 * The run's signal handlers (SIGINT stops the intake and finishes the files in progress) are
 * in place only for the call: the caller's come back afterwards. */
int qasr_py_batch(const char *const *keys, const char *const *values, int n);

void qasr_py_free(void *p);

#endif
