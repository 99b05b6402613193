/* mel.c against a naive float64 reference written from spec section 4: explicit reflect
 * padding, explicit 400-point DFT sum, filterbank from the 4.3 formulas. */
#include "mel.h"
#include "test.h"
#include "util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

/* Filterbank straight from spec 4.3: W[k][j] for n_mels filters ([201][n_mels]). */
static double *ref_filters(int n_mels, double *edges /* [n_mels + 2] */)
{
    double *w = calloc((size_t)QASR_N_FREQ * (size_t)n_mels, sizeof *w);
    double mel_max = 15.0 + log(8000.0 / 1000.0) * 27.0 / log(6.4);
    for (int i = 0; i < n_mels + 2; i++) {
        double mel = mel_max * i / (n_mels + 1);
        edges[i] = mel < 15.0 ? 200.0 * mel / 3.0 : 1000.0 * exp((mel - 15.0) * log(6.4) / 27.0);
    }
    for (int k = 0; k < QASR_N_FREQ; k++) {
        double c = 40.0 * k;
        for (int j = 0; j < n_mels; j++) {
            double up = (c - edges[j]) / (edges[j + 1] - edges[j]);
            double down = (edges[j + 2] - c) / (edges[j + 2] - edges[j + 1]);
            double tri = fmax(0.0, fmin(up, down));
            w[k * n_mels + j] = tri * 2.0 / (edges[j + 2] - edges[j]);
        }
    }
    return w;
}

/* Normalised log-mel [n_mels][N / 160], all in double. *ratio gets, per element, the frame's
 * loudest mel amplitude over this element's (both floored at G - 8): sqrt of the power ratio. */
static double *ref_mel(const float *x, int64_t N, int n_mels, double **ratio)
{
    double *edges = malloc(sizeof(double) * (n_mels + 2));
    double *W = ref_filters(n_mels, edges);
    int64_t T = N / 160;
    double *xpad = malloc(sizeof(double) * (N + 400));
    for (int j = 0; j < 200; j++) xpad[j] = x[200 - j];
    for (int64_t i = 0; i < N; i++) xpad[200 + i] = x[i];
    for (int i = 0; i < 200; i++) xpad[200 + N + i] = x[N - 2 - i];
    double cos_t[400], sin_t[400], win[400];
    for (int i = 0; i < 400; i++) {
        cos_t[i] = cos(2.0 * M_PI * i / 400);
        sin_t[i] = sin(2.0 * M_PI * i / 400);
        win[i] = 0.5 - 0.5 * cos(2.0 * M_PI * i / 400);
    }
    double *L = malloc(sizeof(double) * n_mels * T);
    double G = -INFINITY;
    for (int64_t t = 0; t < T; t++) {
        double P[QASR_N_FREQ];
        for (int k = 0; k < QASR_N_FREQ; k++) {
            double re = 0, im = 0;
            for (int n = 0; n < 400; n++) {
                double v = win[n] * xpad[160 * t + n];
                re += v * cos_t[(k * n) % 400];
                im -= v * sin_t[(k * n) % 400];
            }
            P[k] = re * re + im * im;
        }
        for (int j = 0; j < n_mels; j++) {
            double e = 0;
            for (int k = 0; k < QASR_N_FREQ; k++) e += W[k * n_mels + j] * P[k];
            double l = log10(fmax(e, 1e-10));
            L[j * T + t] = l;
            G = fmax(G, l);
        }
    }
    double *R = malloc(sizeof(double) * n_mels * T);
    for (int64_t t = 0; t < T; t++) {
        double frame_max = -INFINITY;
        for (int j = 0; j < n_mels; j++) frame_max = fmax(frame_max, L[j * T + t]);
        for (int j = 0; j < n_mels; j++)
            R[j * T + t] = pow(10.0, (fmax(frame_max, G - 8.0) - fmax(L[j * T + t], G - 8.0)) / 2);
    }
    for (int64_t i = 0; i < n_mels * T; i++) L[i] = (fmax(L[i], G - 8.0) + 4.0) / 4.0;
    *ratio = R;
    free(edges);
    free(W);
    free(xpad);
    return L;
}

/* Compares mel_compute with the reference; returns the largest error relative to the fp32
 * rounding it can carry. The fp32 FFT's error is about eps32 times the frame's loudest
 * amplitude, so a mel bin r times quieter in amplitude (ratio from ref_mel) carries r times its
 * relative error; in normalised log-mel units that is about 1e-7 * r (measured: <= 1e-7 * r).
 * The frame's loudest bins (r = 1) are therefore held to 1e-6 and a bin at the -80 dB floor
 * (r = 1e4) to 1e-2. */
static double compare(const mel_t *m, const float *x, int64_t N, const char *what)
{
    int M = mel_n_mels(m);
    int64_t T = mel_frames(N);
    CHECK_INT_EQ(T, N / 160);
    float *out = malloc(sizeof(float) * M * (T ? T : 1));
    CHECK_INT_EQ(mel_compute(m, x, N, out), 0);
    double *ratio;
    double *ref = ref_mel(x, N, M, &ratio);
    double worst = 0, worst_scaled = 0;
    for (int64_t i = 0; i < M * T; i++) {
        double err = fabs(out[i] - ref[i]);
        worst = fmax(worst, err);
        worst_scaled = fmax(worst_scaled, err / ratio[i]);
    }
    printf("%-26s N=%-6lld T=%-3lld mels=%-3d max |mel - ref| = %.2g, max |mel - ref| / r = %.2g\n",
           what, (long long)N, (long long)T, M, worst, worst_scaled);
    free(out);
    free(ref);
    free(ratio);
    return worst_scaled;
}

static uint32_t rng = 12345;
static float noise(void) /* uniform in [-1, 1) */
{
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) * (2.0 / 16777216.0) - 1.0);
}

#define TOL 1e-6

static void test_signals(const mel_t *m)
{
    int64_t N = 16000;
    float *x = malloc(sizeof(float) * 40000);

    for (int64_t i = 0; i < N; i++) x[i] = 0.5f * (float)sin(2 * M_PI * 440.0 * i / 16000.0);
    CHECK(compare(m, x, N, "sine 440 Hz") <= TOL);

    for (int64_t i = 0; i < 12345; i++) x[i] = noise();
    CHECK(compare(m, x, 12345, "noise, N % 160 != 0") <= TOL);

    /* Impulses within the reflected margins: the padding is visible in the first/last frames. */
    for (int64_t i = 0; i < 2000; i++) x[i] = 0.0f;
    x[3] = 1.0f;
    x[150] = 0.25f;
    x[1995] = -0.7f;
    CHECK(compare(m, x, 2000, "impulses near both edges") <= TOL);

    for (int i = 0; i < 201; i++) x[i] = noise();
    CHECK(compare(m, x, 201, "noise, N = 201 (minimum)") <= TOL);
    for (int i = 0; i < 400; i++) x[i] = noise();
    CHECK(compare(m, x, 400, "noise, N = 400") <= TOL);

    /* Speech-like: a decaying chirp with a quiet noise floor over a long span. */
    for (int64_t i = 0; i < 40000; i++) {
        double s = i / 16000.0;
        x[i] = (float)(0.8 * exp(-s) * sin(2 * M_PI * (100 + 1500 * s) * s) + 1e-3 * noise());
    }
    CHECK(compare(m, x, 40000, "chirp + noise") <= TOL);
    free(x);
}

static void test_zero_and_short(const mel_t *m)
{
    float x[3200] = {0};
    float out[128 * 20];
    CHECK_INT_EQ(mel_compute(m, x, 3200, out), 0);
    int all = 1;
    for (int i = 0; i < 128 * 20; i++) all &= out[i] == -1.5f;
    CHECK(all); /* spec 4.4: all-zero input gives -1.5 everywhere */

    CHECK_INT_EQ(mel_frames(200), 0);
    CHECK_INT_EQ(mel_frames(201), 1);
    CHECK_INT_EQ(mel_frames(16000), 100);
    CHECK_INT_EQ(mel_frames(480000), 3000);
    CHECK_INT_EQ(mel_frames(480159), 3000);
    CHECK_INT_EQ(mel_frames((int64_t)1 << 40), ((int64_t)1 << 40) / 160);
    CHECK_INT_EQ(mel_compute(m, x, 200, out), -1);
    CHECK(strstr(qasr_last_error(), "too short") && strstr(qasr_last_error(), "200"));
    CHECK_INT_EQ(mel_compute(m, x, 0, out), -1);
}

/* The filterbank handed out must be spec 4.3, and must have the Slaney properties. */
static void test_filters(int n_mels)
{
    mel_t *m = mel_init(n_mels);
    const float *F = mel_filters(m);
    double *edges = malloc(sizeof(double) * (n_mels + 2));
    double *W = ref_filters(n_mels, edges);
    CHECK_INT_EQ(mel_n_mels(m), n_mels);
    CHECK_NEAR(15.0 + log(8.0) * 27.0 / log(6.4), 45.245640471924965, 1e-12, 0); /* m(8000) */
    CHECK_NEAR(edges[n_mels + 1], 8000.0, 1e-9, 0);

    double worst = 0;
    int support_ok = 1, peak_ok = 1, area_ok = 1, n_area = 0;
    for (int j = 0; j < n_mels; j++) {
        double lo = edges[j], mid = edges[j + 1], hi = edges[j + 2];
        int best = -1;
        double area = 0;
        for (int k = 0; k < QASR_N_FREQ; k++) {
            double f = F[k * n_mels + j], c = 40.0 * k;
            worst = fmax(worst, fabs(f - W[k * n_mels + j]) / (2.0 / (hi - lo)));
            support_ok &= (f > 0) == (c > lo && c < hi); /* nonzero exactly strictly inside */
            if (f > 0 && (best < 0 || f > F[best * n_mels + j])) best = k;
            area += f * 40.0;
        }
        /* Peak: one of the two bins around the centre frequency. */
        peak_ok &= best >= 0 && fabs(40.0 * best - mid) < 40.0;
        /* Slaney normalisation makes each continuous triangle's area 1. The bin sum (spacing
         * d = 40 Hz) misses it only through the three kinks: by at most d^2 / (2 a b) for
         * half-widths a, b (trapezoid error). Checked where every kink has its own bin interval;
         * an unnormalised or wrongly normalised filter is off by a factor of >= 2. */
        double a = mid - lo, b = hi - mid;
        if (a >= 80 && b >= 80) {
            n_area++;
            if (fabs(area - 1.0) > 1600.0 / (2 * a * b) + 1e-6) {
                area_ok = 0;
                fprintf(stderr, "filter %d: area %.6f (a=%.1f b=%.1f)\n", j, area, a, b);
            }
        }
    }
    printf("filters n_mels=%d: max |F - ref| / peak = %.3g, area checked on %d filters\n",
           n_mels, worst, n_area);
    CHECK(worst < 1e-6);
    CHECK(support_ok);
    CHECK(peak_ok);
    CHECK(area_ok);
    CHECK(n_area >= 30);
    free(edges);
    free(W);
    mel_free(m);
}

/* mel_compute must give the same bits on one thread as on several. */
static void test_repeatable(const mel_t *m)
{
    int64_t N = 160 * 700 + 77;
    float *x = malloc(sizeof(float) * N);
    for (int64_t i = 0; i < N; i++) x[i] = noise() * (float)(i % 3000) / 3000.0f;
    int64_t T = mel_frames(N);
    float *a = malloc(sizeof(float) * 128 * T), *b = malloc(sizeof(float) * 128 * T);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK_INT_EQ(mel_compute(m, x, N, a), 0);
    omp_set_num_threads(MAX(threads, 3));
    CHECK_INT_EQ(mel_compute(m, x, N, b), 0);
    omp_set_num_threads(threads);
    CHECK(memcmp(a, b, sizeof(float) * 128 * T) == 0);
    CHECK(compare(m, x, N, "noise ramps, threaded") <= TOL);
    free(x);
    free(a);
    free(b);
}

int main(void)
{
    test_filters(128);
    test_filters(80);
    mel_t *m = mel_init(128);
    test_signals(m);
    test_zero_and_short(m);
    test_repeatable(m);
    mel_free(m);

    mel_t *m80 = mel_init(80);
    float x[8000];
    for (int i = 0; i < 8000; i++) x[i] = noise() * 0.1f + 0.3f * (float)sin(i * 0.3);
    CHECK(compare(m80, x, 8000, "80 mels") <= TOL);
    mel_free(m80);
    return test_result("test_mel");
}
