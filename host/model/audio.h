/* Audio input: decode any file libsndfile reads, downmix to mono, resample to 16 kHz with
 * libsoxr (high quality), then condition as the official wrapper does (spec section 3):
 * if max|x| > 1 divide by max|x|, then clip to [-1, 1]. No other gain, no DC removal. */
#ifndef QASR_AUDIO_H
#define QASR_AUDIO_H

#include <stdint.h>

#define QASR_SAMPLE_RATE 16000

/* Decode path into *samples (malloc'd float32, 16 kHz mono, conditioned; caller frees) and
 * *n_samples. -1 + qasr_fail() message naming the file and the problem on any failure
 * (missing, unreadable, unsupported or corrupt file, not a regular file, zero samples).
 * warning (optional): set to a malloc'd message naming the file when what was decoded is
 * shorter than the file's header promised (a file cut short: the samples there are returned),
 * else NULL. */
int audio_load(const char *path, float **samples, int64_t *n_samples, char **warning);

/* Duration in seconds from the file header only (cheap; no decoding). -1 + qasr_fail(),
 * also when the header does not give the length or it is zero. */
int audio_probe_duration(const char *path, double *seconds);

/* Downmix interleaved frames [n_frames][channels] to mono by averaging (in place allowed
 * with out == in). */
void audio_downmix(float *out, const float *in, int64_t n_frames, int channels);

/* Resample mono float32 from rate_in to 16 kHz (libsoxr, SOXR_HQ). Returns malloc'd buffer
 * and its length in *n_out, or NULL + qasr_fail(). rate_in == 16000 returns a copy.
 * Length as librosa.resample (the official wrapper) gives it: ceil(n * 16000 / rate_in),
 * soxr's output zero-padded by at most one sample. */
float *audio_resample_16k(const float *in, int64_t n_in, double rate_in, int64_t *n_out);

/* Peak handling of spec section 3 step 4, in place. */
void audio_condition(float *x, int64_t n);

#endif
