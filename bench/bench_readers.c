/* How fast qasr-batch's reader pool (host/batch/reader.c: decode, downmix, resample to 16 kHz,
 * condition, cut) turns files into model input, per thread: the host side a GPU needs to keep
 * busy. Runs the pool exactly as qasr-batch does (queue bounds included) over the files given,
 * repeated, and prints seconds of audio per second of wall time and per thread.
 *
 * usage: bench_readers [--threads N] [--repeat R] FILE... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "reader.h"
#include "util.h"

int main(int argc, char **argv)
{
    int threads = 1, repeat = 1, first = 1;
    for (; first < argc && !strncmp(argv[first], "--", 2); first += 2) {
        if (first + 1 >= argc) break;
        if (!strcmp(argv[first], "--threads")) threads = atoi(argv[first + 1]);
        else if (!strcmp(argv[first], "--repeat")) repeat = atoi(argv[first + 1]);
        else break;
    }
    if (first >= argc || threads < 1 || repeat < 1) {
        fputs("usage: bench_readers [--threads N] [--repeat R] FILE...\n", stderr);
        return 2;
    }
    const int n_files = argc - first, n = n_files * repeat;
    const char **paths = xmalloc(sizeof *paths * (size_t)n);
    for (int i = 0; i < n; i++) paths[i] = argv[first + i % n_files];
    /* qasr-batch's queue bounds (workers.c) for one device at the default batch of 32, 300 s pieces */
    const double t0 = now_seconds();
    reader_t *r = reader_start(paths, n, threads, 2 * 32 + 8, (int64_t)READER_SECONDS * QASR_SAMPLE_RATE,
                               300LL * QASR_SAMPLE_RATE);
    decoded_t d;
    double audio = 0, decode = 0;
    int errors = 0;
    while (reader_next(r, &d)) {
        audio += (double)d.n_samples / QASR_SAMPLE_RATE;
        decode += d.decode_seconds;
        if (d.error) {
            if (!errors++) fprintf(stderr, "bench_readers: %s\n", d.error);
        }
        free(d.samples);
        free(d.error);
        free(d.warning);
    }
    const double wall = now_seconds() - t0;
    reader_free(r);
    free(paths);
    printf("%d files, %d threads: %.1f s of audio in %.2f s: %.0f s of audio per second, %.0f per thread "
           "(decoding %.2f s of thread time)%s\n",
           n, threads, audio, wall, audio / wall, audio / wall / threads, decode, errors ? " [errors]" : "");
    return errors ? 1 : 0;
}
