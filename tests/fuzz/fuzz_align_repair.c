/* host/model/align_repair.c: the aligner's monotonic repair of slot times (spec
 * qwen3-forced-aligner.md 8.2).
 * Input: a mode byte, then the slot times. Mode 0: 2 bytes per slot, a class below 5000 times
 * 80 ms (what the engine passes: class x timestamp_segment_time); mode 1: the same classes times
 * a step of 4 bytes / 1000 (another checkpoint's segment time); mode 2: 8 bytes per slot, any
 * double folded into [0, 2^31) (the engine's values are >= 0 and far below INT_MAX, and the
 * repair truncates to int: negative, NaN and larger values cannot reach it and are not fed).
 * At most 2048 slots (the aligner's 8192 positions hold fewer).
 * Properties: the output is non-decreasing, within the inputs' truncated range; input already
 * non-decreasing comes back truncated and unchanged; at least as many slots as the longest
 * non-decreasing subsequence keep their own truncated time. */
#include "fuzz.h"

#include <math.h>

#include "align.h"

#define MAX_SLOTS 2048

/* Length of the longest non-decreasing subsequence (patience sorting: tails[k] is the least
 * last value of such a subsequence of length k + 1). */
static int longest_chain(const double *t, int n)
{
    double *tails = calloc((size_t)MAX_SLOTS, sizeof *tails);
    int len = 0;
    for (int i = 0; i < n; i++) {
        int lo = 0, hi = len; /* the first tail > t[i] */
        while (lo < hi) {
            const int mid = (lo + hi) / 2;
            if (tails[mid] <= t[i]) lo = mid + 1;
            else hi = mid;
        }
        tails[lo] = t[i];
        if (lo == len) len++;
    }
    free(tails);
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int mode = fuzz_u8(&data, &size) % 3;
    const double step = mode == 1 ? fuzz_u32(&data, &size) % 1000000 / 1000.0 : 80.0;
    const size_t each = mode == 2 ? 8 : 2;
    const int n = size / each > MAX_SLOTS ? MAX_SLOTS : (int)(size / each);
    double *t = calloc((size_t)MAX_SLOTS, sizeof *t);
    for (int i = 0; i < n; i++) {
        if (mode == 2) {
            uint64_t bits = 0;
            memcpy(&bits, data + 8 * (size_t)i, 8);
            double v;
            memcpy(&v, &bits, sizeof v);
            t[i] = isfinite(v) ? fmod(fabs(v), 2147483647.0) : (double)(bits % 400000);
        } else {
            t[i] = (double)((data[2 * i] | data[2 * i + 1] << 8) % 5000) * step;
        }
    }
    int *out = calloc((size_t)MAX_SLOTS, sizeof *out);
    align_repair(t, n, out);

    double lo = INFINITY, hi = -INFINITY;
    int sorted = 1, own = 0;
    for (int i = 0; i < n; i++) {
        lo = fmin(lo, t[i]);
        hi = fmax(hi, t[i]);
        sorted &= i == 0 || t[i - 1] <= t[i];
        own += out[i] == (int)t[i];
    }
    for (int i = 0; i < n; i++) {
        FUZZ_CHECK(i == 0 || out[i - 1] <= out[i]);
        FUZZ_CHECK(out[i] >= (int)lo && out[i] <= (int)hi);
        if (sorted) FUZZ_CHECK(out[i] == (int)t[i]);
    }
    FUZZ_CHECK(own >= longest_chain(t, n));
    free(out);
    free(t);
    return 0;
}
