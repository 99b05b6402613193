/* Audio input: decode any file libsndfile reads (and, where built with it, any FFmpeg reads),
 * downmix to mono, resample to 16 kHz with
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

/* A file read in pieces, for files too long to hold: audio_stream_open decodes it once to learn
 * its length and peak (conditioning divides by the whole file's peak), keeping the samples only
 * if there are at most keep of them; audio_stream_read then decodes it a second time. The
 * samples are those audio_load returns, bit for bit, whatever the read sizes.
 * open: NULL + qasr_fail() on any failure audio_load reports; warning as audio_load's. */
typedef struct audio_stream audio_stream_t;
audio_stream_t *audio_stream_open(const char *path, int64_t keep, char **warning);
int64_t audio_stream_length(const audio_stream_t *st); /* 16 kHz samples in all */
/* The kept samples (malloc'd, the caller's now), or NULL when the file was too long to keep. */
float *audio_stream_take(audio_stream_t *st);
/* The next up to max samples into out: how many (0 at the end), or -1 + qasr_fail() naming the
 * file (a decode error, or the file changed since the first pass). */
int64_t audio_stream_read(audio_stream_t *st, float *out, int64_t max);
void audio_stream_close(audio_stream_t *st);

/* Duration in seconds from the file header only (cheap; no decoding). -1 + qasr_fail(),
 * also when the header does not give the length or it is zero. */
int audio_probe_duration(const char *path, double *seconds);

/* The decoders that read a file, chosen once for the process (the command line's
 * --audio-decoder; default auto): "auto" libsndfile, then FFmpeg for the files libsndfile cannot
 * open; "sndfile" libsndfile only; "ffmpeg" FFmpeg only. -1 + qasr_fail() for another name, or
 * ffmpeg in a build without it. Process-wide like audio_show_library_messages: one run reads all
 * its files one way, and audio_load and audio_stream_open keep their signatures. */
enum { AUDIO_DECODER_AUTO, AUDIO_DECODER_SNDFILE, AUDIO_DECODER_FFMPEG };
int audio_set_decoder(const char *name);
/* Which audio stream of a file is read (--audio-stream N; default "0", the first): counted among
 * the file's audio streams only, as ffmpeg's -map 0:a:N. A file with fewer fails with "no audio
 * stream N (the file has K)". -1 + qasr_fail() when arg is not a stream number. */
int audio_set_stream(const char *arg);
/* "libsndfile-1.2.0, then FFmpeg 5.1.x (...)", or what a build without FFmpeg lacks: for -v and
 * --help. */
const char *audio_decoders_describe(void);

/* Whether the decoding libraries' own messages reach stderr (default: no; qasr says what matters
 * about each file itself). mpg123_hooks.c: libmpg123's, for MP3; FFmpeg's log lines, which are
 * shown as "PROGRAM: FFmpeg CONTEXT: line" (warnings and errors only). */
void audio_show_library_messages(int show);

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
