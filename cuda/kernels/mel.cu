/* Log-mel front end on the GPU (MODEL.md section 4) for a batch of utterances at once, around two
 * library calls made by the host:
 *   cuda_mel_frames -> cuFFT R2C (n = 400, batched over frames) -> cuda_mel_power
 *   -> cuBLAS fp32 GEMM with the filterbank [201][n_mels] -> cuda_mel_log -> cuda_mel_finish.
 * The utterances' frames are numbered one after another (utterance u holds the global frames
 * f_off[u] .. f_off[u+1] - 1), so an FFT batch and the GEMM span utterances; the log and the
 * finish work per utterance (grid y), each utterance clamped to its own maximum.
 * Everything is fp32 until the final bf16 store, as host/model/mel.c (the reference) computes it: the
 * same window values (built in double, cast to float), the same reflect padding, log10 of the
 * energies floored at 1e-10, then the per-utterance dynamic range clamp and (x + 4) / 4. */
#include "../common.cuh"

#include "kernels.h"
#include "mel.h"

#include <stdint.h>

#define BLOCK 256
#define MAX_BLOCKS 1024
#define PI_D 3.14159265358979323846

static inline unsigned grid_blocks(int64_t items)
{
    const int64_t b = CEIL_DIV(items, (int64_t)BLOCK);
    return (unsigned)(b < MAX_BLOCKS ? b : MAX_BLOCKS);
}

/* The utterance holding global frame g: the last u with f_off[u] <= g (f_off [n+1] ascending). */
static __device__ int frame_owner(const int *f_off, int n, int g)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (f_off[mid] <= g) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* grid: min(nf, MAX_BLOCKS); block: BLOCK; blocks stride over frames, thread tid over the
 * samples tid + k BLOCK of a frame, whose window values it computes once and keeps in registers. */
__global__ void mel_frames_kernel(float *frames, /* [nf][400] */ const float *x, const int64_t *x_off,
                                  const int64_t *x_len, const int *f_off, int n, int f0, int nf)
{
    constexpr int K = CEIL_DIV(QASR_N_FFT, BLOCK);
    const int tid = threadIdx.x;
    float window[K];
    for (int k = 0; k < K; k++) {
        const int i = tid + k * BLOCK;
        /* the periodic Hann window as host/model/mel.c computes it (in double), so both sides hold
         * identical floats */
        window[k] = i < QASR_N_FFT ? (float)(0.5 - 0.5 * cos(2.0 * PI_D * i / QASR_N_FFT)) : 0.0f;
    }
    for (int f = blockIdx.x; f < nf; f += gridDim.x) {
        const int u = frame_owner(f_off, n, f0 + f);
        const float *xu = x + x_off[u];
        const int64_t len = x_len[u];
        /* frame t of its utterance is centred on xu[160 t] */
        const int64_t start = (int64_t)(f0 + f - f_off[u]) * QASR_HOP - QASR_N_FFT / 2;
        for (int k = 0; k < K; k++) {
            const int i = tid + k * BLOCK;
            if (i >= QASR_N_FFT) break;
            int64_t s = start + i;
            if (s < 0) s = -s;                        /* mirror around xu[0], not repeating it */
            else if (s >= len) s = 2 * (len - 1) - s; /* mirror around xu[len-1] */
            frames[(size_t)f * QASR_N_FFT + i] = window[k] * xu[s];
        }
    }
}

extern "C" cudaError_t cuda_mel_frames(float *frames, const float *x, const int64_t *x_off, const int64_t *x_len,
                                       const int *f_off, int n, int f0, int nf, const int *h_f_off,
                                       const int64_t *h_x_len, cudaStream_t stream)
{
    SHAPE_ASSERT(n >= 1 && f0 >= 0 && nf >= 1 && f0 + (int64_t)nf <= h_f_off[n]);
    /* samples read: per utterance met, those of its frames a .. b (160 t - 200 .. 160 t + 199,
     * reflected inside it); index arrays: f_off by the search, x_off and x_len of those met */
    double rd = (double)(n + 1) * sizeof(int);
    for (int u = 0; u < n; u++) {
        const int a = (f0 > h_f_off[u] ? f0 : h_f_off[u]) - h_f_off[u];
        const int b = (f0 + nf < h_f_off[u + 1] ? f0 + nf : h_f_off[u + 1]) - 1 - h_f_off[u];
        if (a > b) continue;
        /* the left reflection reads xu[1..200]; frames past len / 160 would reflect beyond xu[0] */
        SHAPE_ASSERT(h_x_len[u] >= QASR_N_FFT / 2 + 1 && h_f_off[u + 1] - h_f_off[u] <= h_x_len[u] / QASR_HOP);
        const int64_t lo = (int64_t)QASR_HOP * a - QASR_N_FFT / 2, hi = (int64_t)QASR_HOP * b + QASR_N_FFT / 2;
        rd += (double)((hi < h_x_len[u] ? hi : h_x_len[u]) - (lo > 0 ? lo : 1)) * sizeof(float) + 2 * sizeof(int64_t);
    }
    CUEMU_COST(rd, (double)nf * QASR_N_FFT * sizeof(float), 2.0 * nf * QASR_N_FFT);
    CUEMU_LAUNCH(nf < MAX_BLOCKS ? nf : MAX_BLOCKS, BLOCK, 0, stream, mel_frames_kernel)(frames, x, x_off, x_len,
                                                                                        f_off, n, f0, nf);
    return cudaGetLastError();
}

/* grid: ceil(T*201 / BLOCK) capped; block: BLOCK; grid-stride over bins, one bin per step. */
__global__ void mel_power_kernel(float *power, /* [T*201] */ const float2 *spec, /* [T*201] */ int64_t bins)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < bins; i += (int64_t)gridDim.x * blockDim.x) {
        const float2 z = spec[i];
        power[i] = z.x * z.x + z.y * z.y;
    }
}

extern "C" cudaError_t cuda_mel_power(float *power, const float *spec, int T, cudaStream_t stream)
{
    SHAPE_ASSERT(T >= 1 && ((uintptr_t)spec & 7) == 0);
    const int64_t bins = (int64_t)T * QASR_N_FREQ;
    CUEMU_COST(bins * 2 * sizeof(float), bins * sizeof(float), 3.0 * bins);
    CUEMU_LAUNCH(grid_blocks(bins), BLOCK, 0, stream, mel_power_kernel)(
        power, reinterpret_cast<const float2 *>(spec), bins);
    return cudaGetLastError();
}

/* Blocks per utterance of the log and finish kernels: enough to spread the longest utterance
 * (16 elements a thread), at most MEL_MAX_SEG_BLOCKS so one warp reduces the partial maxima. */
static unsigned seg_blocks(int max_frames, int n_mels)
{
    const int64_t b = CEIL_DIV((int64_t)max_frames * n_mels, (int64_t)BLOCK * 16);
    return (unsigned)(b < MEL_MAX_SEG_BLOCKS ? b : MEL_MAX_SEG_BLOCKS);
}

/* grid: (B, n), B = seg_blocks; block: BLOCK. Block (b, u) strides over utterance u's energies
 * in place, then stores the largest log it made in partial[u][b] (warp shuffles, one shared value
 * per warp). Every block stores its slot (-inf when it had no element): no atomics, no
 * initialisation, and the finish kernel's maximum is the same whatever the block order. */
__global__ void mel_log_kernel(float *mel, /* [F][n_mels] */ const int *f_off, int n_mels,
                               float *partial /* [n][MEL_MAX_SEG_BLOCKS] */)
{
    __shared__ float warp_max[BLOCK / 32];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, u = blockIdx.y;
    const int64_t end = (int64_t)f_off[u + 1] * n_mels;
    float m = -INFINITY;
    for (int64_t i = (int64_t)f_off[u] * n_mels + (int64_t)blockIdx.x * BLOCK + tid; i < end;
         i += (int64_t)gridDim.x * BLOCK) {
        const float l = log10f(fmaxf(mel[i], 1e-10f));
        mel[i] = l;
        m = fmaxf(m, l);
    }
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(FULL_MASK, m, o));
    if (lane == 0) warp_max[warp] = m;
    __syncthreads();
    if (warp == 0) {
        m = lane < BLOCK / 32 ? warp_max[lane] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(FULL_MASK, m, o));
        if (lane == 0) partial[(size_t)u * MEL_MAX_SEG_BLOCKS + blockIdx.x] = m;
    }
}

extern "C" cudaError_t cuda_mel_log(float *mel, const int *f_off, int n, int n_mels, int total_frames,
                                    int max_frames, float *partial, cudaStream_t stream)
{
    SHAPE_ASSERT(n >= 1 && n <= 65535 && n_mels >= 1 && max_frames >= 1 && total_frames >= max_frames);
    const unsigned B = seg_blocks(max_frames, n_mels);
    const double e = (double)total_frames * n_mels;
    CUEMU_COST(e * sizeof(float) + (n + 1) * sizeof(int), e * sizeof(float) + (double)n * B * sizeof(float), 20.0 * e);
    CUEMU_LAUNCH(dim3(B, n), BLOCK, 0, stream, mel_log_kernel)(mel, f_off, n_mels, partial);
    return cudaGetLastError();
}

/* grid: (B, n) as mel_log_kernel; block: BLOCK. Each warp reduces utterance u's B partial maxima
 * itself (one lane each, shuffles), then block (b, u) strides over u's logs. */
__global__ void mel_finish_kernel(bf16 *const *outs, /* [n] -> [T_u][n_mels] */ const float *mel, const int *f_off,
                                  int n_mels, const float *partial)
{
    const int tid = threadIdx.x, lane = tid % 32, u = blockIdx.y;
    float g = lane < (int)gridDim.x ? partial[(size_t)u * MEL_MAX_SEG_BLOCKS + lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) g = fmaxf(g, __shfl_xor_sync(FULL_MASK, g, o));
    const float floor_val = g - 8.0f; /* at most 8 decades below the utterance's loudest bin */
    const int64_t base = (int64_t)f_off[u] * n_mels, len = (int64_t)f_off[u + 1] * n_mels - base;
    bf16 *out = outs[u];
    for (int64_t i = (int64_t)blockIdx.x * BLOCK + tid; i < len; i += (int64_t)gridDim.x * BLOCK)
        out[i] = __float2bfloat16_rn((fmaxf(mel[base + i], floor_val) + 4.0f) / 4.0f);
}

extern "C" cudaError_t cuda_mel_finish(bf16_t *const *outs, const float *mel, const int *f_off, int n, int n_mels,
                                       int total_frames, int max_frames, const float *partial, cudaStream_t stream)
{
    SHAPE_ASSERT(n >= 1 && n <= 65535 && n_mels >= 1 && max_frames >= 1 && total_frames >= max_frames);
    const unsigned B = seg_blocks(max_frames, n_mels);
    const double e = (double)total_frames * n_mels;
    CUEMU_COST(e * sizeof(float) + (double)n * B * sizeof(float) + (n + 1) * sizeof(int) + n * sizeof(void *),
               e * sizeof(bf16_t), 3.0 * e);
    CUEMU_LAUNCH(dim3(B, n), BLOCK, 0, stream, mel_finish_kernel)(reinterpret_cast<bf16 *const *>(outs), mel, f_off,
                                                                  n_mels, partial);
    return cudaGetLastError();
}
