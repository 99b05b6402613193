#include "segment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The cut position in [lo, hi): quietest sample of the quietest 100 ms window. */
static int64_t quietest_cut(const float *x, int64_t lo, int64_t hi)
{
    const int64_t w = SEGMENT_WINDOW_SAMPLES;
    double sum = 0;
    for (int64_t i = lo; i < lo + w; i++) sum += fabsf(x[i]);
    double best_sum = sum;
    int64_t best_start = lo;
    for (int64_t s = lo + 1; s + w <= hi; s++) { /* sliding sum over valid windows */
        sum += fabsf(x[s + w - 1]) - fabsf(x[s - 1]);
        if (sum < best_sum) {
            best_sum = sum;
            best_start = s;
        }
    }
    int64_t cut = best_start;
    for (int64_t i = best_start; i < best_start + w; i++)
        if (fabsf(x[i]) < fabsf(x[cut])) cut = i;
    return cut;
}

int64_t segment_cut(const float *x, int64_t max_len)
{
    QASR_ASSERT(max_len > SEGMENT_SEARCH_SAMPLES);
    return quietest_cut(x, max_len - SEGMENT_SEARCH_SAMPLES, max_len);
}

int segment_plan(const float *x, int64_t n, int64_t max_len, int64_t **bounds)
{
    QASR_ASSERT(max_len == 0 || max_len > SEGMENT_SEARCH_SAMPLES);
    int cap = max_len ? (int)(n / (max_len - SEGMENT_SEARCH_SAMPLES)) + 2 : 1, k = 0;
    int64_t *b = xmalloc((size_t)(cap + 1) * sizeof *b);
    b[0] = 0;
    for (int64_t start = 0; max_len && n - start > max_len;) {
        start += segment_cut(x + start, max_len);
        b[++k] = start;
    }
    b[++k] = n;
    QASR_ASSERT(k <= cap);
    *bounds = b;
    return k;
}

const float *segment_padded(const float *x, int64_t n, int index, float pad[SEGMENT_MIN_SAMPLES], int64_t *len)
{
    *len = n;
    if (index == 0 || n >= SEGMENT_MIN_SAMPLES) return x;
    memset(pad, 0, SEGMENT_MIN_SAMPLES * sizeof(float));
    memcpy(pad, x, (size_t)n * sizeof(float));
    *len = SEGMENT_MIN_SAMPLES;
    return pad;
}
