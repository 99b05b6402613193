/* results.jsonl (contract in results.h): the line builder, then the file side: open and lock,
 * scan what a previous run left, repair a torn tail, drop error lines for a retry through an
 * atomic rewrite, then append one line per write(2). */
#include "results.h"

#include "id_map.h"
#include "jsonl.h"
#include "str_pool.h"
#include "utf8.h"
#include "util.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the line builder ---- */

static cJSON *json_string(const char *s)
{
    if (!s) return cJSON_CreateNull();
    size_t n = strlen(s);
    if (utf8_valid(s, n)) return cJSON_CreateString(s);
    char *fixed = utf8_sanitize(s, n, NULL);
    cJSON *j = cJSON_CreateString(fixed);
    free(fixed);
    return j;
}

/* Milliseconds are plenty for times and keep the lines short ("1.25", not "1.2500000000000002"). */
static cJSON *json_ms(double seconds) { return cJSON_CreateNumber(round(seconds * 1000.0) / 1000.0); }

char *result_line(const result_record_t *rec, size_t *len)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "id", json_string(rec->id));
    cJSON_AddItemToObject(o, "line", rec->line > 0 ? cJSON_CreateNumber(rec->line) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "path", json_string(rec->path));
    cJSON_AddItemToObject(o, "text", json_string(rec->text));
    cJSON_AddItemToObject(o, "language", json_string(rec->language));
    cJSON_AddItemToObject(o, "duration", rec->duration >= 0 ? cJSON_CreateNumber(rec->duration) : cJSON_CreateNull());
    cJSON *segments = cJSON_AddArrayToObject(o, "segments");
    for (int i = 0; i < rec->n_segments; i++) {
        const result_segment_t *s = &rec->segments[i];
        cJSON *seg = cJSON_CreateObject();
        cJSON_AddItemToObject(seg, "start", json_ms(s->start));
        cJSON_AddItemToObject(seg, "end", json_ms(s->end));
        cJSON_AddItemToObject(seg, "text", json_string(s->text));
        cJSON_AddItemToArray(segments, seg);
    }
    if (rec->has_words && rec->words_error) {
        cJSON_AddNullToObject(o, "words");
        cJSON_AddItemToObject(o, "words_error", json_string(rec->words_error));
    } else if (rec->has_words) {
        cJSON *words = cJSON_AddArrayToObject(o, "words");
        for (int i = 0; i < rec->n_words; i++) {
            cJSON *w = cJSON_CreateObject();
            cJSON_AddItemToObject(w, "word", json_string(rec->words[i].word));
            cJSON_AddNumberToObject(w, "start", rec->words[i].start_ms / 1000.0);
            cJSON_AddNumberToObject(w, "end", rec->words[i].end_ms / 1000.0);
            cJSON_AddItemToArray(words, w);
        }
    }
    cJSON_AddNumberToObject(o, "n_tokens", rec->n_tokens);
    cJSON_AddBoolToObject(o, "truncated", rec->truncated);
    cJSON_AddItemToObject(o, "error", json_string(rec->error));
    if (rec->warning) cJSON_AddItemToObject(o, "warning", json_string(rec->warning));
    if (rec->reference) cJSON_AddItemToObject(o, "reference", json_string(rec->reference));
    cJSON *timings = cJSON_AddObjectToObject(o, "timings");
    for (int i = 0; i < rec->n_timings; i++)
        cJSON_AddItemToObject(timings, rec->timings[i].name, json_ms(rec->timings[i].seconds));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) qasr_die(3, "out of host memory (formatting a result line)");
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    s[n] = '\0';
    if (len) *len = n;
    return s;
}

/* ---- the file ---- */

struct results {
    char *path;
    int fd;
    int regular;    /* a regular file: scanned, locked, synced, repaired on a failed write */
    off_t end;      /* size up to the last complete line */
    double fsync_seconds, last_sync;
    pthread_mutex_t lock;
    str_pool_t *ids;
    id_map_t *status; /* id -> RESULT_DONE or RESULT_FAILED */
    size_t n_done, n_failed;
    char **notes;
    size_t n_notes;
};

/* A byte range of the file: one line with its '\n'. */
typedef struct {
    off_t off, len;
} range_t;

/* What a scan found. */
typedef struct {
    off_t keep_end;     /* the file is truncated here when it ends in a torn line */
    range_t *errors;    /* retry: lines with an id and an error, in file order */
    size_t n_errors, cap_errors;
    size_t n_invalid, n_no_id;     /* kept-as-is lines before the last */
    long first_invalid, first_no_id;
    long torn_line;     /* line number of a torn last line, 0 if none */
    int kept_any;       /* a line before the current one stays in the file */
    long exposed;       /* a kept line that is not a JSON object with nothing kept before it
                           (only error lines, which a retry removes); 0 if none */
} scan_t;

static void note(results_t *r, const char *fmt, ...) QASR_PRINTF(2, 3);
static void note(results_t *r, const char *fmt, ...)
{
    char msg[QASR_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->notes = xrealloc(r->notes, (r->n_notes + 1) * sizeof *r->notes);
    r->notes[r->n_notes++] = xstrdup(msg);
}

static void record_id(results_t *r, const char *id, int done)
{
    int *v = id_map_find(r->status, id);
    if (!v) {
        id_map_add(r->status, str_pool_add(r->ids, id, strlen(id)), done ? RESULT_DONE : RESULT_FAILED);
        if (done)
            r->n_done++;
        else
            r->n_failed++;
    } else if (done && *v == RESULT_FAILED) { /* an earlier failure since redone */
        *v = RESULT_DONE;
        r->n_failed--;
        r->n_done++;
    }
}

/* One complete line at offset off. Returns 1 if it is not a JSON object. */
static int scan_line(results_t *r, scan_t *s, const char *line, size_t len, off_t off, long line_no,
                     results_mode_t mode)
{
    cJSON *j = jsonl_parse_object(line, len - 1);
    if (!j) return 1;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    int done = !err || cJSON_IsNull(err);
    if (!cJSON_IsString(id)) {
        if (!s->n_no_id++) s->first_no_id = line_no;
    } else if (!done && mode == RESULTS_RETRY_ERRORS) { /* the line goes; its id reads as new */
        if (s->n_errors == s->cap_errors) {
            s->cap_errors = s->cap_errors ? 2 * s->cap_errors : 64;
            s->errors = xrealloc(s->errors, s->cap_errors * sizeof *s->errors);
        }
        s->errors[s->n_errors++] = (range_t){ off, (off_t)len };
    } else {
        record_id(r, id->valuestring, done);
    }
    cJSON_Delete(j);
    return 0;
}

/* Read the whole file once. Only the last line may be torn: an earlier bad line is kept. A
 * first line that is not ours (and not a torn start of ours) means this is someone else's file. */
static int scan_file(results_t *r, scan_t *s, results_mode_t mode)
{
    int fd = dup(r->fd);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        if (fd >= 0) close(fd);
        return qasr_fail("%s: %s", r->path, strerror(errno));
    }
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    off_t off = 0, bad_off = -1;
    long line_no = 0;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        line_no++;
        if (bad_off >= 0) { /* the bad line before this one was not the last: keep it */
            if (!s->n_invalid++) s->first_invalid = line_no - 1;
            if (!s->kept_any) s->exposed = line_no - 1;
            s->kept_any = 1;
            bad_off = -1;
        }
        int terminated = line[n - 1] == '\n';
        const size_t n_errors = s->n_errors;
        if (terminated && !scan_line(r, s, line, (size_t)n, off, line_no, mode)) {
            s->kept_any |= s->n_errors == n_errors; /* not an error line that a retry removes */
        } else {
            if (line_no == 1 && (terminated || line[0] != '{')) {
                rc = qasr_fail("%s: does not look like a results file (its first line is not a JSON object); "
                               "choose another output or overwrite it", r->path);
                break;
            }
            bad_off = off;
        }
        off += n;
    }
    if (rc == 0 && ferror(f)) rc = qasr_fail("%s: read error", r->path);
    free(line);
    fclose(f);
    s->keep_end = bad_off >= 0 ? bad_off : off;
    s->torn_line = bad_off >= 0 ? line_no : 0;
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Copy bytes [off, off + n) of src to the end of dst. */
static int copy_range(int src, int dst, off_t off, off_t n, char *buf, size_t cap)
{
    while (n > 0) {
        ssize_t k = pread(src, buf, (size_t)MIN((off_t)cap, n), off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        if (write_all(dst, buf, (size_t)k) != 0) return -1;
        off += k;
        n -= k;
    }
    return 0;
}

void results_sync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrdup(path) : xstrdup(".");
    if (slash) dir[slash == path ? 1 : slash - path] = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

/* Replace the file by a copy without the error lines: write <file>.tmp (locked before anyone can
 * see it), fsync, rename over the file. The copy becomes the append descriptor. Where path is a
 * symbolic link, the file is its target (the link stays a link to the new lines). */
static int rewrite_without_errors(results_t *r, const scan_t *s)
{
    char *target = realpath(r->path, NULL);
    if (!target) return qasr_fail("%s: resolving the path: %s", r->path, strerror(errno));
    size_t n = strlen(target);
    char *tmp = xmalloc(n + 5);
    memcpy(tmp, target, n);
    memcpy(tmp + n, ".tmp", 5);
    struct stat st;
    size_t cap = 1 << 20;
    char *buf = xmalloc(cap);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    int rc = -1;
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(r->fd, &st) == 0)
        rc = fchmod(fd, st.st_mode & 07777); /* keep the original's permissions */
    off_t pos = 0, kept = 0;
    for (size_t i = 0; i < s->n_errors && rc == 0; i++) {
        rc = copy_range(r->fd, fd, pos, s->errors[i].off - pos, buf, cap);
        kept += s->errors[i].off - pos;
        pos = s->errors[i].off + s->errors[i].len;
    }
    if (rc == 0) rc = copy_range(r->fd, fd, pos, s->keep_end - pos, buf, cap);
    kept += s->keep_end - pos;
    if (rc == 0) rc = fsync(fd);
    if (rc == 0) rc = rename(tmp, target);
    if (rc != 0) {
        qasr_fail("%s: rewriting without the error lines: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
    } else {
        results_sync_dir_of(target);
        close(r->fd); /* releases the lock on the old file, which nobody can open by name any more */
        r->fd = fd;
        r->end = kept;
    }
    free(buf);
    free(tmp);
    free(target);
    return rc;
}

/* Scan, repair a torn tail, and for a retry drop the error lines. */
static int resume(results_t *r, results_mode_t mode, off_t size)
{
    scan_t s = { 0 };
    int rc = scan_file(r, &s, mode);
    /* Removing the error lines must not leave a line that is not ours on top: the next resume
     * would refuse the file as another program's (see scan_file). Nothing is changed yet. */
    if (rc == 0 && mode == RESULTS_RETRY_ERRORS && s.exposed)
        rc = qasr_fail("%s: line %ld is not a JSON object and only error lines precede it: removing them for the "
                       "retry would make it the first line, and the file would no longer look like a results "
                       "file; fix or remove that line first", r->path, s.exposed);
    if (rc == 0 && s.torn_line) {
        note(r, "%s: line %ld is incomplete or not valid JSON (an interrupted run?): removed its %lld bytes",
             r->path, s.torn_line, (long long)(size - s.keep_end));
        if (ftruncate(r->fd, s.keep_end) != 0) rc = qasr_fail("%s: truncating: %s", r->path, strerror(errno));
    }
    r->end = s.keep_end;
    if (rc == 0 && s.n_invalid)
        note(r, "%s: %zu line(s) are not JSON objects (the first is line %ld); kept as they are", r->path,
             s.n_invalid, s.first_invalid);
    if (rc == 0 && s.n_no_id)
        note(r, "%s: %zu line(s) have no \"id\" (the first is line %ld); kept as they are", r->path, s.n_no_id,
             s.first_no_id);
    if (rc == 0 && mode == RESULTS_RETRY_ERRORS && s.n_errors) {
        rc = rewrite_without_errors(r, &s);
        if (rc == 0) note(r, "%s: removed %zu error line(s) to retry them", r->path, s.n_errors);
    }
    free(s.errors);
    return rc;
}

static results_t *results_new(const char *path, double fsync_seconds)
{
    results_t *r = xcalloc(1, sizeof *r);
    r->path = xstrdup(path);
    r->fd = -1;
    r->fsync_seconds = fsync_seconds;
    r->last_sync = now_seconds();
    pthread_mutex_init(&r->lock, NULL);
    r->ids = str_pool_new();
    r->status = id_map_new();
    return r;
}

static void results_free(results_t *r)
{
    for (size_t i = 0; i < r->n_notes; i++) free(r->notes[i]);
    free(r->notes);
    id_map_free(r->status);
    str_pool_free(r->ids);
    pthread_mutex_destroy(&r->lock);
    free(r->path);
    free(r);
}

results_t *results_open(const char *path, results_mode_t mode, double fsync_seconds)
{
    if (strcmp(path, "-") == 0) {
        results_t *r = results_new("<stdout>", fsync_seconds);
        r->fd = STDOUT_FILENO;
        return r;
    }
    results_t *r = results_new(path, fsync_seconds);
    struct stat st;
    int rc = 0;
    r->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (r->fd < 0 || fstat(r->fd, &st) != 0) {
        rc = qasr_fail("%s: %s", path, strerror(errno));
    } else if (S_ISREG(st.st_mode)) {
        r->regular = 1;
        if (flock(r->fd, LOCK_EX | LOCK_NB) != 0)
            rc = qasr_fail("%s: %s", path, errno == EWOULDBLOCK ? "another process is writing to it" : strerror(errno));
        else if (mode == RESULTS_OVERWRITE)
            rc = ftruncate(r->fd, 0) == 0 ? 0 : qasr_fail("%s: truncating: %s", path, strerror(errno));
        else
            rc = resume(r, mode, st.st_size);
    }
    if (rc != 0) {
        if (r->fd >= 0) close(r->fd);
        results_free(r);
        return NULL;
    }
    return r;
}

const char *const *results_notes(const results_t *r, size_t *n)
{
    *n = r->n_notes;
    return (const char *const *)r->notes;
}

result_status_t results_status(const results_t *r, const char *id)
{
    const int *v = id_map_find(r->status, id);
    return v ? (result_status_t)*v : RESULT_NEW;
}

size_t results_count(const results_t *r, result_status_t status)
{
    return status == RESULT_DONE ? r->n_done : status == RESULT_FAILED ? r->n_failed : 0;
}

int results_append_line(results_t *r, const char *line, size_t len)
{
    QASR_ASSERT(len > 0 && memchr(line, '\n', len) == line + len - 1);
    pthread_mutex_lock(&r->lock);
    int rc = 0;
    if (write_all(r->fd, line, len) != 0) {
        rc = qasr_fail("%s: writing a result: %s", r->path, strerror(errno));
        /* Cut off a partial line so later lines do not run into it. */
        if (r->regular) (void)ftruncate(r->fd, r->end);
    } else {
        r->end += (off_t)len;
        double now = now_seconds();
        if (r->regular && r->fsync_seconds >= 0 && now - r->last_sync >= r->fsync_seconds) {
            if (fdatasync(r->fd) != 0) rc = qasr_fail("%s: fsync: %s", r->path, strerror(errno));
            r->last_sync = now;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int results_append(results_t *r, const result_record_t *rec)
{
    size_t len;
    char *line = result_line(rec, &len);
    int rc = results_append_line(r, line, len);
    free(line);
    return rc;
}

int results_close(results_t *r)
{
    int rc = 0;
    if (r->regular && r->fsync_seconds >= 0 && fdatasync(r->fd) != 0)
        rc = qasr_fail("%s: fsync: %s", r->path, strerror(errno));
    if (r->fd != STDOUT_FILENO && close(r->fd) != 0 && rc == 0)
        rc = qasr_fail("%s: close: %s", r->path, strerror(errno));
    results_free(r);
    return rc;
}
