/* Manifest: the list of audio files a batch run transcribes, loaded once before any work.
 *
 * Formats (chosen by manifest_format_t; AUTO detects):
 *  - TSV with a header row. The first line that is not empty or a comment names the columns,
 *    separated by tabs, in any order: `path` (required), `id`, `language`, `context`, `text`
 *    (reference transcript), `duration` (seconds). Other columns are ignored. Names are
 *    case-sensitive; spaces around them are ignored. Every data line must have as many
 *    tab-separated cells as the header. Cells are taken verbatim (no trimming); an empty cell
 *    means "not given", except `text`, where "" is an empty reference.
 *  - LIST: no header, one path per line. A path may contain spaces but not tabs: a line with a
 *    tab is malformed.
 *  - JSONL, NeMo style: one object per line with `audio_filepath` (required), `duration`, `text`,
 *    `lang` (or `language`, not both), `id`, `context`; other keys are ignored. Values must
 *    be strings (or null), `duration` a number (or null). As in TSV, an empty id, language or
 *    context means "not given".
 * AUTO picks JSONL when the file name ends in .json or .jsonl or the first non-empty line
 * starts with `{`; otherwise TSV when the first line that is not empty or a comment has a cell
 * that is exactly `path` (so a lone `path` line is a one-column header); otherwise LIST.
 * In every format: a UTF-8 BOM is skipped, CRLF line endings are accepted, and empty lines and
 * lines starting with `#` are skipped (a listed file whose name starts with # needs `./`).
 *
 * Paths are bytes and are kept byte for byte. Relative paths are resolved against the
 * manifest's directory as written ("data/m.tsv" + "a.wav" -> "data/a.wav"; for stdin, "-", they
 * stay relative to the current directory); nothing is checked on disk here.
 * Ids default to the path as written in the manifest (not the resolved one). Ids are made valid
 * UTF-8 at load (invalid bytes -> U+FFFD, see utf8.h) so the id in results.jsonl is exactly the
 * manifest's id and resuming finds it; duplicate ids are detected after that replacement.
 * language, context and text are kept as the bytes given; the results writer makes them valid.
 *
 * Bad lines do not stop the load: each is skipped and recorded as a problem whose message names
 * the manifest and line ("data/m.tsv:12: empty path"); the caller reports them. Malformed: wrong
 * cell count, empty path, a duration that is not a number of seconds in [0,
 * MANIFEST_MAX_DURATION], bad JSON or not an object, missing audio_filepath, a value of the wrong
 * type, a NUL byte (in JSONL also the escape \u0000), a line longer than MANIFEST_MAX_LINE bytes, a
 * tab in a LIST line.
 * Fatal (manifest_load returns NULL): the file cannot be read, no valid entry, a TSV format
 * forced on a file without a header, a header without `path` or with a repeated column, and
 * duplicate ids (the message names both lines).
 *
 * Memory: entries (56 bytes each) plus one copy of the strings, packed in a str_pool_t; the
 * file is read line by line, never held whole. */
#ifndef QASR_MANIFEST_H
#define QASR_MANIFEST_H

#include <stddef.h>

#define MANIFEST_MAX_LINE (1 << 20)
/* Longest duration a manifest may state, in seconds (a week): more is a typo or garbage, and it
 * keeps sums of durations in milliseconds (shard plans) far from int64 overflow. */
#define MANIFEST_MAX_DURATION (7 * 24 * 3600)

typedef enum { MANIFEST_AUTO, MANIFEST_TSV, MANIFEST_JSONL, MANIFEST_LIST } manifest_format_t;

typedef struct {
    const char *id;       /* valid UTF-8, unique in the manifest */
    const char *path;     /* resolved */
    const char *language; /* NULL: not given */
    const char *context;  /* NULL: not given */
    const char *text;     /* reference transcript; NULL: not given */
    double duration;      /* seconds; < 0: unknown */
    int line;             /* 1-based line in the manifest */
} manifest_entry_t;

typedef struct {
    int line;
    const char *message; /* "<manifest>:<line>: <what is wrong>" */
} manifest_problem_t;

typedef struct str_pool str_pool_t;

typedef struct {
    manifest_entry_t *entries; /* in file order */
    size_t n_entries;
    manifest_problem_t *problems; /* skipped lines, in file order */
    size_t n_problems;
    manifest_format_t format; /* the format used (never AUTO) */
    str_pool_t *strings;      /* owns every string above */
} manifest_t;

/* "auto", "tsv", "jsonl" or "list" (the --manifest-format values). -1 + qasr_fail if unknown. */
int manifest_format_parse(const char *name, manifest_format_t *format);
const char *manifest_format_name(manifest_format_t format);

/* Load path ("-": stdin). NULL + qasr_fail() on a fatal error. Caller frees with manifest_free. */
manifest_t *manifest_load(const char *path, manifest_format_t format);
void manifest_free(manifest_t *m);

#endif
