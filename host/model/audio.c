/* Audio input, mirroring the official wrapper (spec section 3), which runs
 * librosa.load(sr=None, mono=False) -> to_mono -> librosa.resample(res_type="soxr_hq") ->
 * float_range_normalize. libsndfile decodes (int PCM scaled by 1/2^(bits-1), as soundfile
 * does), libsoxr resamples.
 *
 * Truncated files: libsndfile clamps a header that promises more data than the file holds and
 * returns the frames that are there (e.g. a WAV cut short); such a short read is transcribed with
 * a warning naming the promised and the read duration (promised_frames). A decode error that
 * libsndfile reports on any read (e.g. a FLAC cut mid-frame: "flac decoder lost sync") fails
 * the file. */
#include "audio.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Header rates outside this range are corruption, not audio. */
#define MIN_RATE 1000
#define MAX_RATE 768000
#define READ_FRAMES 65536 /* frames per sf_readf_float call */

/* What a file that is not a regular file is, for the message. */
static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode)    ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO (named pipe)"
           : S_ISSOCK(mode) ? "a socket"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
                            : "not a regular file";
}

/* libsndfile's texts for a file we already know exists and is regular, in words that say what is
 * wrong with it (its own may blame the file system: "File does not exist or is not a regular
 * file (possibly a pipe?)" for a truncated MP3, "SF_INFO struct incomplete" for a WAV header
 * with sample rate 0). */
static const char *open_failure(const char *sf_text)
{
    if (strstr(sf_text, "not a regular file")) return "truncated or corrupt: no audio stream found";
    if (strstr(sf_text, "SF_INFO")) return "corrupt header: sample rate, channel count or format out of range";
    if (strstr(sf_text, "not recognised") || strstr(sf_text, "unknown format"))
        return "not an audio format libsndfile reads";
    return NULL;
}

/* Opened without blocking: open(2) of a FIFO waits for a writer, so the path is opened with
 * O_NONBLOCK and anything but a regular file refused before libsndfile sees it.
 * sf_open's error text comes from a process-wide libsndfile variable: if two threads fail to
 * open files at the same moment, one may report the other's reason. */
static SNDFILE *open_audio(const char *path, SF_INFO *info)
{
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        qasr_fail("%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        qasr_fail("%s: is %s, not an audio file", path, file_kind(st.st_mode));
        close(fd);
        return NULL;
    }
    if (st.st_size == 0) {
        qasr_fail("%s: empty file (0 bytes)", path);
        close(fd);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    memset(info, 0, sizeof *info);
    SNDFILE *sf = sf_open_fd(fd, SFM_READ, info, SF_TRUE); /* closes fd, also on failure */
    if (!sf) {
        const char *text = sf_strerror(NULL), *ours = open_failure(text);
        if (ours) qasr_fail("%s: %s (libsndfile: %s)", path, ours, text);
        else qasr_fail("%s: not a readable audio file (%s)", path, text);
        return NULL;
    }
    if (info->samplerate < MIN_RATE || info->samplerate > MAX_RATE) {
        qasr_fail("%s: unsupported sample rate %d Hz (accepted: %d..%d)", path, info->samplerate,
                  MIN_RATE, MAX_RATE);
        sf_close(sf);
        return NULL;
    }
    if (info->channels < 1) {
        qasr_fail("%s: invalid channel count %d", path, info->channels);
        sf_close(sf);
        return NULL;
    }
    return sf;
}

/* Decodes the whole stream block by block, downmixing each block. */
static int decode_mono(SNDFILE *sf, int channels, const char *path, float **out, int64_t *n_out)
{
    float *block = xmalloc(sizeof(float) * READ_FRAMES * (size_t)channels);
    int64_t cap = READ_FRAMES, n = 0;
    float *x = xmalloc(sizeof(float) * (size_t)cap);
    sf_count_t got;
    /* Each sf_readf_float call clears the error state, so check it after every block. */
    while ((got = sf_readf_float(sf, block, READ_FRAMES)) > 0 && sf_error(sf) == SF_ERR_NO_ERROR) {
        for (int64_t i = 0; i < got * channels; i++) {
            if (!isfinite(block[i])) {
                free(block);
                free(x);
                return qasr_fail("%s: non-finite sample value near frame %lld", path,
                                 (long long)(n + i / channels));
            }
        }
        if (n + got > cap) {
            cap = MAX(2 * cap, n + got);
            x = xrealloc(x, sizeof(float) * (size_t)cap);
        }
        audio_downmix(x + n, block, got, channels);
        n += got;
    }
    free(block);
    if (sf_error(sf) != SF_ERR_NO_ERROR) {
        free(x);
        return qasr_fail("%s: decode error after %lld frames (%s)", path, (long long)n,
                         sf_strerror(sf));
    }
    if (n == 0) {
        free(x);
        return qasr_fail("%s: no audio samples", path);
    }
    *out = x;
    *n_out = n;
    return 0;
}

/* Frames the header promised, when more than the n that were read: libsndfile's header log
 * says "data : 320000 (should be 2880)" (WAV, W64; "SSND" for AIFF) where it clamped a chunk to
 * the bytes in the file, and SF_INFO.frames is the header's count where a decoder stopped early
 * without an error. 0 when nothing says the file was cut short. */
static int64_t promised_frames(SNDFILE *sf, const SF_INFO *info, int64_t n)
{
    int64_t promised = info->frames != SF_COUNT_MAX && info->frames > n ? (int64_t)info->frames : 0;
    char log[8192] = "";
    sf_command(sf, SFC_GET_LOG_INFO, log, sizeof log);
    for (const char *l = log; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        long long said, there;
        char chunk[5];
        if (sscanf(l, "%4s : %lld (should be %lld)", chunk, &said, &there) == 3 &&
            (!strcmp(chunk, "data") || !strcmp(chunk, "SSND")) && there > 0 && said > there)
            promised = MAX(promised, (int64_t)((double)n * ((double)said / (double)there)));
    }
    return promised;
}

int audio_load(const char *path, float **samples, int64_t *n_samples, char **warning)
{
    SF_INFO info;
    if (warning) *warning = NULL;
    SNDFILE *sf = open_audio(path, &info);
    if (!sf) return -1;
    float *x = NULL;
    int64_t n = 0;
    int rc = decode_mono(sf, info.channels, path, &x, &n);
    const int64_t promised = rc ? 0 : promised_frames(sf, &info, n);
    sf_close(sf);
    if (rc) return -1;
    if (warning && promised > n + info.samplerate / 100) { /* 10 ms: MP3 lengths are estimates */
        char msg[QASR_ERR_LEN];
        snprintf(msg, sizeof msg, "%s: the header promises %.2f s of audio, the file holds %.2f s (cut short?): "
                 "transcribed what is there", path, (double)promised / info.samplerate, (double)n / info.samplerate);
        *warning = xstrdup(msg);
    }

    if (info.samplerate != QASR_SAMPLE_RATE) {
        int64_t n16;
        float *y = audio_resample_16k(x, n, info.samplerate, &n16);
        free(x);
        if (!y) return qasr_fail_prefix("%s", path);
        x = y;
        n = n16;
    }
    audio_condition(x, n);
    *samples = x;
    *n_samples = n;
    return 0;
}

/* Header only. SF_INFO.frames is exact for PCM containers and FLAC; for Ogg it comes from the
 * last page's granule position and for MP3 from libmpg123's length estimate (Xing/Info tag or a
 * header scan), still without decoding. A stream whose length libsndfile cannot tell
 * (frames == SF_COUNT_MAX) is an error rather than a guess. */
int audio_probe_duration(const char *path, double *seconds)
{
    SF_INFO info;
    SNDFILE *sf = open_audio(path, &info);
    if (!sf) return -1;
    sf_close(sf);
    if (info.frames == SF_COUNT_MAX)
        return qasr_fail("%s: duration unknown without decoding", path);
    if (info.frames <= 0) return qasr_fail("%s: no audio samples", path);
    *seconds = (double)info.frames / info.samplerate;
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
    int64_t n = (int64_t)ceil((double)n_in * (QASR_SAMPLE_RATE / rate_in));
    float *out = xcalloc((size_t)n, sizeof(float));

    soxr_error_t err = NULL;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
    soxr_t soxr = soxr_create(rate_in, QASR_SAMPLE_RATE, 1, &err, &io, &quality, NULL);
    size_t done, pos = 0;
    int64_t chunk = MAX(1, (int64_t)(48000 * rate_in / QASR_SAMPLE_RATE));
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
    float peak = 0.0f;
    for (int64_t i = 0; i < n; i++) peak = fmaxf(peak, fabsf(x[i]));
    if (peak > 1.0f)
        for (int64_t i = 0; i < n; i++) x[i] /= peak;
    for (int64_t i = 0; i < n; i++) x[i] = fminf(fmaxf(x[i], -1.0f), 1.0f);
}
