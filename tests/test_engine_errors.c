/* What the engine does when its backend fails, on the demo model and a CPU backend whose ops can
 * be made to fail (a wrapper around the CPU ops, as a real backend would fail):
 *  - backend memory runs out while encoding, in a decoder step, or inside an op (op_failed): the
 *    requests of that pass end with the backend's message (naming the size), engine_step
 *    returns 0, and requests submitted afterwards give the tokens of a run that never failed;
 *  - the device fails for good: engine_step returns -1 with the device's message, and the engine
 *    frees cleanly, every request in flight handed back once;
 *  - an allocation the host cannot give is returned, with its size, by the CPU backend itself. */
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "backend_cpu.h"
#include "engine.h"
#include "model.h"
#include "prompt.h"
#include "test.h"
#include "tokenizer.h"
#include "util.h"

#define MODEL "models/qasr-demo"

static backend_ops_t faulty;          /* the CPU ops with the failures below */
static const backend_ops_t *cpu;      /* the real ones */
static int fail_scratch;              /* scratch returns NULL while set */
static int fail_op_once;              /* op_failed reports one failure */
static long matmuls, fault_at_matmul; /* the device "fails" at this matmul (0: never) */
static char fault_msg[128];

static void *f_scratch(backend_t *be, size_t n)
{
    if (!fail_scratch) return cpu->scratch(be, n);
    qasr_fail("injected: out of host memory (allocating %zu bytes)", n * sizeof(float));
    return NULL;
}

static int *f_ints(backend_t *be, const int *h, size_t n)
{
    if (!fail_scratch) return cpu->ints(be, h, n);
    qasr_fail("injected: out of host memory (allocating %zu bytes)", n * sizeof(int));
    return NULL;
}

static int f_op_failed(backend_t *be)
{
    if (fail_op_once) {
        fail_op_once = 0;
        return qasr_fail("injected: conv stem: out of host memory (allocating 1234 bytes)");
    }
    return cpu->op_failed(be);
}

static void f_matmul(backend_t *be, void *out, const void *x, const weight_t *w, const weight_t *b, int M, int K,
                     int N, int acc)
{
    if (++matmuls >= fault_at_matmul && fault_at_matmul) {
        snprintf(fault_msg, sizeof fault_msg, "device 0 failed: injected at matmul %ld", fault_at_matmul);
        return;
    }
    cpu->matmul(be, out, x, w, b, M, K, N, acc);
}

static const char *f_fault(backend_t *be) { return fault_msg[0] ? fault_msg : NULL; }

static int drops;
static void count_drop(void *tag) { drops++; }

typedef struct {
    model_t m;
    tokenizer_t *tok;
    special_ids_t sp;
    float *x;
    int64_t n;
} rig_t;

static engine_t *new_engine(rig_t *r)
{
    engine_opts_t o;
    engine_opts_default(&o);
    o.kv_gb = 0.05;
    o.max_seqs = 4;
    engine_t *e = engine_create(&r->m, r->tok, &r->sp, &o);
    CHECK(e != NULL);
    return e;
}

static void submit(engine_t *e, const rig_t *r, int k, int max_new)
{
    for (int i = 0; i < k; i++) {
        float *copy = xmalloc(r->n * sizeof *copy);
        memcpy(copy, r->x, r->n * sizeof *copy);
        const engine_req_t req = { .samples = copy, .n_samples = r->n, .max_new_tokens = max_new, .ignore_eos = 1,
                                   .tag = (void *)(intptr_t)i };
        engine_submit(e, &req);
    }
}

/* Steps until every request has a result or a step fails; the results in out[0..k). Returns the
 * last engine_step code. */
static int drain(engine_t *e, engine_result_t *out, int k)
{
    int got = 0, rc = 0;
    while (got < k && rc == 0) {
        rc = engine_step(e);
        engine_result_t res;
        while (engine_pop(e, &res)) out[got++] = res;
    }
    return rc;
}

static void free_results(engine_result_t *r, int k)
{
    for (int i = 0; i < k; i++) engine_result_free(&r[i]);
}

int main(void)
{
    rig_t r = { 0 };
    backend_ref_t bk;
    CHECK_INT_EQ(backend_cpu_create(&bk, 1, 128, PRECISION_FP32), 0);
    cpu = bk.ops;
    faulty = *cpu;
    faulty.scratch = f_scratch;
    faulty.ints = f_ints;
    faulty.op_failed = f_op_failed;
    faulty.matmul = f_matmul;
    faulty.fault = f_fault;
    bk.ops = &faulty;
    CHECK_INT_EQ(model_load(&r.m, MODEL, bk, 1), 0);
    CHECK((r.tok = tokenizer_load(MODEL)) != NULL);
    CHECK_INT_EQ(special_ids_load(&r.sp, r.tok, &r.m.cfg), 0);
    CHECK_INT_EQ(audio_load("audio/demo.flac", &r.x, &r.n, NULL), 0);
    if (test_failures) return test_result("test_engine_errors");

    /* the run that never fails */
    const int steps = 6;
    engine_result_t base[2], res[2];
    engine_t *e = new_engine(&r);
    submit(e, &r, 2, steps);
    CHECK_INT_EQ(drain(e, base, 2), 0);
    const long per_run = matmuls; /* products of a whole run of two requests */
    for (int i = 0; i < 2; i++) CHECK(base[i].error == NULL && base[i].n_tokens == steps);

    /* out of memory while encoding: both requests fail with the message, the engine goes on */
    fail_scratch = 1;
    submit(e, &r, 2, steps);
    CHECK_INT_EQ(drain(e, res, 2), 0);
    for (int i = 0; i < 2; i++) {
        CHECK(res[i].error && strstr(res[i].error, "injected: out of host memory (allocating"));
        CHECK_INT_EQ(res[i].n_tokens, 0);
    }
    free_results(res, 2);
    fail_scratch = 0;

    /* out of memory in a decoder step after the prompt: the step's requests fail */
    submit(e, &r, 2, steps);
    CHECK_INT_EQ(engine_step(e), 0); /* encode + prefill */
    fail_scratch = 1;
    CHECK_INT_EQ(drain(e, res, 2), 0);
    fail_scratch = 0;
    for (int i = 0; i < 2; i++) CHECK(res[i].error && strstr(res[i].error, "injected: out of host memory"));
    free_results(res, 2);

    /* an op without memory for its work space: the pass's requests fail with op_failed's message */
    fail_op_once = 1;
    submit(e, &r, 2, steps);
    CHECK_INT_EQ(drain(e, res, 2), 0);
    for (int i = 0; i < 2; i++) CHECK(res[i].error && strstr(res[i].error, "injected: conv stem: out of host memory"));
    free_results(res, 2);

    /* the engine recovered: the same tokens as the run that never failed */
    submit(e, &r, 2, steps);
    CHECK_INT_EQ(drain(e, res, 2), 0);
    for (int i = 0; i < 2; i++) {
        CHECK(res[i].error == NULL);
        CHECK_INT_EQ(res[i].n_tokens, base[i].n_tokens);
        CHECK(res[i].n_tokens == base[i].n_tokens && !memcmp(res[i].tokens, base[i].tokens, steps * sizeof(int)));
    }
    free_results(res, 2);
    free_results(base, 2);

    /* the device fails for good halfway through a run: engine_step says so; the engine frees
     * cleanly */
    matmuls = 0;
    fault_at_matmul = per_run / 2;
    submit(e, &r, 3, steps);
    int rc = 0, popped = 0;
    for (int i = 0; i < 50 && rc == 0; i++) {
        rc = engine_step(e);
        engine_result_t x;
        while (engine_pop(e, &x)) popped++, engine_result_free(&x);
    }
    CHECK_INT_EQ(rc, -1);
    char want[96];
    snprintf(want, sizeof want, "device 0 failed: injected at matmul %ld", fault_at_matmul);
    CHECK(strstr(qasr_last_error(), want) != NULL);
    CHECK_INT_EQ(popped, 0);
    engine_free(e, count_drop);
    CHECK_INT_EQ(drops, 3); /* every request in flight handed back, once */

    /* the CPU backend's own allocations: a size the host cannot give comes back with the size */
    bk.ops = cpu;
    weight_t *w = cpu->weight_alloc(bk.be, (size_t)1 << 60, WEIGHT_PARAM, DTYPE_F32);
    CHECK(w == NULL);
    CHECK(strstr(qasr_last_error(), "out of host memory (allocating 4611686018427387904 bytes)") != NULL);
    void *s = cpu->scratch(bk.be, (size_t)1 << 60);
    CHECK(s == NULL && strstr(qasr_last_error(), "out of host memory"));
    const kv_geom_t g = { 1 << 20, 1 << 20, 16, 8, 128 };
    CHECK(cpu->kv_alloc(bk.be, &g) == NULL && strstr(qasr_last_error(), "for the KV cache"));
    cpu->scratch_release(bk.be, 0);

    free(r.x);
    tokenizer_free(r.tok);
    model_free(&r.m);
    cpu->destroy(bk.be);
    return test_result("test_engine_errors");
}
