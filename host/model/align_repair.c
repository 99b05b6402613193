/* The official monotonicity repair of the aligner's slot times (fix_timestamp, spec
 * qwen3-forced-aligner.md 8.2), exactly: the same longest chain, the same fills, the same
 * double arithmetic. CMake compiles this file with -ffp-contract=off: left + step * k must round
 * the product before the sum, as Python does (the spec's test vector 919.9999999999999 -> 919
 * needs it). */
#include "align.h"
#include "util.h"

#include <stdlib.h>

void align_repair(const double *t, int n, int *out)
{
    if (n <= 0) return;
    int *best = xmalloc(sizeof(int) * (size_t)n), *prev = xmalloc(sizeof(int) * (size_t)n);
    char *kept = xcalloc((size_t)n, 1);
    int end = 0;
    for (int i = 0; i < n; i++) {
        best[i] = 1;
        prev[i] = -1;
        for (int j = 0; j < i; j++) /* the earliest j of the longest chain: replaced only on > */
            if (t[j] <= t[i] && best[j] + 1 > best[i]) {
                best[i] = best[j] + 1;
                prev[i] = j;
            }
        if (best[i] > best[end]) end = i; /* the earliest end of the longest */
    }
    for (int i = end; i >= 0; i = prev[i]) kept[i] = 1;

    double *v = xmalloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) v[i] = t[i];
    for (int i = 0; i < n;) {
        if (kept[i]) {
            i++;
            continue;
        }
        int j = i;
        while (j < n && !kept[j]) j++;
        const int m = j - i, has_left = i > 0, has_right = j < n;
        const double left = has_left ? v[i - 1] : 0.0, right = has_right ? v[j] : 0.0;
        for (int k = i; k < j; k++) {
            if (!has_left) v[k] = right;
            else if (!has_right) v[k] = left;
            else if (m <= 2) v[k] = (k - (i - 1)) <= (j - k) ? left : right;
            else {
                const double step = (right - left) / (m + 1);
                v[k] = left + step * (k - i + 1);
            }
        }
        i = j;
    }
    for (int i = 0; i < n; i++) out[i] = (int)v[i]; /* toward zero: the values are >= 0 */
    free(v);
    free(kept);
    free(prev);
    free(best);
}
