/* qasr-merge (contract in merge.h): index the manifest's ids, read every input line by line
 * keeping only where each chosen line is (file, offset, length), then copy the chosen lines in
 * manifest order to the output, and report. Memory: a slot per manifest entry, not the lines. */
#include "merge.h"

#include "id_map.h"
#include "jsonl.h"
#include "manifest.h"
#include "results.h"
#include "shard.h"
#include "util.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where the line kept for one manifest entry is. */
typedef struct {
    int file; /* input index; -1: no line */
    int ok;   /* its "error" is null */
    long line_no;
    off_t off;
    size_t len; /* with its '\n' */
} slot_t;

/* The first MERGE_LIST_MAX messages of one kind, and how many there were. */
typedef struct {
    char *msg[MERGE_LIST_MAX];
    size_t n;
} list_t;

typedef struct {
    const merge_opts_t *o;
    const manifest_t *m;
    id_map_t *index; /* manifest id -> entry index */
    slot_t *slots;   /* [n_entries] */
    int *fds;        /* [n_inputs], kept open to copy the lines at the end */
    size_t n_lines;
    list_t failed, missing, dups, extras, unreadable;
} merge_t;

static void list_add(list_t *l, const char *fmt, ...) QASR_PRINTF(2, 3);
static void list_add(list_t *l, const char *fmt, ...)
{
    if (l->n++ >= MERGE_LIST_MAX) return;
    char msg[2 * QASR_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    l->msg[l->n - 1] = xstrdup(msg);
}

static void list_print(list_t *l, const char *what)
{
    for (size_t i = 0; i < MIN(l->n, (size_t)MERGE_LIST_MAX); i++) {
        fprintf(stderr, "qasr-merge: %s: %s\n", what, l->msg[i]);
        free(l->msg[i]);
    }
    if (l->n > MERGE_LIST_MAX) fprintf(stderr, "qasr-merge: ... and %zu more %s\n", l->n - MERGE_LIST_MAX, what);
}

/* A complete line (without its '\n'): 1 with *id (malloc'd) and *ok when it is a JSON object
 * with a string "id", else 0. */
static int parse_line(const char *line, size_t len, char **id, int *ok, char **error)
{
    cJSON *j = jsonl_parse_object(line, len);
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    const int good = j && cJSON_IsString(jid);
    if (good) {
        *id = xstrdup(jid->valuestring);
        *ok = !err || cJSON_IsNull(err);
        if (error) *error = xstrdup(cJSON_IsString(err) ? err->valuestring : "(an error that is not a string)");
    }
    cJSON_Delete(j);
    return good;
}

static void add_line(merge_t *g, int f, long line_no, off_t off, size_t len, const char *id, int ok)
{
    const char *path = g->o->inputs[f];
    const int *e = id_map_find(g->index, id);
    if (!e) {
        list_add(&g->extras, "%s (%s:%ld)", id, path, line_no);
        return;
    }
    slot_t *s = &g->slots[*e];
    const slot_t line = { f, ok, line_no, off, len };
    if (s->file < 0) {
        *s = line;
        return;
    }
    list_add(&g->dups, "%s at %s:%ld and %s:%ld: %s", id, g->o->inputs[s->file], s->line_no, path, line_no,
             ok != s->ok ? "kept the success" : ok ? "both succeeded, kept the first" : "both failed, kept the first");
    if (ok && !s->ok) *s = line;
}

/* Read input f, filing each line. -1 + qasr_fail() when it cannot be read. */
static int read_input(merge_t *g, int f)
{
    const char *path = g->o->inputs[f];
    int fd = open(path, O_RDONLY | O_CLOEXEC), fd2 = fd >= 0 ? dup(fd) : -1;
    FILE *fp = fd2 >= 0 ? fdopen(fd2, "rb") : NULL;
    if (!fp) {
        const int err = errno;
        if (fd2 >= 0) close(fd2);
        if (fd >= 0) close(fd);
        return qasr_fail("%s: %s", path, strerror(err));
    }
    g->fds[f] = fd;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    off_t off = 0;
    long line_no = 0, bad = 0; /* the last line read, if it was not usable */
    while ((n = getline(&line, &cap, fp)) > 0) {
        line_no++;
        if (bad) list_add(&g->unreadable, "%s:%ld: not a JSON object with a string \"id\": ignored", path, bad);
        bad = 0;
        char *id;
        int ok;
        if (line[n - 1] == '\n' && parse_line(line, (size_t)n - 1, &id, &ok, NULL)) {
            add_line(g, f, line_no, off, (size_t)n, id, ok);
            free(id);
            g->n_lines++;
        } else {
            bad = line_no;
        }
        off += n;
    }
    const int rc = ferror(fp) ? qasr_fail("%s: %s", path, strerror(errno)) : 0;
    if (bad)
        list_add(&g->unreadable, "%s:%ld: incomplete last line (a run killed while writing it; a resume cuts it "
                 "off): ignored", path, bad);
    free(line);
    fclose(fp);
    return rc;
}

/* The kept line of slot s, '\n'-terminated (malloc'd), or NULL + qasr_fail(). */
static char *read_slot(const merge_t *g, const slot_t *s)
{
    char *buf = xmalloc(s->len + 1);
    size_t got = 0;
    while (got < s->len) {
        ssize_t k = pread(g->fds[s->file], buf + got, s->len - got, s->off + (off_t)got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            free(buf);
            qasr_fail("%s: line %ld changed while merging", g->o->inputs[s->file], s->line_no);
            return NULL;
        }
        got += (size_t)k;
    }
    buf[s->len] = '\0';
    return buf;
}

/* The kept lines in manifest order to the output, through <output>.tmp and a rename. */
static int write_output(merge_t *g, size_t *written)
{
    const char *out = g->o->output;
    const int to_stdout = !strcmp(out, "-");
    char *tmp = xmalloc(strlen(out) + 5);
    sprintf(tmp, "%s%s", out, to_stdout ? "" : ".tmp");
    results_t *r = results_open(tmp, RESULTS_OVERWRITE, 1e9); /* synced once, at close */
    int rc = r ? 0 : -1;
    *written = 0;
    for (size_t i = 0; i < g->m->n_entries && rc == 0; i++) {
        const slot_t *s = &g->slots[i];
        if (s->file < 0) continue;
        char *line = read_slot(g, s);
        rc = line ? results_append_line(r, line, s->len) : -1;
        *written += rc == 0;
        free(line);
    }
    if (r && results_close(r) != 0) rc = -1;
    if (rc == 0 && !to_stdout && rename(tmp, out) != 0) rc = qasr_fail("%s: %s", out, strerror(errno));
    if (rc == 0 && !to_stdout) results_sync_dir_of(out);
    if (rc != 0 && r && !to_stdout) unlink(tmp);
    free(tmp);
    return rc;
}

/* Append "a, b, c" (the first MERGE_LIST_MAX shard indices with flag set, then a count). */
static void list_shards(char *buf, size_t cap, const unsigned char *flag, int n)
{
    size_t len = strlen(buf), shown = 0, more = 0;
    for (int k = 0; k < n; k++) {
        if (!flag[k]) continue;
        if (shown++ < MERGE_LIST_MAX)
            len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "%s%d", shown > 1 ? ", " : "", k);
        else
            more++;
    }
    if (more && len < cap) snprintf(buf + len, cap - len, " and %zu more", more);
}

/* When every input is named like a shard file of the same N: which shards own the missing
 * entries (the split qasr-batch computes, recomputed here) and which have no input file. */
static void trace_shards(const merge_t *g)
{
    shard_t s, first;
    if (g->o->n_inputs == 0 || !shard_from_output_path(g->o->inputs[0], &first)) return;
    unsigned char *present = xcalloc((size_t)first.n, 1), *owes = xcalloc((size_t)first.n, 1);
    int same = 1, absent = 0;
    for (int f = 0; f < g->o->n_inputs && same; f++) {
        same = shard_from_output_path(g->o->inputs[f], &s) && s.n == first.n;
        if (same) present[s.k] = 1;
    }
    char spec[32];
    snprintf(spec, sizeof spec, "0/%d", first.n);
    shard_plan_t *p = same ? shard_plan_new(spec, g->m) : NULL;
    for (size_t i = 0; p && i < g->m->n_entries; i++)
        if (g->slots[i].file < 0) owes[p->shard_of[i]] = 1;
    for (int k = 0; k < first.n; k++) {
        absent += !present[k];
        present[k] = !present[k];
    }
    char msg[1024];
    if (p) {
        snprintf(msg, sizeof msg, "qasr-merge: the missing entries belong to shard(s) ");
        list_shards(msg, sizeof msg, owes, first.n);
        fprintf(stderr, "%s of %d\n", msg, first.n);
    }
    if (p && absent) {
        snprintf(msg, sizeof msg, "qasr-merge: no input file for shard(s) ");
        list_shards(msg, sizeof msg, present, first.n);
        fprintf(stderr, "%s of %d\n", msg, first.n);
    }
    shard_plan_free(p);
    free(present);
    free(owes);
}

/* The output must not be one of the inputs (a glob like results*.jsonl matches an earlier merge). */
static int check_output(const merge_opts_t *o)
{
    struct stat so, si;
    if (!strcmp(o->output, "-") || stat(o->output, &so) != 0) return 0;
    for (int f = 0; f < o->n_inputs; f++)
        if (stat(o->inputs[f], &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
            return qasr_fail("%s is both an input and the output; write the merge elsewhere", o->output);
    return 0;
}

/* Every input stays open until the copy: allow that many descriptors when the hard limit does. */
static void allow_open_files(int n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= (rlim_t)n + 64) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)n + 64 ? (rlim_t)n + 64 : rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
}

/* Tally the slots: ok and failed counts, the failed (with their errors) and missing lists. */
static void tally(merge_t *g, size_t *ok)
{
    *ok = 0;
    for (size_t i = 0; i < g->m->n_entries; i++) {
        const slot_t *s = &g->slots[i];
        const manifest_entry_t *e = &g->m->entries[i];
        if (s->file < 0) {
            list_add(&g->missing, "%s (%s:%d)", e->id, g->o->manifest, e->line);
        } else if (s->ok) {
            (*ok)++;
        } else {
            char *line = g->failed.n < MERGE_LIST_MAX ? read_slot(g, s) : NULL, *id = NULL, *error = NULL;
            int line_ok;
            if (line) parse_line(line, s->len - 1, &id, &line_ok, &error);
            list_add(&g->failed, "%s: %s", e->id, error ? error : "(see its line)");
            free(line);
            free(id);
            free(error);
        }
    }
}

int merge_run(const merge_opts_t *o)
{
    manifest_format_t mf;
    manifest_t *m = NULL;
    if (manifest_format_parse(o->manifest_format, &mf) != 0 || check_output(o) != 0 ||
        !(m = manifest_load(o->manifest, mf))) {
        fprintf(stderr, "qasr-merge: %s\n", qasr_last_error());
        return MERGE_USAGE;
    }
    if (m->n_problems)
        fprintf(stderr, "qasr-merge: %s has %zu malformed line(s), not entries (qasr-batch skips them too); the "
                "first: %s\n", o->manifest, m->n_problems, m->problems[0].message);
    merge_t g = { .o = o, .m = m, .index = id_map_new() };
    g.slots = xmalloc(MAX(1, m->n_entries) * sizeof *g.slots);
    for (size_t i = 0; i < m->n_entries; i++) {
        g.slots[i] = (slot_t){ .file = -1 };
        id_map_add(g.index, m->entries[i].id, (int)i);
    }
    g.fds = xmalloc(MAX(1, o->n_inputs) * sizeof *g.fds);
    for (int f = 0; f < o->n_inputs; f++) g.fds[f] = -1;
    allow_open_files(o->n_inputs);
    int code = -1;
    for (int f = 0; f < o->n_inputs && code < 0; f++)
        if (read_input(&g, f) != 0) code = MERGE_USAGE;
    size_t ok = 0, written = 0;
    if (code < 0) {
        tally(&g, &ok);
        if (write_output(&g, &written) != 0) code = MERGE_USAGE;
    }
    if (code == MERGE_USAGE) {
        fprintf(stderr, "qasr-merge: %s\n", qasr_last_error());
    } else {
        fprintf(stderr, "qasr-merge: %s: %zu entries; %d input file(s), %zu lines: %zu ok, %zu failed, %zu missing, "
                "%zu duplicate(s), %zu not in the manifest, %zu unreadable line(s)\n", o->manifest, m->n_entries,
                o->n_inputs, g.n_lines, ok, g.failed.n, g.missing.n, g.dups.n, g.extras.n, g.unreadable.n);
        const int odd = g.dups.n || g.extras.n || g.unreadable.n;
        code = g.missing.n ? MERGE_INCOMPLETE : g.failed.n || odd ? MERGE_SOME_FAILED : MERGE_OK;
    }
    list_print(&g.failed, "failed");
    list_print(&g.missing, "missing");
    list_print(&g.dups, "duplicate");
    list_print(&g.extras, "not in the manifest (dropped)");
    list_print(&g.unreadable, "unreadable");
    if (code == MERGE_INCOMPLETE) trace_shards(&g);
    const char *out = strcmp(o->output, "-") ? o->output : "<stdout>";
    if (code == MERGE_INCOMPLETE)
        fprintf(stderr, "qasr-merge: INCOMPLETE: %zu of %zu entries have no line; wrote the other %zu to %s. Rerun "
                "the shards that own them (a rerun resumes: entries already done are skipped), then merge again\n",
                g.missing.n, m->n_entries, written, out);
    else if (code == MERGE_SOME_FAILED)
        fprintf(stderr, "qasr-merge: wrote %s: every entry once (%zu lines), but %s\n", out, written,
                g.failed.n ? "some entries failed (rerun their shards with --retry-errors to retry them)"
                           : "the inputs did not match the manifest exactly (above)");
    else if (code == MERGE_OK)
        fprintf(stderr, "qasr-merge: wrote %s: every entry exactly once (%zu lines), no errors\n", out, written);
    for (int f = 0; f < o->n_inputs; f++)
        if (g.fds[f] >= 0) close(g.fds[f]);
    free(g.fds);
    free(g.slots);
    id_map_free(g.index);
    manifest_free(m);
    return code;
}
