/* Long-audio splitting: segments tile the input, never exceed the limit, and cut in the quiet
 * gaps of a signal whose gaps are known. */
#include <stdlib.h>

#include "segment.h"
#include "test.h"
#include "util.h"

int main(void)
{
    const int64_t sr = 16000, n = 200 * sr, max_len = 60 * sr;
    float *x = xmalloc(n * sizeof(float));
    unsigned seed = 1;
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = 0.5f * ((float)(seed >> 9) / (float)(1u << 23) - 0.5f);
    }
    /* silent 0.3 s gaps at 57 s, 115 s and 170 s: inside each search region (the 5 s before
     * 60, ~117 and ~176 s), so each cut must land in one */
    const double gaps[] = { 57.0, 115.0, 171.0 };
    for (int g = 0; g < 3; g++)
        for (int64_t i = (int64_t)(gaps[g] * sr); i < (int64_t)((gaps[g] + 0.3) * sr); i++) x[i] = 0;

    int64_t *b;
    int k = segment_plan(x, n, max_len, &b);
    CHECK_INT_EQ(k, 4);
    CHECK_INT_EQ(b[0], 0);
    CHECK_INT_EQ(b[k], n);
    for (int i = 0; i < k; i++) {
        CHECK(b[i + 1] > b[i]);
        CHECK(b[i + 1] - b[i] <= max_len);
    }
    for (int i = 1; i < k && i <= 3; i++) {
        const double t = (double)b[i] / sr;
        CHECK(t >= gaps[i - 1] && t <= gaps[i - 1] + 0.3);
        CHECK(x[b[i]] == 0.0f);
    }
    free(b);

    /* at most the limit: one segment; one sample more: two */
    k = segment_plan(x, max_len, max_len, &b);
    CHECK_INT_EQ(k, 1);
    CHECK_INT_EQ(b[1], max_len);
    free(b);
    k = segment_plan(x, 3 * max_len, 0, &b); /* 0: never cut */
    CHECK_INT_EQ(k, 1);
    CHECK(b[0] == 0 && b[1] == 3 * max_len);
    free(b);
    k = segment_plan(x, max_len + 1, max_len, &b);
    CHECK_INT_EQ(k, 2);
    CHECK(b[1] >= max_len - SEGMENT_SEARCH_SAMPLES && b[1] < max_len);
    free(b);

    /* all silence: still tiles, no segment over the limit */
    float *z = xcalloc(n, sizeof(float));
    k = segment_plan(z, n, max_len, &b);
    CHECK(k >= 4);
    for (int i = 0; i < k; i++) CHECK(b[i + 1] - b[i] <= max_len && b[i + 1] > b[i]);
    free(b);
    free(z);

    /* the model's view of a segment: only a short one after the first is padded to 0.5 s */
    float pad[SEGMENT_MIN_SAMPLES];
    int64_t len;
    CHECK(segment_padded(x, 100, 0, pad, &len) == x && len == 100);
    CHECK(segment_padded(x, SEGMENT_MIN_SAMPLES, 3, pad, &len) == x && len == SEGMENT_MIN_SAMPLES);
    memset(pad, 0x7f, sizeof pad);
    CHECK(segment_padded(x, 100, 1, pad, &len) == pad && len == SEGMENT_MIN_SAMPLES);
    CHECK(memcmp(pad, x, 100 * sizeof(float)) == 0);
    int zeros = 1;
    for (int i = 100; i < SEGMENT_MIN_SAMPLES; i++) zeros &= pad[i] == 0.0f;
    CHECK(zeros);
    free(x);
    return test_result("test_segment");
}
