/* gemm_xwt against a float64 reference, in each of its regimes (bf16 dot kernel, skinny blocks,
 * large blocks) and for both weight storages, with bias, accumulation and ragged sizes. */
#include <stdlib.h>

#include "cpu_gemm.h"
#include "test.h"
#include "util.h"

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void check_case(int M, int K, int N, int bf16, int with_bias, int accumulate)
{
    unsigned seed = (unsigned)(M * 131 + K * 7 + N + bf16 * 1000 + with_bias * 77 + accumulate * 5);
    float *x = xmalloc((size_t)M * K * sizeof(float)), *w = xmalloc((size_t)N * K * sizeof(float));
    float *b = xmalloc(N * sizeof(float)), *out = xmalloc((size_t)M * N * sizeof(float));
    uint16_t *w16 = xmalloc((size_t)N * K * sizeof(uint16_t));
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand(&seed);
    for (size_t i = 0; i < (size_t)N * K; i++) {
        w16[i] = f32_to_bf16(frand(&seed));
        w[i] = bf16_to_f32(w16[i]); /* same values in both storages */
    }
    for (int n = 0; n < N; n++) b[n] = frand(&seed);
    for (size_t i = 0; i < (size_t)M * N; i++) out[i] = accumulate ? frand(&seed) : 12345.0f;
    float *before = xmalloc((size_t)M * N * sizeof(float));
    memcpy(before, out, (size_t)M * N * sizeof(float));

    gemm_xwt(out, x, bf16 ? (const void *)w16 : (const void *)w, bf16, with_bias ? b : NULL, M, K, N, accumulate);

    double worst = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double ref = (accumulate ? before[(size_t)m * N + n] : 0.0) + (with_bias ? b[n] : 0.0);
            for (int k = 0; k < K; k++) ref += (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
            double err = fabs(out[(size_t)m * N + n] - ref) / (1.0 + sqrt((double)K));
            worst = err > worst ? err : worst;
        }
    if (worst > 2e-6)
        fprintf(stderr, "M=%d K=%d N=%d bf16=%d bias=%d acc=%d: error %.3g\n", M, K, N, bf16, with_bias,
                accumulate, worst);
    CHECK(worst <= 2e-6);
    free(x), free(w), free(b), free(out), free(w16), free(before);
}

int main(void)
{
    const int Ms[] = { 1, 2, 3, 4, 5, 17, 255, 256, 300 };
    const int KNs[][2] = { { 64, 8 }, { 1000, 13 }, { 1100, 530 }, { 96, 1027 } };
    for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++)
        for (size_t j = 0; j < sizeof KNs / sizeof KNs[0]; j++)
            for (int bf16 = 0; bf16 <= 1; bf16++)
                for (int v = 0; v < 3; v++) check_case(Ms[i], KNs[j][0], KNs[j][1], bf16, v >= 1, v == 2);
    return test_result("test_cpu_gemm");
}
