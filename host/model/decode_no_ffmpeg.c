/* Compiled instead of decode_ffmpeg.c in a build without FFmpeg (QASR_FFMPEG=OFF, or AUTO
 * without its development files): libsndfile's formats only, and a message that says what is
 * missing and how to get it. */
#include "decode.h"
#include "util.h"

#include <unistd.h>

audio_source_t *ffmpeg_source_open(const char *path, int fd, int stream, int header_only, decode_failure_t *why)
{
    close(fd);
    *why = DECODE_NOT_MINE;
    qasr_fail("%s: not an audio format libsndfile reads, and %s", path, ffmpeg_unavailable());
    return NULL;
}

const char *ffmpeg_describe(void) { return NULL; }

const char *ffmpeg_unavailable(void)
{
    return "this qasr is built without FFmpeg, which reads " FFMPEG_FORMATS ": install libavformat-dev "
           "libavcodec-dev libavutil-dev and rebuild (cmake -DQASR_FFMPEG=ON)";
}
