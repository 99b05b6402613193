/* audio.c: decode, downmix, resample and condition real files written here with libsndfile,
 * compared with analytic signals; and every kind of bad input. */
#include "audio.h"
#include "emu/capture_stderr.h"
#include "test.h"
#include "util.h"

#include <math.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *tmp_dir;

/* Writes interleaved frames; NULL when this libsndfile cannot write the format. Caller frees. */
static char *write_float(const char *name, int format, int rate, int channels, const float *x,
                         int64_t frames)
{
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = format};
    if (!sf_format_check(&info)) return NULL;
    char *path = path_join(tmp_dir, name);
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    CHECK(sf != NULL);
    if (!sf) {
        free(path);
        return NULL;
    }
    CHECK_INT_EQ(sf_writef_float(sf, x, frames), frames);
    sf_close(sf);
    return path;
}

/* [frames][channels] sine of freq Hz at rate, amplitude amp[c] on channel c. */
static float *sine(int64_t frames, int channels, double rate, double freq, const double *amp)
{
    float *x = xmalloc(sizeof(float) * (size_t)(frames * channels));
    for (int64_t i = 0; i < frames; i++)
        for (int c = 0; c < channels; c++)
            x[i * channels + c] = (float)(amp[c] * sin(2 * M_PI * freq * i / rate));
    return x;
}

/* Largest |y[j] - amp sin(2 pi freq j / 16000)| away from the first/last `margin` samples,
 * where the resampler's filter rings on the abrupt start and end. */
static double max_err_vs_sine(const float *y, int64_t n, double freq, double amp, int64_t margin)
{
    double worst = 0;
    for (int64_t j = margin; j < n - margin; j++)
        worst = fmax(worst, fabs(y[j] - amp * sin(2 * M_PI * freq * j / 16000.0)));
    return worst;
}

/* Least-squares fit of a sin + b cos at freq over [margin, n - margin): the tone's amplitude,
 * and its lag in 16 kHz samples (0 when y is amp * sin(2 pi freq j / 16000)). */
static void fit_sine(const float *y, int64_t n, double freq, int64_t margin, double *amp,
                     double *lag)
{
    double ys = 0, yc = 0, ss = 0, cc = 0;
    for (int64_t j = margin; j < n - margin; j++) {
        double p = 2 * M_PI * freq * j / 16000.0;
        ys += y[j] * sin(p);
        yc += y[j] * cos(p);
        ss += sin(p) * sin(p);
        cc += cos(p) * cos(p);
    }
    double a = ys / ss, b = yc / cc;
    *amp = sqrt(a * a + b * b);
    *lag = -atan2(b, a) / (2 * M_PI * freq) * 16000.0;
}

static int64_t librosa_len(int64_t n, double rate) { return (int64_t)ceil(n * (16000.0 / rate)); }

/* 16 kHz int16: no resampling, so the samples are exactly int16 / 32768; several read blocks. */
static void test_passthrough(void)
{
    int64_t n = 100000;
    short *s = xmalloc(sizeof(short) * (size_t)n);
    uint32_t r = 7;
    for (int64_t i = 0; i < n; i++) s[i] = (short)((r = r * 1664525u + 1013904223u) >> 16);
    s[10] = -32768;
    s[20] = 32767;
    char *path = path_join(tmp_dir, "pcm16_16k.wav");
    SF_INFO info = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    CHECK(sf != NULL);
    CHECK_INT_EQ(sf_writef_short(sf, s, n), n);
    sf_close(sf);

    float *x = NULL;
    int64_t m = 0;
    CHECK_INT_EQ(audio_load(path, &x, &m, NULL), 0);
    CHECK_INT_EQ(m, n);
    int exact = m == n;
    for (int64_t i = 0; exact && i < n; i++) exact = x[i] == s[i] / 32768.0f;
    CHECK(exact);
    CHECK(x && x[10] == -1.0f);
    double sec = 0;
    CHECK_INT_EQ(audio_probe_duration(path, &sec), 0);
    CHECK_NEAR(sec, 6.25, 1e-12, 0);
    free(x);
    free(s);
    free(path);
}

/* 44.1 kHz stereo, 5 s (several soxr input chunks): channels averaged, length as librosa's,
 * the sine at the right frequency and phase (a 1/10-sample shift would be an error of 0.02). */
static void test_resample_stereo(void)
{
    int64_t frames = 5 * 44100;
    double amp[2] = {0.6, 0.4};
    float *x = sine(frames, 2, 44100, 997.3, amp); /* not periodic in 3 s chunks */
    char *path =
        write_float("stereo_44k.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, 2, x, frames);
    float *y = NULL;
    int64_t n = 0;
    CHECK_INT_EQ(audio_load(path, &y, &n, NULL), 0);
    CHECK_INT_EQ(n, 80000);
    double err = max_err_vs_sine(y, n, 997.3, 0.5, 64);
    printf("44.1 kHz stereo -> 16 kHz: max |y - sine| = %.3g\n", err);
    CHECK(err < 1e-3);

    /* Independently: libsndfile's float decode, mean of the two channels, soxr_oneshot. */
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    float *d = xmalloc(sizeof(float) * (size_t)(2 * frames));
    float *mono = xmalloc(sizeof(float) * (size_t)frames);
    CHECK_INT_EQ(sf_readf_float(sf, d, frames), frames);
    sf_close(sf);
    for (int64_t i = 0; i < frames; i++) mono[i] = (d[2 * i] + d[2 * i + 1]) / 2;
    float *ref = xcalloc(80010, sizeof(float));
    size_t done = 0;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    CHECK(soxr_oneshot(44100, 16000, 1, mono, (size_t)frames, NULL, ref, 80010, &done, &io, &q,
                       NULL) == NULL);
    CHECK_INT_EQ(done, 80000);
    double diff = 0;
    for (int64_t j = 0; j < n && j < (int64_t)done; j++) diff = fmax(diff, fabs(y[j] - ref[j]));
    printf("audio_load vs soxr_oneshot: max diff %.3g\n", diff);
    CHECK(diff < 1e-6);
    free(x);
    free(y);
    free(d);
    free(mono);
    free(ref);
    free(path);
}

/* audio_resample_16k directly: lengths, the zero tail, the 16 kHz copy, bad rates. */
static void test_resample_lengths(void)
{
    const double rates[] = {44100, 48000, 8000, 22050, 11025, 96000, 12345.5};
    const int64_t lens[] = {1, 3, 100, 44101, 100003};
    for (int r = 0; r < 7; r++) {
        for (int l = 0; l < 5; l++) {
            double amp = 0.5;
            float *x = sine(lens[l], 1, rates[r], 300, &amp);
            int64_t n = -1;
            float *y = audio_resample_16k(x, lens[l], rates[r], &n);
            CHECK(y != NULL);
            CHECK_INT_EQ(n, librosa_len(lens[l], rates[r]));
            /* soxr stops at round(n * ratio); librosa pads the rest with zeros. */
            int64_t produced = (int64_t)floor(lens[l] * 16000.0 / rates[r] + 0.5);
            for (int64_t j = produced; j < n; j++) CHECK(y[j] == 0.0f);
            free(x);
            free(y);
        }
    }
    float x[5] = {0.1f, -0.2f, 0.3f, 1.5f, -0.0f};
    int64_t n = 0;
    float *y = audio_resample_16k(x, 5, 16000, &n);
    CHECK_INT_EQ(n, 5);
    CHECK(y && memcmp(x, y, sizeof x) == 0);
    free(y);
    CHECK(audio_resample_16k(x, 5, 0, &n) == NULL);
    CHECK(strstr(qasr_last_error(), "sample rate") != NULL);
}

static void test_flac_8k(void)
{
    double amp = 0.3;
    float *x = sine(8000, 1, 8000, 440, &amp);
    char *path = write_float("sine_8k.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 8000, 1, x, 8000);
    float *y = NULL;
    int64_t n = 0;
    CHECK_INT_EQ(audio_load(path, &y, &n, NULL), 0);
    CHECK_INT_EQ(n, 16000);
    double err = max_err_vs_sine(y, n, 440, 0.3, 64);
    printf("8 kHz FLAC -> 16 kHz: max |y - sine| = %.3g\n", err);
    CHECK(err < 1e-3);
    double sec = 0;
    CHECK_INT_EQ(audio_probe_duration(path, &sec), 0);
    CHECK_NEAR(sec, 1.0, 1e-12, 0);
    free(x);
    free(y);
    free(path);
}

/* Lossy codecs: the length, and the tone at its frequency, amplitude and time (a shift of a
 * quarter sample or a wrong rate would show). optional: skip if libsndfile lacks the codec. */
static void test_lossy(const char *name, int format, int rate, int channels, int optional)
{
    int64_t frames = 2 * (int64_t)rate;
    double amp[2] = {0.5, 0.5};
    float *x = sine(frames, channels, rate, 440, amp);
    /* 0.1 s fades: an abrupt end makes codecs overshoot (Opus: peak 1.13), which the peak
     * normalisation would then rightly scale away. */
    for (int64_t i = 0, fade = rate / 10; i < fade; i++)
        for (int c = 0; c < channels; c++) {
            x[i * channels + c] *= (float)i / fade;
            x[(frames - 1 - i) * channels + c] *= (float)i / fade;
        }
    char *path = write_float(name, format, rate, channels, x, frames);
    free(x);
    if (!path) {
        if (optional) printf("note: this libsndfile cannot write %s; skipped\n", name);
        CHECK(optional);
        return;
    }
    float *y = NULL;
    int64_t n = 0;
    CHECK_INT_EQ(audio_load(path, &y, &n, NULL), 0);
    CHECK_INT_EQ(n, 32000);
    double fit_amp = 0, lag = 1e9;
    fit_sine(y, n, 440, 3200, &fit_amp, &lag);
    printf("%s: %lld samples, 440 Hz amplitude %.4f, lag %.3f samples\n", name, (long long)n,
           fit_amp, lag);
    CHECK_NEAR(fit_amp, 0.5, 0.01, 0);
    CHECK_NEAR(lag, 0, 0.25, 0);
    double sec = 0;
    CHECK_INT_EQ(audio_probe_duration(path, &sec), 0);
    CHECK_NEAR(sec, 2.0, 1e-3, 0);
    free(y);
    free(path);
}

/* 48 kHz, 6 float channels averaging to 1.75 sin: the peak is brought to exactly 1. */
static void test_float_6ch_peak(void)
{
    double amp[6] = {0.5, 1.0, 1.5, 2.0, 2.5, 3.0};
    float *x = sine(48000, 6, 48000, 300, amp);
    char *path = write_float("six_48k.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 48000, 6, x, 48000);
    float *y = NULL;
    int64_t n = 0;
    CHECK_INT_EQ(audio_load(path, &y, &n, NULL), 0);
    CHECK_INT_EQ(n, 16000);
    float peak = 0;
    for (int64_t i = 0; i < n; i++) peak = fmaxf(peak, fabsf(y[i]));
    CHECK(peak == 1.0f);
    double err = max_err_vs_sine(y, n, 300, 1.0, 64);
    printf("6 ch 48 kHz float, peak 1.75 -> normalised: max |y - sine| = %.3g\n", err);
    CHECK(err < 2e-3);
    free(x);
    free(y);
    free(path);
}

static void test_downmix_and_condition(void)
{
    /* left = +a, right = -a cancels exactly. */
    float x[2 * 4000];
    for (int i = 0; i < 4000; i++) x[2 * i + 1] = -(x[2 * i] = 0.9f * (float)sin(i * 0.01));
    char *path = write_float("cancel.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 2, x, 4000);
    float *y = NULL;
    int64_t n = 0;
    CHECK_INT_EQ(audio_load(path, &y, &n, NULL), 0);
    CHECK_INT_EQ(n, 4000);
    int zero = 1;
    for (int64_t i = 0; i < n; i++) zero &= y[i] == 0.0f;
    CHECK(zero);
    free(y);
    free(path);

    float m[9] = {0.3f, 0.6f, -0.3f, 1.0f, 1.0f, 1.0f, -0.25f, 0.5f, 0.125f};
    audio_downmix(m, m, 3, 3); /* in place */
    CHECK_NEAR(m[0], 0.2, 1e-7, 0);
    CHECK(m[1] == 1.0f);
    CHECK(m[2] == 0.125f);

    float a[4] = {0.5f, -2.0f, 1.0f, 0.0f};
    audio_condition(a, 4);
    CHECK(a[0] == 0.25f && a[1] == -1.0f && a[2] == 0.5f && a[3] == 0.0f);
    float b[3] = {0.5f, 1.0f, -1.0f}; /* peak 1 is not > 1: untouched */
    audio_condition(b, 3);
    CHECK(b[0] == 0.5f && b[1] == 1.0f && b[2] == -1.0f);
}

static void copy_prefix(const char *src, const char *dst, size_t n)
{
    size_t len = 0;
    char *buf = read_file(src, &len);
    CHECK(buf != NULL && n <= len);
    FILE *f = fopen(dst, "wb");
    if (buf && n) CHECK_INT_EQ(fwrite(buf, 1, n, f), n);
    fclose(f);
    free(buf);
}

/* audio_load must fail with -1 and a message naming the file and containing `what`. */
static void expect_fail(const char *path, const char *what)
{
    float sentinel, *y = &sentinel;
    int64_t n = -7;
    CHECK_INT_EQ(audio_load(path, &y, &n, NULL), -1);
    CHECK(y == &sentinel && n == -7); /* outputs untouched */
    const char *e = qasr_last_error();
    CHECK(strstr(e, path) != NULL);
    if (!strstr(e, what)) fprintf(stderr, "message \"%s\" lacks \"%s\"\n", e, what);
    CHECK(strstr(e, what) != NULL);
}

static void test_errors(void)
{
    char *missing = path_join(tmp_dir, "no_such_file.wav");
    expect_fail(missing, "No such file");
    double sec = -1;
    CHECK_INT_EQ(audio_probe_duration(missing, &sec), -1);
    CHECK(sec == -1);
    free(missing);
    expect_fail(tmp_dir, "directory");

    /* Text renamed .wav: the message carries libsndfile's own reason. */
    char *text = path_join(tmp_dir, "text.wav");
    FILE *f = fopen(text, "w");
    fputs("this is a text file, not audio\n", f);
    fclose(f);
    SF_INFO info = {0};
    CHECK(sf_open(text, SFM_READ, &info) == NULL);
    char reason[256];
    snprintf(reason, sizeof reason, "%s", sf_strerror(NULL));
    expect_fail(text, reason);
    CHECK_INT_EQ(audio_probe_duration(text, &sec), -1);
    free(text);

    char *empty = path_join(tmp_dir, "empty.wav");
    fclose(fopen(empty, "w"));
    expect_fail(empty, "empty file (0 bytes)");
    free(empty);

    /* Not regular files: refused at once, never opened for reading (a FIFO without a writer
     * would block the reader thread forever). */
    char *fifo = path_join(tmp_dir, "pipe.wav");
    CHECK_INT_EQ(mkfifo(fifo, 0600), 0);
    expect_fail(fifo, "is a FIFO (named pipe)");
    CHECK_INT_EQ(audio_probe_duration(fifo, &sec), -1);
    CHECK(strstr(qasr_last_error(), "FIFO") != NULL);
    unlink(fifo);
    free(fifo);
    expect_fail("/dev/null", "is a character device");

    /* A header with sample rate 0: our words, not libsndfile's "SF_INFO struct incomplete". */
    const float one[1] = {0.25f};
    char *rate0 = write_float("rate0.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, one, 1);
    f = fopen(rate0, "r+b");
    const unsigned char zero4[4] = {0, 0, 0, 0};
    fseek(f, 24, SEEK_SET);
    fwrite(zero4, 1, 4, f);
    fclose(f);
    expect_fail(rate0, "corrupt header");
    free(rate0);

    float none[1] = {0};
    char *zero =
        write_float("zero_frames.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, none, 0);
    expect_fail(zero, "no audio samples");
    CHECK_INT_EQ(audio_probe_duration(zero, &sec), -1);
    free(zero);

    /* Non-finite samples in a float file. */
    float bad[100] = {0};
    bad[50] = NAN;
    char *nan_path = write_float("nan.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, bad, 100);
    expect_fail(nan_path, "non-finite");
    free(nan_path);

    /* Absurd sample rate: patch a valid WAV's rate field (bytes 24..27) to 50 Hz. */
    char *slow = write_float("rate50.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, bad, 40);
    f = fopen(slow, "r+b");
    unsigned char rate50[4] = {50, 0, 0, 0};
    fseek(f, 24, SEEK_SET);
    fwrite(rate50, 1, 4, f);
    fclose(f);
    expect_fail(slow, "sample rate 50");
    CHECK_INT_EQ(audio_probe_duration(slow, &sec), -1);
    free(slow);
}

/* Truncated files. A FLAC cut in half: libsndfile reports "lost sync" -> an error (never a
 * crash or a silent partial result). A WAV cut in half: libsndfile clamps the data chunk to
 * what is there without an error -> the available frames decode, with a warning. */
static void test_truncated(void)
{
    int64_t frames = 32000;
    double amp = 0.5;
    float *x = sine(frames, 1, 16000, 440, &amp);
    char *flac = write_float("full.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, x, frames);
    char *wav = write_float("full.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, x, frames);
    char *cut_flac = path_join(tmp_dir, "cut.flac"), *cut_wav = path_join(tmp_dir, "cut.wav");
    struct stat st;
    stat(flac, &st);
    copy_prefix(flac, cut_flac, (size_t)st.st_size / 2);
    expect_fail(cut_flac, "decode error");

    stat(wav, &st);
    size_t header = (size_t)st.st_size - 2 * (size_t)frames;
    copy_prefix(wav, cut_wav, (size_t)st.st_size / 2);
    float *y = NULL;
    int64_t n = 0;
    char *warning = NULL;
    CHECK_INT_EQ(audio_load(cut_wav, &y, &n, &warning), 0);
    CHECK_INT_EQ(n, ((size_t)st.st_size / 2 - header) / 2);
    CHECK(n > 0 && max_err_vs_sine(y, n, 440, 0.5, 0) < 1e-4);
    /* said, with both durations: 2 s promised, n / 16000 read */
    char holds[64];
    snprintf(holds, sizeof holds, "the file holds %.2f s", (double)n / 16000);
    CHECK(warning && strstr(warning, cut_wav) && strstr(warning, "promises 2.00 s") && strstr(warning, holds));
    if (warning) printf("cut WAV: %s\n", warning);
    free(warning);
    free(y);
    warning = (char *)"unset";
    CHECK_INT_EQ(audio_load(wav, &y, &n, &warning), 0); /* the whole file: no warning */
    CHECK(warning == NULL && n == frames);
    free(y);
    free(x);
    free(flac);
    free(wav);
    free(cut_flac);
    free(cut_wav);
}

/* libmpg123's own messages (here "dequantization failed" on an MP3 with damaged frames) stay off
 * stderr unless asked for (qasr -v); the file still decodes or fails as before. */
static void test_library_messages(void)
{
    const double amp = 0.5;
    float *x = sine(44100 * 4, 1, 44100, 440, &amp);
    char *path = write_float("damaged.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 44100, 1, x, 44100 * 4);
    free(x);
    if (!path) {
        printf("SKIP library messages: this libsndfile cannot write MP3\n");
        return;
    }
    FILE *f = fopen(path, "r+b");
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    for (long at = 2000; at < size; at += 997) { /* damage the frames, not the first header */
        fseek(f, at, SEEK_SET);
        const int c = fgetc(f);
        fseek(f, at, SEEK_SET);
        fputc(c ^ 0xff, f);
    }
    fclose(f);
    int rc[2];
    for (int show = 0; show < 2; show++) {
        float *y = NULL;
        int64_t n = 0;
        audio_show_library_messages(show);
        capture_begin();
        rc[show] = audio_load(path, &y, &n, NULL);
        const char *said = capture_end();
        CHECK(show ? strstr(said, "libmpg123") != NULL : said[0] == 0);
        free(y);
    }
    audio_show_library_messages(0);
    CHECK_INT_EQ(rc[0], rc[1]);
    free(path);
}

/* All of a stream's samples, read in sizes that cycle through odd counts; NULL on a failed read. */
static float *read_stream(audio_stream_t *st, int64_t n)
{
    static const int64_t sizes[] = { 1, 4095, 65536, 77777, 3, 160000 };
    float *x = xmalloc(sizeof(float) * (size_t)(n + 1));
    int64_t have = 0, got;
    for (int k = 0; (got = audio_stream_read(st, x + have, MIN(sizes[k % 6], n + 1 - have))) > 0; k++) have += got;
    if (got < 0 || have != n) {
        free(x);
        return NULL;
    }
    return x;
}

/* audio_stream: a file read in pieces of any size (the second pass) gives audio_load's samples
 * bit for bit: resampled stereo (many 3 s chunks, soxr's flush, librosa's zero tail), 16 kHz
 * FLAC, lossy MP3, and a float file whose peak (3.0, near the end) is over 1, so every sample is
 * divided by the whole file's peak, not a piece's. A short file is kept from the first pass; a
 * file changed between the passes is an error naming it. */
static void test_stream(void)
{
    const struct { const char *name; int format, rate, channels; int64_t frames; } cases[] = {
        { "st44.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, 2, 44100 * 20 + 123 },
        { "st16.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, 16000 * 13 + 7 },
        { "st44.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 44100, 1, 44100 * 9 },
        { "st22.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 22050, 1, 22050 * 11 + 5 },
    };
    const double amp[8] = { 0.5, 0.25 };
    for (int c = 0; c < 4; c++) {
        float *x = sine(cases[c].frames, cases[c].channels, cases[c].rate, 330, amp);
        const int spike = c == 3;
        if (spike) x[cases[c].frames - 1000] = 3.0f;
        char *path = write_float(cases[c].name, cases[c].format, cases[c].rate, cases[c].channels, x, cases[c].frames);
        free(x);
        if (!path) {
            printf("SKIP stream %s: this libsndfile cannot write it\n", cases[c].name);
            continue;
        }
        float *ref = NULL;
        int64_t n = 0;
        CHECK_INT_EQ(audio_load(path, &ref, &n, NULL), 0);
        audio_stream_t *kept = audio_stream_open(path, INT64_MAX, NULL), *st = audio_stream_open(path, 0, NULL);
        CHECK(kept && st);
        if (!kept || !st) {
            free(ref);
            free(path);
            continue;
        }
        CHECK_INT_EQ(audio_stream_length(kept), n);
        CHECK_INT_EQ(audio_stream_length(st), n);
        CHECK(audio_stream_take(st) == NULL);
        float *whole = audio_stream_take(kept), *pieces = read_stream(st, n);
        CHECK(whole && !memcmp(whole, ref, sizeof(float) * (size_t)n));
        CHECK(pieces && !memcmp(pieces, ref, sizeof(float) * (size_t)n));
        if (spike) CHECK(ref[n / 2] != 0 && fabsf(ref[(int64_t)((cases[c].frames - 1000) * 16000.0 / 22050)]) > 0.9f);
        free(whole);
        free(pieces);
        free(ref);
        audio_stream_close(kept);
        audio_stream_close(st);
        free(path);
    }

    /* changed between the passes: shorter, then longer */
    for (int longer = 0; longer < 2; longer++) {
        float *x = sine(16000 * 4, 1, 16000, 330, amp);
        char *path = write_float("changed.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, x, 16000 * 3);
        audio_stream_t *st = audio_stream_open(path, 0, NULL);
        CHECK(st != NULL);
        free(write_float("changed.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, x, longer ? 16000 * 4 : 16000 * 2));
        float *y = st ? read_stream(st, 16000 * 3) : NULL;
        CHECK(y == NULL && strstr(qasr_last_error(), path) && strstr(qasr_last_error(), "changed while it was read"));
        printf("changed file: %s\n", qasr_last_error());
        free(y);
        audio_stream_close(st);
        free(path);
        free(x);
    }
}

int main(void)
{
    tmp_dir = test_tmp_dir("audio");

    test_passthrough();
    test_resample_stereo();
    test_resample_lengths();
    test_flac_8k();
    test_lossy("vorbis_22k.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 22050, 2, 0);
    test_lossy("opus_16k.opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 16000, 1, 1);
    test_lossy("mp3_44k.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 44100, 1, 1);
    test_float_6ch_peak();
    test_downmix_and_condition();
    test_errors();
    test_truncated();
    test_stream();
    test_library_messages();
    return test_result("test_audio");
}
