/* CPU log-mel spectrogram (spec section 4), following transformers 4.57.6
 * WhisperFeatureExtractor._torch_extract_fbank_features and audio_utils.mel_filter_bank
 * operation by operation: float32 signal, window, FFT and mel energies; float64 filterbank. */
#include "mel.h"
#include "audio.h"
#include "util.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>

#define PAD (QASR_N_FFT / 2)
#define MIN_SAMPLES (PAD + 1) /* the left reflection reads x[1..200] */

struct mel {
    int n_mels;
    float *filters;            /* [QASR_N_FREQ][n_mels], the layout mel_filters() hands out */
    float *bank;               /* [n_mels][QASR_N_FREQ], the same weights filter-major */
    int *lo, *hi;              /* [n_mels] each filter's nonzero bins are [lo, hi) */
    float window[QASR_N_FFT];  /* periodic Hann */
    fftwf_plan plan;           /* r2c, 400 -> 201; executed only with new arrays */
};

/* Slaney mel scale: linear below 1 kHz, logarithmic above (constants as in transformers). */
static double hz_to_mel(double f)
{
    if (f < 1000.0) return 3.0 * f / 200.0;
    return 15.0 + log(f / 1000.0) * (27.0 / log(6.4));
}

static double mel_to_hz(double m)
{
    if (m < 15.0) return 200.0 * m / 3.0;
    return 1000.0 * exp(log(6.4) / 27.0 * (m - 15.0));
}

/* Triangles between n_mels + 2 edges equally spaced in mel over 0..8000 Hz, each scaled by
 * 2 / (upper - lower edge) (Slaney: unit area), computed in double then cast to float. */
static void build_filters(mel_t *m)
{
    int M = m->n_mels;
    double *edges = xmalloc(sizeof(double) * (size_t)(M + 2));
    double mel_max = hz_to_mel(QASR_SAMPLE_RATE / 2.0);
    double step = mel_max / (M + 1); /* np.linspace: i * step, last edge exactly mel_max */
    for (int i = 0; i < M + 2; i++) edges[i] = mel_to_hz(i == M + 1 ? mel_max : i * step);

    for (int j = 0; j < M; j++) {
        double f0 = edges[j], f1 = edges[j + 1], f2 = edges[j + 2];
        m->lo[j] = QASR_N_FREQ;
        m->hi[j] = 0;
        for (int k = 0; k < QASR_N_FREQ; k++) {
            double c = k * (QASR_SAMPLE_RATE / 2.0 / (QASR_N_FREQ - 1)); /* 40 k Hz */
            double w = fmax(0.0, fmin((c - f0) / (f1 - f0), (f2 - c) / (f2 - f1)));
            float wf = (float)(w * (2.0 / (f2 - f0)));
            m->filters[(size_t)k * M + j] = wf;
            m->bank[(size_t)j * QASR_N_FREQ + k] = wf;
            if (wf != 0.0f) {
                m->lo[j] = MIN(m->lo[j], k);
                m->hi[j] = k + 1;
            }
        }
        if (m->hi[j] == 0) m->lo[j] = 0; /* empty filter (only with very many mels) */
    }
    free(edges);
}

mel_t *mel_init(int n_mels)
{
    QASR_ASSERT(n_mels > 0);
    mel_t *m = xcalloc(1, sizeof *m);
    m->n_mels = n_mels;
    m->filters = xmalloc(sizeof(float) * QASR_N_FREQ * (size_t)n_mels);
    m->bank = xmalloc(sizeof(float) * QASR_N_FREQ * (size_t)n_mels);
    m->lo = xmalloc(sizeof(int) * (size_t)n_mels);
    m->hi = xmalloc(sizeof(int) * (size_t)n_mels);
    build_filters(m);
    for (int n = 0; n < QASR_N_FFT; n++)
        m->window[n] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * n / QASR_N_FFT));

    /* Planned on fftwf_malloc'd arrays so that mel_compute's fftwf_malloc'd buffers have the
     * alignment the plan expects. */
    float *in = fftwf_malloc(sizeof(float) * QASR_N_FFT);
    fftwf_complex *out = fftwf_malloc(sizeof(fftwf_complex) * QASR_N_FREQ);
    m->plan = fftwf_plan_dft_r2c_1d(QASR_N_FFT, in, out, FFTW_ESTIMATE);
    fftwf_free(in);
    fftwf_free(out);
    QASR_ASSERT(m->plan);
    return m;
}

void mel_free(mel_t *m)
{
    if (!m) return;
    fftwf_destroy_plan(m->plan);
    free(m->filters);
    free(m->bank);
    free(m->lo);
    free(m->hi);
    free(m);
}

int64_t mel_frames(int64_t n_samples)
{
    return n_samples < MIN_SAMPLES ? 0 : n_samples / QASR_HOP;
}

const float *mel_filters(const mel_t *m) { return m->filters; }
int mel_n_mels(const mel_t *m) { return m->n_mels; }

/* power[k] = |FFT(window * frame t of the reflect-padded x)|^2, k = 0..200. */
static void frame_power(const mel_t *m, const float *x, int64_t n, int64_t t, float *frame,
                        fftwf_complex *spec, float *power)
{
    int64_t start = t * QASR_HOP - PAD; /* frame t is centred on x[160 t] */
    for (int i = 0; i < QASR_N_FFT; i++) {
        int64_t s = start + i;
        if (s < 0) s = -s;                    /* mirror around x[0], not repeating it */
        else if (s >= n) s = 2 * (n - 1) - s; /* mirror around x[n-1] */
        frame[i] = m->window[i] * x[s];
    }
    fftwf_execute_dft_r2c(m->plan, frame, spec);
    for (int k = 0; k < QASR_N_FREQ; k++)
        power[k] = spec[k][0] * spec[k][0] + spec[k][1] * spec[k][1];
}

int mel_compute(const mel_t *m, const float *x, int64_t n, float *out)
{
    if (n < MIN_SAMPLES)
        return qasr_fail("audio too short: %lld samples (the mel frontend needs at least %d)",
                         (long long)n, MIN_SAMPLES);
    int64_t T = mel_frames(n);
    int M = m->n_mels;
    float log_max = -INFINITY;

    /* Frames are independent: each thread has its own FFT buffers; max is order-free, so the
     * result does not depend on the thread count. */
#pragma omp parallel if (T >= 256) reduction(max : log_max)
    {
        float *frame = fftwf_malloc(sizeof(float) * QASR_N_FFT);
        fftwf_complex *spec = fftwf_malloc(sizeof(fftwf_complex) * QASR_N_FREQ);
        float power[QASR_N_FREQ];
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            frame_power(m, x, n, t, frame, spec, power);
            for (int j = 0; j < M; j++) {
                const float *w = m->bank + (size_t)j * QASR_N_FREQ;
                float e = 0.0f;
                for (int k = m->lo[j]; k < m->hi[j]; k++) e += w[k] * power[k];
                float l = log10f(fmaxf(e, 1e-10f));
                out[j * T + t] = l;
                log_max = fmaxf(log_max, l);
            }
        }
        fftwf_free(frame);
        fftwf_free(spec);
    }

    /* Dynamic range: at most 8 decades below the loudest bin of this utterance. */
    float floor_val = log_max - 8.0f;
    for (int64_t i = 0; i < (int64_t)M * T; i++) out[i] = (fmaxf(out[i], floor_val) + 4.0f) / 4.0f;
    return 0;
}
