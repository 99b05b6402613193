/* Log-mel front end on the GPU (MODEL.md section 4), around two library calls made by the host:
 *   cuda_mel_frames -> cuFFT R2C (n = 400, batched over frames) -> cuda_mel_power
 *   -> cuBLAS fp32 GEMM with the filterbank [201][n_mels] -> cuda_mel_log -> cuda_mel_finish.
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

/* grid: min(T, MAX_BLOCKS); block: BLOCK; blocks stride over frames, thread tid over the samples
 * tid + k BLOCK of a frame, whose window values it computes once and keeps in registers. */
__global__ void mel_frames_kernel(float *frames, /* [T][400] */ const float *x, /* [n] */ int64_t n, int t0, int T)
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
    for (int f = blockIdx.x; f < T; f += gridDim.x) {
        const int64_t start = (int64_t)(t0 + f) * QASR_HOP - QASR_N_FFT / 2; /* frame t is centred on x[160 t] */
        for (int k = 0; k < K; k++) {
            const int i = tid + k * BLOCK;
            if (i >= QASR_N_FFT) break;
            int64_t s = start + i;
            if (s < 0) s = -s;                    /* mirror around x[0], not repeating it */
            else if (s >= n) s = 2 * (n - 1) - s; /* mirror around x[n-1] */
            frames[(size_t)f * QASR_N_FFT + i] = window[k] * x[s];
        }
    }
}

extern "C" cudaError_t cuda_mel_frames(float *frames, const float *x, int64_t n, int t0, int T, cudaStream_t stream)
{
    /* the left reflection reads x[1..200]; frames past n / 160 would reflect beyond x[0] */
    SHAPE_ASSERT(n >= QASR_N_FFT / 2 + 1 && t0 >= 0 && T >= 1 && t0 + (int64_t)T <= n / QASR_HOP);
    /* samples 160 t - 200 .. 160 t + 199 of frames t0 .. t0 + T - 1, reflected inside x */
    const int64_t lo = (int64_t)QASR_HOP * t0 - QASR_N_FFT / 2, hi = (int64_t)QASR_HOP * (t0 + T - 1) + QASR_N_FFT / 2;
    const int64_t span = (hi < n ? hi : n) - (lo > 0 ? lo : 1);
    CUEMU_COST(span * sizeof(float), (double)T * QASR_N_FFT * sizeof(float), 2.0 * T * QASR_N_FFT);
    CUEMU_LAUNCH(T < MAX_BLOCKS ? T : MAX_BLOCKS, BLOCK, 0, stream, mel_frames_kernel)(frames, x, n, t0, T);
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

/* grid: 1; block: 32. */
__global__ void mel_max_init_kernel(float *max_out)
{
    if (threadIdx.x == 0) *max_out = -INFINITY;
}

/* grid: ceil(n / BLOCK) capped; block: BLOCK; grid-stride over the energies, in place; then the
 * block's maximum (warp shuffles, one shared value per warp) is merged into *max_out by thread 0
 * with a compare-and-swap loop (CUDA has no float atomicMax). The loop's first guess is -inf,
 * the value mel_max_init_kernel stores, not a plain load of *max_out: that load would race with
 * the other blocks' atomics (a data race in the CUDA memory model, reported by the emulation's
 * race detector); a failed compare-and-swap returns the current value instead. */
__global__ void mel_log_kernel(float *mel, /* [n] */ int64_t n, float *max_out)
{
    __shared__ float warp_max[BLOCK / 32];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    float m = -INFINITY;
    for (int64_t i = (int64_t)blockIdx.x * BLOCK + tid; i < n; i += (int64_t)gridDim.x * BLOCK) {
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
        if (lane == 0) {
            unsigned *bits = reinterpret_cast<unsigned *>(max_out);
            unsigned old = __float_as_uint(-INFINITY);
            while (__uint_as_float(old) < m) {
                const unsigned assumed = old;
                old = atomicCAS(bits, assumed, __float_as_uint(m));
                if (old == assumed) break;
            }
        }
    }
}

extern "C" cudaError_t cuda_mel_log(float *mel, int64_t n, float *max_out, cudaStream_t stream)
{
    SHAPE_ASSERT(n >= 1);
    CUEMU_COST(0, sizeof(float), 0);
    CUEMU_LAUNCH(1, 32, 0, stream, mel_max_init_kernel)(max_out);
    CUEMU_COST((n + 1) * sizeof(float), (n + 1) * sizeof(float), 20.0 * n); /* + the atomic max */
    CUEMU_LAUNCH(grid_blocks(n), BLOCK, 0, stream, mel_log_kernel)(mel, n, max_out);
    return cudaGetLastError();
}

/* grid: ceil(n / BLOCK) capped; block: BLOCK; grid-stride, one element per step. */
__global__ void mel_finish_kernel(bf16 *out, /* [n] */ const float *mel, /* [n] */ int64_t n, const float *max)
{
    const float floor_val = *max - 8.0f; /* at most 8 decades below the loudest bin */
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn((fmaxf(mel[i], floor_val) + 4.0f) / 4.0f);
}

extern "C" cudaError_t cuda_mel_finish(bf16_t *out, const float *mel, int64_t n, const float *max,
                                       cudaStream_t stream)
{
    SHAPE_ASSERT(n >= 1);
    CUEMU_COST((n + 1) * sizeof(float), n * sizeof(bf16_t), 3.0 * n);
    CUEMU_LAUNCH(grid_blocks(n), BLOCK, 0, stream, mel_finish_kernel)(reinterpret_cast<bf16 *>(out), mel, n, max);
    return cudaGetLastError();
}
