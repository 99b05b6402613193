/* The CPU backend's precision plan: for each matrix shape of the model and each class of row
 * counts, whether its products run in fp32 (gemm_xwt, the reference) or bf16 (oneDNN's matmul),
 * and whether the conv stem and the KV cache are bf16. --precision fp32 and bf16 are uniform
 * plans; auto is decided from timings of the candidate kernels on the model's own shapes
 * (cpu_plan_measure.c, kept per machine by cpu_plan_cache.c), because CPU flags do not say which
 * is faster: on AVX512-BF16 without AMX oneDNN's bf16 matmul runs below its fp32 sgemm except
 * at a row or two, where the bytes of the weights bind.
 *
 * This file is the decision alone, a pure function of the timings, so that tests can hold it
 * with timings of their own. */
#ifndef QASR_CPU_PLAN_H
#define QASR_CPU_PLAN_H

#include <stddef.h>

#include "config.h"

/* Row counts M of a product, in classes: a few decoding sequences (bytes of the weights bind),
 * a batch of them, and prefill / encoder blocks (arithmetic binds). */
enum { ROWS_FEW, ROWS_SOME, ROWS_MANY, N_ROW_CLASSES };
static inline int plan_row_class(int M) { return M <= 4 ? ROWS_FEW : M < 64 ? ROWS_SOME : ROWS_MANY; }
extern const int plan_class_rows[N_ROW_CLASSES]; /* the M each class is timed at */

/* How a product runs: fp32 on the plain weights; bf16 on weights packed for oneDNN (then no
 * fp32 product can read them: every row class of that shape is bf16); bf16 on the plain weights
 * (oneDNN copies blocks per call), which leaves them to fp32 products at other row counts. */
enum { RUN_FP32, RUN_BF16_PACKED, RUN_BF16_PLAIN, N_RUNS };

enum { ROLE_ENC = 1, ROLE_DEC = 2 }; /* whose matrices have the shape */

typedef struct {
    int N, K, roles;
    double t[N_ROW_CLASSES][N_RUNS]; /* seconds per product, measured; <= 0: not measured */
    int pack;                        /* decided: packed for oneDNN, bf16 at every row count */
    unsigned char run[N_ROW_CLASSES];/* decided: RUN_* per row class */
} plan_matrix_t;

#define PLAN_MAX_MATRICES 16

typedef struct {
    int n;
    plan_matrix_t m[PLAN_MAX_MATRICES];
    int conv_cin, conv_n, conv_hin, conv_win; /* the conv stem's 480-channel layer, as timed */
    double conv_t[2];                         /* seconds per layer: fp32, bf16; <= 0: not measured */
    /* decided */
    int conv_bf16;   /* the conv stem's layers after the first on oneDNN's bf16 convolution */
    int kv_bf16;     /* the KV cache in bf16: where every decoder matrix is bf16 at every row count */
    int any_bf16;    /* some product is bf16: matrices are kept in bf16 (an fp32 checkpoint's rounded) */
    int other_bf16;  /* a shape not in the plan: packed bf16 (1) or fp32 (0) */
    char source[256];/* how it was made, for -v */
} cpu_plan_t;

/* The distinct shapes [N][K] of the model's matrices (cfg), each with the roles that use it, and
 * the conv stem's timed shape; no timings, nothing decided. */
void plan_shapes(cpu_plan_t *p, const model_config_t *cfg);

/* Every product in one precision (forced, or auto without native bf16). */
void plan_uniform(cpu_plan_t *p, int bf16);

/* Decide from the timings: per shape, packed bf16 where it is faster than fp32 at every row
 * count; else plain weights, each row class on the faster of fp32 and bf16 on plain weights (a
 * tie goes to fp32, the reference). The conv stem on the faster of its two; the KV cache bf16
 * where the whole decoder is. A timing missing (<= 0) loses. */
void plan_decide(cpu_plan_t *p);

/* The entry for matrices of shape [N][K], or NULL when the plan does not know it. */
const plan_matrix_t *plan_find(const cpu_plan_t *p, int N, int K);

/* The plan in words, one line per shape after a summary line: "precision plan (auto, measured
 * in 0.41 s): ..." and "  1024x1024 (decoder): 1-4 rows bf16 plain (0.20 vs 0.31 ms) ...". */
void plan_describe(const cpu_plan_t *p, char *buf, size_t n);

#endif
