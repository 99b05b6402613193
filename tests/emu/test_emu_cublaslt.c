/* cuBLASLt shim against a naive double-precision reference written here: both transposes the
 * backend uses (and the other two), bias epilogue on and off, beta 0 on NaN-filled C, beta 1 in
 * place (C == D) and out of place, odd sizes and padded leading dimensions, bf16/fp16/fp32 types;
 * the result rounded once, after the bias (a case where rounding before it differs); the backend's
 * row-major linear layer; deferred execution on the stream; the heuristic's workspace and
 * alignment, faults at execution, and the documented error codes. */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "../test.h"

static cublasLtHandle_t lt;
static uint32_t rng = 777;

static float rand_unit(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 16777216.0f * 2.0f - 1.0f;
}

static size_t type_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

/* fp16 of a multiple of 1/64 in [-4, 4] (exact) */
static uint16_t f16_exact(float f)
{
    if (f == 0.0f) return 0;
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(((u >> 16) & 0x8000u) | ((((u >> 23) & 0xffu) - 112u) << 10) | ((u >> 13) & 0x3ffu));
}

static float f16_value(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e ? ldexpf((float)(m | 0x400), e - 25) : ldexpf((float)m, -24);
    return h & 0x8000u ? -v : v;
}

static void put(void *p, cudaDataType t, size_t i, float v)
{
    if (t == CUDA_R_32F) ((float *)p)[i] = v;
    else if (t == CUDA_R_16BF) ((uint16_t *)p)[i] = f32_to_bf16(v);
    else ((uint16_t *)p)[i] = f16_exact(v);
}

static float get(const void *p, cudaDataType t, size_t i)
{
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    if (t == CUDA_R_16BF) return bf16_to_f32(((const uint16_t *)p)[i]);
    return f16_value(((const uint16_t *)p)[i]);
}

static float input_value(cudaDataType t)
{
    float v = rand_unit() * 2.0f;
    if (t == CUDA_R_16BF) return bf16_to_f32(f32_to_bf16(v));
    if (t == CUDA_R_16F) return roundf(v * 64.0f) / 64.0f;
    return v;
}

static void *dev_copy(const void *h, size_t bytes)
{
    void *d = NULL;
    CHECK_INT_EQ(cudaMalloc(&d, bytes ? bytes : 1), cudaSuccess);
    if (bytes) CHECK_INT_EQ(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice), cudaSuccess);
    return d;
}

/* A matmul descriptor, layouts, preference and the heuristic's algorithm for one problem. */
typedef struct {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c, d;
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulHeuristicResult_t heur;
} plan;

static cublasStatus_t plan_make(plan *p, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda,
                                int ldb, int ldc, int ldd, cudaDataType ab, cudaDataType cd, const void *bias,
                                uint64_t workspace)
{
    memset(p, 0, sizeof *p);
    int32_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    cublasStatus_t st;
    if ((st = cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F)) ||
        (st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)) ||
        (st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb)) ||
        (st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi)) ||
        (bias && (st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias))) ||
        (st = cublasLtMatrixLayoutCreate(&p->a, ab, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda)) ||
        (st = cublasLtMatrixLayoutCreate(&p->b, ab, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb)) ||
        (st = cublasLtMatrixLayoutCreate(&p->c, cd, m, n, ldc)) ||
        (st = cublasLtMatrixLayoutCreate(&p->d, cd, m, n, ldd)) || (st = cublasLtMatmulPreferenceCreate(&p->pref)) ||
        (st = cublasLtMatmulPreferenceSetAttribute(p->pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                   sizeof workspace)))
        return st;
    int found = 0;
    st = cublasLtMatmulAlgoGetHeuristic(lt, p->op, p->a, p->b, p->c, p->d, p->pref, 1, &p->heur, &found);
    return st ? st : found == 1 ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
}

static void plan_free(plan *p)
{
    if (p->op) CHECK_INT_EQ(cublasLtMatmulDescDestroy(p->op), CUBLAS_STATUS_SUCCESS);
    cublasLtMatrixLayout_t *ls[] = {&p->a, &p->b, &p->c, &p->d};
    for (int i = 0; i < 4; i++)
        if (*ls[i]) CHECK_INT_EQ(cublasLtMatrixLayoutDestroy(*ls[i]), CUBLAS_STATUS_SUCCESS);
    if (p->pref) CHECK_INT_EQ(cublasLtMatmulPreferenceDestroy(p->pref), CUBLAS_STATUS_SUCCESS);
}

typedef struct {
    cublasOperation_t ta, tb;
    int m, n, k, pad;
    cudaDataType ab, cd;
    int bias, in_place; /* in_place: C == D (else C is its own matrix) */
    float alpha, beta;
} lt_case;

/* One case on a fresh stream against the reference; D's padding rows keep their 0xFF. */
static void run_case(lt_case g)
{
    int a_rows = g.ta == CUBLAS_OP_N ? g.m : g.k, a_cols = g.ta == CUBLAS_OP_N ? g.k : g.m;
    int b_rows = g.tb == CUBLAS_OP_N ? g.k : g.n, b_cols = g.tb == CUBLAS_OP_N ? g.n : g.k;
    int lda = a_rows + g.pad, ldb = b_rows + g.pad, ldd = g.m + g.pad, ldc = g.in_place ? ldd : g.m + 2 * g.pad + 1;
    size_t na = (size_t)lda * a_cols, nb = (size_t)ldb * b_cols, nc = (size_t)ldc * g.n, nd = (size_t)ldd * g.n;
    size_t ea = type_size(g.ab), ec = type_size(g.cd);
    char *h_a = malloc(na * ea), *h_b = malloc(nb * ea), *h_c = malloc(nc * ec), *h_d0 = malloc(nd * ec),
         *h_d = malloc(nd * ec), *h_bias = malloc(g.m * ec);
    for (size_t i = 0; i < na; i++) put(h_a, g.ab, i, input_value(g.ab));
    for (size_t i = 0; i < nb; i++) put(h_b, g.ab, i, input_value(g.ab));
    for (int i = 0; i < g.m; i++) put(h_bias, g.cd, i, input_value(g.cd));
    memset(h_c, 0xff, nc * ec); /* what cudaMalloc leaves: NaN */
    memset(h_d0, 0xff, nd * ec);
    char *c_vals = g.in_place ? h_d0 : h_c;
    if (g.beta != 0.0f)
        for (int j = 0; j < g.n; j++)
            for (int i = 0; i < g.m; i++) put(c_vals, g.cd, (size_t)i + (size_t)j * ldc, input_value(g.cd));
    void *d_a = dev_copy(h_a, na * ea), *d_b = dev_copy(h_b, nb * ea), *d_d = dev_copy(h_d0, nd * ec),
         *d_bias = dev_copy(h_bias, g.m * ec);
    void *d_c = g.in_place ? d_d : dev_copy(h_c, nc * ec);
    const uint64_t ws_bytes = 1 << 16;
    void *ws;
    CHECK_INT_EQ(cudaMalloc(&ws, ws_bytes), cudaSuccess);
    cudaStream_t s;
    CHECK_INT_EQ(cudaStreamCreate(&s), cudaSuccess);
    plan p;
    CHECK_INT_EQ(plan_make(&p, g.ta, g.tb, g.m, g.n, g.k, lda, ldb, ldc, ldd, g.ab, g.cd, g.bias ? d_bias : NULL,
                           ws_bytes),
                 CUBLAS_STATUS_SUCCESS);
    CHECK(p.heur.workspaceSize <= ws_bytes);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &g.alpha, d_a, p.a, d_b, p.b, &g.beta, d_c, p.c, d_d, p.d, &p.heur.algo, ws,
                                ws_bytes, s),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(h_d, d_d, nd * ec, cudaMemcpyDeviceToHost), cudaSuccess);

    /* a half ulp of D's type, relative, plus fp32 accumulation-order noise */
    double rel = g.cd == CUDA_R_32F ? 0.0 : g.cd == CUDA_R_16BF ? 1.0 / 256 : 1.0 / 2048;
    int bad = 0;
    for (int j = 0; j < g.n; j++)
        for (int i = 0; i < g.m; i++) {
            double acc = 0, mag = 0;
            for (int l = 0; l < g.k; l++) {
                size_t ai = g.ta == CUBLAS_OP_N ? (size_t)i + (size_t)l * lda : (size_t)l + (size_t)i * lda;
                size_t bi = g.tb == CUBLAS_OP_N ? (size_t)l + (size_t)j * ldb : (size_t)j + (size_t)l * ldb;
                double t = (double)get(h_a, g.ab, ai) * get(h_b, g.ab, bi);
                acc += t;
                mag += fabs(t);
            }
            double ref = g.alpha * acc;
            if (g.beta != 0.0f) ref += g.beta * (double)get(c_vals, g.cd, (size_t)i + (size_t)j * ldc);
            if (g.bias) ref += get(h_bias, g.cd, i);
            double got = get(h_d, g.cd, (size_t)i + (size_t)j * ldd);
            if (!(fabs(got - ref) <= 1e-5 * (fabs(g.alpha) * mag + 1.0) + rel * fabs(ref)) && bad++ < 5)
                fprintf(stderr, "case ta %d tb %d m %d n %d k %d types %d/%d bias %d in place %d beta %g: D(%d,%d) = %g, ref %g\n",
                        g.ta, g.tb, g.m, g.n, g.k, g.ab, g.cd, g.bias, g.in_place, g.beta, i, j, got, ref);
        }
    CHECK_INT_EQ(bad, 0);
    for (int j = 0; j < g.n; j++)
        for (int i = g.m; i < ldd; i++) CHECK(memcmp(h_d + ((size_t)i + (size_t)j * ldd) * ec, h_d0 + ((size_t)i + (size_t)j * ldd) * ec, ec) == 0);
    plan_free(&p);
    cudaStreamDestroy(s);
    cudaFree(d_a);
    cudaFree(d_b);
    cudaFree(d_d);
    cudaFree(d_bias);
    if (!g.in_place) cudaFree(d_c);
    cudaFree(ws);
    free(h_a);
    free(h_b);
    free(h_c);
    free(h_d0);
    free(h_d);
    free(h_bias);
}

static void test_all_layouts(void)
{
    static const cudaDataType types[][2] = {
        {CUDA_R_16BF, CUDA_R_16BF}, {CUDA_R_16BF, CUDA_R_32F}, {CUDA_R_32F, CUDA_R_32F}, {CUDA_R_16F, CUDA_R_16F},
    };
    static const cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T};
    for (int t = 0; t < 4; t++)
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                for (int bias = 0; bias < 2; bias++) {
                    run_case((lt_case){ops[a], ops[b], 7, 5, 9, 3, types[t][0], types[t][1], bias, 1, 1.0f, 0.0f});
                    run_case((lt_case){ops[a], ops[b], 5, 6, 13, 0, types[t][0], types[t][1], bias, 1, 1.0f, 1.0f});
                    run_case((lt_case){ops[a], ops[b], 3, 4, 17, 2, types[t][0], types[t][1], bias, 0, -0.75f, 1.0f});
                    run_case((lt_case){ops[a], ops[b], 1, 3, 1, 1, types[t][0], types[t][1], bias, 0, 1.5f, 0.0f});
                }
}

/* D = 1 + 3 * 2^-9 in the accumulator, bias -1: rounded once (after the bias) D is 3 * 2^-9,
 * exact in bf16; rounded before the bias, 1 + 3 * 2^-9 becomes 1 + 2^-7 and D 2^-7. The same
 * through C == D with beta 1 (C = 1). */
static void test_rounding_after_bias(void)
{
    uint16_t h_a[2] = {f32_to_bf16(1.0f), f32_to_bf16(3.0f / 512)}, h_b[2] = {f32_to_bf16(1.0f), f32_to_bf16(1.0f)},
             h_bias = f32_to_bf16(-1.0f), h_d;
    uint16_t *d_a = dev_copy(h_a, sizeof h_a), *d_b = dev_copy(h_b, sizeof h_b), *d_bias = dev_copy(&h_bias, 2);
    uint16_t *d_d = dev_copy(&h_d, 2);
    float one = 1.0f, zero = 0.0f;
    plan p;
    /* D (1x1) = A^T (1x2) B (2x1) + bias */
    CHECK_INT_EQ(plan_make(&p, CUBLAS_OP_T, CUBLAS_OP_N, 1, 1, 2, 2, 2, 1, 1, CUDA_R_16BF, CUDA_R_16BF, d_bias, 0),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d_a, p.a, d_b, p.b, &zero, d_d, p.c, d_d, p.d, &p.heur.algo, NULL, 0, 0),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaMemcpy(&h_d, d_d, 2, cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK(bf16_to_f32(h_d) == 3.0f / 512);
    /* C = 1 in place, A^T B = 3 * 2^-9: 1 + 3 * 2^-9 - 1 */
    h_a[0] = f32_to_bf16(0.0f);
    h_d = f32_to_bf16(1.0f);
    CHECK_INT_EQ(cudaMemcpy(d_a, h_a, sizeof h_a, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_d, &h_d, 2, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d_a, p.a, d_b, p.b, &one, d_d, p.c, d_d, p.d, &p.heur.algo, NULL, 0, 0),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaMemcpy(&h_d, d_d, 2, cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK(bf16_to_f32(h_d) == 3.0f / 512);
    plan_free(&p);
    cudaFree(d_a);
    cudaFree(d_b);
    cudaFree(d_bias);
    cudaFree(d_d);
}

/* The backend's linear layer, row-major: y[rows][out] = x[rows][in] W[out][in]^T + b[out], as
 * column-major y^T = op_T(W as [in][out]) x^T: the bias runs along D's rows, i.e. y's columns. */
static void test_linear(void)
{
    enum { ROWS = 5, IN = 6, OUT = 3 };
    uint16_t h_x[ROWS * IN], h_w[OUT * IN], h_b[OUT], h_y[ROWS * OUT];
    for (int i = 0; i < ROWS * IN; i++) h_x[i] = f32_to_bf16(input_value(CUDA_R_16BF));
    for (int i = 0; i < OUT * IN; i++) h_w[i] = f32_to_bf16(input_value(CUDA_R_16BF));
    for (int i = 0; i < OUT; i++) h_b[i] = f32_to_bf16(input_value(CUDA_R_16BF) * 8);
    uint16_t *d_x = dev_copy(h_x, sizeof h_x), *d_w = dev_copy(h_w, sizeof h_w), *d_b = dev_copy(h_b, sizeof h_b),
             *d_y = dev_copy(h_y, sizeof h_y);
    float one = 1.0f, zero = 0.0f;
    plan p;
    CHECK_INT_EQ(plan_make(&p, CUBLAS_OP_T, CUBLAS_OP_N, OUT, ROWS, IN, IN, IN, OUT, OUT, CUDA_R_16BF, CUDA_R_16BF, d_b, 0),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d_w, p.a, d_x, p.b, &zero, d_y, p.c, d_y, p.d, &p.heur.algo, NULL, 0, 0),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaMemcpy(h_y, d_y, sizeof h_y, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int r = 0; r < ROWS; r++)
        for (int o = 0; o < OUT; o++) {
            double ref = bf16_to_f32(h_b[o]);
            for (int l = 0; l < IN; l++) ref += (double)bf16_to_f32(h_x[r * IN + l]) * bf16_to_f32(h_w[o * IN + l]);
            CHECK_NEAR(bf16_to_f32(h_y[r * OUT + o]), ref, 1e-5, 1.0 / 256);
        }
    plan_free(&p);
    cudaFree(d_x);
    cudaFree(d_w);
    cudaFree(d_b);
    cudaFree(d_y);
}

/* Queued on the stream it is given, run when the host waits for it. */
static void test_deferred(void)
{
    float h_a[4] = {1, 2, 3, 4}, h_bias = 0.5f, one = 1, zero = 0, *h_c;
    float *d_a = dev_copy(h_a, sizeof h_a), *d_bias = dev_copy(&h_bias, 4), *d_c;
    CHECK_INT_EQ(cudaMalloc((void **)&d_c, 4), cudaSuccess);
    CHECK_INT_EQ(cudaMallocHost((void **)&h_c, 4), cudaSuccess);
    *h_c = 0;
    cudaStream_t s;
    CHECK_INT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    plan p;
    CHECK_INT_EQ(plan_make(&p, CUBLAS_OP_T, CUBLAS_OP_N, 1, 1, 4, 4, 4, 1, 1, CUDA_R_32F, CUDA_R_32F, d_bias, 0),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d_a, p.a, d_a, p.b, &zero, d_c, p.c, d_c, p.d, &p.heur.algo, NULL, 0, s),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaMemcpyAsync(h_c, d_c, 4, cudaMemcpyDeviceToHost, s), cudaSuccess);
    CHECK(*h_c == 0.0f); /* not run yet */
    CHECK_INT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    CHECK(*h_c == 30.5f);
    plan_free(&p);
    cudaStreamDestroy(s);
    cudaFree(d_a);
    cudaFree(d_bias);
    cudaFree(d_c);
    cudaFreeHost(h_c);
}

/* The heuristic's algorithm takes the whole workspace allowed and assumes 256-byte aligned
 * matrices unless told less; a misaligned or overrunning operand faults when the matmul runs. */
static void test_workspace_alignment(void)
{
    float one = 1, zero = 0;
    char *d, *ws;
    CHECK_INT_EQ(cudaMalloc((void **)&d, 4096), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&ws, 1024), cudaSuccess);
    plan p;
    CHECK_INT_EQ(plan_make(&p, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, 4, 4, 4, 4, CUDA_R_16BF, CUDA_R_16BF, NULL, 1024),
                 CUBLAS_STATUS_SUCCESS);
    CHECK(p.heur.workspaceSize == 1024);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d, p.a, d, p.b, &zero, d + 256, p.c, d + 256, p.d, &p.heur.algo, ws, 512, 0),
                 CUBLAS_STATUS_INVALID_VALUE); /* less workspace than the algorithm needs */
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d, p.a, d, p.b, &zero, d + 256, p.c, d + 256, p.d, &p.heur.algo, ws, 1024, 0),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    /* 16-byte aligned D under the default 256-byte assumption: a fault when it runs */
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d, p.a, d, p.b, &zero, d + 272, p.c, d + 272, p.d, &p.heur.algo, ws, 1024, 0),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaErrorMisalignedAddress);
    CHECK_INT_EQ(cudaDeviceReset(), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d, 4096), cudaSuccess);
    /* ... and fine when the preference says 16 */
    uint32_t align = 16;
    CHECK_INT_EQ(cublasLtMatmulPreferenceSetAttribute(p.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align, 4),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cublasLtMatmulPreferenceSetAttribute(p.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align, 4),
                 CUBLAS_STATUS_SUCCESS);
    uint64_t none = 0;
    CHECK_INT_EQ(cublasLtMatmulPreferenceSetAttribute(p.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &none, 8),
                 CUBLAS_STATUS_SUCCESS);
    int found = 0;
    CHECK_INT_EQ(cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.c, p.d, p.pref, 1, &p.heur, &found),
                 CUBLAS_STATUS_SUCCESS);
    CHECK(found == 1 && p.heur.workspaceSize == 0);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d, p.a, d, p.b, &zero, d + 272, p.c, d + 272, p.d, &p.heur.algo, NULL, 0, 0),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    /* D past the allocation */
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d, p.a, d, p.b, &zero, d + 4080, p.c, d + 4080, p.d, &p.heur.algo, NULL, 0, 0),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaErrorIllegalAddress);
    CHECK_INT_EQ(cudaDeviceReset(), cudaSuccess);
    plan_free(&p);
}

static void test_invalid(void)
{
    const cublasStatus_t OK = CUBLAS_STATUS_SUCCESS, INVALID = CUBLAS_STATUS_INVALID_VALUE,
                         UNSUPPORTED = CUBLAS_STATUS_NOT_SUPPORTED;
    float one = 1, zero = 0;
    char *d;
    CHECK_INT_EQ(cudaMalloc((void **)&d, 4096), cudaSuccess);
    plan p;
    CHECK_INT_EQ(plan_make(&p, CUBLAS_OP_T, CUBLAS_OP_N, 4, 4, 4, 4, 4, 4, 4, CUDA_R_16BF, CUDA_R_16BF, d, 0), OK);
    /* epilogues and attributes not emulated, or wrong sizes */
    int32_t v = CUBLASLT_EPILOGUE_GELU_BIAS;
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &v, 4), UNSUPPORTED);
    v = CUBLASLT_EPILOGUE_RELU;
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &v, 4), UNSUPPORTED);
    v = CUBLASLT_POINTER_MODE_DEVICE;
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &v, 4), UNSUPPORTED);
    int8_t fast = 1;
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, 1), UNSUPPORTED);
    v = 0;
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &v, 8), INVALID);
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, NULL, 4), INVALID);
    v = 7;
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &v, 4), INVALID);
    v = CUBLAS_OP_T; /* unchanged: still A^T */
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &v, 4), OK);
    int64_t stride = 0;
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_ALPHA_VECTOR_BATCH_STRIDE, &stride, 8),
                 UNSUPPORTED);
    uint32_t search = CUBLASLT_SEARCH_BEST_FIT;
    CHECK_INT_EQ(cublasLtMatmulPreferenceSetAttribute(p.pref, CUBLASLT_MATMUL_PREF_SEARCH_MODE, &search, 4), UNSUPPORTED);
    uint32_t align = 3;
    CHECK_INT_EQ(cublasLtMatmulPreferenceSetAttribute(p.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align, 4),
                 INVALID);
    /* compute and scale types */
    cublasLtMatmulDesc_t op2;
    CHECK_INT_EQ(cublasLtMatmulDescCreate(&op2, CUBLAS_COMPUTE_16F, CUDA_R_16F), UNSUPPORTED);
    CHECK_INT_EQ(cublasLtMatmulDescCreate(&op2, CUBLAS_COMPUTE_32F, CUDA_R_16BF), UNSUPPORTED);
    /* layouts: ld < rows */
    cublasLtMatrixLayout_t bad;
    CHECK_INT_EQ(cublasLtMatrixLayoutCreate(&bad, CUDA_R_16BF, 4, 4, 3), INVALID);
    CHECK_INT_EQ(cublasLtMatrixLayoutCreate(&bad, CUDA_R_8I, 4, 4, 4), UNSUPPORTED);
    /* shapes that do not make a product: A^T is 4x4, B given as 5x4 */
    CHECK_INT_EQ(cublasLtMatrixLayoutCreate(&bad, CUDA_R_16BF, 5, 4, 5), OK);
    cublasLtMatmulHeuristicResult_t r;
    int found = 0;
    CHECK_INT_EQ(cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, bad, p.c, p.d, p.pref, 1, &r, &found), INVALID);
    CHECK_INT_EQ(found, 0);
    CHECK_INT_EQ(cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.c, p.d, p.pref, 0, &r, &found), INVALID);
    CHECK_INT_EQ(cublasLtMatrixLayoutDestroy(bad), OK);
    /* C == D with different layouts */
    cublasLtMatrixLayout_t c5;
    CHECK_INT_EQ(cublasLtMatrixLayoutCreate(&c5, CUDA_R_16BF, 4, 4, 5), OK);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d, p.a, d, p.b, &one, d + 512, c5, d + 512, p.d, &p.heur.algo, NULL, 0, 0),
                 INVALID);
    CHECK_INT_EQ(cublasLtMatrixLayoutDestroy(c5), OK);
    CHECK_INT_EQ(cublasLtMatrixLayoutDestroy(bad), INVALID); /* destroyed */
    /* types: fp32 bias with a bf16 D, bf16 A with fp16 B, bf16 A with fp16 D */
    v = CUDA_R_32F;
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &v, 4), OK);
    CHECK_INT_EQ(cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, p.c, p.d, p.pref, 1, &r, &found), UNSUPPORTED);
    v = CUDA_R_16BF;
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &v, 4), OK);
    cublasLtMatrixLayout_t h16;
    CHECK_INT_EQ(cublasLtMatrixLayoutCreate(&h16, CUDA_R_16F, 4, 4, 4), OK);
    CHECK_INT_EQ(cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, h16, p.c, p.d, p.pref, 1, &r, &found), UNSUPPORTED);
    CHECK_INT_EQ(cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.a, p.b, h16, h16, p.pref, 1, &r, &found), UNSUPPORTED);
    CHECK_INT_EQ(cublasLtMatrixLayoutDestroy(h16), OK);
    /* the algo: none, not from the heuristic, or for another epilogue */
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d, p.a, d, p.b, &zero, d + 512, p.c, d + 512, p.d, NULL, NULL, 0, 0),
                 UNSUPPORTED);
    cublasLtMatmulAlgo_t junk;
    memset(&junk, 0, sizeof junk);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d, p.a, d, p.b, &zero, d + 512, p.c, d + 512, p.d, &junk, NULL, 0, 0),
                 INVALID);
    v = CUBLASLT_EPILOGUE_DEFAULT;
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &v, 4), OK);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d, p.a, d, p.b, &zero, d + 512, p.c, d + 512, p.d, &p.heur.algo, NULL, 0, 0),
                 INVALID);
    /* the BIAS epilogue without a bias */
    v = CUBLASLT_EPILOGUE_BIAS;
    const void *no_bias = NULL;
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &v, 4), OK);
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &no_bias, sizeof no_bias), OK);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, &one, d, p.a, d, p.b, &zero, d + 512, p.c, d + 512, p.d, &p.heur.algo, NULL, 0, 0),
                 INVALID);
    /* scalars in device memory (host pointer mode) */
    CHECK_INT_EQ(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &d, sizeof d), OK);
    CHECK_INT_EQ(cublasLtMatmul(lt, p.op, d, d, p.a, d, p.b, &zero, d + 512, p.c, d + 512, p.d, &p.heur.algo, NULL, 0, 0),
                 INVALID);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    plan_free(&p);
    /* a destroyed handle */
    cublasLtHandle_t h2;
    CHECK_INT_EQ(cublasLtCreate(&h2), OK);
    CHECK_INT_EQ(cublasLtDestroy(h2), OK);
    CHECK_INT_EQ(cublasLtDestroy(h2), CUBLAS_STATUS_NOT_INITIALIZED);
    cudaFree(d);
}

int main(void)
{
    CHECK_INT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
    test_all_layouts();
    test_rounding_after_bias();
    test_linear();
    test_deferred();
    test_workspace_alignment();
    test_invalid();
    CHECK_INT_EQ(cublasLtDestroy(lt), CUBLAS_STATUS_SUCCESS);
    return test_result("test_emu_cublaslt");
}
