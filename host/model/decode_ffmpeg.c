/* FFmpeg (libavformat + libavcodec, linked; no ffmpeg process) as a block source (decode.h): the
 * containers and codecs libsndfile lacks (M4A/AAC, MP4, MKV/WebM, WMA, AMR, ...). Samples come
 * out as FFmpeg's decoder gives them, converted to float here in libsndfile's scaling (int PCM
 * by 1/2^(bits-1)), so a lossless file gives libsndfile's samples; no libswresample: the one
 * resampler is audio.c's libsoxr.
 *
 * The file is read through the descriptor audio.c checked, never by its name: no FFmpeg
 * protocol (concat:, http:, pipe:) ever sees a path, and a file that refers to others (HLS
 * playlists, MOV references) is refused (io_open). One decoder thread per file: the batch
 * reader already decodes several files at once. */
#include "decode.h"
#include "ffmpeg_api.h"
#include "util.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IO_BUFFER 65536
/* Decoded this much less than the container promises: a file cut short. Codec frames and
 * priming make honest files differ by up to a frame (AAC 1024, Vorbis up to 8192 samples). */
#define CUT_SHORT_SECONDS 0.25

typedef struct {
    audio_source_t base;
    int fd;
    AVIOContext *io;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    int index;            /* the stream's index among all of the file's */
    int held;             /* frames of `frame` not yet handed out */
    int draining;         /* the decoder was sent the end */
    int64_t decoded;      /* frames received from the decoder */
    double promised;      /* seconds of this stream the container promises, -1 unknown */
} ffmpeg_source_t;

/* ---- FFmpeg's log: its lines shown as qasr's with -v; the last error line of the file this
 * thread is opening or decoding kept for that file's message (several reader threads decode at
 * once, hence thread-local). */
static const ffmpeg_api_t *ff; /* the libraries' functions, once loaded (ffmpeg_available) */
static _Thread_local char last_line[1024];
static _Thread_local char partial[1024]; /* FFmpeg may write a line in several calls */
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void log_line(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > AV_LOG_WARNING) return;
    const size_t have = strlen(partial);
    vsnprintf(partial + have, sizeof partial - have, fmt, vl);
    size_t k = strlen(partial);
    if (k == 0 || (partial[k - 1] != '\n' && k < sizeof partial - 1)) return; /* the rest comes */
    char line[sizeof partial];
    memcpy(line, partial, k + 1);
    partial[0] = 0;
    while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == ' ' || line[k - 1] == '.')) line[--k] = 0;
    if (!*line) return;
    if (level <= AV_LOG_ERROR) snprintf(last_line, sizeof last_line, "%s", line);
    if (audio_library_messages_shown()) {
        const AVClass *c = avcl ? *(const AVClass **)avcl : NULL;
        fprintf(stderr, "%s: FFmpeg%s%s: %s\n", qasr_program_name(), c ? " " : "", c ? c->item_name(avcl) : "", line);
    }
}

static void log_install(void) { ff->av_log_set_callback(log_line); }

/* "path: what (FFmpeg: its last error line, else the code's text)": -1. */
static int fail_ffmpeg(const char *path, int err, const char *fmt, ...) QASR_PRINTF(3, 4);
static int fail_ffmpeg(const char *path, int err, const char *fmt, ...)
{
    char what[QASR_ERR_LEN], code[AV_ERROR_MAX_STRING_SIZE] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (!last_line[0] && err < 0) ff->av_strerror(err, code, sizeof code);
    const char *why = last_line[0] ? last_line : code;
    return *why ? qasr_fail("%s: %s (FFmpeg: %s)", path, what, why) : qasr_fail("%s: %s", path, what);
}

/* ---- the checked descriptor as FFmpeg's input */
static int io_read(void *opaque, uint8_t *buf, int size)
{
    const ffmpeg_source_t *s = opaque;
    for (;;) {
        const ssize_t n = read(s->fd, buf, (size_t)size);
        if (n < 0 && errno == EINTR) continue;
        return n < 0 ? AVERROR(errno) : n == 0 ? AVERROR_EOF : (int)n;
    }
}

static int64_t io_seek(void *opaque, int64_t offset, int whence)
{
    const ffmpeg_source_t *s = opaque;
    if (whence & AVSEEK_SIZE) {
        struct stat st;
        return fstat(s->fd, &st) == 0 ? (int64_t)st.st_size : AVERROR(errno);
    }
    const off_t at = lseek(s->fd, (off_t)offset, whence & ~AVSEEK_FORCE);
    return at < 0 ? AVERROR(errno) : (int64_t)at;
}

static int io_refuse(AVFormatContext *ctx, AVIOContext **pb, const char *url, int flags, AVDictionary **options)
{
    ff->av_log(ctx, AV_LOG_ERROR, "refers to another file or URL (%s): not read\n", url);
    return AVERROR(EPERM);
}

static void ffmpeg_close(audio_source_t *src)
{
    ffmpeg_source_t *s = (ffmpeg_source_t *)src;
    ff->av_frame_free(&s->frame);
    ff->av_packet_free(&s->pkt);
    ff->avcodec_free_context(&s->dec);
    ff->avformat_close_input(&s->fmt); /* custom I/O: the AVIOContext is ours */
    if (s->io) ff->av_freep(&s->io->buffer);
    ff->avio_context_free(&s->io);
    if (s->fd >= 0) close(s->fd);
    free(s);
}

/* ---- decoding: the next frame into s->frame, the send/receive protocol with the flush at the
 * end. 1 a frame, 0 the end, -1 + qasr_fail(). A read or decode error where the file has come
 * to its end is a file cut short (its last packet partial): the end, for cut_short to report. */
static int next_frame(ffmpeg_source_t *s)
{
    const char *path = s->base.path;
    for (;;) {
        int err = ff->avcodec_receive_frame(s->dec, s->frame);
        if (err == 0) {
            s->decoded += s->frame->nb_samples;
            return 1;
        }
        if (err == AVERROR_EOF || (err == AVERROR(EAGAIN) && s->draining)) return 0;
        if (err != AVERROR(EAGAIN) && ff->avio_feof(s->fmt->pb)) return 0; /* e.g. a partial last PCM packet */
        if (err != AVERROR(EAGAIN))
            return fail_ffmpeg(path, err, "decode error at %.2f s", (double)s->decoded / MAX(s->base.rate, 1));
        err = ff->av_read_frame(s->fmt, s->pkt);
        if (err >= 0 && s->pkt->stream_index != s->index) {
            ff->av_packet_unref(s->pkt);
            continue;
        }
        if (err >= 0) {
            err = ff->avcodec_send_packet(s->dec, s->pkt); /* never EAGAIN here: receive said it wants input */
            ff->av_packet_unref(s->pkt);
            if (err >= 0 || err == AVERROR(EAGAIN)) continue;
            if (!ff->avio_feof(s->fmt->pb))
                return fail_ffmpeg(path, err, "decode error at %.2f s", (double)s->decoded / MAX(s->base.rate, 1));
        } else if (err != AVERROR_EOF && !ff->avio_feof(s->fmt->pb)) {
            return fail_ffmpeg(path, err, "decode error at %.2f s: the container is corrupt",
                               (double)s->decoded / MAX(s->base.rate, 1));
        }
        s->draining = 1;
        err = ff->avcodec_send_packet(s->dec, NULL);
        if (err < 0 && err != AVERROR_EOF)
            return fail_ffmpeg(path, err, "decode error at %.2f s", (double)s->decoded / MAX(s->base.rate, 1));
    }
}

/* n frames of f from frame `from` to interleaved float, in libsndfile's scaling. */
static void convert(const AVFrame *f, int from, int n, float *out)
{
    const int ch = f->ch_layout.nb_channels, planar = ff->av_sample_fmt_is_planar(f->format);
    const enum AVSampleFormat packed = ff->av_get_packed_sample_fmt(f->format);
    for (int c = 0; c < ch; c++) {
        const uint8_t *data = f->extended_data[planar ? c : 0];
        const int step = planar ? 1 : ch, first = planar ? from : from * ch + c;
        float *o = out + c;
        for (int i = 0; i < n; i++, o += ch) {
            const int k = first + i * step;
            switch (packed) {
            case AV_SAMPLE_FMT_U8: *o = (float)((int)data[k] - 128) * (1.0f / 128); break;
            case AV_SAMPLE_FMT_S16: *o = (float)((const int16_t *)data)[k] * (1.0f / 32768); break;
            case AV_SAMPLE_FMT_S32: *o = (float)((const int32_t *)data)[k] * (1.0f / 2147483648.0f); break;
            case AV_SAMPLE_FMT_S64: *o = (float)((const int64_t *)data)[k] * (1.0f / 9223372036854775808.0f); break;
            case AV_SAMPLE_FMT_FLT: *o = ((const float *)data)[k]; break;
            case AV_SAMPLE_FMT_DBL: *o = (float)((const double *)data)[k]; break;
            default: *o = 0; break; /* refused when the frame is taken */
            }
        }
    }
}

/* A frame this source can hand out: the rate and channels of the first (which set the
 * source's), a sample format convert knows. */
static int frame_usable(ffmpeg_source_t *s)
{
    const AVFrame *f = s->frame;
    const enum AVSampleFormat packed = ff->av_get_packed_sample_fmt(f->format);
    const double at = (double)(s->decoded - f->nb_samples) / MAX(s->base.rate, 1);
    if (packed != AV_SAMPLE_FMT_U8 && packed != AV_SAMPLE_FMT_S16 && packed != AV_SAMPLE_FMT_S32 &&
        packed != AV_SAMPLE_FMT_S64 && packed != AV_SAMPLE_FMT_FLT && packed != AV_SAMPLE_FMT_DBL) {
        const char *name = ff->av_get_sample_fmt_name(f->format);
        return qasr_fail("%s: decoded sample format %s not supported", s->base.path, name ? name : "unknown");
    }
    if (f->sample_rate != s->base.rate || f->ch_layout.nb_channels != s->base.channels)
        return qasr_fail("%s: the audio changes from %d Hz, %d channels to %d Hz, %d channels at %.2f s: not supported "
                         "(convert the file to one rate and layout first)", s->base.path, s->base.rate,
                         s->base.channels, f->sample_rate, f->ch_layout.nb_channels, at);
    return 0;
}

static int64_t ffmpeg_read(audio_source_t *src, float *block, int64_t max)
{
    ffmpeg_source_t *s = (ffmpeg_source_t *)src;
    int64_t n = 0;
    while (n < max) {
        if (s->held == 0) {
            const int got = next_frame(s);
            if (got < 0) return -1;
            if (got == 0) break;
            if (frame_usable(s) != 0) return -1;
            s->held = s->frame->nb_samples;
            continue;
        }
        const int k = (int)MIN(max - n, s->held);
        convert(s->frame, s->frame->nb_samples - s->held, k, block + n * src->channels);
        s->held -= k;
        n += k;
    }
    return n;
}

static char *ffmpeg_cut_short(audio_source_t *src, int64_t frames)
{
    const ffmpeg_source_t *s = (const ffmpeg_source_t *)src;
    const double got = (double)frames / src->rate;
    if (s->promised < 0 || s->promised - got <= CUT_SHORT_SECONDS) return NULL;
    return decode_cut_short_warning(src->path, s->promised, got);
}

/* The stream-th audio stream's index, or -1 + qasr_fail(). */
static int pick_stream(ffmpeg_source_t *s, int stream)
{
    int audio = 0, index = -1;
    for (unsigned i = 0; i < s->fmt->nb_streams; i++)
        if (s->fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO && audio++ == stream) index = (int)i;
    s->base.streams = audio;
    if (audio == 0)
        return qasr_fail("%s: no audio stream (the %s file has %u stream%s, none of them audio)", s->base.path,
                         s->fmt->iformat->long_name ? s->fmt->iformat->long_name : s->fmt->iformat->name, s->fmt->nb_streams, s->fmt->nb_streams == 1 ? "" : "s");
    if (index < 0) return qasr_fail("%s: no audio stream %d (the file has %d)", s->base.path, stream, audio);
    return index;
}

static int open_decoder(ffmpeg_source_t *s)
{
    const char *path = s->base.path;
    const AVStream *st = s->fmt->streams[s->index];
    const AVCodec *codec = ff->avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec && st->codecpar->codec_id == AV_CODEC_ID_NONE) /* a tag FFmpeg does not know: name the tag */
        return qasr_fail("%s: codec not supported: unknown codec tag 0x%04x in its %s stream", path,
                         st->codecpar->codec_tag, s->fmt->iformat->name);
    if (!codec)
        return qasr_fail("%s: codec not supported: %s (this FFmpeg has no decoder for it)", path,
                         ff->avcodec_get_name(st->codecpar->codec_id));
    if (!(s->dec = ff->avcodec_alloc_context3(codec)) || !(s->pkt = ff->av_packet_alloc()) || !(s->frame = ff->av_frame_alloc()))
        return qasr_fail("%s: out of memory setting up the %s decoder", path, codec->name);
    int err = ff->avcodec_parameters_to_context(s->dec, st->codecpar);
    s->dec->pkt_timebase = st->time_base;
    s->dec->thread_count = 1;
    if (err < 0 || (err = ff->avcodec_open2(s->dec, codec, NULL)) < 0)
        return fail_ffmpeg(path, err, "codec not supported: %s (its decoder refuses the stream's parameters)", codec->name);
    /* Rate and channels from the first frame: the header's can differ from what is decoded
     * (HE-AAC's SBR doubles the core rate, parametric stereo makes two channels of one). */
    const int got = next_frame(s);
    if (got < 0) return -1;
    if (got == 0) return qasr_fail("%s: no audio samples in its audio stream", path);
    s->base.rate = s->frame->sample_rate;
    s->base.channels = s->frame->ch_layout.nb_channels;
    if (s->base.rate < DECODE_MIN_RATE || s->base.rate > DECODE_MAX_RATE)
        return qasr_fail("%s: unsupported sample rate %d Hz (accepted: %d..%d)", path, s->base.rate, DECODE_MIN_RATE,
                         DECODE_MAX_RATE);
    if (s->base.channels < 1) return qasr_fail("%s: invalid channel count %d", path, s->base.channels);
    if (frame_usable(s) != 0) return -1;
    s->held = s->frame->nb_samples;
    return 0;
}

/* Whether FFmpeg's libraries are loaded (ffmpeg_api.h); ff is set when they are. */
static int ffmpeg_available(void)
{
    if (!(ff = ffmpeg_api())) return 0;
    pthread_once(&log_once, log_install);
    return 1;
}

audio_source_t *ffmpeg_source_open(const char *path, int fd, int stream, int header_only, decode_failure_t *why)
{
    if (!ffmpeg_available()) {
        close(fd);
        *why = DECODE_NOT_MINE;
        qasr_fail("%s: not an audio format libsndfile reads, and %s", path, ffmpeg_unavailable());
        return NULL;
    }
    last_line[0] = partial[0] = 0;
    *why = DECODE_NOT_MINE;
    ffmpeg_source_t *s = xcalloc(1, sizeof *s);
    s->fd = fd;
    s->base = (audio_source_t){ .path = path, .duration = -1, .read = ffmpeg_read, .cut_short = ffmpeg_cut_short,
                                .close = ffmpeg_close };
    s->promised = -1;
    uint8_t *buf = ff->av_malloc(IO_BUFFER);
    if (buf && !(s->io = ff->avio_alloc_context(buf, IO_BUFFER, 0, s, io_read, NULL, io_seek))) ff->av_free(buf);
    if (!s->io) {
        qasr_fail("%s: out of memory opening it with FFmpeg", path);
        goto fail;
    }
    /* FFmpeg's own probing takes any score at its largest probe size (a misdetection risk it
     * warns about); here a format must be recognised with more than that, or it is not one. */
    const AVInputFormat *ifmt = NULL;
    const int score = ff->av_probe_input_buffer2(s->io, &ifmt, path, NULL, 0, 0);
    if (score <= AVPROBE_SCORE_RETRY || !ifmt) {
        if (score < 0 && score != AVERROR_INVALIDDATA) fail_ffmpeg(path, score, "cannot be read");
        else qasr_fail("%s: not a format FFmpeg recognises", path);
        goto fail;
    }
    last_line[0] = 0;
    if (!(s->fmt = ff->avformat_alloc_context())) {
        qasr_fail("%s: out of memory opening it with FFmpeg", path);
        goto fail;
    }
    s->fmt->pb = s->io;
    s->fmt->io_open = io_refuse;
    *why = DECODE_CORRUPT;
    int err = ff->avformat_open_input(&s->fmt, path, ifmt, NULL); /* frees fmt on failure */
    if (err < 0) {
        fail_ffmpeg(path, err, "corrupt or cut short: FFmpeg cannot read its %s header",
                    ifmt->long_name ? ifmt->long_name : ifmt->name);
        goto fail;
    }
    if ((s->fmt->ctx_flags & AVFMTCTX_NOHEADER) && (err = ff->avformat_find_stream_info(s->fmt, NULL)) < 0) {
        fail_ffmpeg(path, err, "corrupt or cut short: FFmpeg finds no streams in its %s data",
                    ifmt->long_name ? ifmt->long_name : ifmt->name);
        goto fail;
    }
    *why = DECODE_FAILED;
    if ((s->index = pick_stream(s, stream)) < 0) goto fail;
    const AVStream *st = s->fmt->streams[s->index];
    for (unsigned i = 0; i < s->fmt->nb_streams; i++)
        if ((int)i != s->index) s->fmt->streams[i]->discard = AVDISCARD_ALL; /* video etc. not even read */
    /* This stream's length, else the file's where it is the only stream (an MKV or WebM gives
     * only the file's). For bucketing the file's is good enough even beside other streams. */
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0) s->promised = (double)st->duration * av_q2d(st->time_base);
    /* CAF states a stream of constant-size packets by its frame count alone (data size / bytes
     * per packet x frames per packet: cafdec.c); other containers count packets there */
    else if (!strcmp(s->fmt->iformat->name, "caf") && st->nb_frames > 0 && st->codecpar->sample_rate > 0)
        s->promised = (double)st->nb_frames / st->codecpar->sample_rate;
    else if (s->fmt->duration != AV_NOPTS_VALUE && s->fmt->duration > 0 && s->fmt->nb_streams == 1)
        s->promised = (double)s->fmt->duration / AV_TIME_BASE;
    s->base.duration = s->promised;
    if (s->base.duration < 0 && s->fmt->duration != AV_NOPTS_VALUE && s->fmt->duration > 0)
        s->base.duration = (double)s->fmt->duration / AV_TIME_BASE;
    s->base.rate = st->codecpar->sample_rate;
    s->base.channels = st->codecpar->ch_layout.nb_channels;
    if (header_only || open_decoder(s) == 0) return &s->base;
fail:
    ffmpeg_close(&s->base);
    return NULL;
}

static char description[160];
static void describe(void)
{
    const unsigned f = ff->avformat_version(), c = ff->avcodec_version();
    snprintf(description, sizeof description, "FFmpeg %s (libavformat %u.%u.%u, libavcodec %u.%u.%u)", ff->av_version_info(),
             AV_VERSION_MAJOR(f), AV_VERSION_MINOR(f), AV_VERSION_MICRO(f), AV_VERSION_MAJOR(c), AV_VERSION_MINOR(c),
             AV_VERSION_MICRO(c));
}

const char *ffmpeg_describe(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (!ffmpeg_available()) return NULL;
    pthread_once(&once, describe);
    return description;
}

const char *ffmpeg_unavailable(void)
{
    static char why[768];
    if (ffmpeg_available()) return NULL;
    if (!strncmp(ffmpeg_api_error(), "turned off", 10))
        return "FFmpeg is turned off (QASR_FFMPEG=0 in the environment), which reads " FFMPEG_FORMATS;
    snprintf(why, sizeof why, "FFmpeg's libraries, which read " FFMPEG_FORMATS ", cannot be loaded (%s): install "
             "them (Debian 12: apt install libavformat59 libavcodec59 libavutil57)", ffmpeg_api_error());
    return why;
}
