/* qasr-merge: check that the shard outputs of `qasr-batch --shard K/N` cover a manifest exactly
 * once, and join them into one JSONL file in manifest order.
 *
 * The manifest is read as qasr-batch reads it (manifest.h: same formats, same ids). Every
 * complete line of every input is looked up by its "id":
 *  - one line per manifest id: kept;
 *  - an id twice (a duplicate): a success beats an error line; of two successes, or two errors,
 *    the first one read is kept; either way it is reported;
 *  - an id that is not in the manifest: reported and dropped;
 *  - a last line without its newline or not valid JSON (what a killed run leaves; a resume cuts
 *    it off): reported and ignored; an earlier line that is not a JSON object with a string
 *    "id": reported and ignored.
 * The kept lines are copied byte for byte, in manifest order, to the output through
 * "<output>.tmp" (fsync, rename, fsync of the directory): a crash leaves the old output or the
 * new one. The output is written even when entries are missing, for inspection.
 *
 * Report on stderr: counts of entries, ok, failed, missing, duplicates, extras, unreadable
 * lines; then each failed id with its error, each missing id, each duplicate and each extra
 * (the first MERGE_LIST_MAX of each, then how many more). When the inputs are named as
 * qasr-batch names shard files (results.K-of-N.jsonl), missing entries are traced to the shards
 * that own them and absent shard files are named. */
#ifndef QASR_MERGE_H
#define QASR_MERGE_H

#define MERGE_LIST_MAX 20

/* Exit codes of qasr-merge (also in --help and README). */
enum {
    MERGE_OK = 0,          /* every entry exactly once, no error lines, nothing odd in the inputs */
    MERGE_SOME_FAILED = 1, /* complete, but some entries have error lines, or the inputs had
                              duplicates, ids not in the manifest or unreadable lines */
    MERGE_USAGE = 2,       /* bad invocation, unreadable manifest or input, output not writable */
    MERGE_INCOMPLETE = 5,  /* some entries have no line: rerun their shards (they resume) */
};

typedef struct {
    const char *manifest;        /* path or "-" */
    const char *manifest_format; /* auto|tsv|jsonl|list */
    const char *const *inputs;   /* shard JSONL files */
    int n_inputs;
    const char *output;          /* merged JSONL, or "-" for stdout */
} merge_opts_t;

/* Run; returns one of the exit codes above. */
int merge_run(const merge_opts_t *o);

#endif
