/* audio.c through FFmpeg (host/model/decode_ffmpeg.c), on files made here with the ffmpeg
 * command-line tool: every sample format FFmpeg's decoders give (U8, S16, S32 packed; S16P, S32P,
 * FLTP planar; FLT, DBL), each compared sample for sample with libsndfile reading the same PCM
 * (lossless: equal bits), the container's duration without decoding, and which decoder order
 * reads what. Exit 77 (skipped) when the build has no FFmpeg or there is no ffmpeg command. */
#include "audio.h"
#include "test.h"
#include "util.h"

#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *tmp_dir;

/* path of tmp_dir/name after running ffmpeg with args (input and output named by %1$s, %2$s). */
static char *ffmpeg_make(const char *name, const char *src, const char *args)
{
    char *path = path_join(tmp_dir, name), cmd[4096];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -y -i '%s' %s '%s'", src, args, path);
    if (system(cmd) != 0) {
        fprintf(stderr, "failed: %s\n", cmd);
        CHECK(0);
    }
    return path;
}

/* A 2 s stereo 44.1 kHz test WAV written with libsndfile (format: its subtype). */
static char *write_wav(const char *name, int subtype)
{
    const int rate = 44100, frames = 2 * rate;
    float *x = xmalloc(sizeof(float) * 2 * frames);
    for (int i = 0; i < frames; i++) {
        x[2 * i] = 0.6f * sinf(2 * (float)M_PI * 440.0f * i / rate);
        x[2 * i + 1] = 0.3f * sinf(2 * (float)M_PI * 1234.5f * i / rate + 0.5f);
    }
    SF_INFO info = { .samplerate = rate, .channels = 2, .format = SF_FORMAT_WAV | subtype };
    char *path = path_join(tmp_dir, name);
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    CHECK(sf != NULL);
    if (sf) {
        sf_writef_float(sf, x, frames);
        sf_close(sf);
    }
    free(x);
    return path;
}

static float *load(const char *path, int64_t *n)
{
    float *x = NULL;
    *n = -1;
    if (audio_load(path, &x, n, NULL) != 0) {
        fprintf(stderr, "%s\n", qasr_last_error());
        return NULL;
    }
    return x;
}

/* The file read by FFmpeg gives the samples libsndfile gives for ref, bit for bit. */
static void expect_same(const char *what, const char *path, const char *ref)
{
    int64_t n, m;
    audio_set_decoder("sndfile");
    float *want = load(ref, &n);
    audio_set_decoder("ffmpeg");
    float *got = load(path, &m);
    audio_set_decoder("auto");
    CHECK(want && got);
    if (want && got) {
        CHECK_INT_EQ(m, n);
        const int same = m == n && !memcmp(want, got, sizeof(float) * (size_t)n);
        if (!same) fprintf(stderr, "%s: FFmpeg's samples differ from libsndfile's\n", what);
        CHECK(same);
    }
    free(want);
    free(got);
}

int main(void)
{
    if (!strstr(audio_decoders_describe(), "FFmpeg ") || strstr(audio_decoders_describe(), "without FFmpeg")) {
        printf("SKIP: built without FFmpeg\n");
        return 77;
    }
    if (system("ffmpeg -version >/dev/null 2>&1") != 0) {
        printf("SKIP: no ffmpeg command\n");
        return 77;
    }
    tmp_dir = test_tmp_dir("audio_ffmpeg");
    char *s16 = write_wav("s16.wav", SF_FORMAT_PCM_16), *s24 = write_wav("s24.wav", SF_FORMAT_PCM_24);
    char *u8 = write_wav("u8.wav", SF_FORMAT_PCM_U8), *f32 = write_wav("f32.wav", SF_FORMAT_FLOAT);
    char *f64 = write_wav("f64.wav", SF_FORMAT_DOUBLE);

    /* packed: FFmpeg's PCM decoders give U8, S16, S32 (24-bit), FLT, DBL */
    expect_same("WAV u8 (U8)", u8, u8);
    expect_same("WAV s16 (S16)", s16, s16);
    expect_same("WAV s24 (S32)", s24, s24);
    expect_same("WAV float (FLT)", f32, f32);
    expect_same("WAV double (DBL)", f64, f64);
    /* planar: ALAC gives S16P / S32P, FLAC in Matroska S16 / S32 */
    char *alac16 = ffmpeg_make("alac16.m4a", s16, "-c:a alac");
    char *alac24 = ffmpeg_make("alac24.m4a", s24, "-c:a alac");
    char *flac24 = ffmpeg_make("flac24.mkv", s24, "-c:a flac");
    expect_same("ALAC 16-bit in M4A (S16P)", alac16, s16);
    expect_same("ALAC 24-bit in M4A (S32P)", alac24, s24);
    expect_same("FLAC 24-bit in MKV (S32)", flac24, s24);
    /* float planar: Vorbis in Matroska decoded by FFmpeg vs the same file as float WAV decoded by the ffmpeg CLI */
    char *vorbis = ffmpeg_make("vorbis.mkv", s16, "-c:a libvorbis");
    char *vorbis_wav = ffmpeg_make("vorbis_decoded.wav", vorbis, "-c:a pcm_f32le");
    expect_same("Vorbis in MKV (FLTP) vs the ffmpeg CLI's decoding", vorbis, vorbis_wav);

    /* auto: the MKV and M4A files go to FFmpeg (libsndfile cannot open them), the WAV to
     * libsndfile; sndfile alone refuses them */
    int64_t n;
    float *x = load(alac16, &n);
    CHECK(x != NULL);
    free(x);
    audio_set_decoder("sndfile");
    x = NULL;
    CHECK_INT_EQ(audio_load(alac16, &x, &n, NULL), -1);
    CHECK(strstr(qasr_last_error(), "not an audio format libsndfile reads") != NULL);
    audio_set_decoder("auto");
    CHECK_INT_EQ(audio_set_decoder("gstreamer"), -1);

    /* durations from the container, without decoding */
    char *aac = ffmpeg_make("aac.m4a", s16, "-c:a aac -b:a 96k");
    char *opus = ffmpeg_make("opus.webm", s16, "-c:a libopus");
    const char *timed[] = { aac, opus, alac16, flac24, vorbis };
    for (size_t i = 0; i < sizeof timed / sizeof *timed; i++) {
        double sec = -1;
        CHECK_INT_EQ(audio_probe_duration(timed[i], &sec), 0);
        if (fabs(sec - 2.0) > 0.05) fprintf(stderr, "%s: duration %.3f s, made 2.000 s\n", timed[i], sec);
        CHECK(fabs(sec - 2.0) <= 0.05);
    }
    /* the stream asked for: a file with one has no stream 1; stream 0 again after */
    audio_set_stream("1");
    x = NULL;
    CHECK_INT_EQ(audio_load(aac, &x, &n, NULL), -1);
    CHECK(strstr(qasr_last_error(), "no audio stream 1 (the file has 1)") != NULL);
    CHECK_INT_EQ(audio_load(s16, &x, &n, NULL), -1);
    CHECK(strstr(qasr_last_error(), "no audio stream 1 (the file has 1)") != NULL);
    audio_set_stream("0");

    char *made[] = { s16, s24, u8, f32, f64, alac16, alac24, flac24, vorbis, vorbis_wav, aac, opus };
    for (size_t i = 0; i < sizeof made / sizeof *made; i++) free(made[i]);
    return test_result("test_audio_ffmpeg");
}
