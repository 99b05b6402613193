/* Manifest loader: every format and its detection, header variants, CRLF/BOM/comments, path
 * resolution, stdin, byte paths, each kind of malformed line (with its line number), fatal
 * errors, and a 200k-entry manifest for time and memory. */
#include "manifest.h"
#include "str_pool.h"
#include "util.h"

#include "test.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *tmp_dir;

/* Write len bytes (strlen when len is 0) to tmp_dir/name; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text, size_t len)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    test_write_file(path, text, len ? len : strlen(text));
    return path;
}

static manifest_t *load_text(const char *name, const char *text, manifest_format_t format)
{
    manifest_t *m = manifest_load(write_file(name, text, 0), format);
    if (!m) fprintf(stderr, "  unexpected failure: %s\n", qasr_last_error());
    return m;
}

/* Problem i is on line `line` and its message is "<name>:<line>: ..." containing `what`. */
static void check_problem(const manifest_t *m, size_t i, int line, const char *name, const char *what)
{
    CHECK(i < m->n_problems);
    if (i >= m->n_problems) return;
    char prefix[1100];
    snprintf(prefix, sizeof prefix, "%s:%d: ", name, line);
    CHECK_INT_EQ(m->problems[i].line, line);
    CHECK(strncmp(m->problems[i].message, prefix, strlen(prefix)) == 0);
    CHECK(strstr(m->problems[i].message, what) != NULL);
    if (strncmp(m->problems[i].message, prefix, strlen(prefix)) != 0 || !strstr(m->problems[i].message, what))
        fprintf(stderr, "  problem %zu: \"%s\", wanted prefix \"%s\" and \"%s\"\n", i, m->problems[i].message,
                prefix, what);
}

/* Fatal load: NULL and a message containing each of the two substrings. */
static void check_fatal(const char *path, manifest_format_t format, const char *what, const char *what2)
{
    manifest_t *m = manifest_load(path, format);
    CHECK(m == NULL);
    manifest_free(m);
    CHECK(strstr(qasr_last_error(), what) != NULL);
    CHECK(!what2 || strstr(qasr_last_error(), what2) != NULL);
    if (!strstr(qasr_last_error(), what) || (what2 && !strstr(qasr_last_error(), what2)))
        fprintf(stderr, "  fatal message \"%s\" lacks \"%s\"/\"%s\"\n", qasr_last_error(), what, what2 ? what2 : "");
}

static char *in_tmp(const char *name)
{
    return path_join(tmp_dir, name);
}

static void check_path(const char *got, const char *name)
{
    char *want = in_tmp(name);
    CHECK_STR_EQ(got, want);
    free(want);
}

static void test_tsv(void)
{
    manifest_t *m = load_text("full.tsv",
                              "id\tpath\tlanguage\tcontext\ttext\tduration\tspeaker\n"
                              "u1\ta.wav\tEnglish\tnames: Qwen\thello there\t3.5\tbob\n"
                              "u2\t/abs/b.flac\t\t\t\t\talice\n"
                              "\tc d.wav\tChinese\t\t\t0\t\n",
                              MANIFEST_AUTO);
    CHECK(m != NULL);
    if (!m) return;
    CHECK_INT_EQ(m->format, MANIFEST_TSV);
    CHECK_INT_EQ(m->n_entries, 3);
    CHECK_INT_EQ(m->n_problems, 0);
    const manifest_entry_t *e = m->entries;
    CHECK_STR_EQ(e[0].id, "u1");
    check_path(e[0].path, "a.wav");
    CHECK_STR_EQ(e[0].language, "English");
    CHECK_STR_EQ(e[0].context, "names: Qwen");
    CHECK_STR_EQ(e[0].text, "hello there");
    CHECK_NEAR(e[0].duration, 3.5, 0, 0);
    CHECK_INT_EQ(e[0].line, 2);
    CHECK_STR_EQ(e[1].path, "/abs/b.flac");
    CHECK(e[1].language == NULL && e[1].context == NULL);
    CHECK_STR_EQ(e[1].text, ""); /* an empty reference is still a reference */
    CHECK(e[1].duration < 0);
    CHECK_STR_EQ(e[2].id, "c d.wav"); /* empty id: the path as written */
    check_path(e[2].path, "c d.wav");
    CHECK_NEAR(e[2].duration, 0, 0, 0);
    CHECK_INT_EQ(e[2].line, 4);
    manifest_free(m);

    /* Only a path column; any order; spaces around names; unknown columns ignored. */
    m = load_text("order.tsv", "duration\t  path \tnotes\n1.25\tx.wav\tanything\n", MANIFEST_AUTO);
    CHECK(m && m->n_entries == 1);
    if (m) {
        check_path(m->entries[0].path, "x.wav");
        CHECK_STR_EQ(m->entries[0].id, "x.wav");
        CHECK_NEAR(m->entries[0].duration, 1.25, 0, 0);
        CHECK(m->entries[0].text == NULL);
    }
    manifest_free(m);
    m = load_text("lone.tsv", "path\npath\ny.wav\n", MANIFEST_AUTO);
    CHECK(m && m->format == MANIFEST_TSV && m->n_entries == 2);
    if (m) CHECK_STR_EQ(m->entries[0].id, "path");
    manifest_free(m);

    /* Comments and blank lines before the header and between rows. */
    m = load_text("comments.tsv", "# made by a script\n\n#path\tid\npath\tid\n\n# a row\na.wav\t1\n\nb.wav\t2\n",
                  MANIFEST_AUTO);
    CHECK(m && m->n_entries == 2 && m->n_problems == 0);
    if (m) {
        CHECK_INT_EQ(m->entries[0].line, 7);
        CHECK_INT_EQ(m->entries[1].line, 9);
        CHECK_STR_EQ(m->entries[1].id, "2");
    }
    manifest_free(m);
}

static void test_crlf_bom(void)
{
    manifest_t *m = load_text("crlf.tsv", "\xef\xbb\xbfpath\tid\r\na.wav\tx\r\nb.wav\ty\r\n", MANIFEST_AUTO);
    CHECK(m && m->format == MANIFEST_TSV && m->n_entries == 2 && m->n_problems == 0);
    if (m) {
        check_path(m->entries[0].path, "a.wav");
        CHECK_STR_EQ(m->entries[1].id, "y");
    }
    manifest_free(m);

    m = load_text("bom.list", "\xef\xbb\xbf" "a.wav\r\nb.wav", MANIFEST_AUTO); /* and no final newline */
    CHECK(m && m->format == MANIFEST_LIST && m->n_entries == 2);
    if (m) {
        CHECK_STR_EQ(m->entries[0].id, "a.wav");
        CHECK_STR_EQ(m->entries[1].id, "b.wav");
    }
    manifest_free(m);

    m = load_text("bom.txt", "\xef\xbb\xbf{\"audio_filepath\": \"a.wav\"}\r\n", MANIFEST_AUTO);
    CHECK(m && m->format == MANIFEST_JSONL && m->n_entries == 1);
    manifest_free(m);
}

static void test_list(void)
{
    manifest_t *m = load_text("paths.txt", "# corpus\nspeaker one/take 1.wav\n/data/b.flac\n\n./#hash.wav\n",
                              MANIFEST_AUTO);
    CHECK(m && m->format == MANIFEST_LIST && m->n_entries == 3);
    if (m) {
        CHECK_STR_EQ(m->entries[0].id, "speaker one/take 1.wav");
        check_path(m->entries[0].path, "speaker one/take 1.wav");
        CHECK_STR_EQ(m->entries[1].path, "/data/b.flac");
        CHECK_STR_EQ(m->entries[2].id, "./#hash.wav");
        CHECK(m->entries[0].language == NULL && m->entries[0].text == NULL && m->entries[0].duration < 0);
    }
    manifest_free(m);

    /* Forced list: a file called "path" is a path. */
    m = load_text("forced.txt", "path\nother\n", MANIFEST_LIST);
    CHECK(m && m->format == MANIFEST_LIST && m->n_entries == 2);
    if (m) CHECK_STR_EQ(m->entries[0].id, "path");
    manifest_free(m);
}

static void test_jsonl(void)
{
    manifest_t *m = load_text("nemo.txt",
                              "{\"audio_filepath\": \"a.wav\", \"duration\": 2.5, \"text\": \"hi\", \"lang\": \"en\"}\n"
                              "{\"audio_filepath\": \"/x/b.wav\", \"id\": \"B\", \"context\": \"ctx\", "
                              "\"language\": \"Chinese\", \"duration\": null, \"extra\": [1, 2]}\n"
                              "  {\"audio_filepath\": \"c.wav\", \"duration\": 7}  \n",
                              MANIFEST_AUTO);
    CHECK(m && m->format == MANIFEST_JSONL && m->n_entries == 3 && m->n_problems == 0);
    if (m) {
        const manifest_entry_t *e = m->entries;
        CHECK_STR_EQ(e[0].id, "a.wav");
        check_path(e[0].path, "a.wav");
        CHECK_STR_EQ(e[0].text, "hi");
        CHECK_STR_EQ(e[0].language, "en");
        CHECK_NEAR(e[0].duration, 2.5, 0, 0);
        CHECK_STR_EQ(e[1].id, "B");
        CHECK_STR_EQ(e[1].path, "/x/b.wav");
        CHECK_STR_EQ(e[1].context, "ctx");
        CHECK_STR_EQ(e[1].language, "Chinese");
        CHECK(e[1].duration < 0 && e[1].text == NULL);
        CHECK_NEAR(e[2].duration, 7, 0, 0);
    }
    manifest_free(m);

    /* The extension decides even when the first line is not an object. */
    m = load_text("ext.jsonl", "not json\n{\"audio_filepath\": \"a.wav\"}\n", MANIFEST_AUTO);
    CHECK(m && m->format == MANIFEST_JSONL && m->n_entries == 1 && m->n_problems == 1);
    manifest_free(m);
    m = load_text("ext.json", "{\"audio_filepath\": \"a.wav\"}\n", MANIFEST_AUTO);
    CHECK(m && m->format == MANIFEST_JSONL);
    manifest_free(m);
    m = load_text("forced.data", "{\"audio_filepath\": \"a.wav\"}\n", MANIFEST_JSONL);
    CHECK(m && m->format == MANIFEST_JSONL && m->n_entries == 1);
    manifest_free(m);
}

static void test_resolution(void)
{
    char sub[600];
    snprintf(sub, sizeof sub, "%s/sub/dir", tmp_dir);
    test_mkdir_p(sub);
    manifest_t *m = load_text("sub/dir/m.txt", "a.wav\n../b.wav\n/abs/c.wav\n", MANIFEST_AUTO);
    CHECK(m && m->n_entries == 3);
    if (m) {
        check_path(m->entries[0].path, "sub/dir/a.wav");
        check_path(m->entries[1].path, "sub/dir/../b.wav");
        CHECK_STR_EQ(m->entries[1].id, "../b.wav");
        CHECK_STR_EQ(m->entries[2].path, "/abs/c.wav");
    }
    manifest_free(m);

    /* A manifest named without a directory: paths stay as written (relative to the cwd). */
    char cwd[1024];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(sub) == 0);
    m = manifest_load("m.txt", MANIFEST_AUTO);
    CHECK(m && m->n_entries == 3);
    if (m) CHECK_STR_EQ(m->entries[0].path, "a.wav");
    manifest_free(m);
    m = manifest_load("./m.txt", MANIFEST_AUTO);
    CHECK(m && m->n_entries == 3);
    if (m) CHECK_STR_EQ(m->entries[0].path, "./a.wav");
    manifest_free(m);
    CHECK(chdir(cwd) == 0);
}

/* Load "-" with stdin fed from a pipe by a child process. */
static manifest_t *load_stdin(const char *text)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        size_t n = strlen(text);
        _exit(write(fds[1], text, n) == (ssize_t)n ? 0 : 1);
    }
    close(fds[1]);
    fflush(stdin);
    int saved = dup(0);
    dup2(fds[0], 0);
    close(fds[0]);
    clearerr(stdin);
    manifest_t *m = manifest_load("-", MANIFEST_AUTO);
    dup2(saved, 0);
    close(saved);
    clearerr(stdin);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return m;
}

static void test_stdin(void)
{
    manifest_t *m = load_stdin("path\tid\nrel/a.wav\tA\n/abs/b.wav\tB\nbad\n");
    CHECK(m && m->format == MANIFEST_TSV && m->n_entries == 2);
    if (m) {
        CHECK_STR_EQ(m->entries[0].path, "rel/a.wav"); /* relative to the current directory */
        CHECK_STR_EQ(m->entries[1].path, "/abs/b.wav");
        check_problem(m, 0, 4, "<stdin>", "1 tab-separated cells, the header has 2");
    }
    manifest_free(m);
    m = load_stdin("{\"audio_filepath\": \"x.wav\"}\n");
    CHECK(m && m->format == MANIFEST_JSONL && m->n_entries == 1);
    manifest_free(m);
    m = load_stdin("");
    CHECK(m == NULL);
    CHECK(strstr(qasr_last_error(), "<stdin>: no entries") != NULL);
}

static void test_bytes(void)
{
    /* UTF-8 paths pass through; a non-UTF-8 path keeps its bytes, its id becomes valid UTF-8. */
    manifest_t *m = load_text("bytes.txt", "日本語/naïve file.wav\nlatin1-\xe9t\xe9.wav\n", MANIFEST_AUTO);
    CHECK(m && m->n_entries == 2);
    if (m) {
        CHECK_STR_EQ(m->entries[0].id, "日本語/naïve file.wav");
        check_path(m->entries[0].path, "日本語/naïve file.wav");
        check_path(m->entries[1].path, "latin1-\xe9t\xe9.wav");
        CHECK_STR_EQ(m->entries[1].id, "latin1-\xef\xbf\xbdt\xef\xbf\xbd.wav");
    }
    manifest_free(m);

    /* Reference text keeps its bytes; an explicit id is made valid too. */
    m = load_text("bytes.tsv", "path\tid\ttext\na.wav\tid-\xff\tref \xc3\n", MANIFEST_AUTO);
    CHECK(m && m->n_entries == 1);
    if (m) {
        CHECK_STR_EQ(m->entries[0].id, "id-\xef\xbf\xbd");
        CHECK_STR_EQ(m->entries[0].text, "ref \xc3");
    }
    manifest_free(m);

    /* Two paths differing only in invalid bytes would share an id: caught as duplicates. */
    check_fatal(write_file("dup_bytes.txt", "a\xff.wav\na\xfe.wav\n", 0), MANIFEST_AUTO, "lines 1 and 2", NULL);
}

static void test_malformed(void)
{
    char *name = in_tmp("bad.tsv");
    manifest_t *m = load_text("bad.tsv",
                              "path\tid\tduration\n"        /* 1 */
                              "ok1.wav\ta\t1\n"             /* 2 */
                              "only-one-cell\n"             /* 3 */
                              "x.wav\tb\t1\textra\n"        /* 4 */
                              "\tc\t1\n"                    /* 5 */
                              "y.wav\td\tlong\n"            /* 6 */
                              "y.wav\te\t-1\n"              /* 7 */
                              "y.wav\tf\tnan\n"             /* 8 */
                              "y.wav\tg\t 2\n"              /* 9 */
                              "ok2.wav\th\t\n",             /* 10 */
                              MANIFEST_AUTO);
    CHECK(m && m->n_entries == 2 && m->n_problems == 7);
    if (m) {
        CHECK_INT_EQ(m->entries[1].line, 10);
        check_problem(m, 0, 3, name, "1 tab-separated cells, the header has 3");
        check_problem(m, 1, 4, name, "4 tab-separated cells");
        check_problem(m, 2, 5, name, "empty path");
        check_problem(m, 3, 6, name, "duration 'long' is not a number of seconds from 0 to 604800 (a week)");
        check_problem(m, 4, 7, name, "duration '-1'");
        check_problem(m, 5, 8, name, "duration 'nan'");
        check_problem(m, 6, 9, name, "duration ' 2'");
    }
    manifest_free(m);
    free(name);

    name = in_tmp("bad.jsonl");
    m = load_text("bad.jsonl",
                  "{\"audio_filepath\": \"a.wav\"}\n"                           /* 1 */
                  "{\"audio_filepath\": \"b.wav\"\n"                            /* 2 */
                  "[1, 2]\n"                                                    /* 3 */
                  "{\"path\": \"c.wav\"}\n"                                     /* 4 */
                  "{\"audio_filepath\": \"\"}\n"                                /* 5 */
                  "{\"audio_filepath\": \"d.wav\", \"id\": 7}\n"                /* 6 */
                  "{\"audio_filepath\": \"d.wav\", \"duration\": \"3\"}\n"      /* 7 */
                  "{\"audio_filepath\": \"d.wav\", \"duration\": -2}\n"         /* 8 */
                  "{\"audio_filepath\": \"d.wav\", \"lang\": \"en\", \"language\": \"English\"}\n" /* 9 */
                  "{\"audio_filepath\": \"e.wav\"} trailing\n"                  /* 10 */
                  "{\"audio_filepath\": 5}\n"                                   /* 11 */
                  "{\"audio_filepath\": \"f.wav\", \"text\": \"ok\"}\n"         /* 12 */
                  "{\"audio_filepath\": \"g.wav\", \"duration\": 1e300}\n"       /* 13 */
                  "{\"audio_filepath\": \"g\\u0000.wav\"}\n"                    /* 14 */
                  "{\"audio_filepath\": \"h.wav\", \"text\": \"\\\\u0000\"}\n"   /* 15: an escaped backslash */
                  "{\"audio_filepath\": \"i.wav\", \"duration\": 604800}\n",     /* 16: a week is allowed */
                  MANIFEST_AUTO);
    CHECK(m && m->n_entries == 4 && m->n_problems == 12);
    if (m) {
        CHECK_INT_EQ(m->entries[1].line, 12);
        check_problem(m, 0, 2, name, "invalid JSON");
        check_problem(m, 1, 3, name, "not a JSON object");
        check_problem(m, 2, 4, name, "no \"audio_filepath\"");
        check_problem(m, 3, 5, name, "empty path");
        check_problem(m, 4, 6, name, "\"id\" is not a string");
        check_problem(m, 5, 7, name, "\"duration\" is not a number of seconds from 0 to 604800");
        check_problem(m, 6, 8, name, "\"duration\" is not a number of seconds from 0 to 604800");
        check_problem(m, 7, 9, name, "both \"lang\" and \"language\"");
        check_problem(m, 8, 10, name, "invalid JSON");
        check_problem(m, 9, 11, name, "\"audio_filepath\" is not a string");
        check_problem(m, 10, 13, name, "\"duration\" is not a number of seconds from 0 to 604800");
        check_problem(m, 11, 14, name, "a string holds \\u0000 (NUL)");
        CHECK_INT_EQ(m->entries[2].line, 15);
        CHECK_STR_EQ(m->entries[2].text, "\\u0000"); /* the six characters, not a NUL */
        CHECK(m->entries[3].line == 16 && m->entries[3].duration == 604800);
    }
    manifest_free(m);
    free(name);

    /* A tab in a list, a NUL byte, an overlong line. */
    size_t big = MANIFEST_MAX_LINE + 10;
    char *text = xmalloc(big + 100);
    size_t n = 0;
    n += (size_t)sprintf(text + n, "a.wav\nb\tc.wav\nnul");
    text[n++] = '\0';
    n += (size_t)sprintf(text + n, ".wav\n");
    memset(text + n, 'x', big);
    n += big;
    n += (size_t)sprintf(text + n, "\nd.wav\n");
    name = in_tmp("bad.txt");
    m = manifest_load(write_file("bad.txt", text, n), MANIFEST_AUTO);
    CHECK(m && m->format == MANIFEST_LIST && m->n_entries == 2 && m->n_problems == 3);
    if (m) {
        CHECK_INT_EQ(m->entries[1].line, 5);
        check_problem(m, 0, 2, name, "tab in a path list");
        check_problem(m, 1, 3, name, "NUL byte");
        check_problem(m, 2, 4, name, "line longer than");
    }
    manifest_free(m);
    free(name);
    free(text);
}

static void test_fatal(void)
{
    manifest_format_t f;
    CHECK(manifest_format_parse("tsv", &f) == 0 && f == MANIFEST_TSV);
    CHECK(manifest_format_parse("auto", &f) == 0 && f == MANIFEST_AUTO);
    CHECK(manifest_format_parse("jsonl", &f) == 0 && f == MANIFEST_JSONL);
    CHECK(manifest_format_parse("list", &f) == 0 && f == MANIFEST_LIST);
    CHECK(manifest_format_parse("csv", &f) == -1 && strstr(qasr_last_error(), "csv"));

    char *missing = in_tmp("does-not-exist.tsv");
    check_fatal(missing, MANIFEST_AUTO, missing, "No such file");
    free(missing);
    check_fatal(write_file("empty.tsv", "", 0), MANIFEST_AUTO, "empty.tsv: no entries", NULL);
    check_fatal(write_file("comments.txt", "# nothing\n\n", 0), MANIFEST_AUTO, "no entries", NULL);
    check_fatal(write_file("header-only.tsv", "path\tid\n", 0), MANIFEST_AUTO, "no entries", NULL);
    check_fatal(write_file("all-bad.tsv", "path\tid\nx\n", 0), MANIFEST_AUTO, "no valid entries (1 malformed",
                "all-bad.tsv:2:");
    check_fatal(write_file("noheader.tsv", "a.wav\tx\n", 0), MANIFEST_TSV, "noheader.tsv:1: expected a TSV header",
                NULL);
    check_fatal(write_file("twice.tsv", "path\tid\tid\na\tb\tc\n", 0), MANIFEST_AUTO, "twice.tsv:1:",
                "'id' appears twice");
    check_fatal(write_file("dups.tsv", "path\tid\na.wav\tx\nb.wav\ty\nc.wav\tx\n", 0), MANIFEST_AUTO,
                "duplicate id 'x'", "lines 2 and 4");
    check_fatal(write_file("dups.txt", "a.wav\nb.wav\n\na.wav\n", 0), MANIFEST_AUTO, "dups.txt: duplicate id 'a.wav'",
                "lines 1 and 4");
    /* an audio file where the manifest goes: named by its magic, whatever the format asked */
    check_fatal(write_file("talk.flac", "fLaC\0\0\0\x22\x12\n\x12\nab\xff\n", 15), MANIFEST_AUTO,
                "talk.flac: not a manifest: a FLAC file (a NUL byte on line 1)", "qasr transcribes audio files");
    check_fatal(write_file("talk.wav", "RIFF\x24\x08\0\0WAVEfmt ", 16), MANIFEST_TSV, "not a manifest: a WAV file",
                NULL);
    check_fatal(write_file("talk.m4a", "\0\0\0\x20" "ftypM4A \n", 13), MANIFEST_AUTO, "not a manifest: an MP4/M4A file",
                NULL);
    check_fatal(write_file("blob.bin", "\x01\x02\0\x03\n", 5), MANIFEST_LIST, "not a manifest: binary data", NULL);
}

static long max_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_large(void)
{
    enum { N = 200000 };
    char *path = in_tmp("large.tsv");
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "id\tpath\tduration\ttext\n");
    for (int i = 0; i < N; i++)
        fprintf(f, "utt-%07d\tspeaker-%03d/chapter-%02d/utt-%07d.flac\t%d.%02d\tsome reference words %d\n", i,
                i % 1000, i % 50, i, i % 30, i % 100, i);
    long file_bytes = ftell(f);
    fclose(f);

    long rss0 = max_rss_kb();
    double t0 = now_seconds();
    manifest_t *m = manifest_load(path, MANIFEST_AUTO);
    double dt = now_seconds() - t0;
    long rss1 = max_rss_kb();
    CHECK(m && m->n_entries == N && m->n_problems == 0);
    if (m) {
        CHECK_STR_EQ(m->entries[N - 1].id, "utt-0199999");
        CHECK_INT_EQ(m->entries[N - 1].line, N + 1);
        /* Strings cost about their bytes (the pool) plus the fixed entry; each path is stored
         * resolved, so it also carries the manifest's directory. */
        size_t pool = str_pool_bytes(m->strings);
        CHECK(pool < (size_t)file_bytes * 3 / 2 + (size_t)N * (strlen(tmp_dir) + 1));
        printf("large: %d entries, %.1f MB file, loaded in %.3f s, string pool %.1f MB, peak RSS +%.1f MB\n", N,
               file_bytes / 1e6, dt, pool / 1e6, (rss1 - rss0) / 1e3);
    }
#if !defined(__SANITIZE_ADDRESS__)
    /* Entries (56 B) + strings (~95 B) + the temporary duplicate check: well under 400 B/entry. */
    CHECK((rss1 - rss0) * 1024L < 400L * N);
#endif
    manifest_free(m);
    free(path);
}

int main(void)
{
    tmp_dir = test_tmp_dir("manifest");
    test_large(); /* first, so the peak-RSS delta is this load's */
    test_tsv();
    test_crlf_bom();
    test_list();
    test_jsonl();
    test_resolution();
    test_stdin();
    test_bytes();
    test_malformed();
    test_fatal();
    return test_result("test_manifest");
}
