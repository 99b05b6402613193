/* The decoders behind audio.c (internal to host/model): each turns one audio stream of a file into
 * blocks of interleaved float frames at the file's own rate and channel count. audio.c chooses
 * the decoder, checks the file first (a regular, non-empty file, opened without blocking) and
 * does everything after the blocks: downmix, resampling, conditioning. */
#ifndef QASR_DECODE_H
#define QASR_DECODE_H

#include <stdint.h>

/* Header sample rates outside this range are corruption, not audio. */
#define DECODE_MIN_RATE 1000
#define DECODE_MAX_RATE 768000

typedef struct audio_source audio_source_t;
struct audio_source {
    const char *path;  /* for messages; the caller's, outlives the source */
    int rate, channels;
    int streams;       /* audio streams in the file */
    double duration;   /* seconds the header or container promises, -1 when it does not say */
    /* Up to max frames into block ([max][channels]): how many, 0 at the end, -1 + qasr_fail()
     * naming the file. Not available on a source opened header_only. */
    int64_t (*read)(audio_source_t *src, float *block, int64_t max);
    /* After the end, the frames read in all: a malloc'd warning naming the file when that is
     * less than the file promised (a file cut short), else NULL. */
    char *(*cut_short)(audio_source_t *src, int64_t frames);
    void (*close)(audio_source_t *src);
};

/* The warning of a file cut short, whichever decoder read it: path, the seconds its header or
 * container promises and the seconds read (malloc'd). */
char *decode_cut_short_warning(const char *path, double promised, double read);

/* Why an open failed, for the choice of the next decoder and of the message. */
typedef enum {
    DECODE_FAILED,     /* opened, and the file is bad (no stream N, a decode error): no other try */
    DECODE_CORRUPT,    /* the format is recognised but the file cannot be opened */
    DECODE_NOT_MINE,   /* the format is not recognised at all */
} decode_failure_t;

/* Open audio stream `stream` (0: the first) of path, whose fd (regular, non-empty, at offset 0)
 * the source takes: it is closed with the source, or before returning NULL. NULL + qasr_fail()
 * and *why on failure. header_only: only what the header says (rate, channels, duration), no
 * decoder set up. */
audio_source_t *sndfile_source_open(const char *path, int fd, int stream, int header_only, decode_failure_t *why);
audio_source_t *ffmpeg_source_open(const char *path, int fd, int stream, int header_only, decode_failure_t *why);

/* "FFmpeg 5.1 (libavformat 59.27.100, libavcodec 59.37.100)", or NULL when built without it or
 * when its libraries cannot be loaded (they are loaded at run time: ffmpeg_api.h). */
const char *ffmpeg_describe(void);
/* Why FFmpeg cannot be used, as the end of a sentence ("this qasr is built without FFmpeg ...",
 * "FFmpeg's libraries ... cannot be loaded (...): install them ..."), or NULL when it can. */
const char *ffmpeg_unavailable(void);
/* The extensions of the formats FFmpeg adds, for a build without it to name what it lacks. */
#define FFMPEG_FORMATS "M4A/AAC, MP4/MOV, MKV, WebM, WMA/ASF, AMR, AC-3, and audio codecs libsndfile lacks in WAV"

/* Whether the decoding libraries' own messages are wanted (audio_show_library_messages). */
int audio_library_messages_shown(void);

#endif
