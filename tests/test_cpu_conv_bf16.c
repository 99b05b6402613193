/* conv3x3s2_gelu_bf16 (the bf16 path's conv stem layers on oneDNN) against a float64 direct
 * convolution of the same bf16-rounded inputs and kernel, with the bias and the exact GELU:
 * bf16 x bf16 products are exact in fp32, so what differs is the fp32 accumulation and
 * oneDNN's erf, and the fp32 matrix-product tolerance applies. Shapes: the stem's second and
 * third layers over 1 and 8 chunks, a short clip's odd width, odd sizes and few channels, and a
 * kernel seen at two shapes (one bf16 copy per shape), and a new kernel object for new values at
 * a freed one's address (what a second model loaded in the same process sees: nothing stale).
 * Skipped (77) on a CPU without native bf16. */
#include <stdlib.h>

#include "conv_ref.h"
#include "cpu_conv_dnnl.h"
#include "cpu_gemm_bf16.h"
#include "test.h"
#include "util.h"

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void check_conv(conv_bf16_t *c, int Cin, int Cout, int N, int Hin, int Win, const float *w, const float *b,
                       unsigned seed)
{
    const int Ho = (Hin - 1) / 2 + 1, Wo = (Win - 1) / 2 + 1, K = Cin * 9;
    const size_t n_in = (size_t)Cin * N * Hin * Win, n_out = (size_t)Cout * N * Ho * Wo;
    float *in = xmalloc(n_in * sizeof *in), *out = xmalloc(n_out * sizeof *out);
    for (size_t i = 0; i < n_in; i++) in[i] = frand(&seed);
    for (size_t i = 0; i < n_out; i++) out[i] = 12345.0f; /* every element must be written */
    void *work = NULL;
    CHECK(posix_memalign(&work, 64, conv3x3s2_bf16_work_bytes(c, Cin, Cout, N, Hin, Win)) == 0);

    conv3x3s2_gelu_bf16(c, out, in, b, Cin, Cout, N, Hin, Win, work);

    double worst = 0;
    /* every 31st output channel and the last (the double sums cost ~K multiplies each) */
    for (int co = 0; co < Cout; co += co + 31 < Cout || co == Cout - 1 ? 31 : Cout - 1 - co)
        for (int n = 0; n < N; n++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    const double ref = conv3x3s2_gelu_ref(in, w, b, Cin, N, Hin, Win, co, n, oy, ox, 1);
                    const float got = out[(((size_t)co * N + n) * Ho + oy) * Wo + ox];
                    const double err = fabs(got - ref) / (1.0 + sqrt((double)K));
                    worst = err > worst ? err : worst;
                }
    if (worst > 2e-6)
        fprintf(stderr, "Cin=%d Cout=%d N=%d %dx%d: error %.3g\n", Cin, Cout, N, Hin, Win, worst);
    CHECK(worst <= 2e-6);
    free(in), free(out), free(work);
}

int main(void)
{
    const char *isa;
    if (!bf16_gemm_native(&isa)) {
        printf("test_cpu_conv_bf16: SKIPPED: this CPU has %s (the bf16 path needs AVX512-BF16 or AMX)\n", isa);
        return 77;
    }
    unsigned seed = 7;
    const int C = 480;
    float *w = xmalloc((size_t)C * C * 9 * sizeof *w), *b = xmalloc(C * sizeof *b);
    for (size_t i = 0; i < (size_t)C * C * 9; i++) w[i] = frand(&seed) * 0.05f;
    for (int i = 0; i < C; i++) b[i] = frand(&seed);
    conv_bf16_t *c = conv3x3s2_bf16_new(w), *small = conv3x3s2_bf16_new(w);
    check_conv(c, C, C, 1, 64, 50, w, b, 1);  /* layer 2, one chunk */
    check_conv(c, C, C, 8, 64, 50, w, b, 2);  /* layer 2, CONV_BATCH chunks */
    check_conv(c, C, C, 3, 32, 25, w, b, 3);  /* layer 3 (the same kernel at another shape) */
    check_conv(c, C, C, 1, 64, 19, w, b, 4);  /* a short clip's own width */
    check_conv(small, 7, 5, 2, 9, 13, w, b, 5); /* odd sizes, few channels (another kernel: w's first 7*5*9) */
    check_conv(c, C, C, 1, 2, 1, w, b, 6);    /* a 1-pixel-wide output */
    conv3x3s2_bf16_free(small);
    /* the kernel freed, new values at its address (a second model's): its new object makes its
     * own bf16 copy, nothing of the first one's is found */
    conv3x3s2_bf16_free(c);
    for (size_t i = 0; i < (size_t)C * C * 9; i++) w[i] = -w[i];
    c = conv3x3s2_bf16_new(w);
    check_conv(c, C, C, 1, 64, 50, w, b, 7);
    conv3x3s2_bf16_free(c);
    free(w), free(b);
    return test_result("test_cpu_conv_bf16");
}
