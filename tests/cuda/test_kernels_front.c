/* Front-end kernels (mel.cu, conv.cu), run on the CUDA emulation, against the CPU backend's ops
 * (host/cpu/backend_cpu.c, host/model/mel.c) on identical inputs.
 *
 * The mel kernels are tested as the pipeline the CUDA backend runs: frames (in fixed batches,
 * so t0 > 0 and a partial last batch occur) -> cuFFT R2C -> power -> fp32 GEMM with mel.c's
 * filterbank -> log + global max -> finish, compared with the CPU log_mel op rounded to bf16.
 * The conv kernels are tested one by one (layout ops exactly) and as the conv layer the backend
 * runs: im2col -> bf16 GEMM (fp32 accumulation) -> bias + GELU, against the CPU conv op.
 *
 * Tolerances: u = 2^-8 is the bf16 unit roundoff; k roundings of a result allow
 * ((1 + u)^k - 1) |ref|; FP32 (1e-5 relative) covers fp32 arithmetic that is not bit-identical
 * on both sides (summation order, erff against the CPU's polynomial erf); absolute terms are
 * derived at each case. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cufft.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../cuda/kernels/kernels.h"
#include "backend.h"
#include "cpu_math.h"
#include "mel.h"
#include "util.h"
#include "../test.h"
#include "kernel_test.h"

#define FP32 1e-5
#define N_MELS 128
#define FFT_BATCH 32 /* frames per cuFFT call, as the backend does it */

static cublasHandle_t blas;

/* ---------------- helpers ---------------- */

static uint64_t rng_state = 0x13198A2E03707344ull;

static float frand(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(xorshift64(&rng_state) >> 11) * 0x1p-53);
}

/* ---------------- log-mel ---------------- */

/* The CUDA backend's sequence: out [T][n_mels] bf16 from samples d_x [n]. */
static void gpu_log_mel(bf16_t *d_out, const float *d_x, int64_t n, const float *d_filters)
{
    const int T = (int)(n / QASR_HOP);
    float *frames = dev_alloc((size_t)FFT_BATCH * QASR_N_FFT * sizeof(float));
    float *spec = dev_alloc((size_t)FFT_BATCH * QASR_N_FREQ * 2 * sizeof(float));
    float *power = dev_alloc((size_t)T * QASR_N_FREQ * sizeof(float));
    float *mel = dev_alloc((size_t)T * N_MELS * sizeof(float));
    float *d_max = dev_alloc(sizeof(float));
    cufftHandle plan;
    int nfft = QASR_N_FFT;
    CHECK_INT_EQ(cufftPlanMany(&plan, 1, &nfft, NULL, 1, QASR_N_FFT, NULL, 1, QASR_N_FREQ, CUFFT_R2C, FFT_BATCH),
                 CUFFT_SUCCESS);
    CHECK_INT_EQ(cufftSetStream(plan, stream), CUFFT_SUCCESS);
    for (int t0 = 0; t0 < T; t0 += FFT_BATCH) {
        const int nt = MIN(FFT_BATCH, T - t0);
        CHECK_INT_EQ(cuda_mel_frames(frames, d_x, n, t0, nt, stream), cudaSuccess);
        CHECK_INT_EQ(cufftExecR2C(plan, frames, (cufftComplex *)spec), CUFFT_SUCCESS);
        CHECK_INT_EQ(cuda_mel_power(power + (size_t)t0 * QASR_N_FREQ, spec, nt, stream), cudaSuccess);
    }
    /* mel [T][n_mels] = power [T][201] x filters [201][n_mels]; column-major: mel^T = filters^T power^T */
    const float one = 1.0f, zero = 0.0f;
    CHECK_INT_EQ(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, N_MELS, T, QASR_N_FREQ, &one, d_filters, CUDA_R_32F,
                              N_MELS, power, CUDA_R_32F, QASR_N_FREQ, &zero, mel, CUDA_R_32F, N_MELS,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cuda_mel_log(mel, (int64_t)T * N_MELS, d_max, stream), cudaSuccess);
    CHECK_INT_EQ(cuda_mel_finish(d_out, mel, (int64_t)T * N_MELS, d_max, stream), cudaSuccess);
    CHECK_INT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    cufftDestroy(plan);
    cudaFree(frames); cudaFree(spec); cudaFree(power); cudaFree(mel); cudaFree(d_max);
}

static void mel_case(const char *what, const float *x, int64_t n, const float *d_filters)
{
    const int T = (int)(n / QASR_HOP);
    const size_t m = (size_t)T * N_MELS;
    float *want = ref.ops->scratch(ref.be, m), *got = ref.ops->scratch(ref.be, m);
    ref.ops->log_mel(ref.be, want, x, n, N_MELS);
    float range = 0;
    for (size_t i = 0; i < m; i++) {
        want[i] = bf16r(want[i]); /* the CPU result as the bf16 the encoder would see */
        range = fmaxf(range, fabsf(want[i]));
    }
    float *d_x = dev_alloc((size_t)n * sizeof *d_x);
    CHECK_INT_EQ(cudaMemcpy(d_x, x, (size_t)n * sizeof *d_x, cudaMemcpyHostToDevice), cudaSuccess);
    bf16_t *d_out = dev_alloc(m * sizeof *d_out);
    gpu_log_mel(d_out, d_x, n, d_filters);
    from_dev(got, d_out, m);
    size_t differ = 0;
    for (size_t i = 0; i < m; i++) differ += got[i] != want[i];
    char name[96];
    snprintf(name, sizeof name, "log_mel %s n=%lld T=%d (%zu of %zu differ)", what, (long long)n, T, differ, m);
    /* Both sides round to bf16; fp32 differences before that (FFT algorithm, GEMM order, log10f)
     * move a value across a rounding boundary at most: 1 bf16 ulp of the value range. */
    compare(name, got, want, m, ldexp(1.0, ilogb(range) - 7), 0);
    cudaFree(d_x); cudaFree(d_out);
    ref.ops->scratch_release(ref.be, 0);
}

static void mel_tests(void)
{
    mel_t *mel = mel_init(N_MELS);
    float *d_filters = dev_alloc((size_t)QASR_N_FREQ * N_MELS * sizeof(float));
    CHECK_INT_EQ(cudaMemcpy(d_filters, mel_filters(mel), (size_t)QASR_N_FREQ * N_MELS * sizeof(float),
                            cudaMemcpyHostToDevice),
                 cudaSuccess);
    enum { NMAX = 16000 + 17 };
    float *x = xmalloc(NMAX * sizeof *x);

    for (int i = 0; i < NMAX; i++) x[i] = frand(-0.5f, 0.5f);
    mel_case("noise", x, 201, d_filters); /* T = 1, the shortest input */
    mel_case("noise", x, 320, d_filters); /* n mod 160 < 40: the last frame reflects at x[n-1] */
    mel_case("noise", x, 479, d_filters);

    /* 1 s of two tones + noise with 0.25 s of digital silence: the dynamic range floor clamps
     * the silent frames; 100 frames = 4 FFT batches, the last partial; reflected at the end */
    for (int i = 0; i < NMAX; i++)
        x[i] = 0.3f * sinf(0.0713f * i) + 0.05f * sinf(0.91f * i) + 0.01f * frand(-1.0f, 1.0f);
    for (int i = 6000; i < 10000; i++) x[i] = 0.0f;
    mel_case("tones+silence", x, NMAX, d_filters);

    memset(x, 0, NMAX * sizeof *x); /* all -1.5 */
    mel_case("zeros", x, 800, d_filters);

    free(x);
    cudaFree(d_filters);
    mel_free(mel);
}

/* ---------------- mel chunks ---------------- */

static void mel_chunks_case(int T, int n_mels, int N, const int *start, const int *len, int W)
{
    float *mel = rand_bf16((size_t)T * n_mels, -1.5f, 1.5f);
    const size_t m = (size_t)N * n_mels * W;
    float *want = ref.ops->scratch(ref.be, m), *got = ref.ops->scratch(ref.be, m);
    ref.ops->mel_chunks(ref.be, want, mel, ref.ops->ints(ref.be, start, N), ref.ops->ints(ref.be, len, N), N, n_mels,
                        W);
    bf16_t *d_mel = to_dev(mel, (size_t)T * n_mels, 0), *d_out = dev_alloc(m * sizeof(bf16_t));
    int *d_start = ints_to_dev(start, N), *d_len = ints_to_dev(len, N);
    CHECK_INT_EQ(cuda_mel_chunks(d_out, d_mel, d_start, d_len, N, n_mels, W, stream), cudaSuccess);
    from_dev(got, d_out, m);
    char what[96];
    snprintf(what, sizeof what, "mel_chunks T=%d n_mels=%d N=%d W=%d", T, n_mels, N, W);
    compare(what, got, want, m, 0, 0);
    dev_free(d_mel, 0); cudaFree(d_out); cudaFree(d_start); cudaFree(d_len);
    ref.ops->scratch_release(ref.be, 0);
}

/* ---------------- conv stem ---------------- */

/* col [Cin*9][N*Ho*Wo] of in [Cin][N][Hin][Win], written out here from the definition */
static void im2col_ref(float *col, const float *in, int Cin, int N, int Hin, int Win)
{
    const int Ho = (Hin - 1) / 2 + 1, Wo = (Win - 1) / 2 + 1;
    const size_t NP = (size_t)N * Ho * Wo;
    for (int c = 0; c < Cin; c++)
        for (int t = 0; t < 9; t++)
            for (int n = 0; n < N; n++)
                for (int oy = 0; oy < Ho; oy++)
                    for (int ox = 0; ox < Wo; ox++) {
                        const int iy = 2 * oy + t / 3 - 1, ix = 2 * ox + t % 3 - 1;
                        const int inside = iy >= 0 && iy < Hin && ix >= 0 && ix < Win;
                        col[(size_t)(c * 9 + t) * NP + ((size_t)n * Ho + oy) * Wo + ox] =
                            inside ? in[(((size_t)c * N + n) * Hin + iy) * Win + ix] : 0.0f;
                    }
}

/* One conv layer as the backend runs it, and its im2col on the way. */
static void conv_case(int Cin, int Cout, int N, int Hin, int Win)
{
    const int Ho = (Hin - 1) / 2 + 1, Wo = (Win - 1) / 2 + 1, K = Cin * 9, NP = N * Ho * Wo;
    const float a = 1.7f / sqrtf((float)K); /* pre-activations of order 1 */
    float *x = rand_bf16((size_t)Cin * N * Hin * Win, -1.0f, 1.0f), *w = rand_bf16((size_t)Cout * K, -a, a);
    float *b = rand_bf16(Cout, -0.5f, 0.5f);
    float *want = ref.ops->scratch(ref.be, (size_t)Cout * NP), *got = ref.ops->scratch(ref.be, (size_t)Cout * NP);
    float *col_want = ref.ops->scratch(ref.be, (size_t)K * NP), *col_got = ref.ops->scratch(ref.be, (size_t)K * NP);
    ref.ops->conv3x3s2_gelu(ref.be, want, x, ref_weight(w, (size_t)Cout * K), ref_weight(b, Cout), Cin, Cout, N, Hin,
                            Win);
    im2col_ref(col_want, x, Cin, N, Hin, Win);

    bf16_t *d_x = to_dev(x, (size_t)Cin * N * Hin * Win, 0), *d_w = to_dev(w, (size_t)Cout * K, 0);
    bf16_t *d_b = to_dev(b, Cout, 0), *d_col = dev_alloc((size_t)K * NP * sizeof(bf16_t));
    bf16_t *d_out = dev_alloc((size_t)Cout * NP * sizeof(bf16_t));
    CHECK_INT_EQ(cuda_im2col3x3s2(d_col, d_x, Cin, N, Hin, Win, stream), cudaSuccess);
    from_dev(col_got, d_col, (size_t)K * NP);
    char what[96];
    snprintf(what, sizeof what, "im2col3x3s2 Cin=%d N=%d H=%d W=%d", Cin, N, Hin, Win);
    compare(what, col_got, col_want, (size_t)K * NP, 0, 0);

    /* out [Cout][NP] = w [Cout][K] col [K][NP]; column-major: out^T = col^T w^T */
    const float one = 1.0f, zero = 0.0f;
    CHECK_INT_EQ(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, NP, Cout, K, &one, d_col, CUDA_R_16BF, NP, d_w,
                              CUDA_R_16BF, K, &zero, d_out, CUDA_R_16BF, NP, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cuda_bias_gelu_rows(d_out, d_b, Cout, NP, stream), cudaSuccess);
    from_dev(got, d_out, (size_t)Cout * NP);
    float bmax = 0;
    for (int c = 0; c < Cout; c++) bmax = fmaxf(bmax, fabsf(b[c]));
    snprintf(what, sizeof what, "conv layer Cin=%d Cout=%d N=%d H=%d W=%d", Cin, Cout, N, Hin, Win);
    /* GPU: bf16(gelu(bf16(bf16(acc) + b))), CPU: gelu(acc + b) in fp32. The two input roundings
     * move s = acc + b by u (|acc| + |s|), |acc| <= |s| + |b|, seen through gelu': for s >= 0,
     * gelu'(s) s <= 1.3 gelu(s), so 3.6 u |y| in all with the output rounding, plus
     * 1.13 u |b| (|gelu'| <= 1.13); for s < 0, |gelu'(s) s| <= 0.2 and |gelu'| <= 0.5, so
     * 0.4 u + 0.5 u |b| absolute. */
    compare(what, got, want, (size_t)Cout * NP, U * (0.4 + 1.13 * bmax), 3.6 * U + FP32);
    dev_free(d_x, 0); dev_free(d_w, 0); dev_free(d_b, 0); cudaFree(d_col); cudaFree(d_out);
    ref.ops->scratch_release(ref.be, 0);
}

static void bias_gelu_rows_case(int C, int64_t L, size_t offset)
{
    const size_t m = (size_t)C * L;
    float *x = rand_bf16(m, -5.0f, 5.0f), *b = rand_bf16(C, -1.0f, 1.0f);
    float *want = ref.ops->scratch(ref.be, m), *got = ref.ops->scratch(ref.be, m);
    /* the reference rounding points (MODEL.md 12.2): conv + bias is a bf16 tensor, then GELU in
     * fp32, here with the CPU backend's GELU */
    for (int c = 0; c < C; c++)
        for (int64_t i = 0; i < L; i++) want[c * L + i] = qgelu(bf16r(x[c * L + i] + b[c]));
    bf16_t *d_x = to_dev(x, m, offset), *d_b = to_dev(b, C, 0);
    CHECK_INT_EQ(cuda_bias_gelu_rows(d_x, d_b, C, L, stream), cudaSuccess);
    from_dev(got, d_x, m);
    char what[96];
    snprintf(what, sizeof what, "bias_gelu_rows C=%d L=%lld%s", C, (long long)L, offset ? " (unaligned)" : "");
    /* one rounding; the CPU's erf is within 1.5e-7 absolute: GELU within 0.5 * 6 * 1.5e-7 on [-6, 6] */
    compare(what, got, want, m, 4.5e-7, roundings(1) + FP32);
    dev_free(d_x, offset); dev_free(d_b, 0);
    ref.ops->scratch_release(ref.be, 0);
}

static void conv_flatten_case(int C, int N, int F, int W)
{
    const size_t m = (size_t)C * N * F * W;
    float *in = rand_bf16(m, -1.0f, 1.0f);
    float *want = ref.ops->scratch(ref.be, m), *got = ref.ops->scratch(ref.be, m);
    ref.ops->conv_flatten(ref.be, want, in, C, N, F, W);
    bf16_t *d_in = to_dev(in, m, 0), *d_out = dev_alloc(m * sizeof(bf16_t));
    CHECK_INT_EQ(cuda_conv_flatten(d_out, d_in, C, N, F, W, stream), cudaSuccess);
    from_dev(got, d_out, m);
    char what[96];
    snprintf(what, sizeof what, "conv_flatten C=%d N=%d F=%d W=%d", C, N, F, W);
    compare(what, got, want, m, 0, 0);
    dev_free(d_in, 0); cudaFree(d_out);
    ref.ops->scratch_release(ref.be, 0);
}

static void add_pos_emb_case(int rows, int period, int D, size_t offset)
{
    const size_t m = (size_t)rows * D;
    float *x = rand_bf16(m, -3.0f, 3.0f), *pe = rand_bf16((size_t)period * D, -1.0f, 1.0f);
    float *want = ref.ops->scratch(ref.be, m), *got = ref.ops->scratch(ref.be, m);
    memcpy(want, x, m * sizeof *x);
    ref.ops->add_pos_emb(ref.be, want, ref_weight(pe, (size_t)period * D), rows, period, D);
    bf16_t *d_x = to_dev(x, m, offset), *d_pe = to_dev(pe, (size_t)period * D, offset);
    CHECK_INT_EQ(cuda_add_pos_emb(d_x, d_pe, rows, period, D, stream), cudaSuccess);
    from_dev(got, d_x, m);
    char what[96];
    snprintf(what, sizeof what, "add_pos_emb rows=%d period=%d D=%d%s", rows, period, D,
             offset ? " (unaligned)" : "");
    compare(what, got, want, m, 0, roundings(1)); /* the same fp32 sum, rounded once */
    dev_free(d_x, offset); dev_free(d_pe, offset);
    ref.ops->scratch_release(ref.be, 0);
}

int main(void)
{
    require_device();
    CHECK_INT_EQ(backend_cpu_create(&ref, 1, N_MELS, PRECISION_FP32), 0);
    CHECK_INT_EQ(cudaStreamCreate(&stream), cudaSuccess);
    CHECK_INT_EQ(cublasCreate(&blas), CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cublasSetStream(blas, stream), CUBLAS_STATUS_SUCCESS);

    mel_tests();

    mel_chunks_case(7, 128, 1, (int[]){ 0 }, (int[]){ 7 }, 7);
    mel_chunks_case(237, 128, 3, (int[]){ 0, 100, 200 }, (int[]){ 100, 100, 37 }, 100);
    mel_chunks_case(60, 33, 4, (int[]){ 39, 0, 26, 13 }, (int[]){ 8, 13, 13, 13 }, 13);

    conv_case(1, 8, 2, 128, 13);  /* conv1 of a short chunk: NP even (bf16x2 path) */
    conv_case(16, 12, 3, 9, 13);  /* odd sizes, NP = 105 (scalar path) */
    conv_case(3, 5, 1, 1, 1);     /* 1 x 1 image */
    bias_gelu_rows_case(3, 1, 0);
    bias_gelu_rows_case(5, 37, 0);
    bias_gelu_rows_case(4, 1000, 0);
    bias_gelu_rows_case(2, 100, 1);

    conv_flatten_case(3, 1, 16, 13);
    conv_flatten_case(480, 2, 16, 13); /* the model's shape: 19 channels per block, last block 5 */
    conv_flatten_case(5, 3, 3, 1);
    conv_flatten_case(2, 2, 64, 100); /* a plane above the staging budget: one channel per block */
    conv_flatten_case(33, 1, 16, 7);

    add_pos_emb_case(26, 13, 896, 0);
    add_pos_emb_case(5, 2, 33, 0);
    add_pos_emb_case(1, 1, 1, 0);
    add_pos_emb_case(7, 3, 100, 1);

    cublasDestroy(blas);
    cudaStreamDestroy(stream);
    ref.ops->destroy(ref.be);
    return test_result("test_kernels_front");
}
