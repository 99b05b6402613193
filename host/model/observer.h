/* What the forward passes tell whoever watches them, at their stage boundaries: how much work
 * each stage did (the stage profile of `qasr -v`) and the activations at the dump points of
 * MODEL.md (the reference comparison's --dump-dir). The model code calls these and knows
 * nothing of clocks or files; the engine's observer (engine/observe.c) does the rest. Every
 * call is a no-op on a NULL observer or a NULL callback, so an unwatched pass pays nothing. */
#ifndef QASR_OBSERVER_H
#define QASR_OBSERVER_H

#include <stddef.h>

/* Stages of a forward pass, in the order they run. Prefill and decode are the decoder layers of
 * steps with prompt rows / with decode rows only (dec_batch_t.prefill says which). */
typedef enum {
    STAGE_MEL,        /* log-mel spectrogram */
    STAGE_CONV,       /* conv stem, flatten, conv_out, positions */
    STAGE_ENC_LAYERS, /* encoder layers and output projections */
    STAGE_PREFILL,    /* embeddings and decoder layers, a step with prompt rows */
    STAGE_DECODE,     /* embeddings and decoder layers, a step of decode rows only */
    STAGE_LM_HEAD,    /* final norm, LM head, argmax */
    N_STAGES
} stage_t;

/* How a dumped tensor is laid out relative to the activation. */
typedef enum { DUMP_AS_IS, DUMP_TRANSPOSED } dump_layout_t;

typedef struct observer observer_t;
struct observer {
    /* A pass begins: the time until the next stage_done belongs to its first stage. */
    void (*begin)(observer_t *ob);
    /* The work since begin or the last stage_done was stage s: flop floating-point operations
     * (matrix products and attention, 2 per multiply-add). */
    void (*stage_done)(observer_t *ob, stage_t s, double flop);
    /* Activation x [rows][cols] on the backend, at a dump point: name is MODEL.md's. */
    void (*tensor)(observer_t *ob, const char *name, const void *x, int rows, int cols, dump_layout_t layout);
};

static inline void observe_begin(observer_t *ob)
{
    if (ob && ob->begin) ob->begin(ob);
}

static inline void observe_stage(observer_t *ob, stage_t s, double flop)
{
    if (ob && ob->stage_done) ob->stage_done(ob, s, flop);
}

static inline int observe_tensors(const observer_t *ob) { return ob && ob->tensor; }

static inline void observe_tensor(observer_t *ob, const char *name, const void *x, int rows, int cols)
{
    if (observe_tensors(ob)) ob->tensor(ob, name, x, rows, cols, DUMP_AS_IS);
}

#endif
