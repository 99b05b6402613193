/* Decode-ahead pool: every job comes back exactly once (errors included) whatever the thread
 * count and queue bounds, and cancelling mid-run frees everything. */
#include <sndfile.h>
#include <stdlib.h>

#include "reader.h"
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
    reader_t *r = reader_start((const char *const *)paths, n, threads, max_items, max_samples);
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
    reader_t *r = reader_start((const char *const *)paths, N + 1, 2, 2, 1 << 20);
    decoded_t d;
    CHECK(reader_next(r, &d) == 1);
    free(d.samples);
    free(d.error);
    reader_cancel(r);
    CHECK(reader_next(r, &d) == 0 || (free(d.samples), free(d.error), 1));
    reader_free(r);

    for (int i = 0; i <= N; i++) free(paths[i]);
    return test_result("test_reader");
}
