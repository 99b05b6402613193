/* Decode-ahead pool: every job comes back exactly once (errors included) whatever the thread
 * count and queue bounds, and cancelling mid-run frees everything. Long files come in pieces cut
 * where segment_plan cuts the whole file, with its samples, in order, the queue within its bound. */
#include <sndfile.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio.h"
#include "reader.h"
#include "segment.h"
#include "test.h"
#include "util.h"

static char *write_wav(const char *dir, int i, int frames)
{
    char name[64];
    snprintf(name, sizeof name, "r%02d.wav", i);
    char *path = path_join(dir, name);
    SF_INFO info = { .samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16 };
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    short *pcm = xcalloc(frames, sizeof(short));
    for (int k = 0; k < frames; k++) pcm[k] = (short)(i * 100 + k % 50);
    sf_write_short(f, pcm, frames);
    sf_close(f);
    free(pcm);
    return path;
}

static void run(char **paths, int n, int threads, int max_items, int64_t max_samples)
{
    int *seen = xcalloc(n, sizeof(int));
    reader_t *r = reader_start((const char *const *)paths, n, threads, max_items, max_samples, 100000);
    decoded_t d;
    int count = 0;
    while (reader_next(r, &d)) {
        CHECK(d.job >= 0 && d.job < n);
        seen[d.job]++;
        count++;
        if (d.job == n - 1) { /* the missing file */
            CHECK(d.samples == NULL && d.error && strstr(d.error, paths[n - 1]));
        } else {
            CHECK(d.error == NULL);
            CHECK_INT_EQ(d.n_samples, 1000 + 37 * d.job);
            CHECK(d.samples && fabsf(d.samples[3] - (float)(d.job * 100 + 3) / 32768.0f) < 1e-7f);
        }
        free(d.samples);
        free(d.error);
    }
    CHECK_INT_EQ(count, n);
    for (int i = 0; i < n; i++) CHECK_INT_EQ(seen[i], 1);
    CHECK_INT_EQ(reader_try_next(r, &d), -1);
    reader_free(r);
    free(seen);
}

/* A long file with rate and channels given: noise with quiet gaps. */
static char *write_long(const char *dir, const char *name, int rate, int channels, double seconds)
{
    char *path = path_join(dir, name);
    SF_INFO info = { .samplerate = rate, .channels = channels, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16 };
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    const int64_t frames = (int64_t)(seconds * rate);
    short *pcm = xmalloc(sizeof(short) * (size_t)(frames * channels));
    unsigned seed = 7;
    for (int64_t k = 0; k < frames * channels; k++) {
        seed = seed * 1664525u + 1013904223u;
        const double t = (double)(k / channels) / rate;
        pcm[k] = (short)(fmod(t, 4.3) < 0.2 ? 0 : (int)(seed >> 20) - 2048);
    }
    sf_writef_short(f, pcm, frames);
    sf_close(f);
    free(pcm);
    return path;
}

static void test_pieces(const char *dir)
{
    const int64_t max_piece = 6 * 16000, max_samples = 7 * 16000;
    const int threads = 2;
    char *paths[] = { write_long(dir, "long16.wav", 16000, 1, 50), write_long(dir, "short.wav", 16000, 1, 2),
                      write_long(dir, "long44.wav", 44100, 2, 31.3), write_long(dir, "exact.wav", 16000, 1, 6) };
    enum { J = 4 };
    float *got[J];
    int64_t n[J];
    int next_index[J] = { 0 }, lasts[J] = { 0 }, pieces[J] = { 0 };
    int64_t *cuts[J];
    for (int j = 0; j < J; j++) {
        float *ref;
        CHECK_INT_EQ(audio_load(paths[j], &ref, &n[j], NULL), 0);
        got[j] = xcalloc((size_t)n[j], sizeof(float));
        const int k = segment_plan(ref, n[j], max_piece, &cuts[j]);
        free(ref);
        pieces[j] = k;
    }
    reader_t *r = reader_start((const char *const *)paths, J, threads, 64, max_samples, max_piece);
    decoded_t d;
    while (reader_next(r, &d)) {
        const int j = d.job;
        CHECK(d.error == NULL && d.samples);
        CHECK_INT_EQ(d.index, next_index[j]);
        CHECK_INT_EQ(d.start, cuts[j][d.index]);
        CHECK_INT_EQ(d.start + d.n_samples, cuts[j][d.index + 1]);
        CHECK(d.n_samples <= max_piece);
        if (d.samples && d.start + d.n_samples <= n[j]) memcpy(got[j] + d.start, d.samples, sizeof(float) * (size_t)d.n_samples);
        next_index[j]++;
        lasts[j] += d.last;
        CHECK(d.last == (d.start + d.n_samples == n[j]));
        free(d.samples);
        free(d.error);
        free(d.warning);
        usleep(3000); /* a slow consumer: the decoders wait for room */
    }
    const int64_t peak = reader_peak_samples(r);
    printf("pieces: queue peak %.1f s of audio (bound %.1f s)\n", peak / 16000.0, (max_samples + threads * max_piece) / 16000.0);
    CHECK(peak <= max_samples + threads * max_piece);
    reader_free(r);
    for (int j = 0; j < J; j++) {
        CHECK_INT_EQ(next_index[j], pieces[j]);
        CHECK_INT_EQ(lasts[j], 1);
        float *ref;
        int64_t m;
        CHECK_INT_EQ(audio_load(paths[j], &ref, &m, NULL), 0);
        CHECK(!memcmp(ref, got[j], sizeof(float) * (size_t)m));
        free(ref);
        free(got[j]);
        free(cuts[j]);
        free(paths[j]);
    }
    CHECK(pieces[0] >= 9 && pieces[1] == 1 && pieces[2] >= 6 && pieces[3] == 1);
}

int main(void)
{
    const char *dir = test_tmp_dir("reader");
    enum { N = 24 };
    char *paths[N + 1];
    for (int i = 0; i < N; i++) paths[i] = write_wav(dir, i, 1000 + 37 * i);
    paths[N] = path_join(dir, "missing.wav");
    run(paths, N + 1, 1, 1, 1);          /* one thread, one item at a time */
    run(paths, N + 1, 3, 2, 2000);       /* more threads than room */
    run(paths, N + 1, 2, 64, 1 << 30);   /* unbounded */

    /* cancel with work outstanding: no hang, no leak (checked under ASan) */
    reader_t *r = reader_start((const char *const *)paths, N + 1, 2, 2, 1 << 20, 100000);
    decoded_t d;
    CHECK(reader_next(r, &d) == 1);
    free(d.samples);
    free(d.error);
    reader_cancel(r);
    CHECK(reader_next(r, &d) == 0 || (free(d.samples), free(d.error), 1));
    reader_free(r);

    for (int i = 0; i <= N; i++) free(paths[i]);
    test_pieces(dir);

    /* default thread counts: 2 beside the CPU model; beside GPUs the CPUs the workers leave */
    CHECK(reader_default_threads(0, 64, 1) == 2);
    CHECK(reader_default_threads(1, 2, 1) == 2);
    CHECK(reader_default_threads(1, 16, 1) == 15);
    CHECK(reader_default_threads(1, 64, 1) == 16);
    CHECK(reader_default_threads(1, 64, 2) == 32);
    CHECK(reader_default_threads(1, 128, 8) == 120);
    CHECK(reader_default_threads(1, 4, 8) == 2);
    return test_result("test_reader");
}
