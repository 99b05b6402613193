/* cuBLAS shim against a naive double-precision reference written here, so a wrong shim cannot
 * hide a wrong call: every transpose combination and type pair, padded and minimal leading
 * dimensions, strided (with gaps and with a broadcast A) and pointer-array batches, beta == 0 on
 * NaN-filled C, the row-major idioms the backend uses, compute-type rounding, the documented
 * invalid-argument codes, and an out-of-allocation matrix faulting at execution. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "../test.h"

static cublasHandle_t handle;
static uint32_t rng = 12345;

static float rand_unit(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 16777216.0f * 2.0f - 1.0f;
}

/* fp16 encoding for values that fp16 represents exactly (the test only uses such values). */
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

static size_t type_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

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

/* A value the input type holds exactly: bf16-rounded, or a multiple of 1/64 for fp16. */
static float input_value(cudaDataType t)
{
    float v = rand_unit() * 2.0f;
    if (t == CUDA_R_16BF) return bf16_to_f32(f32_to_bf16(v));
    if (t == CUDA_R_16F) return roundf(v * 64.0f) / 64.0f;
    return v;
}

typedef enum { PLAIN, STRIDED, POINTERS } gemm_api;

typedef struct {
    cublasOperation_t ta, tb;
    int m, n, k, pad; /* pad: extra rows in every leading dimension */
    cudaDataType ab, c;
    int batch;
    gemm_api api;
    int broadcast_a; /* strideA = 0 */
    float alpha, beta;
} gemm_case;

/* Runs one case on a fresh stream and compares with the reference; gaps between and below the
 * matrices of C must stay untouched. */
static void run_case(gemm_case g)
{
    int a_rows = g.ta == CUBLAS_OP_N ? g.m : g.k, a_cols = g.ta == CUBLAS_OP_N ? g.k : g.m;
    int b_rows = g.tb == CUBLAS_OP_N ? g.k : g.n, b_cols = g.tb == CUBLAS_OP_N ? g.n : g.k;
    int lda = a_rows + g.pad, ldb = b_rows + g.pad, ldc = g.m + g.pad;
    long long sa = g.broadcast_a ? 0 : (long long)lda * a_cols + 3, sb = (long long)ldb * b_cols + 5,
              sc = (long long)ldc * g.n + 7;
    size_t na = (size_t)(g.broadcast_a ? lda * a_cols : sa * g.batch), nb = (size_t)sb * g.batch,
           nc = (size_t)sc * g.batch;
    size_t ea = type_size(g.ab), ec = type_size(g.c);
    char *h_a = malloc(na * ea), *h_b = malloc(nb * ea), *h_c = malloc(nc * ec), *h_c0 = malloc(nc * ec);
    for (size_t i = 0; i < na; i++) put(h_a, g.ab, i, input_value(g.ab));
    for (size_t i = 0; i < nb; i++) put(h_b, g.ab, i, input_value(g.ab));
    memset(h_c0, 0xff, nc * ec); /* what cudaMalloc leaves: NaN */
    if (g.beta != 0.0f)
        for (int b = 0; b < g.batch; b++)
            for (int j = 0; j < g.n; j++)
                for (int i = 0; i < g.m; i++) put(h_c0, g.c, (size_t)(b * sc + i + (long long)j * ldc), input_value(g.c));
    char *d_a, *d_b, *d_c;
    cudaStream_t s;
    CHECK_INT_EQ(cudaStreamCreate(&s), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_a, na * ea), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_b, nb * ea), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_c, nc * ec), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_a, h_a, na * ea, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_b, h_b, nb * ea, cudaMemcpyHostToDevice), cudaSuccess);
    if (g.beta != 0.0f) CHECK_INT_EQ(cudaMemcpy(d_c, h_c0, nc * ec, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cublasSetStream(handle, s), CUBLAS_STATUS_SUCCESS);

    cublasStatus_t st;
    if (g.api == PLAIN) {
        st = cublasGemmEx(handle, g.ta, g.tb, g.m, g.n, g.k, &g.alpha, d_a, g.ab, lda, d_b, g.ab, ldb, &g.beta, d_c, g.c,
                          ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    } else if (g.api == STRIDED) {
        st = cublasGemmStridedBatchedEx(handle, g.ta, g.tb, g.m, g.n, g.k, &g.alpha, d_a, g.ab, lda, sa, d_b, g.ab, ldb,
                                        sb, &g.beta, d_c, g.c, ldc, sc, g.batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    } else {
        void *h_ptrs[3 * 8], **d_ptrs;
        for (int b = 0; b < g.batch; b++) {
            h_ptrs[b] = d_a + b * sa * (long long)ea;
            h_ptrs[8 + b] = d_b + b * sb * (long long)ea;
            h_ptrs[16 + b] = d_c + b * sc * (long long)ec;
        }
        CHECK_INT_EQ(cudaMalloc((void **)&d_ptrs, sizeof h_ptrs), cudaSuccess);
        CHECK_INT_EQ(cudaMemcpyAsync(d_ptrs, h_ptrs, sizeof h_ptrs, cudaMemcpyHostToDevice, s), cudaSuccess);
        st = cublasGemmBatchedEx(handle, g.ta, g.tb, g.m, g.n, g.k, &g.alpha, (const void *const *)d_ptrs, g.ab, lda,
                                 (const void *const *)(d_ptrs + 8), g.ab, ldb, &g.beta, d_ptrs + 16, g.c, ldc, g.batch,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        CHECK_INT_EQ(cudaFree(d_ptrs), cudaSuccess); /* waits for the GEMM */
    }
    CHECK_INT_EQ(st, CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(h_c, d_c, nc * ec, cudaMemcpyDeviceToHost), cudaSuccess);

    int bad = 0;
    double rel = g.c == CUDA_R_32F ? 0.0 : g.c == CUDA_R_16BF ? 1.0 / 256 : 1.0 / 1024;
    for (int b = 0; b < g.batch; b++)
        for (int j = 0; j < g.n; j++)
            for (int i = 0; i < g.m; i++) {
                double acc = 0, mag = 0;
                for (int l = 0; l < g.k; l++) {
                    size_t ai = (size_t)(b * sa + (g.ta == CUBLAS_OP_N ? i + (long long)l * lda : l + (long long)i * lda));
                    size_t bi = (size_t)(b * sb + (g.tb == CUBLAS_OP_N ? l + (long long)j * ldb : j + (long long)l * ldb));
                    double t = (double)get(h_a, g.ab, ai) * get(h_b, g.ab, bi);
                    acc += t;
                    mag += fabs(t);
                }
                size_t ci = (size_t)(b * sc + i + (long long)j * ldc);
                double ref = g.alpha * acc + (g.beta != 0.0f ? g.beta * (double)get(h_c0, g.c, ci) : 0.0);
                double got = get(h_c, g.c, ci);
                if (!(fabs(got - ref) <= 1e-5 * (fabs(g.alpha) * mag + 1.0) + rel * fabs(ref)) && bad++ < 5)
                    fprintf(stderr, "case ta %d tb %d m %d n %d k %d types %d/%d batch %d api %d: C[%d](%d,%d) = %g, ref %g\n",
                            g.ta, g.tb, g.m, g.n, g.k, g.ab, g.c, g.batch, g.api, b, i, j, got, ref);
            }
    /* The shim writes only the m x n matrices: padding rows and gaps between batches keep 0xFF. */
    size_t touched = 0;
    for (size_t i = 0; i < nc * ec; i++) touched += (unsigned char)h_c[i] != (unsigned char)h_c0[i];
    size_t written = (size_t)g.batch * g.m * g.n * ec;
    CHECK(touched <= written);
    CHECK_INT_EQ(bad, 0);
    cudaFree(d_a);
    cudaFree(d_b);
    cudaFree(d_c);
    cudaStreamDestroy(s);
    free(h_a);
    free(h_b);
    free(h_c);
    free(h_c0);
}

static void test_all_layouts(void)
{
    static const cudaDataType types[][2] = {
        {CUDA_R_16BF, CUDA_R_32F}, {CUDA_R_16BF, CUDA_R_16BF}, {CUDA_R_32F, CUDA_R_32F},
        {CUDA_R_16F, CUDA_R_32F}, {CUDA_R_16F, CUDA_R_16F},
    };
    static const cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T};
    for (int t = 0; t < 5; t++)
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                gemm_case g = {ops[a], ops[b], 5, 7, 9, 3, types[t][0], types[t][1], 1, PLAIN, 0, 1.0f, 0.0f};
                run_case(g);
                g.pad = 0; /* minimal leading dimensions */
                g.beta = 0.5f;
                run_case(g);
                g = (gemm_case){ops[a], ops[b], 6, 3, 17, 2, types[t][0], types[t][1], 3, STRIDED, 0, -0.75f, 0.0f};
                run_case(g);
                g.broadcast_a = 1;
                g.beta = 2.0f;
                run_case(g);
                g = (gemm_case){ops[a], ops[b], 4, 5, 3, 1, types[t][0], types[t][1], 3, POINTERS, 0, 1.5f, 0.25f};
                run_case(g);
            }
    /* OP_C is OP_T for real types; degenerate k = 0 gives beta * C (alpha * empty sum). */
    run_case((gemm_case){CUBLAS_OP_C, CUBLAS_OP_N, 3, 4, 5, 0, CUDA_R_32F, CUDA_R_32F, 1, PLAIN, 0, 1.0f, 0.0f});
    run_case((gemm_case){CUBLAS_OP_N, CUBLAS_OP_N, 3, 4, 0, 1, CUDA_R_32F, CUDA_R_32F, 1, PLAIN, 0, 1.0f, 0.5f});
}

/* The row-major idioms: C[M,N] = A[M,K] B[K,N] as column-major C^T = B^T A^T, and a linear layer
 * y[rows,out] = x[rows,in] W[out,in]^T; bf16 in, fp32 out. */
static void test_row_major(void)
{
    enum { M = 4, K = 6, NN = 5 };
    uint16_t h_a[M * K], h_b[K * NN];
    float h_c[M * NN], one = 1.0f, zero = 0.0f;
    for (int i = 0; i < M * K; i++) h_a[i] = f32_to_bf16(input_value(CUDA_R_16BF));
    for (int i = 0; i < K * NN; i++) h_b[i] = f32_to_bf16(input_value(CUDA_R_16BF));
    uint16_t *d_a, *d_b;
    float *d_c;
    CHECK_INT_EQ(cudaMalloc((void **)&d_a, sizeof h_a), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_b, sizeof h_b), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_c, sizeof h_c), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_a, h_a, sizeof h_a, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_b, h_b, sizeof h_b, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cublasSetStream(handle, 0), CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, NN, M, K, &one, d_b, CUDA_R_16BF, NN, d_a, CUDA_R_16BF, K,
                              &zero, d_c, CUDA_R_32F, NN, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaMemcpy(h_c, d_c, sizeof h_c, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < NN; j++) {
            double ref = 0;
            for (int l = 0; l < K; l++) ref += (double)bf16_to_f32(h_a[i * K + l]) * bf16_to_f32(h_b[l * NN + j]);
            CHECK_NEAR(h_c[i * NN + j], ref, 1e-5, 1e-5);
        }
    /* linear layer y = x W^T with x = h_a [ROWS, IN] and W [OUT, IN], both row-major */
    enum { ROWS = M, IN = K, OUT = 3 };
    uint16_t h_w[OUT * IN];
    for (int i = 0; i < OUT * IN; i++) h_w[i] = f32_to_bf16(input_value(CUDA_R_16BF));
    CHECK_INT_EQ(cudaMemcpy(d_b, h_w, sizeof h_w, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, OUT, ROWS, IN, &one, d_b, CUDA_R_16BF, IN, d_a,
                              CUDA_R_16BF, IN, &zero, d_c, CUDA_R_32F, OUT, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaMemcpy(h_c, d_c, ROWS * OUT * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    for (int r = 0; r < ROWS; r++)
        for (int o = 0; o < OUT; o++) {
            double ref = 0;
            for (int l = 0; l < IN; l++) ref += (double)bf16_to_f32(h_a[r * IN + l]) * bf16_to_f32(h_w[o * IN + l]);
            CHECK_NEAR(h_c[r * OUT + o], ref, 1e-5, 1e-5);
        }
    cudaFree(d_a);
    cudaFree(d_b);
    cudaFree(d_c);
}

/* 1 + 2^-12 is lost by every reduced input format, 1 + 2^-9 only by bf16. */
static float gemm_rounding(float a, cublasComputeType_t compute, cublasMath_t math)
{
    float h_a[4] = {a, a, a, a}, h_b[4] = {1, 1, 1, 1}, c = 0, one = 1, zero = 0, *d_a, *d_b, *d_c;
    CHECK_INT_EQ(cudaMalloc((void **)&d_a, sizeof h_a), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_b, sizeof h_b), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_c, sizeof c), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_a, h_a, sizeof h_a, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_b, h_b, sizeof h_b, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cublasSetMathMode(handle, math), CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, 1, 1, 4, &one, d_a, CUDA_R_32F, 4, d_b, CUDA_R_32F, 4,
                              &zero, d_c, CUDA_R_32F, 1, compute, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaMemcpy(&c, d_c, sizeof c, cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK_INT_EQ(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);
    cudaFree(d_a);
    cudaFree(d_b);
    cudaFree(d_c);
    return c;
}

static void test_compute_types(void)
{
    const float lost = 1.0f + 1.0f / 4096, kept = 1.0f + 1.0f / 512;
    CHECK(gemm_rounding(lost, CUBLAS_COMPUTE_32F, CUBLAS_DEFAULT_MATH) == 4.0f * lost);
    CHECK(gemm_rounding(lost, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_DEFAULT_MATH) == 4.0f);
    CHECK(gemm_rounding(lost, CUBLAS_COMPUTE_32F, CUBLAS_TF32_TENSOR_OP_MATH) == 4.0f);
    CHECK(gemm_rounding(lost, CUBLAS_COMPUTE_32F, CUBLAS_PEDANTIC_MATH) == 4.0f * lost);
    CHECK(gemm_rounding(kept, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_DEFAULT_MATH) == 4.0f * kept);
    CHECK(gemm_rounding(kept, CUBLAS_COMPUTE_32F_FAST_16F, CUBLAS_DEFAULT_MATH) == 4.0f * kept);
    CHECK(gemm_rounding(kept, CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_DEFAULT_MATH) == 4.0f);
}

static void test_deferred(void)
{
    float h_a[4] = {1, 2, 3, 4}, one = 1, zero = 0, c = 0, *d_a, *d_c, *h_c;
    cudaStream_t s;
    CHECK_INT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_a, sizeof h_a), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_c, sizeof c), cudaSuccess);
    CHECK_INT_EQ(cudaMallocHost((void **)&h_c, sizeof c), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_a, h_a, sizeof h_a, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cublasSetStream(handle, s), CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, 1, 1, 4, &one, d_a, CUDA_R_32F, 4, d_a, CUDA_R_32F, 4,
                              &zero, d_c, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cudaMemcpyAsync(h_c, d_c, sizeof c, cudaMemcpyDeviceToHost, s), cudaSuccess);
    CHECK(isnan(*h_c)); /* queued on the handle's stream, not run yet */
    CHECK_INT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    CHECK(*h_c == 30.0f);
    CHECK_INT_EQ(cublasSetStream(handle, 0), CUBLAS_STATUS_SUCCESS);
    cudaStreamDestroy(s);
    cudaFree(d_a);
    cudaFree(d_c);
    cudaFreeHost(h_c);
}

static cublasStatus_t gemm_ld(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, int lda, int ldb,
                              int ldc, void *buf)
{
    float one = 1, zero = 0;
    return cublasGemmEx(handle, ta, tb, m, n, k, &one, buf, CUDA_R_32F, lda, buf, CUDA_R_32F, ldb, &zero, buf, CUDA_R_32F,
                        ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

static void test_invalid(void)
{
    float one = 1, zero = 0, *d, *d_alpha;
    CHECK_INT_EQ(cudaMalloc((void **)&d, 4096), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_alpha, 4), cudaSuccess);
    const cublasStatus_t INVALID = CUBLAS_STATUS_INVALID_VALUE, OK = CUBLAS_STATUS_SUCCESS;
    CHECK_INT_EQ(gemm_ld(CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 6, 4, 6, 4, d), OK);
    CHECK_INT_EQ(gemm_ld(CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 6, 3, 6, 4, d), INVALID); /* lda < m */
    CHECK_INT_EQ(gemm_ld(CUBLAS_OP_T, CUBLAS_OP_N, 4, 4, 6, 6, 6, 4, d), OK);
    CHECK_INT_EQ(gemm_ld(CUBLAS_OP_T, CUBLAS_OP_N, 4, 4, 6, 4, 6, 4, d), INVALID); /* transposed: lda < k */
    CHECK_INT_EQ(gemm_ld(CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 6, 4, 5, 4, d), INVALID); /* ldb < k */
    CHECK_INT_EQ(gemm_ld(CUBLAS_OP_N, CUBLAS_OP_T, 4, 5, 6, 4, 4, 4, d), INVALID); /* transposed: ldb < n */
    CHECK_INT_EQ(gemm_ld(CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 6, 4, 6, 3, d), INVALID); /* ldc < m */
    CHECK_INT_EQ(gemm_ld(CUBLAS_OP_N, CUBLAS_OP_N, 0, 4, 6, 0, 6, 0, d), INVALID); /* ld >= max(1, rows) */
    CHECK_INT_EQ(gemm_ld(CUBLAS_OP_N, CUBLAS_OP_N, -1, 4, 6, 4, 6, 4, d), INVALID);
    CHECK_INT_EQ(gemm_ld((cublasOperation_t)7, CUBLAS_OP_N, 4, 4, 6, 4, 6, 4, d), INVALID);
    CHECK_INT_EQ(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, NULL, d, CUDA_R_32F, 4, d, CUDA_R_32F, 4, &zero,
                              d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT), INVALID);
    CHECK_INT_EQ(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, d_alpha, d, CUDA_R_32F, 4, d, CUDA_R_32F, 4,
                              &zero, d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT), INVALID);
    CHECK_INT_EQ(cublasGemmStridedBatchedEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_32F, 4, 16, d,
                                            CUDA_R_32F, 4, 16, &zero, d, CUDA_R_32F, 4, 16, -1, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT), INVALID);
    /* type combinations cuBLAS does not support */
    const cublasStatus_t UNSUPPORTED = CUBLAS_STATUS_NOT_SUPPORTED;
    CHECK_INT_EQ(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_16BF, 4, d, CUDA_R_32F, 4,
                              &zero, d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT), UNSUPPORTED);
    CHECK_INT_EQ(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_32F, 4, d, CUDA_R_32F, 4,
                              &zero, d, CUDA_R_16BF, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT), UNSUPPORTED);
    CHECK_INT_EQ(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_16BF, 4, d, CUDA_R_16BF, 4,
                              &zero, d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT), UNSUPPORTED);
    CHECK_INT_EQ(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_DEVICE), UNSUPPORTED);
    CHECK_INT_EQ(cublasSetWorkspace(handle, (char *)d + 4, 1024), INVALID);
    CHECK_INT_EQ(cublasSetWorkspace(handle, d, 4096), OK);
    CHECK_INT_EQ(cublasSetWorkspace(handle, NULL, 0), OK);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaSuccess);

    /* a destroyed handle */
    cublasHandle_t h2;
    CHECK_INT_EQ(cublasCreate(&h2), OK);
    CHECK_INT_EQ(cublasDestroy(h2), OK);
    CHECK_INT_EQ(cublasSetStream(h2, 0), CUBLAS_STATUS_NOT_INITIALIZED);

    /* lda * k beyond the allocation: accepted at the call, a fault when the GEMM runs */
    CHECK_INT_EQ(gemm_ld(CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 300, 4, 300, 4, d), OK);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaErrorIllegalAddress);
    CHECK_INT_EQ(cudaDeviceReset(), cudaSuccess);
}

int main(void)
{
    CHECK_INT_EQ(cublasCreate(&handle), CUBLAS_STATUS_SUCCESS);
    test_all_layouts();
    test_row_major();
    test_compute_types();
    test_deferred();
    test_invalid();
    CHECK_INT_EQ(cublasDestroy(handle), CUBLAS_STATUS_SUCCESS);
    return test_result("test_emu_cublas");
}
