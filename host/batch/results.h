/* results.jsonl: the output of a resumable batch run, one JSON object per line per input.
 *
 * Line schema, keys in this order (result_line builds it):
 *   id, line, path, text, language, duration, segments [{start, end, text}], words
 *   [{word, start, end}] or null (only with an aligner; null with words_error saying why), n_tokens,
 *   truncated, error, reference (only when given), timings {name: seconds, ...}
 * A NULL string, line <= 0 or duration < 0 is written as null. Strings are written as valid UTF-8:
 * each byte that does not start a valid sequence becomes U+FFFD (utf8.h), so ids must already be
 * valid UTF-8 to be found again on resume (manifest ids are). Segment times and timings are
 * rounded to milliseconds. "error": null marks a success.
 *
 * Opening an existing file (modes):
 *  - RESULTS_RESUME: scan it. Ids with a line whose error is null (or absent) are done; ids with
 *    only error lines are failed. The caller skips both.
 *  - RESULTS_RETRY_ERRORS: as resume, but every line with an id and a non-null error is removed,
 *    so failed ids read as new and are re-run without leaving two lines for one id. The file is
 *    rewritten through "<path>.tmp" (fsync, rename, fsync of the directory): a crash at any point
 *    leaves the old file or the new one, never a mix; a stale .tmp is simply overwritten.
 *  - RESULTS_OVERWRITE: truncate and start fresh.
 * In resume and retry modes the first line of an existing file must be a JSON object (or the
 * torn start of one), so `-o audio.wav` or a manifest given by mistake is refused, not repaired.
 * For the same reason a retry is refused, before anything is changed, when removing the error
 * lines would put a line that is not a JSON object first.
 * A last line without its newline, or one that is not valid JSON, is what a crash mid-write
 * leaves: the file is truncated to the end of the line before. Other lines that are not JSON,
 * or are JSON without a string "id", are kept untouched.
 * Each of these events yields a note for the caller to print (results_notes).
 * An exclusive flock on the file refuses a second process writing the same output.
 *
 * "-" is stdout: nothing to scan, so no resume: the mode is ignored, every id is new, and the
 * caller should reject resume options and keep its own stdout clean. Other non-regular files
 * (a FIFO, /dev/null) are treated the same way.
 *
 * Writing: one line per call with a single write(2) on an O_APPEND descriptor under a mutex, so
 * lines from several threads never interleave and a SIGKILL can only tear the last line (which
 * the next open repairs). When results_append returns 0 the line is in the kernel page cache: it
 * survives the process dying (crash, SIGKILL, OOM killer) but not a power cut or kernel crash
 * until fsync'd. fsync_seconds chooses: < 0 never (fastest; a power cut may lose recent lines
 * or leave a zero-filled tail, which the next open drops as a torn line), 0 after every line
 * (safest; costs a device flush per input, milliseconds on SSD and far more on network
 * storage), > 0 at the first append after each interval, so a power cut loses about that much
 * work, which a resume redoes. results_close always syncs, unless fsync_seconds < 0. */
#ifndef QASR_RESULTS_H
#define QASR_RESULTS_H

#include <stddef.h>

#include "qasr.h"

typedef struct {
    double start, end; /* seconds */
    const char *text;
} result_segment_t;

typedef struct {
    const char *name;
    double seconds;
} result_timing_t;

typedef struct {
    const char *id;
    const char *path;
    int line; /* manifest line; <= 0: none */
    const char *text;
    const char *language;
    double duration; /* seconds; < 0: unknown */
    const result_segment_t *segments;
    int n_segments;
    int n_tokens;
    int truncated;
    const char *error;     /* NULL: success */
    const char *warning;   /* NULL: the key is left out (a success with something to know, e.g. a cut file) */
    const char *reference; /* NULL: the key is left out */
    int has_words;         /* an aligner ran: "words" is written (null when words_error is set) */
    const qasr_word_t *words; /* times in ms from the start of the file */
    int n_words;
    const char *words_error;
    const result_timing_t *timings;
    int n_timings;
} result_record_t;

/* One JSONL line for rec, '\n'-terminated; malloc'd (caller frees), *len (optional) its length. */
char *result_line(const result_record_t *rec, size_t *len);

typedef enum { RESULTS_RESUME, RESULTS_RETRY_ERRORS, RESULTS_OVERWRITE } results_mode_t;
typedef enum { RESULT_NEW, RESULT_DONE, RESULT_FAILED } result_status_t;

typedef struct results results_t;

/* Open path ("-": stdout) for appending in the given mode. NULL + qasr_fail() when the file
 * cannot be opened, scanned, repaired or rewritten, or is locked by another process. */
results_t *results_open(const char *path, results_mode_t mode, double fsync_seconds);

/* Messages about what opening found and did, for stderr (each names the file). */
const char *const *results_notes(const results_t *r, size_t *n);

/* Status of an id from the scan at open (lines appended since are not tracked). Lock-free and
 * safe from many threads. After RESULTS_RETRY_ERRORS no id is failed. */
result_status_t results_status(const results_t *r, const char *id);
size_t results_count(const results_t *r, result_status_t status); /* RESULT_DONE or RESULT_FAILED */

/* Append one line (exactly one '\n', at its end). Thread-safe. 0, or -1 + qasr_fail() on a write
 * or fsync error; a partly written line is then cut off again, so the file stays well-formed. */
int results_append_line(results_t *r, const char *line, size_t len);
/* result_line + results_append_line. */
int results_append(results_t *r, const result_record_t *rec);

/* Sync (see above), unlock and close; 0 or -1 + qasr_fail(). Frees r either way. */
int results_close(results_t *r);

/* fsync the directory holding path, after a rename into it: a crash could otherwise bring the
 * old directory entry back. Failing is harmless (the old file is also consistent): unchecked. */
void results_sync_dir_of(const char *path);

#endif
