/* A CPU backend instance owns everything it makes: a second instance, created after the first is
 * destroyed and given new weights of the same shapes (the allocator hands it the first one's
 * addresses, as a second model loaded in the same process gets them), computes with the new weights, never with something
 * left from the first (a packed matrix, a converted convolution kernel, a cached primitive).
 * Checked on a matrix product and a conv stem layer against float64 sums, on the fp32 path, and
 * on the bf16 path where the CPU has native bf16 (else that half reports skipped). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"
#include "conv_ref.h"
#include "cpu_gemm_bf16.h"
#include "test.h"
#include "util.h"

enum { N = 96, K = 64, M = 5, CIN = 8, COUT = 4, H = 9, W = 13 };

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static double round_if(int bf16, float x) { return bf16 ? bf16_to_f32(f32_to_bf16(x)) : x; }

/* One instance: a bf16 matrix w [N][K] (sign s) and a conv kernel (sign s); the product and the
 * convolution against float64. Returns the worst scaled error of each. */
static void run(precision_t prec, float sign, double *err_mm, double *err_conv)
{
    backend_ref_t bk;
    CHECK_INT_EQ(backend_cpu_create(&bk, 1, 128, prec), 0);
    const backend_ops_t *o = bk.ops;
    const int bf16 = prec == PRECISION_BF16;
    unsigned seed = 11;
    uint16_t *w16 = xmalloc((size_t)N * K * sizeof *w16);
    float *x = xmalloc((size_t)M * K * sizeof *x), *y = xmalloc((size_t)M * N * sizeof *y);
    for (int i = 0; i < N * K; i++) w16[i] = f32_to_bf16(sign * frand(&seed));
    for (int i = 0; i < M * K; i++) x[i] = frand(&seed);
    weight_t *w = o->weight_alloc(bk.be, (size_t)N * K, WEIGHT_MATRIX, DTYPE_BF16);
    o->weight_upload(bk.be, w, 0, w16, DTYPE_BF16, (size_t)N * K);
    CHECK_INT_EQ(o->matrix_ready(bk.be, w, N, K), 0);
    o->matmul(bk.be, y, x, w, NULL, M, K, N, 0);
    *err_mm = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double ref = 0;
            for (int k = 0; k < K; k++) ref += round_if(bf16, x[m * K + k]) * bf16_to_f32(w16[n * K + k]);
            *err_mm = fmax(*err_mm, fabs(y[m * N + n] - ref) / (1.0 + sqrt((double)K)));
        }

    /* a conv stem layer: in [CIN][1][H][W] -> out [COUT][1][Ho][Wo], GELU(conv + bias) */
    const int Ho = (H - 1) / 2 + 1, Wo = (W - 1) / 2 + 1;
    float *ck = xmalloc((size_t)COUT * CIN * 9 * sizeof *ck), *cb = xmalloc(COUT * sizeof *cb);
    float *in = xmalloc((size_t)CIN * H * W * sizeof *in), *out = xmalloc((size_t)COUT * Ho * Wo * sizeof *out);
    for (int i = 0; i < COUT * CIN * 9; i++) ck[i] = sign * frand(&seed) * 0.3f;
    for (int i = 0; i < COUT; i++) cb[i] = frand(&seed) * 0.1f;
    for (int i = 0; i < CIN * H * W; i++) in[i] = frand(&seed);
    weight_t *kw = o->weight_alloc(bk.be, (size_t)COUT * CIN * 9, WEIGHT_PARAM, DTYPE_F32);
    weight_t *bw = o->weight_alloc(bk.be, COUT, WEIGHT_PARAM, DTYPE_F32);
    o->weight_upload(bk.be, kw, 0, ck, DTYPE_F32, (size_t)COUT * CIN * 9);
    o->weight_upload(bk.be, bw, 0, cb, DTYPE_F32, COUT);
    o->conv3x3s2_gelu(bk.be, out, in, kw, bw, CIN, COUT, 1, H, W);
    CHECK_INT_EQ(o->op_failed(bk.be), 0);
    *err_conv = 0;
    for (int co = 0; co < COUT; co++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                const double ref = conv3x3s2_gelu_ref(in, ck, cb, CIN, 1, H, W, co, 0, oy, ox, bf16);
                *err_conv = fmax(*err_conv, fabs(out[(co * Ho + oy) * Wo + ox] - ref) / (1.0 + sqrt(9.0 * CIN)));
            }
    o->scratch_release(bk.be, 0);
    o->destroy(bk.be);
    free(w16), free(x), free(y), free(ck), free(cb), free(in), free(out);
}

static void check_instances(precision_t prec, const char *name)
{
    double mm, conv;
    run(prec, 1.0f, &mm, &conv); /* the first model */
    printf("  %s, first instance:  product error %.3g, convolution error %.3g\n", name, mm, conv);
    CHECK(mm <= 2e-6 && conv <= 2e-6);
    run(prec, -1.0f, &mm, &conv); /* a second model after it, other weights */
    printf("  %s, second instance: product error %.3g, convolution error %.3g\n", name, mm, conv);
    CHECK(mm <= 2e-6 && conv <= 2e-6);
}

int main(void)
{
    check_instances(PRECISION_FP32, "fp32");
    const char *isa;
    if (bf16_gemm_native(&isa))
        check_instances(PRECISION_BF16, "bf16");
    else
        printf("  bf16: SKIPPED: this CPU has %s (the bf16 path needs AVX512-BF16 or AMX)\n", isa);
    return test_result("test_cpu_backend");
}
