/* The inference engine: continuous batching of many utterances over one model.
 *
 * Requests wait in a FIFO. Each step admits waiting requests while there is a free sequence
 * slot and enough free KV pages for prompt + max_new_tokens (reserved up front, so a running
 * sequence never runs out), encodes all newly admitted audio in one batched encoder call, then
 * runs one decoder step over every active sequence: one row per decoding sequence plus as many
 * prompt rows of prefilling sequences as the step budget allows (long prompts are prefilled in
 * chunks over several steps). Finished sequences return their pages at once, so the next
 * waiting request joins in the following step. On a backend that keeps tokens on the device
 * (backend.h fetch_ids), each step is launched before the previous one's tokens are read, so
 * the device never waits for the host between steps. */
#ifndef QASR_ENGINE_H
#define QASR_ENGINE_H

#include <stdint.h>

#include "align.h"
#include "mel.h"
#include "model.h"
#include "prompt.h"
#include "tokenizer.h"

typedef struct {
    int max_seqs;        /* sequences decoded together */
    int max_step_tokens; /* rows per decoder step (prefill chunk size) */
    int enc_max_rows;    /* rows per encoder pass */
    double enc_max_seconds; /* audio admitted (and encoded together) per step */
    int static_batching; /* admit only when no sequence is active (for comparisons) */
    double kv_gb;        /* KV cache size in GB */
    int page_size;       /* tokens per KV page */
    const char *dump_dir;/* write reference-comparison dumps (single request only) */
    int profile;         /* time every stage (engine_stats_t.stage), syncing the device at its edges */
    int no_cuda_graphs;  /* launch decode steps op by op, not as graphs (backends with step_begin) */
    int sync_steps;      /* read each step's tokens before the next step is launched (backends with
                          * fetch_ids otherwise launch it first; so do not profile and dump_dir) */
} engine_opts_t;

/* Defaults; kv_gb is left 0: set it, e.g. to engine_default_kv_gb(). */
void engine_opts_default(engine_opts_t *o);
/* KV cache size for a backend: in host memory (the CPU), a quarter of free RAM (1..16 GB); on a
 * device, 80% of its free memory (after the weights are loaded). */
double engine_default_kv_gb(const backend_ref_t *bk);
/* Bytes of KV cache per token: keys and values of every layer. */
double engine_kv_token_bytes(const model_t *m);

typedef struct {
    float *samples;       /* 16 kHz mono, conditioned; ownership passes to the engine */
    int64_t n_samples;
    const char *context;  /* system-block context or NULL (copied) */
    const char *language; /* forced language, normalised and validated, or NULL (copied) */
    int max_new_tokens;   /* <= 0: engine_auto_max_new() of the duration */
    int ignore_eos;       /* decode exactly max_new_tokens steps */
    const char *align_text; /* an aligner model's request: the transcript whose words get times
                           * (copied; language picks the word splitter) */
    void *tag;            /* returned with the result */
} engine_req_t;

typedef struct {
    void *tag;
    int *tokens;          /* generated ids in order, including a final end token (malloc'd) */
    int n_tokens;
    int stopped;          /* ended on an end token */
    int truncated;        /* ended by max_new_tokens without an end token (and not ignore_eos) */
    int prompt_tokens, audio_tokens, max_new_tokens;
    double audio_seconds;
    char *error;          /* NULL, or why this input produced nothing (malloc'd) */
    /* an alignment (the model is an aligner; tokens then holds each slot's class): */
    align_words_t words;  /* the transcript's words */
    int *times_ms;        /* [2 * words.n]: start, end of each word, ms from the audio's start */
    /* seconds on the engine clock: submitted, admitted, encoded, first token, done */
    double t_submit, t_admit, t_encoded, t_first, t_done;
} engine_result_t;

typedef struct engine engine_t;

/* Where the time went (seconds of wall clock) and how much work was done. t_mel and the stage
 * arrays (model/observer.h's stages) are filled when engine_opts_t.profile is set; t_encoder is
 * the front end and encoder calls less t_mel. On a backend with an encoder lane (CUDA) the
 * encoder calls only submit their work, which then runs beside the decoder steps: t_encoder is
 * the host's submission time there (and the device's encoder time shows in the steps that wait
 * for it), except when profiling, which synchronises after each encoder call as before. */
typedef struct {
    double t_mel, t_encoder;
    double t_prefill, t_decode; /* decoder steps with prompt rows / with decode rows only */
    long prefill_tokens, decode_tokens, steps, encoder_calls;
    long device_allocs;         /* device memory allocations since the engine was made; -1: no device */
    double audio_seconds;
    double stage_seconds[N_STAGES], stage_flop[N_STAGES];
} engine_stats_t;

/* On a device: run the largest passes these options allow once, on synthetic input, so that the
 * memory a run needs beside the KV cache (scratch at its peak, library workspaces) is taken now,
 * before the cache is sized from what is left (engine_default_kv_gb); a run then allocates no
 * device memory (warmup.c). o->max_seqs <= 0: chosen here (engine_default_max_seqs of what the
 * encoder pass leaves). 0, or -1 + qasr_fail() with the sizes. */
int engine_warm_up(const model_t *m, engine_opts_t *o);
/* Sequences decoded together by default (warmup.c). In host memory 32: the CPU's cores are busy
 * with that many. On a device, as many as mem_gb (the memory the cache may take) holds at
 * ENGINE_PLAN_SECONDS of audio each (KV for its prompt and token limit, and with_held: the
 * encoder buffers and LM-head row the warm-up keeps for it out of the same memory), between 32 and
 * ENGINE_DEVICE_MAX_SEQS: a decode step streams all the weights whatever its rows, so the batch
 * is what amortises them (bench/ROOFLINE.md). */
#define ENGINE_PLAN_SECONDS 30.0
#define ENGINE_DEVICE_MAX_SEQS 512
int engine_default_max_seqs(const model_t *m, const engine_opts_t *o, double mem_gb, int with_held);

/* NULL + qasr_fail() if the KV cache cannot be allocated. */
engine_t *engine_create(const model_t *m, const tokenizer_t *tok, const special_ids_t *sp,
                        const engine_opts_t *opts);
/* Frees everything; drop(tag) is called for every request whose result was not popped. */
void engine_free(engine_t *e, void (*drop)(void *tag));

void engine_submit(engine_t *e, const engine_req_t *r);
/* Requests submitted whose results have not been popped yet; of those, not yet admitted; and
 * finished, waiting to be popped. */
int engine_in_flight(const engine_t *e);
int engine_waiting(const engine_t *e);
double engine_waiting_seconds(const engine_t *e); /* audio of the waiting requests */
int engine_ready(const engine_t *e);
/* Drop every request not yet admitted (no result will come for them); calls drop(tag) for
 * each. Returns how many. */
int engine_cancel_waiting(engine_t *e, void (*drop)(void *tag));
/* One scheduling step: admit waiting requests, encode them, plan and run one decoder step,
 * collect the finished. A request the backend runs out of memory for fails (its result says
 * why); 0. -1 + qasr_fail() when the device has failed: the engine cannot go on (free it; the
 * requests in flight get no result). */
int engine_step(engine_t *e);
/* Pop one finished result; returns 0 if none is ready. */
int engine_pop(engine_t *e, engine_result_t *out);
void engine_result_free(engine_result_t *r);
const engine_stats_t *engine_stats(const engine_t *e);

/* Default token limit for audio of the given length: 32 + 24 per second, generous enough for
 * fast speech in the languages whose text takes most tokens (Hindi, Greek: about a token a
 * character, 12-17 a second) so that nothing is cut, yet bounded so that a repetition loop
 * ends (spec pitfalls 25 and 26). */
int engine_auto_max_new(double seconds);

#endif
