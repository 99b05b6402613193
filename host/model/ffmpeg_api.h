/* FFmpeg's functions as decode_ffmpeg.c calls them (ff.NAME(...)), loaded at run time from the
 * libraries of the version the build saw (libavformat.so.<major> ...), not linked: the commands
 * then start, and read everything libsndfile reads, where FFmpeg's libraries are not installed
 * (a GPU node, a minimal container), as with NCCL. The types are the headers' own. */
#ifndef QASR_FFMPEG_API_H
#define QASR_FFMPEG_API_H

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>

#define FFMPEG_FUNCTIONS(X)                                                                                \
    X(av_free) X(av_freep) X(av_frame_alloc) X(av_frame_free) X(av_get_packed_sample_fmt)                \
    X(av_get_sample_fmt_name) X(av_log) X(av_log_set_callback) X(av_malloc) X(av_packet_alloc)           \
    X(av_packet_free) X(av_packet_unref) X(av_probe_input_buffer2) X(av_read_frame)                      \
    X(av_sample_fmt_is_planar) X(av_strerror) X(av_version_info) X(avcodec_alloc_context3)                \
    X(avcodec_find_decoder) X(avcodec_free_context) X(avcodec_get_name) X(avcodec_open2)                 \
    X(avcodec_parameters_to_context) X(avcodec_receive_frame) X(avcodec_send_packet) X(avcodec_version) \
    X(avformat_alloc_context) X(avformat_close_input) X(avformat_find_stream_info)                       \
    X(avformat_open_input) X(avformat_version) X(avio_alloc_context) X(avio_context_free) X(avio_feof)

typedef struct {
#define FFMPEG_POINTER(name) __typeof__(name) *name;
    FFMPEG_FUNCTIONS(FFMPEG_POINTER)
#undef FFMPEG_POINTER
} ffmpeg_api_t;

/* The functions, loaded on the first call: NULL when a library or a function is missing, or
 * QASR_FFMPEG=0 is in the environment (ffmpeg_api_error says which). Thread-safe. */
const ffmpeg_api_t *ffmpeg_api(void);
const char *ffmpeg_api_error(void);

#endif
