/* gemm_bf16_xwt (the CPU's bf16 path) against a float64 product of the same bf16-rounded
 * inputs: bf16 x bf16 products are exact in fp32, so only the fp32 accumulation differs and
 * the fp32 path's tolerance applies. Row counts cross the primitive pieces (64, 1024), sizes are
 * ragged (padded layouts), with bias and accumulation. The fast packer must give oneDNN's own
 * reorder's bytes exactly, in place and not. Skipped (77) on a CPU without native bf16. */
#include <stdlib.h>

#include "cpu_gemm_bf16.h"
#include "test.h"
#include "util.h"

static bf16_gemm_t *g; /* the oneDNN state of the products below */

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static uint16_t *rand_bf16(size_t n, unsigned *seed)
{
    uint16_t *w = xmalloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++) w[i] = f32_to_bf16(frand(seed));
    return w;
}

static void check_packing(int N, int K)
{
    unsigned seed = (unsigned)(N * 31 + K);
    uint16_t *w = rand_bf16((size_t)N * K, &seed), *copy = xmalloc((size_t)N * K * sizeof *copy);
    memcpy(copy, w, (size_t)N * K * sizeof *copy);
    bf16_weight_t *ref = bf16_weight_pack_how(g, w, N, K, 0, 1), *fast = bf16_weight_pack_how(g, w, N, K, 0, 0);
    CHECK_INT_EQ(bf16_weight_bytes(ref), bf16_weight_bytes(fast));
    CHECK(!memcmp(bf16_weight_data(ref), bf16_weight_data(fast), bf16_weight_bytes(ref)));
    CHECK(!memcmp(w, copy, (size_t)N * K * sizeof *w)); /* not in place: w untouched */
    bf16_weight_t *inplace = bf16_weight_pack(g, copy, N, K, 1);
    CHECK(!memcmp(bf16_weight_data(ref), bf16_weight_data(inplace), bf16_weight_bytes(ref)));
    if (bf16_weight_bytes(ref) == (size_t)N * K * sizeof *w) CHECK(bf16_weight_data(inplace) == copy);
    bf16_weight_free(ref), bf16_weight_free(fast), bf16_weight_free(inplace);
    free(w), free(copy);
}

static void check_product(int M, int K, int N, int with_bias, int accumulate)
{
    unsigned seed = (unsigned)(M * 131 + K * 7 + N + with_bias * 77 + accumulate * 5);
    float *x = xmalloc((size_t)M * K * sizeof(float)), *b = xmalloc(N * sizeof(float));
    float *out = xmalloc((size_t)M * N * sizeof(float)), *before = xmalloc((size_t)M * N * sizeof(float));
    uint16_t *w = rand_bf16((size_t)N * K, &seed);
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand(&seed);
    for (int n = 0; n < N; n++) b[n] = frand(&seed);
    for (size_t i = 0; i < (size_t)M * N; i++) before[i] = accumulate ? frand(&seed) : 12345.0f;
    /* packed, and the plain layout a mixed precision plan runs its bf16 row counts on */
    for (int plain = 0; plain < 2; plain++) {
        memcpy(out, before, (size_t)M * N * sizeof(float));
        bf16_weight_t *pw = plain ? bf16_weight_plain(w, N, K) : bf16_weight_pack(g, w, N, K, 0);

        gemm_bf16_xwt(g, out, x, pw, with_bias ? b : NULL, M, accumulate);

        double worst = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double ref = (accumulate ? before[(size_t)m * N + n] : 0.0) + (with_bias ? b[n] : 0.0);
                for (int k = 0; k < K; k++)
                    ref += (double)bf16_to_f32(f32_to_bf16(x[(size_t)m * K + k])) * bf16_to_f32(w[(size_t)n * K + k]);
                const double err = fabs(out[(size_t)m * N + n] - ref) / (1.0 + sqrt((double)K));
                worst = err > worst ? err : worst;
            }
        if (worst > 2e-6)
            fprintf(stderr, "M=%d K=%d N=%d bias=%d acc=%d plain=%d: error %.3g\n", M, K, N, with_bias, accumulate, plain,
                    worst);
        CHECK(worst <= 2e-6);
        bf16_weight_free(pw);
    }
    free(x), free(b), free(out), free(before), free(w);
}

int main(void)
{
    const char *isa;
    if (!bf16_gemm_native(&isa)) {
        printf("test_cpu_gemm_bf16: SKIPPED: this CPU has %s (the bf16 path needs AVX512-BF16 or AMX)\n", isa);
        return 77;
    }
    g = bf16_gemm_new();
    const int KNs[][2] = { { 64, 64 }, { 1024, 192 }, { 1000, 13 }, { 96, 1027 }, { 1100, 530 } };
    for (size_t j = 0; j < sizeof KNs / sizeof KNs[0]; j++) check_packing(KNs[j][1], KNs[j][0]);
    const int Ms[] = { 1, 2, 5, 63, 64, 65, 130, 1100 };
    for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++)
        for (size_t j = 0; j < sizeof KNs / sizeof KNs[0]; j++)
            for (int v = 0; v < 3; v++) check_product(Ms[i], KNs[j][0], KNs[j][1], v >= 1, v == 2);
    /* 1100 rows = 1024 + 64 + 12: row counts come from a bounded set, each made once */
    const int before = bf16_gemm_primitives(g);
    check_product(1100, 96, 1027, 1, 1); /* packed and plain: their primitives are kept apart */
    CHECK_INT_EQ(bf16_gemm_primitives(g), before);
    bf16_gemm_free(g);
    return test_result("test_cpu_gemm_bf16");
}
