/* The engine's observer of the forward passes (model/observer.h): the stage profile, timed at
 * stage boundaries with the backend synced there (so times are true on asynchronous devices,
 * at the cost of those syncs), and, in dump mode, each dump point's tensor as .npy. */
#ifndef QASR_OBSERVE_H
#define QASR_OBSERVE_H

#include "backend.h"
#include "observer.h"

typedef struct {
    observer_t base;       /* what the model code sees */
    backend_ref_t bk;
    int profile;           /* time the stages */
    double t;              /* clock at the last boundary */
    double seconds[N_STAGES], flop[N_STAGES];
    char *dump_dir;        /* dump mode: where the .npy files go, else NULL */
    int dump_layers;       /* write the forward passes' tensors now (the engine sets it per pass) */
    float *step_logits;    /* dump mode: logits of every generated token, [n][V] */
    int n_step_logits;
} engine_observer_t;

/* 0, or -1 + qasr_fail() when the dump directory cannot be created. */
int engine_observer_init(engine_observer_t *ob, backend_ref_t bk, int profile, const char *dump_dir);
void engine_observer_free(engine_observer_t *ob);
/* What to hand the forward passes: NULL when neither profiling nor dumping. */
observer_t *engine_observer(engine_observer_t *ob);

#endif
