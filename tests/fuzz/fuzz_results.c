/* host/batch/results.c, the reader behind resume and --retry-errors: results_open on the input
 * as an existing results.jsonl. Input: a mode byte (bit 0: RESULTS_RETRY_ERRORS, else
 * RESULTS_RESUME), then the file.
 * Properties: the file is refused exactly when its first line is neither a JSON object nor the
 * torn start of one, or a retry would leave such a line first; once opened, what is left is the old lines in order with only the torn last
 * line (and, for a retry, the error lines) removed, and it ends in a newline; every id with a
 * success line is done, every other id with a line is failed (a retry leaves none failed); a
 * line appended then is found done by a second open, which repairs nothing. */
#include "fuzz.h"

#include "jsonl.h"
#include "results.h"
#include "util.h"

/* The JSON object of a line (without its '\n'), or NULL. */
static cJSON *object(const char *line, size_t n) { return jsonl_parse_object(line, n); }

/* Whether the file is ours to open: its first line is a JSON object or the torn start of one,
 * and, for a retry, the lines that stay do not start with one that is not a JSON object. */
static int acceptable(const char *s, size_t n, results_mode_t mode)
{
    int first = 1;
    for (const char *p = s, *end = s + n; p < end; first = 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return !first || p[0] == '{'; /* a torn last line, removed */
        cJSON *j = object(p, (size_t)(nl - p));
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
        const int removed = mode == RESULTS_RETRY_ERRORS && cJSON_IsString(id) && err && !cJSON_IsNull(err);
        cJSON_Delete(j);
        if (!j && first) return 0;
        if (!j) return nl + 1 == end; /* on top once the errors go, unless it is the last line */
        if (!removed) return 1;
        p = nl + 1;
    }
    return 1;
}

/* Whether a line's "error" is null or absent; its "id" string in *id, or NULL. */
static int line_ok(const cJSON *j, const char **id)
{
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    *id = cJSON_IsString(jid) ? jid->valuestring : NULL;
    return !err || cJSON_IsNull(err);
}

static void check_open(results_t *r, const char *old, size_t old_n, const char *now, size_t now_n,
                       results_mode_t mode)
{
    FUZZ_CHECK(now_n == 0 || now[now_n - 1] == '\n');
    FUZZ_CHECK(now_n <= old_n);
    /* now: old's complete lines, in order, some left out */
    size_t kept = 0;
    for (const char *p = old, *q = now, *end = old + old_n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break; /* a torn last line: removed */
        const size_t n = (size_t)(nl - p) + 1;
        cJSON *j = object(p, n - 1);
        const char *id = NULL;
        const int ok = j ? line_ok(j, &id) : 1;
        const int removed = mode == RESULTS_RETRY_ERRORS && j && id && !ok;
        const int last = nl + 1 == end;
        if (!removed && !(last && !j)) { /* an invalid last line goes too */
            FUZZ_CHECK(q + n <= now + now_n && memcmp(q, p, n) == 0);
            q += n;
            kept += n;
        }
        if (j && id) {
            const result_status_t st = results_status(r, id);
            if (ok) FUZZ_CHECK(st == RESULT_DONE);
            else if (mode == RESULTS_RETRY_ERRORS) FUZZ_CHECK(st != RESULT_FAILED);
            else FUZZ_CHECK(st != RESULT_NEW);
        }
        cJSON_Delete(j);
        p = nl + 1;
    }
    FUZZ_CHECK(kept == now_n);
    if (mode == RESULTS_RETRY_ERRORS) FUZZ_CHECK(results_count(r, RESULT_FAILED) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const results_mode_t mode = fuzz_u8(&data, &size) & 1 ? RESULTS_RETRY_ERRORS : RESULTS_RESUME;
    const char *old = (const char *)data;
    char *path = fuzz_write("results.jsonl", data, size);
    results_t *r = results_open(path, mode, -1);
    FUZZ_CHECK(!r == !acceptable(old, size, mode));
    if (!r) {
        FUZZ_CHECK(qasr_last_error()[0]);
    } else {
        size_t now_n;
        char *now = fuzz_read(path, &now_n);
        FUZZ_CHECK(now);
        check_open(r, old, size, now, now_n, mode);
        free(now);
        const result_record_t rec = { .id = "appended \xff id", .text = "x", .duration = 1 };
        FUZZ_CHECK(results_append(r, &rec) == 0);
        FUZZ_CHECK(results_close(r) == 0);

        now = fuzz_read(path, &now_n);
        r = results_open(path, RESULTS_RESUME, -1);
        FUZZ_CHECK(r);
        FUZZ_CHECK(results_status(r, "appended \xef\xbf\xbd id") == RESULT_DONE);
        size_t again_n;
        char *again = fuzz_read(path, &again_n);
        FUZZ_CHECK(again_n == now_n && memcmp(again, now, now_n) == 0);
        free(again);
        free(now);
        FUZZ_CHECK(results_close(r) == 0);
    }
    free(path);
    fuzz_clear();
    return 0;
}
