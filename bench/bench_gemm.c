/* CPU matrix-product benchmark: gemm_xwt (host/cpu/cpu_gemm.c, fp32 and bf16 weights widened) and
 * gemm_bf16_xwt (host/cpu/cpu_gemm_bf16.c, oneDNN bf16 matmul on packed weights) on the shapes of
 * the 0.6B decoder, with the weights of all 28 layers so that they stream from DRAM as in a real
 * decode step. Prints ms per "step" (all layers once), weight GB/s and GFLOP/s per row count M.
 *
 * usage: bench_gemm [threads] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_gemm.h"
#include "cpu_gemm_bf16.h"
#include "util.h"

enum { LAYERS = 28, H = 1024, QKV = 4096, O_IN = 2048, FF = 3072 };

typedef struct {
    int n, k;
} shape_t;

static const shape_t shapes[] = { { QKV, H }, { H, O_IN }, { 2 * FF, H }, { H, FF } };
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

int main(int argc, char **argv)
{
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (argc > 2 || threads <= 0) {
        fprintf(stderr, "usage: bench_gemm [threads > 0] (default 2)\n");
        return 2;
    }
    omp_set_num_threads(threads);
    size_t per_layer = 0;
    for (int s = 0; s < N_SHAPES; s++) per_layer += (size_t)shapes[s].n * shapes[s].k;
    const size_t total = per_layer * LAYERS;
    uint16_t *w16 = xmalloc(total * sizeof(uint16_t));
    float *w32 = xmalloc(total * sizeof(float));
    for (size_t i = 0; i < total; i++) {
        w32[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        w16[i] = f32_to_bf16(w32[i]);
    }
    const int max_m = 1024;
    float *x = xmalloc((size_t)max_m * FF * sizeof(float)), *y = xmalloc((size_t)max_m * 2 * FF * sizeof(float));
    for (int i = 0; i < max_m * FF; i++) x[i] = (float)(i % 97) * 1e-2f;
    const char *isa;
    const int native = bf16_gemm_native(&isa);
    printf("0.6B decoder layer shapes x %d layers (%.2f GB fp32 / %.2f GB bf16), %d threads, oneDNN bf16: %s\n",
           LAYERS, total * 4e-9, total * 2e-9, threads, isa);
    bf16_weight_t *packed[LAYERS * N_SHAPES];
    bf16_gemm_t *g = native ? bf16_gemm_new() : NULL;
    uint16_t *w16p = native ? xmalloc(total * sizeof(uint16_t)) : NULL; /* packed in place, as at load */
    if (native) {
        memcpy(w16p, w16, total * sizeof(uint16_t));
        const double t0 = now_seconds();
        size_t off = 0;
        for (int i = 0; i < LAYERS * N_SHAPES; i++) {
            const shape_t *sh = &shapes[i % N_SHAPES];
            packed[i] = bf16_weight_pack(g, w16p + off, sh->n, sh->k, 1);
            off += (size_t)sh->n * sh->k;
        }
        printf("packed in %.2f s\n", now_seconds() - t0);
    }
    static const char *mode_name[] = { "fp32 sgemm", "bf16 widened", "bf16 oneDNN" };
    const int ms[] = { 1, 2, 4, 8, 16, 32, 64, 145, 256, 1024 };
    for (int mode = 0; mode < (native ? 3 : 2); mode++) {
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            const int M = ms[mi];
            double best = 1e30;
            for (int rep = 0; rep < (M > 256 ? 1 : 3); rep++) {
                const double t0 = now_seconds();
                size_t off = 0;
                for (int l = 0; l < LAYERS; l++)
                    for (int s = 0; s < N_SHAPES; s++) {
                        if (mode == 2)
                            gemm_bf16_xwt(g, y, x, packed[l * N_SHAPES + s], NULL, M, 0);
                        else
                            gemm_xwt(y, x, mode ? (const void *)(w16 + off) : (const void *)(w32 + off), mode, NULL, M,
                                     shapes[s].k, shapes[s].n, 0);
                        off += (size_t)shapes[s].n * shapes[s].k;
                    }
                const double t = now_seconds() - t0;
                best = t < best ? t : best;
            }
            printf("%-12s M=%4d: %8.1f ms/step  %6.1f GB/s of weights  %6.1f GFLOP/s\n", mode_name[mode], M,
                   best * 1e3, total * (mode ? 2.0 : 4.0) / best / 1e9, 2.0 * M * total / best / 1e9);
        }
    }
    if (native) {
        printf("%d oneDNN primitives\n", bf16_gemm_primitives(g));
        for (int i = 0; i < LAYERS * N_SHAPES; i++) bf16_weight_free(packed[i]);
        bf16_gemm_free(g);
    }
    free(w16p);
    free(w16);
    free(w32);
    free(x);
    free(y);
    return 0;
}
