/* CPU matrix products in bf16 with fp32 accumulation, on oneDNN's matmul primitive (brgemm
 * kernels on AVX512-BF16 and AMX). The weight is reordered once into the blocked layout the
 * kernel reads (bf16_weight_pack); activations are rounded to bf16 on the way in, products come
 * out in fp32. This is the --precision bf16 path of the CPU backend; gemm_xwt (cpu_gemm.h) is
 * the fp32 reference. */
#ifndef QASR_CPU_GEMM_BF16_H
#define QASR_CPU_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

typedef struct bf16_weight bf16_weight_t;
/* The oneDNN engine, stream and caches (primitives by shape, packed layouts, buffers) of one
 * CPU backend instance: everything is freed with it, nothing is shared between instances. */
typedef struct bf16_gemm bf16_gemm_t;

/* 1 when this CPU runs oneDNN's bf16 matmul natively (AVX512-BF16 or AMX), else 0; isa (may be
 * NULL) names what oneDNN found. */
int bf16_gemm_native(const char **isa);

bf16_gemm_t *bf16_gemm_new(void);
void bf16_gemm_free(bf16_gemm_t *g);

/* Pack w [N][K] (PyTorch Linear layout, bf16) for gemm_bf16_xwt. in_place: into w itself when
 * the packed layout has no padding (w must then outlive the result and is no longer [N][K]),
 * else into memory of the result's own; in_place 0: always a copy, and the caller may free w.
 * NULL + qasr_fail() when there is no memory for the copy. */
bf16_weight_t *bf16_weight_pack(bf16_gemm_t *g, uint16_t *w, int N, int K, int in_place);
/* A view of w [N][K] as it is, unpacked, for gemm_bf16_xwt: oneDNN reads the plain layout (its
 * kernels copy blocks of it per call), so the same matrix serves the fp32 path too. w must
 * outlive the view. This is what a mixed precision plan runs its bf16 row counts on. */
bf16_weight_t *bf16_weight_plain(uint16_t *w, int N, int K);
void bf16_weight_free(bf16_weight_t *w);
size_t bf16_weight_bytes(const bf16_weight_t *w);
/* For tests: bf16_weight_pack, with oneDNN's own reorder (by_reorder 1) or as it packs (0), and
 * the packed bytes. */
bf16_weight_t *bf16_weight_pack_how(bf16_gemm_t *g, uint16_t *w, int N, int K, int in_place, int by_reorder);
const void *bf16_weight_data(const bf16_weight_t *w);

/* out [M][N] (= or, with accumulate, +=) bf16(x [M][K]) w^T (+ bias [N] if not NULL). */
void gemm_bf16_xwt(bf16_gemm_t *g, float *out, const float *x, const bf16_weight_t *w, const float *bias, int M,
                   int accumulate);

/* Primitives created so far (for benchmarks and tests of the cache). */
int bf16_gemm_primitives(bf16_gemm_t *g);

#endif
