/* Long-audio splitting (spec 10.1): cut audio longer than a limit at low-energy points so that
 * each segment is transcribed as an independent input and the texts are joined in order.
 * The official splitter searches +-5 s around each nominal cut and may exceed its limit by up to
 * 5 s; this one searches only the 5 s *before* the nominal cut, so no segment is longer than the
 * limit. Within the search region: the 100 ms window (1600 samples) with the smallest sum of |x|,
 * then its quietest sample. Segments tile the input exactly: no overlap, no gap. */
#ifndef QASR_SEGMENT_H
#define QASR_SEGMENT_H

#include <stdint.h>

#define SEGMENT_SEARCH_SAMPLES 80000 /* 5 s at 16 kHz */
#define SEGMENT_WINDOW_SAMPLES 1600  /* 100 ms */
#define SEGMENT_MIN_SAMPLES 8000     /* shorter segments are zero-padded to 0.5 s (official) */

/* Where the segment starting at x[0] ends when more than max_len samples are left: x must hold
 * max_len samples. What segment_plan does at each cut, for audio that arrives in pieces. */
int64_t segment_cut(const float *x, int64_t max_len);

/* Boundaries of the segments of x[0..n): bounds[0] = 0 < bounds[1] < ... < bounds[k] = n, with
 * bounds[i+1] - bounds[i] <= max_len. Returns k (>= 1) and *bounds (malloc'd, k + 1 entries).
 * max_len must exceed SEGMENT_SEARCH_SAMPLES, or be 0: never cut (one segment). */
int segment_plan(const float *x, int64_t n, int64_t max_len, int64_t **bounds);

/* Segment `index` (its n samples at x) as the model takes it: a segment after the first that is
 * shorter than SEGMENT_MIN_SAMPLES is copied into pad, zero-padded to 0.5 s (official). Returns
 * x or pad; *len its length. */
const float *segment_padded(const float *x, int64_t n, int index, float pad[SEGMENT_MIN_SAMPLES], int64_t *len);

#endif
