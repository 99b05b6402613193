/* results.jsonl: the line builder (order, nulls, U+FFFD), resume, torn-tail repair at every cut
 * point, the retry rewrite, overwrite, locking, stdout, write errors, 4 concurrent writers,
 * SIGKILL at random moments in a loop, and a large file. */
#include "id_map.h"
#include "results.h"
#include "str_pool.h"
#include "utf8.h"
#include "util.h"

#include "test.h"

#include <cJSON.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *tmp_dir;

static char *tmp_path(const char *name) { return path_join(tmp_dir, name); }

static char *read_bytes(const char *path, size_t *n)
{
    char *s = read_text_file(path, n);
    if (!s) {
        fprintf(stderr, "%s\n", qasr_last_error());
        exit(1);
    }
    return s;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A one-line record with the given id and error (NULL = success). */
static char *line_for(const char *id, const char *error, size_t *len)
{
    result_record_t rec = { .id = id, .path = "a.wav", .line = 1, .text = error ? NULL : "hello",
                            .language = "English", .duration = 1.5, .error = error };
    return result_line(&rec, len);
}

static int append_simple(results_t *r, const char *id, const char *error)
{
    size_t len;
    char *line = line_for(id, error, &len);
    int rc = results_append_line(r, line, len);
    free(line);
    return rc;
}

static size_t count_notes(const results_t *r, const char *what)
{
    size_t n, hits = 0;
    const char *const *notes = results_notes(r, &n);
    for (size_t i = 0; i < n; i++) hits += strstr(notes[i], what) != NULL;
    return hits;
}

/* Every '\n'-terminated line is a JSON object with a string id, no id twice, and only the part
 * after the last '\n' may be torn. Returns the number of complete lines; *torn = bytes after it. */
static size_t check_well_formed(const char *s, size_t n, size_t *torn, int check_ids)
{
    id_map_t *seen = id_map_new();
    str_pool_t *ids = str_pool_new();
    size_t lines = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\n') continue;
        cJSON *j = cJSON_ParseWithLength(s + start, i - start);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        CHECK(cJSON_IsObject(j) && cJSON_IsString(id));
        if (check_ids && cJSON_IsString(id))
            CHECK(id_map_add(seen, str_pool_add(ids, id->valuestring, strlen(id->valuestring)), 0) == NULL);
        cJSON_Delete(j);
        lines++;
        start = i + 1;
    }
    id_map_free(seen);
    str_pool_free(ids);
    if (torn) *torn = n - start;
    return lines;
}

static void test_line(void)
{
    result_segment_t segs[2] = { { 0.0, 1.23456, "hello" }, { 1.23456, 2.0000001, "world" } };
    result_timing_t timings[2] = { { "decode", 0.1234567 }, { "encode", 2 } };
    result_record_t rec = { .id = "u1", .path = "/data/a.wav", .line = 7, .text = "hello world", .language = "English",
                            .duration = 2.5, .segments = segs, .n_segments = 2, .n_tokens = 12, .truncated = 1,
                            .reference = "Hello, world.", .timings = timings, .n_timings = 2 };
    size_t len;
    char *s = result_line(&rec, &len);
    const char *want = "{\"id\":\"u1\",\"line\":7,\"path\":\"/data/a.wav\",\"text\":\"hello world\","
                       "\"language\":\"English\",\"duration\":2.5,\"segments\":[{\"start\":0,\"end\":1.235,"
                       "\"text\":\"hello\"},{\"start\":1.235,\"end\":2,\"text\":\"world\"}],\"n_tokens\":12,"
                       "\"truncated\":true,\"error\":null,\"reference\":\"Hello, world.\","
                       "\"timings\":{\"decode\":0.123,\"encode\":2}}\n";
    CHECK_STR_EQ(s, want);
    CHECK_INT_EQ(len, strlen(want));
    free(s);

    /* An error record: NULLs become null, no reference key, empty lists. */
    result_record_t err = { .id = "u2", .path = "b.wav", .line = 0, .duration = -1, .error = "cannot decode" };
    s = result_line(&err, NULL);
    CHECK_STR_EQ(s, "{\"id\":\"u2\",\"line\":null,\"path\":\"b.wav\",\"text\":null,\"language\":null,"
                    "\"duration\":null,\"segments\":[],\"n_tokens\":0,\"truncated\":false,"
                    "\"error\":\"cannot decode\",\"timings\":{}}\n");
    free(s);

    /* Invalid UTF-8 anywhere becomes U+FFFD; control characters and quotes are escaped. */
    result_segment_t bad_seg = { 0, 1, "seg\xc3" };
    result_record_t bad = { .id = "id\xff", .path = "p\xe9.wav", .text = "a\xe2\x82 b \xed\xa0\x80 \xc0\xaf \"q\"\t\x01",
                            .language = "English", .duration = 1, .segments = &bad_seg, .n_segments = 1,
                            .reference = "r\xf5" };
    s = result_line(&bad, &len);
    CHECK(utf8_valid(s, len));
    cJSON *j = cJSON_Parse(s);
    CHECK(j != NULL);
    CHECK_STR_EQ(cJSON_GetObjectItem(j, "id")->valuestring, "id\xef\xbf\xbd");
    CHECK_STR_EQ(cJSON_GetObjectItem(j, "path")->valuestring, "p\xef\xbf\xbd.wav");
    CHECK_STR_EQ(cJSON_GetObjectItem(j, "text")->valuestring,
                 "a\xef\xbf\xbd\xef\xbf\xbd b \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd \"q\"\t\x01");
    CHECK_STR_EQ(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "segments"), 0)->child->next->next->valuestring,
                 "seg\xef\xbf\xbd");
    CHECK_STR_EQ(cJSON_GetObjectItem(j, "reference")->valuestring, "r\xef\xbf\xbd");
    CHECK(strstr(s, "\\t\\u0001") != NULL);
    cJSON_Delete(j);
    free(s);

    /* Valid multi-byte text passes through unchanged. */
    CHECK(utf8_valid("日本語 naïve 😀", strlen("日本語 naïve 😀")));
    result_record_t uni = { .id = "日本語", .text = "naïve 😀", .duration = -1 };
    s = result_line(&uni, NULL);
    CHECK(strstr(s, "\"id\":\"日本語\"") && strstr(s, "\"text\":\"naïve 😀\""));
    free(s);
}

static void test_resume(void)
{
    char *path = tmp_path("resume.jsonl");
    results_t *r = results_open(path, RESULTS_OVERWRITE, 0);
    CHECK(r != NULL);
    if (!r) return;
    CHECK(append_simple(r, "a", NULL) == 0);
    CHECK(append_simple(r, "b", "cannot decode") == 0);
    CHECK(append_simple(r, "c", NULL) == 0);
    CHECK(append_simple(r, "d", "too short") == 0);
    CHECK(append_simple(r, "d", NULL) == 0); /* redone later: done wins */
    CHECK(results_close(r) == 0);
    size_t n0;
    char *before = read_bytes(path, &n0);

    r = results_open(path, RESULTS_RESUME, 1.0);
    CHECK(r != NULL);
    if (!r) return;
    size_t n_notes;
    results_notes(r, &n_notes);
    CHECK_INT_EQ(n_notes, 0);
    CHECK_INT_EQ(results_status(r, "a"), RESULT_DONE);
    CHECK_INT_EQ(results_status(r, "b"), RESULT_FAILED);
    CHECK_INT_EQ(results_status(r, "c"), RESULT_DONE);
    CHECK_INT_EQ(results_status(r, "d"), RESULT_DONE);
    CHECK_INT_EQ(results_status(r, "e"), RESULT_NEW);
    CHECK_INT_EQ(results_count(r, RESULT_DONE), 3);
    CHECK_INT_EQ(results_count(r, RESULT_FAILED), 1);
    result_record_t rec = { .id = "e", .path = "e.wav", .line = 9, .text = "new", .duration = -1 };
    CHECK(results_append(r, &rec) == 0);
    CHECK(results_close(r) == 0);

    /* The old bytes are untouched and the new line follows. */
    size_t n1;
    char *after = read_bytes(path, &n1);
    CHECK(n1 > n0 && memcmp(before, after, n0) == 0);
    CHECK(strncmp(after + n0, "{\"id\":\"e\",\"line\":9,", 19) == 0);
    CHECK_INT_EQ(check_well_formed(after, n1, NULL, 0), 6);
    free(before);
    free(after);

    /* An empty or new file resumes to nothing. */
    char *fresh = tmp_path("fresh.jsonl");
    unlink(fresh);
    r = results_open(fresh, RESULTS_RESUME, -1);
    CHECK(r && results_count(r, RESULT_DONE) == 0 && results_status(r, "a") == RESULT_NEW);
    if (r) results_close(r);
    CHECK(file_exists(fresh));
    free(fresh);
    free(path);
}

/* Cut a clean file at every byte of its last two lines and reopen: the file must come back as
 * the complete lines before the cut, with a note exactly when something was removed. */
static void test_torn(void)
{
    char *path = tmp_path("torn.jsonl");
    results_t *r = results_open(path, RESULTS_OVERWRITE, -1);
    CHECK(r != NULL);
    if (!r) return;
    CHECK(append_simple(r, "first", NULL) == 0);
    result_record_t rec = { .id = "mid", .text = "日本語のテキスト", .duration = 1 };
    CHECK(results_append(r, &rec) == 0);
    rec = (result_record_t){ .id = "last", .text = "naïve 😀 ok", .duration = 2 };
    CHECK(results_append(r, &rec) == 0);
    results_close(r);
    size_t n;
    char *clean = read_bytes(path, &n);
    size_t second_start = strchr(clean, '\n') - clean + 1;
    size_t mid_utf8 = strstr(clean, "😀") - clean + 2; /* inside the 4-byte emoji */

    int cuts = 0, mid_utf8_seen = 0;
    for (size_t cut = second_start - 1; cut <= n; cut++) {
        test_write_file(path, clean, cut);
        size_t keep = cut;
        while (keep > 0 && clean[keep - 1] != '\n') keep--;
        r = results_open(path, RESULTS_RESUME, -1);
        CHECK(r != NULL);
        if (!r) break;
        CHECK_INT_EQ(count_notes(r, "incomplete or not valid JSON"), keep != cut);
        CHECK_INT_EQ(results_status(r, "first"), keep >= second_start ? RESULT_DONE : RESULT_NEW);
        CHECK_INT_EQ(results_status(r, "last"), cut == n ? RESULT_DONE : RESULT_NEW);
        /* Appending after the repair gives a well-formed file. */
        CHECK(append_simple(r, "again", NULL) == 0);
        results_close(r);
        size_t m;
        char *got = read_bytes(path, &m);
        CHECK(m > keep && memcmp(got, clean, keep) == 0);
        size_t torn = 1;
        check_well_formed(got, m, &torn, 1);
        CHECK_INT_EQ(torn, 0);
        free(got);
        cuts++;
        mid_utf8_seen |= cut == mid_utf8;
    }
    CHECK(cuts > 50 && mid_utf8_seen);

    /* A complete last line that is not JSON (e.g. zeros after a power cut) also goes; a bad line
     * and a line without an id before it are kept with a note. */
    size_t first_len = second_start;
    char *text = xmalloc(n + 200);
    size_t k = 0;
    memcpy(text, clean, first_len);
    k += first_len;
    k += (size_t)sprintf(text + k, "garbage line\n{\"no_id\":1}\n");
    size_t keep = k;
    memcpy(text + k, "\0\0\0\0\n", 5);
    k += 5;
    test_write_file(path, text, k);
    r = results_open(path, RESULTS_RESUME, -1);
    CHECK(r != NULL);
    if (r) {
        CHECK_INT_EQ(count_notes(r, "line 4 is incomplete or not valid JSON"), 1);
        CHECK_INT_EQ(count_notes(r, "1 line(s) are not JSON objects (the first is line 2)"), 1);
        CHECK_INT_EQ(count_notes(r, "1 line(s) have no \"id\" (the first is line 3)"), 1);
        CHECK_INT_EQ(results_status(r, "first"), RESULT_DONE);
        results_close(r);
    }
    size_t m;
    char *got = read_bytes(path, &m);
    CHECK(m == keep && memcmp(got, text, keep) == 0);
    free(got);
    free(text);
    free(clean);
    free(path);
}

static void test_retry(void)
{
    char *path = tmp_path("retry.jsonl");
    char *tmp = tmp_path("retry.jsonl.tmp");
    results_t *r = results_open(path, RESULTS_OVERWRITE, 0);
    CHECK(r != NULL);
    if (!r) return;
    const char *ids[] = { "a", "b", "c", "d", "e", "f", "b2" };
    const char *errors[] = { NULL, "bad audio", NULL, "timeout", NULL, "bad audio", NULL };
    for (int i = 0; i < 7; i++) CHECK(append_simple(r, ids[i], errors[i]) == 0);
    CHECK(append_simple(r, "e", "stale error for a done id") == 0);
    results_close(r);
    /* Lines the caller did not write are kept byte for byte. */
    FILE *f = fopen(path, "ab");
    fputs("{\"note\":\"hand-written, no id\"}\nnot json at all\n", f);
    fclose(f);
    r = results_open(path, RESULTS_RESUME, -1);
    CHECK(r != NULL);
    if (!r) return;
    CHECK(append_simple(r, "g", NULL) == 0);
    results_close(r);
    size_t n;
    char *before = read_bytes(path, &n);

    /* The expected file: every line except those with an id and a non-null error. */
    char *want = xmalloc(n + 1);
    size_t w = 0;
    for (const char *p = before; p < before + n;) {
        const char *nl = strchr(p, '\n');
        size_t len = (size_t)(nl - p) + 1;
        int is_error = strncmp(p, "{\"id\":", 6) == 0 && !memmem(p, len, "\"error\":null", 12);
        if (!is_error) {
            memcpy(want + w, p, len);
            w += len;
        }
        p += len;
    }

    test_write_file(tmp, "stale tmp from a crashed rewrite", 32);
    chmod(path, 0600);
    r = results_open(path, RESULTS_RETRY_ERRORS, -1);
    CHECK(r != NULL);
    if (!r) return;
    CHECK_INT_EQ(count_notes(r, "removed 4 error line(s)"), 1);
    CHECK_INT_EQ(results_status(r, "b"), RESULT_NEW);
    CHECK_INT_EQ(results_status(r, "d"), RESULT_NEW);
    CHECK_INT_EQ(results_status(r, "f"), RESULT_NEW);
    CHECK_INT_EQ(results_status(r, "e"), RESULT_DONE);
    CHECK_INT_EQ(results_status(r, "g"), RESULT_DONE);
    CHECK_INT_EQ(results_count(r, RESULT_FAILED), 0);
    CHECK_INT_EQ(results_count(r, RESULT_DONE), 5);
    CHECK(!file_exists(tmp));
    size_t m;
    char *got = read_bytes(path, &m);
    CHECK(m == w && memcmp(got, want, w) == 0);
    free(got);
    /* Appending goes to the new file; the retried ids now appear once. */
    CHECK(append_simple(r, "b", NULL) == 0);
    results_close(r);
    got = read_bytes(path, &m);
    CHECK(m > w && memcmp(got, want, w) == 0);
    CHECK(strstr(got, "bad audio") == NULL && strstr(got, "timeout") == NULL);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    free(got);

    /* Nothing to remove: the file is left alone. */
    ino_t ino = st.st_ino;
    r = results_open(path, RESULTS_RETRY_ERRORS, -1);
    CHECK(r && count_notes(r, "removed") == 0);
    if (r) results_close(r);
    CHECK(stat(path, &st) == 0 && st.st_ino == ino);
    free(want);
    free(before);
    free(tmp);
    free(path);
}

static void test_overwrite_lock_refuse(void)
{
    char *path = tmp_path("over.jsonl");
    results_t *r = results_open(path, RESULTS_OVERWRITE, -1);
    CHECK(r != NULL);
    if (!r) return;
    CHECK(append_simple(r, "x", NULL) == 0);
    /* A second writer on the same file is refused while the first holds it. */
    results_t *r2 = results_open(path, RESULTS_RESUME, -1);
    CHECK(r2 == NULL);
    CHECK(strstr(qasr_last_error(), "another process is writing to it") != NULL);
    results_close(r);
    r = results_open(path, RESULTS_OVERWRITE, -1);
    CHECK(r && results_status(r, "x") == RESULT_NEW);
    if (r) results_close(r);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 0);

    /* Resume refuses a file that is not ours; overwrite is explicit. */
    test_write_file(path, "RIFF....WAVEfmt ", 16);
    CHECK(results_open(path, RESULTS_RESUME, -1) == NULL);
    CHECK(strstr(qasr_last_error(), "does not look like a results file") != NULL);
    CHECK(results_open(path, RESULTS_RETRY_ERRORS, -1) == NULL);
    test_write_file(path, "{\n  \"model_type\": \"qwen3_asr\"\n}\n", 32);
    CHECK(results_open(path, RESULTS_RESUME, -1) == NULL);
    CHECK(strstr(qasr_last_error(), "its first line is not a JSON object") != NULL);
    r = results_open(path, RESULTS_OVERWRITE, -1);
    CHECK(r != NULL);
    if (r) results_close(r);

    /* A retry that would leave a line that is not ours on top (which the next resume would then
     * refuse) is refused before anything changes; a resume keeps that line as it is. */
    static const char exposed[] = "{\"id\":\"a\",\"error\":\"a: bad\"}\nhand-written note\n{\"id\":\"b\"}\n";
    test_write_file(path, exposed, sizeof exposed - 1);
    CHECK(results_open(path, RESULTS_RETRY_ERRORS, -1) == NULL);
    CHECK(strstr(qasr_last_error(), "line 2 is not a JSON object and only error lines precede it") != NULL);
    size_t len;
    char *text = read_text_file(path, &len);
    CHECK(text && len == sizeof exposed - 1 && memcmp(text, exposed, len) == 0);
    free(text);
    r = results_open(path, RESULTS_RESUME, -1);
    CHECK(r && results_status(r, "a") == RESULT_FAILED && results_status(r, "b") == RESULT_DONE);
    if (r) results_close(r);

    char *dir = tmp_path("no-such-dir/out.jsonl");
    CHECK(results_open(dir, RESULTS_RESUME, -1) == NULL);
    CHECK(strstr(qasr_last_error(), "No such file") != NULL);
    free(dir);
    free(path);
}

static void test_stdout_and_errors(void)
{
    char *path = tmp_path("stdout.txt");
    fflush(stdout);
    int saved = dup(1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    close(fd);
    results_t *r = results_open("-", RESULTS_RESUME, 0);
    CHECK(r != NULL);
    if (r) {
        CHECK_INT_EQ(results_status(r, "x"), RESULT_NEW);
        CHECK(append_simple(r, "x", NULL) == 0);
        CHECK(results_close(r) == 0);
    }
    dup2(saved, 1);
    close(saved);
    size_t n;
    char *got = read_bytes(path, &n);
    CHECK(strncmp(got, "{\"id\":\"x\",", 10) == 0 && got[n - 1] == '\n');
    free(got);
    free(path);

    /* A full disk: the append fails with a message naming the file. */
    r = results_open("/dev/full", RESULTS_RESUME, 0);
    CHECK(r != NULL);
    if (r) {
        CHECK(append_simple(r, "x", NULL) == -1);
        CHECK(strstr(qasr_last_error(), "/dev/full: writing a result") != NULL);
        results_close(r);
    }
}

typedef struct {
    results_t *r;
    int thread;
} writer_arg_t;

enum { N_THREADS = 4, PER_THREAD = 1500, MAX_TEXT = 16 * 1024 };

static void *writer(void *p)
{
    writer_arg_t *a = p;
    unsigned seed = (unsigned)a->thread * 7919u + 1;
    char *text = xmalloc(MAX_TEXT + 1);
    for (int i = 0; i < PER_THREAD; i++) {
        size_t len = (size_t)(rand_r(&seed) % MAX_TEXT) + 1; /* mostly above PIPE_BUF */
        memset(text, 'a' + a->thread, len);
        text[len] = '\0';
        char id[32];
        snprintf(id, sizeof id, "t%d-%d", a->thread, i);
        result_record_t rec = { .id = id, .text = text, .duration = -1 };
        if (results_append(a->r, &rec) != 0) break;
    }
    free(text);
    return NULL;
}

static void test_threads(void)
{
    char *path = tmp_path("threads.jsonl");
    results_t *r = results_open(path, RESULTS_OVERWRITE, 0.2);
    CHECK(r != NULL);
    if (!r) return;
    pthread_t th[N_THREADS];
    writer_arg_t args[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        args[t] = (writer_arg_t){ r, t };
        pthread_create(&th[t], NULL, writer, &args[t]);
    }
    for (int t = 0; t < N_THREADS; t++) pthread_join(th[t], NULL);
    CHECK(results_close(r) == 0);
    size_t n, torn = 1;
    char *got = read_bytes(path, &n);
    CHECK_INT_EQ(check_well_formed(got, n, &torn, 1), N_THREADS * PER_THREAD);
    CHECK_INT_EQ(torn, 0);
    /* Each line's text is one letter only: no interleaving inside a line. */
    int mixed = 0;
    for (const char *p = got; p < got + n;) {
        /* memmem on the line: strstr on the rest of the file is quadratic under ASan */
        const char *nl = strchr(p, '\n'), *t = (const char *)memmem(p, (size_t)(nl - p), "\"text\":\"", 8) + 8;
        for (const char *q = t; *q != '"'; q++) mixed |= *q != *t;
        p = nl + 1;
    }
    CHECK(!mixed);
    free(got);
    free(path);
}

enum { KILL_IDS = 600, KILL_ROUNDS = 40, KILL_PER_ROUND = 12, KILL_MAX_LINE = 128 * 1024 };

/* The child: resume, tell the parent it is about to write, skip done ids, append the rest.
 * Lines are built by hand (cheap next to write(2)) and up to 128 KiB, so that most of the
 * child's time is spent inside write and a kill often tears a line. A child that will be killed
 * writes at most KILL_PER_ROUND lines and then waits for its end, so every round is a kill and
 * no round finishes the file early, however the two processes are scheduled. */
static void kill_child(const char *path, unsigned seed, int ready_fd, int last)
{
    results_t *r = results_open(path, RESULTS_RESUME, -1);
    if (!r) _exit(2);
    char *line = xmalloc(KILL_MAX_LINE + 64);
    if (write(ready_fd, "", 1) != 1) _exit(4);
    for (int i = 0, written = 0; i < KILL_IDS; i++) {
        char id[32];
        snprintf(id, sizeof id, "id-%04d", i);
        if (results_status(r, id) != RESULT_NEW) continue;
        if (!last && written++ == KILL_PER_ROUND)
            for (;;) pause();
        size_t n = (size_t)sprintf(line, "{\"id\":\"%s\",\"text\":\"", id);
        size_t len = (size_t)(rand_r(&seed) % KILL_MAX_LINE);
        memset(line + n, 'x', len);
        n += len;
        n += (size_t)sprintf(line + n, "\",\"error\":null}\n");
        if (results_append_line(r, line, n) != 0) _exit(3);
    }
    results_close(r);
    _exit(0);
}

/* Run the child; unless it is the last round, SIGKILL it at a random moment (0-1 ms) after it
 * starts writing. Returns 1 if it was killed. */
static int run_child(const char *path, int round, int last)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        kill_child(path, (unsigned)round + 1, fds[1], last);
    }
    close(fds[1]);
    char c;
    CHECK(read(fds[0], &c, 1) == 1);
    close(fds[0]);
    if (!last) {
        struct timespec ts = { 0, (long)(rand() % 1000) * 1000L };
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    int status;
    waitpid(pid, &status, 0);
    if (last)
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    else
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    return WIFSIGNALED(status);
}

static void test_sigkill(void)
{
    char *path = tmp_path("killed.jsonl");
    unlink(path);
    srand(12345);
    int tears = 0, kills = 0, repairs = 0;
    for (int round = 0; round <= KILL_ROUNDS; round++) {
        int last = round == KILL_ROUNDS; /* the final run completes */
        kills += run_child(path, round, last);

        /* Whatever the moment, only the last line may be torn, and no id is there twice. */
        size_t n, torn = 0;
        char *got = read_bytes(path, &n);
        size_t lines = check_well_formed(got, n, &torn, 1);
        tears += torn > 0;
        free(got);
        if (torn) { /* the next open repairs it */
            results_t *r = results_open(path, RESULTS_RESUME, -1);
            CHECK(r != NULL);
            if (r) {
                repairs += count_notes(r, "incomplete or not valid JSON") == 1;
                CHECK_INT_EQ(results_count(r, RESULT_DONE), lines);
                results_close(r);
            }
        }
        if (last) {
            CHECK_INT_EQ(lines, KILL_IDS);
            CHECK_INT_EQ(torn, 0);
        }
    }
    CHECK_INT_EQ(repairs, tears);
    CHECK_INT_EQ(kills, KILL_ROUNDS);
    CHECK(tears > 0);
    printf("sigkill: %d rounds killed, %d torn tails repaired\n", kills, tears);
    unlink(path);
    free(path);
}

static void test_large(void)
{
    enum { N = 200000 };
    char *path = tmp_path("large.jsonl");
    results_t *r = results_open(path, RESULTS_OVERWRITE, -1);
    CHECK(r != NULL);
    if (!r) return;
    result_timing_t timings[3] = { { "audio", 0.01 }, { "encode", 0.2 }, { "decode", 0.5 } };
    result_segment_t seg = { 0, 3.2, "a few words of transcript" };
    double t0 = now_seconds();
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "utt-%07d", i);
        result_record_t rec = { .id = id, .path = "/data/corpus/speaker/chapter/file.flac", .line = i + 2,
                                .text = "a few words of transcript", .language = "English", .duration = 3.2,
                                .segments = &seg, .n_segments = 1, .n_tokens = 9,
                                .error = i % 100 == 0 ? "cannot decode" : NULL, .timings = timings, .n_timings = 3 };
        if (results_append(r, &rec) != 0) break;
    }
    double t_write = now_seconds() - t0;
    results_close(r);
    t0 = now_seconds();
    r = results_open(path, RESULTS_RESUME, -1);
    double t_scan = now_seconds() - t0;
    CHECK(r != NULL);
    if (!r) return;
    CHECK_INT_EQ(results_count(r, RESULT_DONE), N - N / 100);
    CHECK_INT_EQ(results_count(r, RESULT_FAILED), N / 100);
    int wrong = 0;
    t0 = now_seconds();
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "utt-%07d", i);
        wrong += results_status(r, id) != (i % 100 == 0 ? RESULT_FAILED : RESULT_DONE);
    }
    double t_lookup = now_seconds() - t0;
    CHECK_INT_EQ(wrong, 0);
    CHECK_INT_EQ(results_status(r, "utt-9999999"), RESULT_NEW);
    results_close(r);
    printf("large: %d lines written in %.2f s, scanned in %.2f s, %d lookups in %.3f s\n", N, t_write, t_scan, N,
           t_lookup);
    unlink(path);
    free(path);
}

int main(void)
{
    tmp_dir = test_tmp_dir("results");
    test_line();
    test_resume();
    test_torn();
    test_retry();
    test_overwrite_lock_refuse();
    test_stdout_and_errors();
    test_threads();
    test_sigkill();
    test_large();
    return test_result("test_results");
}
