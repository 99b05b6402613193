/* CPU matrix-product benchmark: gemm_xwt (host/cpu_gemm.c) on the shapes of the 0.6B decoder,
 * with the weights of all 28 layers (fp32 or bf16) so that they stream from DRAM as in a real
 * decode step. Prints ms per "step" (all layers once), weight GB/s and GFLOP/s per row count M.
 *
 * usage: bench_gemm [threads] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_gemm.h"
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
    const int max_m = 256;
    float *x = xmalloc((size_t)max_m * FF * sizeof(float)), *y = xmalloc((size_t)max_m * 2 * FF * sizeof(float));
    for (int i = 0; i < max_m * FF; i++) x[i] = (float)(i % 97) * 1e-2f;
    printf("gemm_xwt, 0.6B decoder layer shapes x %d layers (%.2f GB fp32 / %.2f GB bf16), %d threads\n",
           LAYERS, total * 4e-9, total * 2e-9, threads);
    const int ms[] = { 1, 2, 4, 8, 16, 32, 64, 145, 256 };
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            const int M = ms[mi];
            double best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                const double t0 = now_seconds();
                size_t off = 0;
                for (int l = 0; l < LAYERS; l++)
                    for (int s = 0; s < N_SHAPES; s++) {
                        const void *w = bf16 ? (const void *)(w16 + off) : (const void *)(w32 + off);
                        gemm_xwt(y, x, w, bf16, NULL, M, shapes[s].k, shapes[s].n, 0);
                        off += (size_t)shapes[s].n * shapes[s].k;
                    }
                const double t = now_seconds() - t0;
                best = t < best ? t : best;
            }
            printf("%s M=%3d: %7.1f ms/step  %6.1f GB/s of weights  %6.1f GFLOP/s\n", bf16 ? "bf16" : "fp32",
                   M, best * 1e3, total * (bf16 ? 2.0 : 4.0) / best / 1e9, 2.0 * M * total / best / 1e9);
        }
    }
    free(w16);
    free(w32);
    free(x);
    free(y);
    return 0;
}
