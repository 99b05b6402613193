/* CPU log-mel spectrogram, exactly the official WhisperFeatureExtractor path (spec section 4):
 * reflect-pad 200 samples each side, periodic Hann(400), |FFT_400|^2 of frames every 160
 * samples, the last STFT frame dropped (T = N // 160), n_mels-bin (128) Slaney-scale Slaney-normalised
 * filterbank (float64 construction cast to float32), log10(max(x, 1e-10)), floor at
 * (utterance max - 8), then (x + 4) / 4. Output layout [n_mels][T] (mel-major), float32.
 * This is the reference for the CUDA mel kernel. */
#ifndef QASR_MEL_H
#define QASR_MEL_H

#include <stdint.h>

#include "audio.h" /* QASR_SAMPLE_RATE */

#define QASR_N_FFT 400
#define QASR_HOP 160 /* samples per mel frame: 10 ms at QASR_SAMPLE_RATE */
#define QASR_N_FREQ (QASR_N_FFT / 2 + 1)
#define MEL_MIN_SAMPLES (QASR_N_FFT / 2 + 1) /* reflect padding by n_fft / 2 needs this many */

typedef struct mel mel_t;

/* Builds the filterbank, window and an FFTW plan (plan creation is not thread-safe: call
 * from one thread; mel_compute may then be called concurrently on the same mel_t). */
mel_t *mel_init(int n_mels);
void mel_free(mel_t *m);

/* Frames for n samples: n / QASR_HOP (0 when n < MEL_MIN_SAMPLES). */
int64_t mel_frames(int64_t n_samples);

/* out: [n_mels][mel_frames(n)]. Returns 0, or -1 + qasr_fail() if n < MEL_MIN_SAMPLES. */
int mel_compute(const mel_t *m, const float *x, int64_t n, float *out);

/* The filterbank as float32 [QASR_N_FREQ][n_mels] (row k = FFT bin k), owned by m. */
const float *mel_filters(const mel_t *m);
int mel_n_mels(const mel_t *m);

#endif
