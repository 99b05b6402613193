/* A file split into segments is one result: the segments' texts and languages joined, and the
 * first failed segment's error. */
#ifndef QASR_JOIN_H
#define QASR_JOIN_H

#include <stdint.h>

#include "qasr.h"

/* Texts in order, NULL and empty ones skipped, with a space between two texts unless one is
 * already there or the boundary touches a script written without spaces (CJK, kana, Thai). The
 * official code joins with nothing (spec pitfall 30), which runs two words together at a cut in
 * languages written with spaces: a deliberate deviation (README). Malloc'd. */
char *join_texts(const char *const *texts, int n);

/* Languages, empty ones and consecutive repeats dropped, joined with ",". Malloc'd. */
char *join_languages(const char *const *languages, int n);

/* The first error of seg[0..n_seg-1] (segment i spans samples bounds[i]..bounds[i + 1]), with
 * "segment K (A-B s): " before it when the file has several; NULL if none. Malloc'd. */
char *join_first_error(const qasr_result_t *seg, const int64_t *bounds, int n_seg);

/* The segments' results seg[0..n_seg-1] as one file's: texts and languages joined as above, raw
 * outputs and token ids one after the other, truncated if any was, audio_seconds of the whole
 * file, words in file time (cues_file_words); or the first failed segment's error. Takes the
 * segments' contents (each seg[i] is left empty); one segment is returned as it is. */
qasr_result_t join_results(qasr_result_t *seg, const int64_t *bounds, int n_seg);

#endif
