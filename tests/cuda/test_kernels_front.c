/* Front-end kernels (mel.cu, conv.cu), run on the CUDA emulation, against the CPU backend's ops
 * (host/cpu/backend_cpu.c, host/model/mel.c) on identical inputs.
 *
 * The mel kernels are tested as the pipeline the CUDA backend runs, on one utterance and on a
 * batch: frames (in fixed batches over the frames of all utterances, so batches start inside an
 * utterance, span several and the last is partial) -> cuFFT R2C -> power -> fp32 GEMM with mel.c's
 * filterbank -> log + per-utterance partial maxima -> finish, each utterance compared with the CPU
 * log_mel op on it alone, rounded to bf16 (so each must be clamped at its own maximum); then the
 * backend's log_mel_batch op itself on batches.
 * The conv kernels are tested one by one: the layout ops exactly, the conv layer (implicit GEMM +
 * bias + GELU) against the CPU conv op.
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
#define FFT_BATCH 32 /* frames per cuFFT call (the backend's are larger; small ones span more edges) */

extern const backend_kind_t backend_cuda_kind; /* cuda/backend_cuda.cu: its log_mel_batch op */

static cublasHandle_t blas;

/* ---------------- helpers ---------------- */

static uint64_t rng_state = 0x13198A2E03707344ull;

static float frand(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(xorshift64(&rng_state) >> 11) * 0x1p-53);
}

/* ---------------- log-mel ---------------- */

/* Utterances of one batch, as log_mel_batch takes them. */
#define MAX_UTT 8
typedef struct {
    const float *x[MAX_UTT];
    int64_t n[MAX_UTT];
    int count;
} mel_batch_t;

static void add_utt(mel_batch_t *b, const float *x, int64_t n)
{
    CHECK(b->count < MAX_UTT);
    b->x[b->count] = x;
    b->n[b->count++] = n;
}

/* The CUDA backend's sequence (cuda/backend_cuda.cu log_mel_batch) with FFT batches of FFT_BATCH
 * frames, so batches start inside utterances and span them: d_outs[u] [T_u][n_mels] bf16. */
static void gpu_log_mel(bf16_t **d_outs, const mel_batch_t *b, const float *d_filters)
{
    const int n = b->count;
    int64_t x_off[MAX_UTT], S = 0;
    int f_off[MAX_UTT + 1] = { 0 }, max_T = 0;
    for (int u = 0; u < n; u++) {
        x_off[u] = S;
        S += b->n[u];
        f_off[u + 1] = f_off[u] + (int)(b->n[u] / QASR_HOP);
        max_T = MAX(max_T, f_off[u + 1] - f_off[u]);
    }
    const int F = f_off[n];
    float *h_x = xmalloc((size_t)S * sizeof *h_x);
    for (int u = 0; u < n; u++) memcpy(h_x + x_off[u], b->x[u], (size_t)b->n[u] * sizeof *h_x);
    float *d_x = dev_alloc((size_t)S * sizeof *d_x);
    int64_t *d_x_off = dev_alloc(sizeof x_off), *d_x_len = dev_alloc(sizeof x_off);
    int *d_f_off = dev_alloc(sizeof f_off);
    bf16_t **d_ptrs = dev_alloc(MAX_UTT * sizeof *d_ptrs);
    CHECK_INT_EQ(cudaMemcpy(d_x, h_x, (size_t)S * sizeof *d_x, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_x_off, x_off, sizeof x_off, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_x_len, b->n, sizeof b->n, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_f_off, f_off, sizeof f_off, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_ptrs, d_outs, n * sizeof *d_ptrs, cudaMemcpyHostToDevice), cudaSuccess);
    float *frames = dev_alloc((size_t)FFT_BATCH * QASR_N_FFT * sizeof(float));
    float *spec = dev_alloc((size_t)FFT_BATCH * QASR_N_FREQ * 2 * sizeof(float));
    float *power = dev_alloc((size_t)F * QASR_N_FREQ * sizeof(float));
    float *mel = dev_alloc((size_t)F * N_MELS * sizeof(float));
    float *partial = dev_alloc((size_t)n * MEL_MAX_SEG_BLOCKS * sizeof(float));
    cufftHandle plan;
    int nfft = QASR_N_FFT;
    CHECK_INT_EQ(cufftPlanMany(&plan, 1, &nfft, NULL, 1, QASR_N_FFT, NULL, 1, QASR_N_FREQ, CUFFT_R2C, FFT_BATCH),
                 CUFFT_SUCCESS);
    CHECK_INT_EQ(cufftSetStream(plan, stream), CUFFT_SUCCESS);
    for (int f0 = 0; f0 < F; f0 += FFT_BATCH) {
        const int nt = MIN(FFT_BATCH, F - f0);
        CHECK_INT_EQ(cuda_mel_frames(frames, d_x, d_x_off, d_x_len, d_f_off, n, f0, nt, f_off, b->n, stream),
                     cudaSuccess);
        CHECK_INT_EQ(cufftExecR2C(plan, frames, (cufftComplex *)spec), CUFFT_SUCCESS);
        CHECK_INT_EQ(cuda_mel_power(power + (size_t)f0 * QASR_N_FREQ, spec, nt, stream), cudaSuccess);
    }
    /* mel [F][n_mels] = power [F][201] x filters [201][n_mels]; column-major: mel^T = filters^T power^T */
    const float one = 1.0f, zero = 0.0f;
    CHECK_INT_EQ(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, N_MELS, F, QASR_N_FREQ, &one, d_filters, CUDA_R_32F,
                              N_MELS, power, CUDA_R_32F, QASR_N_FREQ, &zero, mel, CUDA_R_32F, N_MELS,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    CHECK_INT_EQ(cuda_mel_log(mel, d_f_off, n, N_MELS, F, max_T, partial, stream), cudaSuccess);
    CHECK_INT_EQ(cuda_mel_finish(d_ptrs, mel, d_f_off, n, N_MELS, F, max_T, partial, stream), cudaSuccess);
    CHECK_INT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    cufftDestroy(plan);
    cudaFree(d_x); cudaFree(d_x_off); cudaFree(d_x_len); cudaFree(d_f_off); cudaFree(d_ptrs);
    cudaFree(frames); cudaFree(spec); cudaFree(power); cudaFree(mel); cudaFree(partial);
    free(h_x);
}

/* Utterance u of a batch (got, T frames, from the GPU) against the CPU backend's log_mel of it
 * alone, rounded to bf16 as the encoder would see it. */
static void mel_compare(const char *what, const mel_batch_t *b, int u, const float *got)
{
    const int T = (int)(b->n[u] / QASR_HOP);
    const size_t m = (size_t)T * N_MELS;
    float *want = ref.ops->scratch(ref.be, m);
    ref.ops->log_mel(ref.be, want, b->x[u], b->n[u], N_MELS);
    float range = 0;
    for (size_t i = 0; i < m; i++) {
        want[i] = bf16r(want[i]);
        range = fmaxf(range, fabsf(want[i]));
    }
    size_t differ = 0;
    for (size_t i = 0; i < m; i++) differ += got[i] != want[i];
    char name[128];
    snprintf(name, sizeof name, "log_mel %s: utterance %d of %d, n=%lld T=%d (%zu of %zu differ)", what, u,
             b->count, (long long)b->n[u], T, differ, m);
    /* Both sides round to bf16; fp32 differences before that (FFT algorithm, GEMM order, log10f)
     * move a value across a rounding boundary at most: 1 bf16 ulp of the value range. */
    compare(name, got, want, m, ldexp(1.0, ilogb(range) - 7), 0);
}

/* The kernels in the backend's sequence, each utterance against the CPU's log_mel of it alone. */
static void mel_case(const char *what, const mel_batch_t *b, const float *d_filters)
{
    bf16_t *d_outs[MAX_UTT];
    for (int u = 0; u < b->count; u++) d_outs[u] = dev_alloc((size_t)(b->n[u] / QASR_HOP) * N_MELS * sizeof(bf16_t));
    gpu_log_mel(d_outs, b, d_filters);
    for (int u = 0; u < b->count; u++) {
        const size_t m = (size_t)(b->n[u] / QASR_HOP) * N_MELS;
        float *got = ref.ops->scratch(ref.be, m);
        from_dev(got, d_outs[u], m);
        mel_compare(what, b, u, got);
        cudaFree(d_outs[u]);
    }
    ref.ops->scratch_release(ref.be, 0);
}

/* The CUDA backend's log_mel_batch op itself (pinned staging, one copy, its FFT plans). */
static void mel_backend_case(const char *what, const backend_ref_t *cu, const mel_batch_t *b)
{
    const backend_ops_t *o = cu->ops;
    void *outs[MAX_UTT];
    for (int u = 0; u < b->count; u++) CHECK((outs[u] = o->buf_alloc(cu->be, (size_t)(b->n[u] / QASR_HOP) * N_MELS)));
    o->log_mel_batch(cu->be, outs, b->x, b->n, b->count, N_MELS);
    for (int u = 0; u < b->count; u++) {
        const size_t m = (size_t)(b->n[u] / QASR_HOP) * N_MELS;
        float *got = ref.ops->scratch(ref.be, m);
        o->download(cu->be, got, outs[u], m);
        mel_compare(what, b, u, got);
        o->buf_free(cu->be, outs[u]);
    }
    CHECK(o->fault(cu->be) == NULL);
    ref.ops->scratch_release(ref.be, 0);
}

static void mel_tests(void)
{
    mel_t *mel = mel_init(N_MELS);
    float *d_filters = dev_alloc((size_t)QASR_N_FREQ * N_MELS * sizeof(float));
    CHECK_INT_EQ(cudaMemcpy(d_filters, mel_filters(mel), (size_t)QASR_N_FREQ * N_MELS * sizeof(float),
                            cudaMemcpyHostToDevice),
                 cudaSuccess);
    enum { NMAX = 16000 + 17, NLONG = 3 * 16000 + 77 };
    float *noise = xmalloc(NMAX * sizeof *noise), *tones = xmalloc(NMAX * sizeof *tones);
    float *quiet = xmalloc(NLONG * sizeof *quiet), *zeros = xcalloc(NMAX, sizeof *zeros);
    for (int i = 0; i < NMAX; i++) noise[i] = frand(-0.5f, 0.5f);
    /* 1 s of two tones + noise with 0.25 s of digital silence: the dynamic range floor clamps
     * the silent frames; reflected at the end */
    for (int i = 0; i < NMAX; i++)
        tones[i] = 0.3f * sinf(0.0713f * i) + 0.05f * sinf(0.91f * i) + 0.01f * frand(-1.0f, 1.0f);
    for (int i = 6000; i < 10000; i++) tones[i] = 0.0f;
    /* 3 s, 60 dB below the tones, with silence: clamped at its own maximum - 8, which the loud
     * utterances beside it would raise by about 6 decades */
    for (int i = 0; i < NLONG; i++) quiet[i] = i % 16000 < 12000 ? 0.001f * sinf(0.05f * i) : 0.0f;

    /* alone, as before: T = 1 (the shortest input), n mod 160 < 40 (the last frame reflects at
     * x[n-1]), 100 frames (4 FFT batches, the last partial), all zeros (-1.5 everywhere) */
    const struct { const char *what; const float *x; int64_t n; } alone[] = {
        { "noise", noise, MEL_MIN_SAMPLES }, { "noise", noise, 320 }, { "noise", noise, 479 },
        { "tones+silence", tones, NMAX }, { "zeros", zeros, 800 },
    };
    for (size_t i = 0; i < sizeof alone / sizeof *alone; i++) {
        mel_batch_t b = { .count = 0 };
        add_utt(&b, alone[i].x, alone[i].n);
        mel_case(alone[i].what, &b, d_filters);
    }
    /* a batch: lengths from the minimum to 3 s, loudness from silence to full scale, so FFT
     * batches start inside utterances and span several, and each has its own maximum */
    mel_batch_t b = { .count = 0 };
    add_utt(&b, noise, MEL_MIN_SAMPLES);
    add_utt(&b, quiet, NLONG);
    add_utt(&b, zeros, 800);
    add_utt(&b, tones, NMAX);
    add_utt(&b, noise + 1000, 479);
    add_utt(&b, quiet + 5000, 5 * 160 + 39);
    mel_case("batch", &b, d_filters);

    /* the backend's op on the same batch, then on a smaller one (its staging is refilled after
     * the first copy has run) and a larger one (the staging grows) */
    backend_ref_t cu = { 0 };
    const backend_params_t p = { .device = 0, .threads = 1, .n_mels = N_MELS, .precision = "bf16" };
    CHECK_INT_EQ(backend_cuda_kind.create(&cu, &p), 0);
    mel_backend_case("backend batch", &cu, &b);
    mel_batch_t small = { .count = 0 };
    add_utt(&small, tones, 2000);
    add_utt(&small, zeros, MEL_MIN_SAMPLES);
    mel_backend_case("backend small", &cu, &small);
    add_utt(&b, quiet, NLONG);
    add_utt(&b, noise, NMAX);
    mel_backend_case("backend larger", &cu, &b);
    cu.ops->destroy(cu.be);

    free(noise); free(tones); free(quiet); free(zeros);
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

/* One conv layer (conv_implicit.cu) against the CPU conv op; w `offset` elements into its
 * allocation (1: not 16-byte aligned, the kernel's scalar weight loads). */
static void conv_case(int Cin, int Cout, int N, int Hin, int Win, size_t offset)
{
    const int Ho = (Hin - 1) / 2 + 1, Wo = (Win - 1) / 2 + 1, K = Cin * 9, NP = N * Ho * Wo;
    const float a = 1.7f / sqrtf((float)K); /* pre-activations of order 1 */
    float *x = rand_bf16((size_t)Cin * N * Hin * Win, -1.0f, 1.0f), *w = rand_bf16((size_t)Cout * K, -a, a);
    float *b = rand_bf16(Cout, -0.5f, 0.5f);
    float *want = ref.ops->scratch(ref.be, (size_t)Cout * NP), *got = ref.ops->scratch(ref.be, (size_t)Cout * NP);
    ref.ops->conv3x3s2_gelu(ref.be, want, x, ref_weight(w, (size_t)Cout * K), ref_weight(b, Cout), Cin, Cout, N, Hin,
                            Win);
    bf16_t *d_x = to_dev(x, (size_t)Cin * N * Hin * Win, 0), *d_w = to_dev(w, (size_t)Cout * K, offset);
    bf16_t *d_b = to_dev(b, Cout, 0), *d_out = dev_nan((size_t)Cout * NP, 0);
    CHECK_INT_EQ(cuda_conv3x3s2_gelu(d_out, d_x, d_w, d_b, Cin, Cout, N, Hin, Win, stream), cudaSuccess);
    from_dev(got, d_out, (size_t)Cout * NP);
    char what[96];
    snprintf(what, sizeof what, "conv3x3s2_gelu Cin=%d Cout=%d N=%d H=%d W=%d%s", Cin, Cout, N, Hin, Win,
             offset ? " (unaligned w)" : "");
    /* GPU: bf16(gelu(bf16(acc + b))), CPU: gelu(acc + b) in fp32. The input rounding moves s =
     * acc + b by u |s|, seen through gelu': for s >= 0, gelu'(s) s <= 1.3 gelu(s), so 2.3 u |y|
     * with the output rounding; for s < 0, |gelu'(s) s| <= 0.2: 0.2 u absolute. */
    compare(what, got, want, (size_t)Cout * NP, 0.2 * U, roundings(1) + 1.3 * U + FP32);
    dev_free(d_x, 0); dev_free(d_w, offset); dev_free(d_b, 0); dev_free(d_out, 0);
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

    /* tiles: 96 output channels x 64 positions, K slices of 32 (conv_implicit.cu) */
    /* sizes keep the emulated tensor-core work small (the ASan build runs these five times):
     * every tile and slice path at least once, not the model's whole chunks */
    conv_case(1, 480, 1, 32, 100, 0);  /* conv1: K = 9 padded to 16, 5 x 13 tiles */
    conv_case(1, 480, 3, 32, 13, 0);   /* conv1, odd N, a partial position tile */
    conv_case(480, 96, 1, 4, 13, 0);   /* conv2/conv3's K = 4320 (135 slices), Hin even, Win odd */
    conv_case(64, 100, 5, 9, 13, 0);   /* odd N and Hin, Cout past a tile (100 = 96 + 4), 3 position tiles */
    conv_case(480, 12, 2, 5, 6, 1);    /* unaligned w: scalar weight loads of the vector-width K */
    conv_case(16, 12, 3, 9, 13, 0);    /* K = 144: the last slice half full, NP = 105 */
    conv_case(3, 5, 2, 4, 4, 0);       /* K = 27 (scalar weight loads), both MMA steps of one slice */
    conv_case(3, 5, 1, 1, 1, 0);       /* 1 x 1 image */

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
