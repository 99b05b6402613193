/* libsndfile as a block source (decode.h): WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF, AU, CAF, W64,
 * RF64 ... Int PCM comes scaled by 1/2^(bits-1), as soundfile (librosa.load's first choice) does.
 *
 * Truncated files: libsndfile clamps a header that promises more data than the file holds and
 * returns the frames that are there (e.g. a WAV cut short); such a short read is transcribed with
 * a warning naming the promised and the read duration (cut_short_warning; also an Ogg stream
 * without its end). A decode error that libsndfile reports on any read (e.g. a FLAC cut
 * mid-frame: "flac decoder lost sync") fails the file. */
#include "decode.h"
#include "util.h"

#include <pthread.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    audio_source_t base;
    SNDFILE *sf;
    SF_INFO info;
    int64_t frames; /* read so far */
} sndfile_source_t;

/* libsndfile's texts for a file we already know exists and is regular, in words that say what is
 * wrong with it: its own may blame the file system ("File does not exist or is not a regular
 * file (possibly a pipe?)" for a truncated MP3, "SF_INFO struct incomplete" for a WAV header
 * with sample rate 0), and those are not repeated (*keep 0). */
static const char *open_failure(const char *sf_text, int *keep, decode_failure_t *why)
{
    *keep = 0;
    *why = DECODE_CORRUPT;
    if (strstr(sf_text, "not a regular file")) return "truncated or corrupt: no audio stream found";
    if (strstr(sf_text, "SF_INFO")) return "corrupt header: sample rate, channel count or format out of range";
    *keep = 1;
    if (strstr(sf_text, "not recognised") || strstr(sf_text, "unknown format")) {
        *why = DECODE_NOT_MINE;
        return "not an audio format libsndfile reads";
    }
    if (strstr(sf_text, "malformed")) return "corrupt or cut short";
    return NULL;
}

/* sf_open's error text is a process-wide variable: held from the open to reading it, so that a
 * failure on another thread cannot put its text (or "No Error.") in this file's message. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;

/* Why the n frames read are less than the file claims, as a warning naming the file, or NULL.
 * libsndfile clamps a chunk to the bytes in the file and logs it: "data : 320000 (should be
 * 2880)" (WAV; "SSND" for AIFF, "riff" for W64, "Riff size" for RF64, "Data Size" for AU), the
 * frames then promised being about n times the ratio; RF64 also logs the frame count of its
 * ds64 chunk; SF_INFO.frames is the header's count where a decoder stopped early without an
 * error; an Ogg stream cut short has no end-of-stream flag, and then no length at all. */
static char *sndfile_cut_short(audio_source_t *src, int64_t n)
{
    sndfile_source_t *s = (sndfile_source_t *)src;
    static const char *const clamped[] = { "data", "SSND", "riff", "Riff size", "Data Size" };
    int64_t promised = s->info.frames != SF_COUNT_MAX && s->info.frames > n ? (int64_t)s->info.frames : 0;
    int no_end = 0;
    char log[8192] = "";
    sf_command(s->sf, SFC_GET_LOG_INFO, log, sizeof log);
    for (const char *l = log; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        long long said, there;
        char name[32];
        while (*l == ' ' || *l == '\t') l++;
        if (sscanf(l, "%31[^:\n] : %lld (should be %lld)", name, &said, &there) == 3 && there > 0 && said > there) {
            for (size_t k = strlen(name); k > 0 && name[k - 1] == ' ';) name[--k] = 0;
            for (size_t c = 0; c < sizeof clamped / sizeof *clamped; c++)
                if (!strcmp(name, clamped[c])) promised = MAX(promised, (int64_t)((double)n * ((double)said / (double)there)));
        }
        if (sscanf(l, "*** Calculated frame count %lld does not match value from 'ds64' chunk of %lld", &there, &said) == 2 &&
            said > there)
            promised = MAX(promised, (int64_t)said);
        if (!strncmp(l, "Ogg : File ended unexpectedly without an End-Of-Stream flag", 59)) no_end = 1;
    }
    const int rate = s->info.samplerate;
    const char *path = src->path;
    char msg[QASR_ERR_LEN];
    if (promised > n + rate / 100) /* 10 ms: MP3 lengths are estimates */
        return decode_cut_short_warning(path, (double)promised / rate, (double)n / rate);
    if (no_end)
        snprintf(msg, sizeof msg, "%s: the stream ends without its end-of-stream mark after %.2f s (cut short?): "
                 "transcribed what is there", path, (double)n / rate);
    else
        return NULL;
    return xstrdup(msg);
}

/* Each sf_readf_float call clears the error state, so it is checked after every block; the
 * frames of the block before an error count for its position. */
static int64_t sndfile_read(audio_source_t *src, float *block, int64_t max)
{
    sndfile_source_t *s = (sndfile_source_t *)src;
    const sf_count_t got = sf_readf_float(s->sf, block, max);
    if (sf_error(s->sf) != SF_ERR_NO_ERROR) {
        const int64_t at = s->frames + MAX(got, 0);
        return qasr_fail("%s: decode error at %.2f s, after %lld frames (%s)", src->path,
                         (double)at / s->info.samplerate, (long long)at, sf_strerror(s->sf));
    }
    s->frames += MAX(got, 0);
    return MAX(got, 0);
}

static void sndfile_close(audio_source_t *src)
{
    sndfile_source_t *s = (sndfile_source_t *)src;
    if (s->sf) sf_close(s->sf);
    free(s);
}

audio_source_t *sndfile_source_open(const char *path, int fd, int stream, int header_only, decode_failure_t *why)
{
    (void)header_only; /* libsndfile reads the header at open and decodes only on reads */
    sndfile_source_t *s = xcalloc(1, sizeof *s);
    pthread_mutex_lock(&open_lock);
    s->sf = sf_open_fd(fd, SFM_READ, &s->info, SF_TRUE); /* closes fd, also on failure */
    if (!s->sf) {
        int keep;
        const char *text = sf_strerror(NULL), *ours = open_failure(text, &keep, why);
        if (ours && keep) qasr_fail("%s: %s (libsndfile: %s)", path, ours, text);
        else if (ours) qasr_fail("%s: %s", path, ours);
        else qasr_fail("%s: not a readable audio file (%s)", path, text);
    }
    pthread_mutex_unlock(&open_lock);
    if (!s->sf) {
        free(s);
        return NULL;
    }
    *why = DECODE_FAILED;
    s->base = (audio_source_t){ .path = path, .rate = s->info.samplerate, .channels = s->info.channels, .streams = 1,
                                .duration = -1, .read = sndfile_read, .cut_short = sndfile_cut_short,
                                .close = sndfile_close };
    if (s->info.frames != SF_COUNT_MAX && s->info.samplerate > 0)
        s->base.duration = (double)s->info.frames / s->info.samplerate;
    if (s->info.samplerate < DECODE_MIN_RATE || s->info.samplerate > DECODE_MAX_RATE)
        qasr_fail("%s: unsupported sample rate %d Hz (accepted: %d..%d)", path, s->info.samplerate,
                  DECODE_MIN_RATE, DECODE_MAX_RATE);
    else if (s->info.channels < 1)
        qasr_fail("%s: invalid channel count %d", path, s->info.channels);
    else if (stream > 0)
        qasr_fail("%s: no audio stream %d (the file has 1)", path, stream);
    else
        return &s->base;
    sndfile_close(&s->base);
    return NULL;
}
