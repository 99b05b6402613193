/* Audio input, mirroring the official wrapper (spec section 3), which runs
 * librosa.load(sr=None, mono=False) -> to_mono -> librosa.resample(res_type="soxr_hq") ->
 * float_range_normalize. A decoder (decode.h: libsndfile, FFmpeg) gives blocks of frames,
 * libsoxr resamples.
 *
 * Decoder order (audio_set_decoder): libsndfile first, FFmpeg for the files libsndfile cannot
 * open. librosa.load does the same (soundfile, i.e. libsndfile, first; audioread/ffmpeg only as
 * its fallback), so WAV, FLAC, Ogg and MP3 give the reference's samples bit for bit, and
 * libsndfile's messages for its formats stay as they were. */
#include "audio.h"
#include "decode.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_FRAMES 65536 /* frames per block read */

/* Process-wide choices of the command line (audio_set_decoder, audio_set_stream). */
static int decoder_order = AUDIO_DECODER_AUTO;
static int stream_index;

int audio_set_decoder(const char *name)
{
    int order;
    if (!strcmp(name, "auto")) order = AUDIO_DECODER_AUTO;
    else if (!strcmp(name, "sndfile")) order = AUDIO_DECODER_SNDFILE;
    else if (!strcmp(name, "ffmpeg")) order = AUDIO_DECODER_FFMPEG;
    else return qasr_fail("audio-decoder '%s': expected auto, sndfile or ffmpeg", name);
    if (order == AUDIO_DECODER_FFMPEG && !ffmpeg_describe())
        return qasr_fail("audio-decoder ffmpeg: %s", ffmpeg_unavailable());
    __atomic_store_n(&decoder_order, order, __ATOMIC_RELAXED);
    return 0;
}

int audio_set_stream(const char *arg)
{
    char *end;
    const long k = strtol(arg, &end, 10);
    if (end == arg || *end || k < 0 || k > 1000)
        return qasr_fail("audio-stream '%s': expected a stream number, 0 for the first", arg);
    __atomic_store_n(&stream_index, (int)k, __ATOMIC_RELAXED);
    return 0;
}

static char decoders_text[1024];
static void describe_decoders(void)
{
    const char *ff = ffmpeg_describe();
    if (ff) snprintf(decoders_text, sizeof decoders_text, "%s, then %s", sf_version_string(), ff);
    else snprintf(decoders_text, sizeof decoders_text, "%s only: %s", sf_version_string(), ffmpeg_unavailable());
}

const char *audio_decoders_describe(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, describe_decoders);
    return decoders_text;
}

/* Opened without blocking and refused unless a regular, non-empty file, before any decoder
 * sees it. The descriptor (blocking) or -1 + qasr_fail(). */
static int open_checked(const char *path)
{
    size_t size;
    const int fd = open_regular_file(path, "an audio file", &size);
    if (fd >= 0 && size == 0) {
        qasr_fail("%s: empty file (0 bytes)", path);
        close(fd);
        return -1;
    }
    return fd;
}

char *decode_cut_short_warning(const char *path, double promised, double read)
{
    char msg[QASR_ERR_LEN];
    snprintf(msg, sizeof msg, "%s: the header promises %.2f s of audio, the file holds %.2f s (cut short?): "
             "transcribed what is there", path, promised, read);
    return xstrdup(msg);
}

/* The chosen audio stream of path from the decoders in the chosen order, or NULL + qasr_fail().
 * Where both fail, the message is that of the decoder that knows the format: libsndfile's for
 * its own formats (a WAV cut in its header), FFmpeg's for a file only FFmpeg recognises. */
static audio_source_t *source_open(const char *path, int header_only)
{
    const int order = __atomic_load_n(&decoder_order, __ATOMIC_RELAXED);
    const int stream = __atomic_load_n(&stream_index, __ATOMIC_RELAXED);
    const int fd = open_checked(path);
    if (fd < 0) return NULL;
    decode_failure_t why, ff_why;
    if (order == AUDIO_DECODER_FFMPEG) return ffmpeg_source_open(path, fd, stream, header_only, &why);
    const int ff_fd = order == AUDIO_DECODER_AUTO ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1; /* libsndfile closes fd */
    audio_source_t *src = sndfile_source_open(path, fd, stream, header_only, &why);
    if (src || order == AUDIO_DECODER_SNDFILE || why == DECODE_FAILED || ff_fd < 0) {
        if (ff_fd >= 0) close(ff_fd);
        return src;
    }
    char *sf_msg = xstrdup(qasr_last_error());
    lseek(ff_fd, 0, SEEK_SET); /* a dup shares the offset libsndfile moved */
    src = ffmpeg_source_open(path, ff_fd, stream, header_only, &ff_why);
    const char *sf_text = strstr(sf_msg, " (libsndfile: "); /* libsndfile's own words, kept */
    if (!src && why == DECODE_NOT_MINE && ff_why == DECODE_NOT_MINE && ffmpeg_describe())
        qasr_fail("%s: not an audio format libsndfile or FFmpeg reads%s", path, sf_text ? sf_text : "");
    else if (!src && why == DECODE_CORRUPT && ff_why != DECODE_FAILED) /* FFmpeg got no further */
        qasr_fail("%s", sf_msg);
    free(sf_msg);
    return src;
}

/* The resampling both audio_resample_16k and a decoding pass do, the same way (so that a file
 * read in pieces gives the samples of one read whole): libsoxr HQ, input in python-soxr's 3 s
 * chunks, output length librosa's. */
static soxr_t resampler_new(double rate_in, soxr_error_t *err)
{
    const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
    return soxr_create(rate_in, QASR_SAMPLE_RATE, 1, err, &io, &quality, NULL);
}
static int64_t resampler_chunk(double rate_in) { return MAX(1, (int64_t)(48000 * rate_in / QASR_SAMPLE_RATE)); }
static int64_t resampled_length(int64_t n_in, double rate_in)
{
    return (int64_t)ceil((double)n_in * (QASR_SAMPLE_RATE / rate_in));
}

/* The larger of peak and the largest |x[i]| (finite samples). */
static float peak_of(const float *x, int64_t n, float peak)
{
    for (int64_t i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        peak = a > peak ? a : peak;
    }
    return peak;
}

/* Spec section 3 step 4 with a known peak: divided by it when over 1, then clipped. */
static void condition_with_peak(float *x, int64_t n, float peak)
{
    if (peak > 1.0f)
        for (int64_t i = 0; i < n; i++) x[i] /= peak;
    /* comparisons, not fminf/fmaxf (library calls without -ffinite-math-only): samples are
     * finite here (pass_refill refuses others), where the two agree */
    for (int64_t i = 0; i < n; i++) x[i] = x[i] < -1.0f ? -1.0f : x[i] > 1.0f ? 1.0f : x[i];
}

/* One decoding pass over a file: a decoder's blocks, non-finite values refused, downmixed, then
 * resampled in python-soxr's 3 s input chunks (see audio_resample_16k); out holds 16 kHz
 * samples ready to hand out, not yet conditioned. */
typedef struct {
    const char *path;
    audio_source_t *src;
    int rate, channels;
    soxr_t soxr;            /* NULL at 16 kHz */
    float *block;           /* READ_FRAMES frames as read */
    float *in;              /* mono input not yet resampled: up to chunk + READ_FRAMES frames */
    int64_t in_len, chunk;
    int64_t frames;         /* frames decoded */
    int64_t length;         /* 16 kHz samples in all (librosa's), known once the input ends; -1 before */
    int64_t served;         /* samples handed out */
    float *out;
    int64_t out_len, out_pos, out_cap;
    int input_done, flushed;
} pass_t;

static void pass_close(pass_t *p)
{
    if (p->src) p->src->close(p->src);
    if (p->soxr) soxr_delete(p->soxr);
    free(p->block);
    free(p->in);
    free(p->out);
    memset(p, 0, sizeof *p);
}

static int pass_open(pass_t *p, const char *path)
{
    memset(p, 0, sizeof *p);
    p->path = path;
    p->length = -1;
    if (!(p->src = source_open(path, 0))) return -1;
    p->rate = p->src->rate;
    p->channels = p->src->channels;
    const double rate = p->rate;
    p->chunk = rate == QASR_SAMPLE_RATE ? READ_FRAMES : resampler_chunk(rate);
    p->block = xmalloc(sizeof(float) * READ_FRAMES * (size_t)p->channels);
    p->in = xmalloc(sizeof(float) * (size_t)(p->chunk + READ_FRAMES));
    p->out_cap = 2 * 48000 + 2 * READ_FRAMES; /* one chunk's output and soxr's backlog, or one block */
    p->out = xmalloc(sizeof(float) * (size_t)p->out_cap);
    if (rate != QASR_SAMPLE_RATE) {
        soxr_error_t err = NULL;
        p->soxr = resampler_new(rate, &err);
        if (err) {
            qasr_fail("%s: resampling from %g Hz failed: %s", path, rate, soxr_strerror(err));
            pass_close(p);
            return -1;
        }
    }
    return 0;
}

/* Decode blocks until in holds a chunk or the input ends. */
static int pass_decode(pass_t *p)
{
    const int channels = p->channels;
    while (!p->input_done && p->in_len < p->chunk) {
        const int64_t got = p->src->read(p->src, p->block, READ_FRAMES);
        if (got < 0) return -1;
        if (got == 0) {
            p->input_done = 1;
            break;
        }
        for (int64_t i = 0; i < got * channels; i++)
            if (!isfinite(p->block[i]))
                return qasr_fail("%s: non-finite sample value near frame %lld", p->path,
                                 (long long)(p->frames + i / channels));
        audio_downmix(p->in + p->in_len, p->block, got, channels);
        p->in_len += got;
        p->frames += got;
    }
    if (p->input_done && p->frames == 0) return qasr_fail("%s: no audio samples", p->path);
    if (p->input_done && p->length < 0)
        p->length = p->soxr ? resampled_length(p->frames, p->rate) : p->frames;
    return 0;
}

/* Refill out: a chunk of input through soxr (all of its output: drained until soxr has no more),
 * else the flush, else librosa's zero padding up to the length. */
static int pass_refill(pass_t *p)
{
    p->out_len = p->out_pos = 0;
    if (pass_decode(p) != 0) return -1;
    soxr_error_t err = NULL;
    size_t done = 0;
    if (p->in_len > 0) {
        const int64_t k = MIN(p->chunk, p->in_len);
        if (!p->soxr) {
            memcpy(p->out, p->in, sizeof(float) * (size_t)k);
            p->out_len = k;
        } else {
            for (size_t len = (size_t)k;; len = 0) { /* input taken on the first call (idone NULL) */
                err = soxr_process(p->soxr, p->in, len, NULL, p->out + p->out_len,
                                   (size_t)(p->out_cap - p->out_len), &done);
                p->out_len += (int64_t)done;
                if (err || p->out_len < p->out_cap) break;
                p->out = xrealloc(p->out, sizeof(float) * (size_t)(p->out_cap *= 2)); /* more to drain */
            }
        }
        memmove(p->in, p->in + k, sizeof(float) * (size_t)(p->in_len - k));
        p->in_len -= k;
    } else if (p->soxr && !p->flushed) {
        err = soxr_process(p->soxr, NULL, 0, NULL, p->out, (size_t)p->out_cap, &done);
        p->out_len = (int64_t)done;
        p->flushed = done == 0;
    } else if (p->served < p->length) {
        p->out_len = MIN(p->out_cap, p->length - p->served);
        memset(p->out, 0, sizeof(float) * (size_t)p->out_len);
    }
    if (err) return qasr_fail("%s: resampling from %d Hz failed: %s", p->path, p->rate, soxr_strerror(err));
    return 0;
}

/* Up to max samples into dst: how many, 0 at the end, -1 + qasr_fail(). */
static int64_t pass_read(pass_t *p, float *dst, int64_t max)
{
    int64_t n = 0;
    while (n < max) {
        if (p->out_pos == p->out_len) {
            if (p->input_done && p->in_len == 0 && (!p->soxr || p->flushed) && p->served >= p->length) break;
            if (pass_refill(p) != 0) return -1;
            continue;
        }
        int64_t k = MIN(max - n, p->out_len - p->out_pos);
        if (p->length >= 0) k = MIN(k, p->length - p->served); /* soxr's extra tail sample dropped */
        if (k <= 0) {
            p->out_pos = p->out_len;
            continue;
        }
        memcpy(dst + n, p->out + p->out_pos, sizeof(float) * (size_t)k);
        p->out_pos += k;
        p->served += k;
        n += k;
    }
    return n;
}

struct audio_stream {
    char *path;
    int64_t length;   /* 16 kHz samples */
    float peak;       /* of the whole file: conditioning divides by it when over 1 */
    float *kept;      /* the first pass's samples, conditioned, or NULL: read decodes again */
    pass_t second;
    int second_open;
};

#define STREAM_BLOCK 65536 /* samples per read in the first pass */

audio_stream_t *audio_stream_open(const char *path, int64_t keep, char **warning)
{
    if (warning) *warning = NULL;
    pass_t p;
    if (pass_open(&p, path) != 0) return NULL;
    float *kept = NULL, *buf = xmalloc(sizeof(float) * STREAM_BLOCK);
    int64_t n = 0, cap = 0, got;
    float peak = 0.0f;
    while ((got = pass_read(&p, buf, STREAM_BLOCK)) > 0) {
        peak = peak_of(buf, got, peak);
        if (n + got <= keep) {
            if (n + got > cap) kept = xrealloc(kept, sizeof(float) * (size_t)(cap = MAX(2 * cap, n + got)));
            memcpy(kept + n, buf, sizeof(float) * (size_t)got);
        } else {
            free(kept); /* too long to keep: read decodes it again */
            kept = NULL;
            cap = 0;
            keep = -1;
        }
        n += got;
    }
    free(buf);
    if (got >= 0 && warning) *warning = p.src->cut_short(p.src, p.frames);
    pass_close(&p);
    if (got < 0) {
        free(kept);
        return NULL;
    }
    audio_stream_t *st = xcalloc(1, sizeof *st);
    st->path = xstrdup(path);
    st->length = n;
    st->peak = peak;
    st->kept = kept;
    if (kept) condition_with_peak(kept, n, peak);
    return st;
}

int64_t audio_stream_length(const audio_stream_t *st) { return st->length; }

float *audio_stream_take(audio_stream_t *st)
{
    float *x = st->kept;
    st->kept = NULL;
    return x;
}

int64_t audio_stream_read(audio_stream_t *st, float *out, int64_t max)
{
    if (!st->second_open) {
        if (pass_open(&st->second, st->path) != 0) return -1;
        st->second_open = 1;
    }
    const int64_t got = pass_read(&st->second, out, max);
    if (got < 0) return -1;
    if (st->second.served > st->length || (got == 0 && st->second.served < st->length))
        return qasr_fail("%s: the file changed while it was read (%lld samples, then %lld)", st->path,
                         (long long)st->length, (long long)st->second.served);
    condition_with_peak(out, got, st->peak); /* the whole file's peak */
    return got;
}

void audio_stream_close(audio_stream_t *st)
{
    if (!st) return;
    if (st->second_open) pass_close(&st->second);
    free(st->kept);
    free(st->path);
    free(st);
}

int audio_load(const char *path, float **samples, int64_t *n_samples, char **warning)
{
    audio_stream_t *st = audio_stream_open(path, INT64_MAX, warning);
    if (!st) return -1;
    *n_samples = st->length;
    *samples = audio_stream_take(st);
    audio_stream_close(st);
    return 0;
}

/* Header only: SF_INFO.frames is exact for PCM containers and FLAC; for Ogg it comes from the
 * last page's granule position and for MP3 from libmpg123's length estimate (Xing/Info tag or a
 * header scan); FFmpeg's is the container's (the stream's, else the file's), read at open
 * without setting up a decoder. A length the header does not tell is an error rather than a
 * guess (qasr-batch then decodes the file to learn it). */
int audio_probe_duration(const char *path, double *seconds)
{
    audio_source_t *src = source_open(path, 1);
    if (!src) return -1;
    const double d = src->duration;
    src->close(src);
    if (d < 0) return qasr_fail("%s: duration unknown without decoding", path);
    if (d == 0) return qasr_fail("%s: no audio samples", path);
    *seconds = d;
    return 0;
}

/* Same float32 order as numpy's mean over a row of up to 8 channels: first element + the
 * sum of the rest (started at -0.0 so a mono -0.0 survives), then divided by C. */
void audio_downmix(float *out, const float *in, int64_t n_frames, int channels)
{
    for (int64_t i = 0; i < n_frames; i++) {
        const float *f = in + i * channels;
        float rest = -0.0f;
        for (int c = 1; c < channels; c++) rest += f[c];
        out[i] = (f[0] + rest) / (float)channels;
    }
}

/* Output length is librosa's, ceil(n * (16000 / rate)) with the ratio rounded first as librosa
 * does; soxr itself yields about round(n * ratio) and the remainder is zero-padded (librosa's
 * fix_length). Input goes in 3 s chunks as python-soxr's resample() feeds it, then a flush;
 * soxr removes its filter delay, so output sample j is at time j / 16000. */
float *audio_resample_16k(const float *in, int64_t n_in, double rate_in, int64_t *n_out)
{
    if (!(rate_in > 0)) {
        qasr_fail("invalid sample rate %g Hz", rate_in);
        return NULL;
    }
    if (rate_in == QASR_SAMPLE_RATE) {
        float *copy = xmalloc(sizeof(float) * (size_t)n_in);
        memcpy(copy, in, sizeof(float) * (size_t)n_in);
        *n_out = n_in;
        return copy;
    }
    const int64_t n = resampled_length(n_in, rate_in), chunk = resampler_chunk(rate_in);
    float *out = xcalloc((size_t)n, sizeof(float));
    soxr_error_t err = NULL;
    soxr_t soxr = resampler_new(rate_in, &err);
    size_t done, pos = 0;
    for (int64_t i = 0; !err && i < n_in; i += chunk) {
        err = soxr_process(soxr, in + i, (size_t)MIN(chunk, n_in - i), NULL, out + pos,
                           (size_t)n - pos, &done);
        pos += done;
    }
    if (!err && pos < (size_t)n)
        err = soxr_process(soxr, NULL, 0, NULL, out + pos, (size_t)n - pos, &done);
    if (soxr) soxr_delete(soxr);
    if (err) {
        free(out);
        qasr_fail("resampling from %g Hz failed: %s", rate_in, soxr_strerror(err));
        return NULL;
    }
    *n_out = n;
    return out;
}

void audio_condition(float *x, int64_t n)
{
    condition_with_peak(x, n, peak_of(x, n, 0.0f));
}
