/* qasr library API: load a Qwen3-ASR checkpoint directory as published and transcribe
 * batches of 16 kHz mono audio. All inputs of one call are decoded together (continuous
 * batching); results come back in input order.
 *
 * Errors: functions returning a pointer give NULL, functions returning int give -1, and
 * qasr_last_error() says why. A bad input (too short, unsupported language) does not fail
 * the call: its result carries an error message instead. */
#ifndef QASR_H
#define QASR_H

#include <stdint.h>

typedef struct qasr qasr_t;

typedef struct {
    const char *backend; /* "cpu", "cuda", or NULL: cuda if built with it and a device is present */
    int device;          /* CUDA device index */
    int threads;         /* CPU threads; 0 = all cores */
    const char *precision; /* CPU matrix products: "fp32", "bf16", or NULL/"auto": bf16 where the
                          * CPU has native bf16 (AVX512-BF16, AMX), else fp32 */
    int max_batch;       /* sequences decoded together; 0 = default: 32 on the CPU; on a GPU as
                          * many as the KV cache holds at 30 s of audio each, 32..512 */
    double kv_gb;        /* KV cache size in GB; 0 = default (CPU: a quarter of free RAM, 1..16 GB;
                          * GPU: 80% of the device memory left after the weights) */
    int step_tokens;     /* rows per decoder step (long prompts are prefilled in chunks); 0 = 2048 */
    double encoder_seconds; /* audio admitted and encoded together per step; 0 = 600 */
    int static_batching; /* start a new batch only when the previous one is done (comparisons) */
    const char *dump_dir;/* write stage-by-stage dumps for the reference comparison (1 input) */
    int verbose;
    int profile;         /* fill qasr_stats_t.stage (syncs a GPU at every stage edge) */
    int no_cuda_graphs;  /* CUDA: launch decode steps kernel by kernel instead of replaying graphs */
    int sync_steps;      /* CUDA: read each decoder step's tokens before launching the next */
} qasr_options_t;

typedef struct {
    const float *samples; /* 16 kHz mono float32 in [-1, 1] (copied) */
    int64_t n_samples;
    const char *context;  /* background text for the system block, or NULL */
    const char *language; /* force a language (any case of a supported name), or NULL */
    int max_new_tokens;   /* 0: scaled to the audio length */
    int ignore_eos;       /* decode exactly max_new_tokens tokens */
    const char *align_text; /* an aligner (qasr_load_aligner): the transcript whose words get
                           * times; language (any supported by either model, or NULL) picks
                           * the word splitter */
} qasr_input_t;

/* A word of an alignment: as the aligner's splitter cleaned it (letters, digits and '), with
 * its start and end in ms from the start of the audio (end >= start; both may be equal). */
typedef struct {
    char *word;
    int start_ms, end_ms;
} qasr_word_t;

typedef struct {
    char *text;           /* transcript */
    char *language;       /* detected or forced language ("" if none) */
    char *raw;            /* decoded output before parsing */
    int *token_ids;       /* generated ids in order (incl. the end token, if any) */
    int n_tokens;
    int truncated;        /* hit max_new_tokens without an end token */
    double audio_seconds;
    double encode_seconds, first_token_seconds, total_seconds; /* since submission */
    char *error;          /* NULL, or why this input has no transcript */
    qasr_word_t *words;   /* an aligner's result: the words with their times (text is then the
                           * aligned transcript, token_ids the slot classes) */
    int n_words;
} qasr_result_t;

void qasr_options_default(qasr_options_t *o);
qasr_t *qasr_load(const char *model_dir, const qasr_options_t *o);
/* A Qwen3-ForcedAligner checkpoint directory as published (word timestamps): its inputs carry
 * align_text, and qasr_transcribe and sessions align instead of transcribing (one prefill pass
 * per input, batched as transcription is). NULL + qasr_last_error() also when dir holds a
 * speech recognition model. */
qasr_t *qasr_load_aligner(const char *aligner_dir, const qasr_options_t *o);
/* One model per CUDA device of devices[0..n-1] into out[0..n-1] (each then used by one thread
 * at a time, any thread): the checkpoint is read from disk once, uploaded to devices[0] and
 * copied to the others with an NCCL broadcast (a build without NCCL uploads to each device from
 * the same file, which the page cache serves). o->device is ignored. 0, or -1 +
 * qasr_last_error() naming the device. */
int qasr_load_devices(const char *model_dir, const qasr_options_t *o, const int *devices, int n,
                      qasr_t **out);
void qasr_free(qasr_t *q);

/* Transcribe n inputs into out[0..n-1] (caller frees each with qasr_result_free).
 * Returns the number of inputs whose result has an error. */
int qasr_transcribe(qasr_t *q, const qasr_input_t *in, int n, qasr_result_t *out);
void qasr_result_free(qasr_result_t *r);

/* Sessions: for callers that feed inputs over time (qasr-batch). A session owns a KV cache
 * and decodes everything submitted to it with continuous batching:
 *     s = qasr_session_new(q);
 *     while (work) { qasr_session_submit(s, &in, tag) while you have inputs and
 *                    qasr_session_waiting(s) is small; qasr_session_step(s);
 *                    while (qasr_session_poll(s, &res, &tag)) use res; }
 * Results come back in completion order with the tag given at submission. */
typedef struct qasr_session qasr_session_t;
qasr_session_t *qasr_session_new(qasr_t *q); /* NULL + qasr_last_error() */
void qasr_session_free(qasr_session_t *s);
void qasr_session_submit(qasr_session_t *s, const qasr_input_t *in, void *tag);
/* Submitted inputs whose result has not been polled yet / that have not started yet. */
int qasr_session_pending(const qasr_session_t *s);
int qasr_session_waiting(const qasr_session_t *s);
double qasr_session_waiting_seconds(const qasr_session_t *s); /* audio of those not started */
/* Drop the inputs that have not started (e.g. on an interrupt); no result comes for them.
 * Returns how many. */
int qasr_session_cancel_waiting(qasr_session_t *s);
/* One unit of work: admit waiting inputs, encode them, one decoder step. 0, or -1 +
 * qasr_last_error() when the device has failed: the session cannot go on (the inputs in flight
 * get no result; free it, and the model, and use another device). */
int qasr_session_step(qasr_session_t *s);
/* 1 and the next finished result (caller frees it with qasr_result_free), or 0. */
int qasr_session_poll(qasr_session_t *s, qasr_result_t *out, void **tag);

#define QASR_N_STAGES 6

/* Where the time of the last qasr_transcribe call (or of a session so far) went. */
typedef struct {
    double wall_seconds, audio_seconds;
    double mel_seconds, encoder_seconds;
    double prefill_seconds, decode_seconds; /* decoder steps with prompt rows / decode rows only */
    long prefill_tokens, decode_tokens, decoder_steps;
    long device_allocs; /* device memory allocations during the run (a warmed-up run: 0); -1 on the CPU */
    /* With options.profile: seconds and GFLOP (matrix products and attention) per stage:
     * mel, conv stem, encoder layers, prefill, decode (decoder layers of steps with prompt
     * rows / decode rows only), LM head (with the final norm and argmax). */
    struct {
        double seconds, gflop;
    } stage[QASR_N_STAGES];
} qasr_stats_t;
const char *qasr_stage_name(int i); /* "mel", "conv stem", ... */
void qasr_last_stats(const qasr_t *q, qasr_stats_t *s);
void qasr_session_stats(const qasr_session_t *s, qasr_stats_t *st);

/* CUDA devices this build can use (0 in a build without CUDA, or without a device). */
int qasr_device_count(void);
/* 1 if s names a precision of qasr_options_t.precision ("fp32", "bf16", "auto"), else 0. */
int qasr_precision_known(const char *s);

/* Model facts for callers (e.g. to print or validate). */
int qasr_n_languages(const qasr_t *q);
const char *qasr_language(const qasr_t *q, int i);
double qasr_load_seconds(const qasr_t *q);

/* Sequences decoded together (options.max_batch, or the default chosen at load). */
int qasr_max_batch(const qasr_t *q);
/* 1 when the model computes on a device (a GPU), 0 on the CPU. */
int qasr_on_device(const qasr_t *q);

const char *qasr_last_error(void);
/* The backend and its arithmetic, for logs ("cpu, 2 threads, bf16 matrix products (AMX)"). */
const char *qasr_backend_describe(const qasr_t *q);
/* How the backend chose each op's arithmetic (the CPU's precision plan: per matrix shape and row
 * count fp32 or bf16, and why), several lines; NULL where it chose nothing. */
const char *qasr_backend_plan(const qasr_t *q);

#endif
