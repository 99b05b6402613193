/* A CPU backend instance owns everything it makes: a second instance, created after the first is
 * destroyed and given new weights of the same shapes (the allocator hands it the first one's
 * addresses, as a second model loaded in the same process gets them), computes with the new weights, never with something
 * left from the first (a packed matrix, a converted convolution kernel, a cached primitive).
 * Checked on a matrix product and a conv stem layer against float64 sums, on the fp32 path, and
 * on the bf16 path where the CPU has native bf16 (else that half reports skipped).
 * The fused ops are checked against what they fuse, bit for bit: add_rmsnorm and add_layernorm
 * against the add and the norm, qk_norm_rope_store against the RoPE computed per row (the
 * arithmetic before the table existed) and the copy into the cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"
#include "cpu_attention.h"
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

static weight_t *param(backend_ref_t b, const float *h, size_t n)
{
    weight_t *w = b.ops->weight_alloc(b.be, n, WEIGHT_PARAM, DTYPE_F32);
    b.ops->weight_upload(b.be, w, 0, h, DTYPE_F32, n);
    return w;
}

/* x += delta, then the norm, in one op; out may be delta; add_rmsnorm without a weight: the add alone */
static void check_add_norms(void)
{
    enum { R = 3, D = 67 };
    backend_ref_t b;
    CHECK_INT_EQ(backend_cpu_create(&b, 1, 128, PRECISION_FP32), 0);
    unsigned s = 11;
    float x[R * D], d[R * D], w[D], x2[R * D], d2[R * D], want[R * D];
    for (int i = 0; i < R * D; i++) x[i] = 3 * frand(&s), d[i] = frand(&s);
    for (int i = 0; i < D; i++) w[i] = 1 + frand(&s) / 2;
    weight_t *wt = param(b, w, D);
    memcpy(x2, x, sizeof x);
    for (int i = 0; i < R * D; i++) x2[i] += d[i];
    b.ops->rmsnorm(b.be, want, x2, wt, R, D, 1e-6f);
    memcpy(x2, x, sizeof x);
    memcpy(d2, d, sizeof d);
    b.ops->add_rmsnorm(b.be, d2, x2, d2, wt, R, D, 1e-6f); /* out == delta */
    CHECK(memcmp(d2, want, sizeof want) == 0);
    for (int i = 0; i < R * D; i++) CHECK(x2[i] == x[i] + d[i]);
    memcpy(x2, x, sizeof x);
    b.ops->add_rmsnorm(b.be, NULL, x2, d, NULL, R, D, 1e-6f);
    for (int i = 0; i < R * D; i++) CHECK(x2[i] == x[i] + d[i]);
    float bias[D];
    for (int i = 0; i < D; i++) bias[i] = frand(&s) / 2;
    weight_t *bt = param(b, bias, D);
    for (int i = 0; i < R * D; i++) x2[i] = x[i] + d[i];
    b.ops->layernorm(b.be, want, x2, wt, bt, R, D, 1e-5f);
    memcpy(x2, x, sizeof x);
    memcpy(d2, d, sizeof d);
    b.ops->add_layernorm(b.be, d2, x2, d2, wt, bt, R, D, 1e-5f);
    CHECK(memcmp(d2, want, sizeof want) == 0);
    for (int i = 0; i < R * D; i++) CHECK(x2[i] == x[i] + d[i]);
    b.ops->destroy(b.be);
    printf("  add_rmsnorm, add_layernorm: the add and the norm, bit for bit\n");
}

/* The table (rope_table) at positions up to 0.6B's last against the per-row RoPE of before the
 * table, on the heads as the op normalises them (the op at position 0, where the rotation is
 * exactly the identity: cos 1, sin 0); and the copy into the cache. */
static void check_qk_norm_rope_store(void)
{
    enum { R = 4, Hq = 3, Hkv = 2, Dh = 16, NPOS = 65536, P = 4 };
    const int stride = (Hq + 2 * Hkv) * Dh, pos[R] = { 0, 1, 40000, NPOS - 1 }, zero[R] = { 0 };
    const int slot[R] = { 5, 0, 11, 2 };
    const float theta = 1e6f, eps = 1e-6f;
    backend_ref_t b;
    CHECK_INT_EQ(backend_cpu_create(&b, 1, 128, PRECISION_FP32), 0);
    unsigned s = 5;
    float qkv[R * stride], want[R * stride], qw[Dh], kw[Dh];
    for (int i = 0; i < R * stride; i++) qkv[i] = 2 * frand(&s);
    for (int i = 0; i < Dh; i++) qw[i] = 1 + frand(&s) / 2, kw[i] = frand(&s);
    weight_t *qwt = param(b, qw, Dh), *kwt = param(b, kw, Dh);
    weight_t *rope = b.ops->weight_alloc(b.be, (size_t)NPOS * Dh, WEIGHT_PARAM, DTYPE_F32);
    b.ops->rope_table(b.be, rope, NPOS, Dh, theta);
    const kv_geom_t g = { 2, 4, P, Hkv, Dh };
    kv_cache_t *kv = b.ops->kv_alloc(b.be, &g), *kv_want = b.ops->kv_alloc(b.be, &g);
    const size_t kv_n = (size_t)g.n_layers * g.n_pages * 2 * Hkv * P * Dh;
    memset(kv->data, 0, kv_n * sizeof(float));
    memset(kv_want->data, 0, kv_n * sizeof(float));
    memcpy(want, qkv, sizeof qkv);
    b.ops->qk_norm_rope_store(b.be, kv_want, 0, want, qwt, kwt, rope, zero, slot, R, Hq, Hkv, Dh, eps);
    for (int r = 0; r < R; r++)
        for (int h = 0; h < Hq + Hkv; h++) {
            float *x = want + r * stride + h * Dh;
            for (int i = 0; i < Dh / 2; i++) {
                const float a = (float)pos[r] * (1.0f / powf(theta, (float)(2 * i) / (float)Dh));
                const float c = cosf(a), sn = sinf(a), x1 = x[i], x2 = x[i + Dh / 2];
                x[i] = x1 * c - x2 * sn;
                x[i + Dh / 2] = x2 * c + x1 * sn;
            }
        }
    cpu_attn_kv_store(kv_want, 1, want, slot, R, Hq, Hkv, Dh);
    b.ops->qk_norm_rope_store(b.be, kv, 1, qkv, qwt, kwt, rope, pos, slot, R, Hq, Hkv, Dh, eps);
    for (int r = 0; r < R; r++) CHECK(memcmp(qkv + r * stride, want + r * stride, Hq * Dh * sizeof(float)) == 0);
    const size_t layer = kv_n / 2; /* layer 1 */
    CHECK(memcmp((float *)kv->data + layer, (float *)kv_want->data + layer, layer * sizeof(float)) == 0);
    b.ops->kv_free(b.be, kv);
    b.ops->kv_free(b.be, kv_want);
    b.ops->destroy(b.be);
    printf("  qk_norm_rope_store: per-row RoPE and the cache copy, bit for bit, positions up to %d\n", NPOS - 1);
}

int main(void)
{
    check_add_norms();
    check_qk_norm_rope_store();
    check_instances(PRECISION_FP32, "fp32");
    const char *isa;
    if (bf16_gemm_native(&isa))
        check_instances(PRECISION_BF16, "bf16");
    else
        printf("  bf16: SKIPPED: this CPU has %s (the bf16 path needs AVX512-BF16 or AMX)\n", isa);
    return test_result("test_cpu_backend");
}
