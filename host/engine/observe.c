#include "observe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dump.h"
#include "util.h"

static engine_observer_t *self(observer_t *o) { return (engine_observer_t *)o; }

static double synced_now(const engine_observer_t *ob)
{
    ob->bk.ops->sync(ob->bk.be);
    return now_seconds();
}

static void on_begin(observer_t *o)
{
    engine_observer_t *ob = self(o);
    ob->t = synced_now(ob);
}

static void on_stage(observer_t *o, stage_t s, double flop)
{
    engine_observer_t *ob = self(o);
    const double now = synced_now(ob);
    ob->seconds[s] += now - ob->t;
    ob->flop[s] += flop;
    ob->t = now;
}

/* Dump mode: the passes' tensors while dump_layers is set; the logits of every step (the
 * reference comparison reads them as step_logits), or of an aligner's slots (slot_logits). */
static void on_tensor(observer_t *o, const char *name, const void *x, int rows, int cols, dump_layout_t layout)
{
    engine_observer_t *ob = self(o);
    const int logits = !strcmp(name, "logits");
    if (!ob->dump_layers && !(logits && rows == 1)) return;
    float *h = xmalloc((size_t)rows * cols * sizeof(float));
    ob->bk.ops->download(ob->bk.be, h, x, (size_t)rows * cols);
    if (logits && rows == 1) {
        ob->step_logits = xrealloc(ob->step_logits, (size_t)(ob->n_step_logits + 1) * cols * sizeof(float));
        memcpy(ob->step_logits + (size_t)ob->n_step_logits++ * cols, h, (size_t)cols * sizeof(float));
    } else if (layout == DUMP_TRANSPOSED) {
        float *t = xmalloc((size_t)rows * cols * sizeof(float));
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) t[(size_t)c * rows + r] = h[(size_t)r * cols + c];
        dump_f32(ob->dump_dir, name, t, cols, rows);
        free(t);
    } else {  /* several logit rows in one step: an aligner's slots */
        dump_f32(ob->dump_dir, logits ? "slot_logits" : name, h, rows, cols);
    }
    free(h);
}

int engine_observer_init(engine_observer_t *ob, backend_ref_t bk, int profile, const char *dump_dir)
{
    *ob = (engine_observer_t){ .bk = bk, .profile = profile };
    if (dump_dir) {
        if (mkdir(dump_dir, 0777) != 0 && errno != EEXIST)
            return qasr_fail("cannot create dump directory %s: %s", dump_dir, strerror(errno));
        ob->dump_dir = xstrdup(dump_dir);
        ob->base.tensor = on_tensor;
    }
    if (profile) {
        ob->base.begin = on_begin;
        ob->base.stage_done = on_stage;
    }
    return 0;
}

void engine_observer_free(engine_observer_t *ob)
{
    free(ob->dump_dir);
    free(ob->step_logits);
    *ob = (engine_observer_t){ 0 };
}

observer_t *engine_observer(engine_observer_t *ob)
{
    return ob->profile || ob->dump_dir ? &ob->base : NULL;
}
