/* Manifest loader (formats and rules in manifest.h): read line by line, detect the format on
 * the first meaningful line, turn each line into raw fields, then one place (add_entry)
 * validates, resolves and stores them. Duplicate ids are checked once everything is loaded. */
#include "manifest.h"

#include "id_map.h"
#include "jsonl.h"
#include "str_pool.h"
#include "utf8.h"
#include "util.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { COL_PATH, COL_ID, COL_LANGUAGE, COL_CONTEXT, COL_TEXT, COL_DURATION, N_COLS };
static const char *const col_names[N_COLS] = { "path", "id", "language", "context", "text", "duration" };

/* One line's fields before validation; NULL = not given. */
typedef struct {
    const char *s[N_COLS - 1]; /* every column but duration */
    size_t len[N_COLS - 1];
    double duration;           /* < 0: unknown */
} fields_t;

typedef struct {
    manifest_t *m;
    const char *name;   /* for messages: the path, or "<stdin>" */
    char *dir;          /* prefix for relative paths, "" for none */
    char *line;         /* MANIFEST_MAX_LINE + 1 */
    char *scratch;      /* resolved path under construction */
    size_t cap_entries, cap_problems;
    int header_cols[N_COLS]; /* TSV: cell index of each known column, -1 if absent */
    int n_header;            /* TSV: cells in the header, 0 before it is read */
    char **cells;            /* TSV: the current line split at tabs */
    int cap_cells;
} loader_t;

int manifest_format_parse(const char *name, manifest_format_t *format)
{
    static const manifest_format_t all[] = { MANIFEST_AUTO, MANIFEST_TSV, MANIFEST_JSONL, MANIFEST_LIST };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, manifest_format_name(all[i])) == 0) {
            *format = all[i];
            return 0;
        }
    }
    return qasr_fail("unknown manifest format '%s' (expected auto, tsv, jsonl or list)", name);
}

const char *manifest_format_name(manifest_format_t format)
{
    switch (format) {
    case MANIFEST_AUTO: return "auto";
    case MANIFEST_TSV: return "tsv";
    case MANIFEST_JSONL: return "jsonl";
    case MANIFEST_LIST: return "list";
    }
    return "?";
}

static void problem(loader_t *ld, int line_no, const char *fmt, ...) QASR_PRINTF(3, 4);
static void problem(loader_t *ld, int line_no, const char *fmt, ...)
{
    char msg[QASR_ERR_LEN];
    int n = snprintf(msg, sizeof msg, "%s:%d: ", ld->name, line_no);
    n = MIN(n, (int)sizeof msg - 1);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    manifest_t *m = ld->m;
    if (m->n_problems == ld->cap_problems) {
        ld->cap_problems = ld->cap_problems ? 2 * ld->cap_problems : 16;
        m->problems = xrealloc(m->problems, ld->cap_problems * sizeof *m->problems);
    }
    m->problems[m->n_problems++] = (manifest_problem_t){ line_no, str_pool_add(m->strings, msg, strlen(msg)) };
}

/* Empty optional cells mean "not given". */
static const char *optional(str_pool_t *pool, const char *s, size_t len)
{
    return s && len ? str_pool_add(pool, s, len) : NULL;
}

static void add_entry(loader_t *ld, int line_no, const fields_t *f)
{
    const char *raw = f->s[COL_PATH];
    size_t raw_len = raw ? f->len[COL_PATH] : 0;
    if (!raw_len) {
        problem(ld, line_no, "empty path");
        return;
    }
    str_pool_t *pool = ld->m->strings;
    size_t dir_len = raw[0] == '/' ? 0 : strlen(ld->dir);
    memcpy(ld->scratch, ld->dir, dir_len);
    memcpy(ld->scratch + dir_len, raw, raw_len);
    const char *path = str_pool_add(pool, ld->scratch, dir_len + raw_len);

    const char *id = f->s[COL_ID];
    size_t id_len = f->len[COL_ID];
    int id_is_path = !id || !id_len;
    if (id_is_path) {
        id = raw;
        id_len = raw_len;
    }
    const char *stored_id;
    if (!utf8_valid(id, id_len)) {
        size_t n;
        char *fixed = utf8_sanitize(id, id_len, &n);
        stored_id = str_pool_add(pool, fixed, n);
        free(fixed);
    } else if (id_is_path) {
        stored_id = path + dir_len; /* the path as written is the tail of the resolved path */
    } else {
        stored_id = str_pool_add(pool, id, id_len);
    }

    manifest_t *m = ld->m;
    if (m->n_entries == ld->cap_entries) {
        ld->cap_entries = ld->cap_entries ? 2 * ld->cap_entries : 1024;
        m->entries = xrealloc(m->entries, ld->cap_entries * sizeof *m->entries);
    }
    m->entries[m->n_entries++] = (manifest_entry_t){
        .id = stored_id,
        .path = path,
        .language = optional(pool, f->s[COL_LANGUAGE], f->len[COL_LANGUAGE]),
        .context = optional(pool, f->s[COL_CONTEXT], f->len[COL_CONTEXT]),
        .text = f->s[COL_TEXT] ? str_pool_add(pool, f->s[COL_TEXT], f->len[COL_TEXT]) : NULL,
        .duration = f->duration,
        .line = line_no,
    };
}

/* Split ld->line (len bytes) at tabs, in place; returns the number of cells. */
static int split_tabs(loader_t *ld, size_t len)
{
    int n = 0;
    char *s = ld->line, *end = ld->line + len;
    for (;;) {
        if (n == ld->cap_cells) {
            ld->cap_cells = ld->cap_cells ? 2 * ld->cap_cells : 16;
            ld->cells = xrealloc(ld->cells, (size_t)ld->cap_cells * sizeof *ld->cells);
        }
        ld->cells[n++] = s;
        char *tab = memchr(s, '\t', (size_t)(end - s));
        if (!tab) return n;
        *tab = '\0';
        s = tab + 1;
    }
}

/* A header cell without surrounding spaces, in place. */
static char *trim(char *s)
{
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ') s[--n] = '\0';
    return s;
}

static int col_index(const char *name)
{
    for (int c = 0; c < N_COLS; c++)
        if (strcmp(name, col_names[c]) == 0) return c;
    return -1;
}

/* 1 if a tab-separated cell of the line is "path", give or take spaces. Leaves the line intact. */
static int has_path_cell(const char *s, size_t len)
{
    const char *end = s + len;
    for (;;) {
        const char *tab = memchr(s, '\t', (size_t)(end - s)), *b = tab ? tab : end;
        while (s < b && *s == ' ') s++;
        while (b > s && b[-1] == ' ') b--;
        if (b - s == 4 && memcmp(s, "path", 4) == 0) return 1;
        if (!tab) return 0;
        s = tab + 1;
    }
}

static int read_header(loader_t *ld, size_t len, int line_no)
{
    if (!has_path_cell(ld->line, len))
        return qasr_fail("%s:%d: expected a TSV header row naming a 'path' column", ld->name, line_no);
    int n = split_tabs(ld, len);
    for (int c = 0; c < N_COLS; c++) ld->header_cols[c] = -1;
    for (int i = 0; i < n; i++) {
        int c = col_index(trim(ld->cells[i]));
        if (c < 0) continue; /* unknown columns are ignored */
        if (ld->header_cols[c] >= 0)
            return qasr_fail("%s:%d: column '%s' appears twice in the header", ld->name, line_no, col_names[c]);
        ld->header_cols[c] = i;
    }
    ld->n_header = n;
    return 0;
}

/* Strict: the whole cell is a number in [0, MANIFEST_MAX_DURATION]. */
static int parse_duration(const char *s, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end || errno || !(d >= 0 && d <= MANIFEST_MAX_DURATION) || isspace((unsigned char)s[0]))
        return -1;
    *out = d;
    return 0;
}

static void parse_tsv(loader_t *ld, size_t len, int line_no)
{
    int n = split_tabs(ld, len);
    if (n != ld->n_header) {
        problem(ld, line_no, "%d tab-separated cells, the header has %d", n, ld->n_header);
        return;
    }
    fields_t f = { .duration = -1 };
    for (int c = 0; c < COL_DURATION; c++) {
        int i = ld->header_cols[c];
        if (i < 0) continue;
        f.s[c] = ld->cells[i];
        f.len[c] = strlen(ld->cells[i]);
    }
    int i = ld->header_cols[COL_DURATION];
    if (i >= 0 && ld->cells[i][0] && parse_duration(ld->cells[i], &f.duration) != 0) {
        problem(ld, line_no, "duration '%.40s' is not a number of seconds from 0 to %d (a week)", ld->cells[i],
                MANIFEST_MAX_DURATION);
        return;
    }
    add_entry(ld, line_no, &f);
}

static void parse_list(loader_t *ld, size_t len, int line_no)
{
    if (memchr(ld->line, '\t', len)) {
        problem(ld, line_no, "tab in a path list (a list has one path per line; add a header row for columns)");
        return;
    }
    fields_t f = { .duration = -1 };
    f.s[COL_PATH] = ld->line;
    f.len[COL_PATH] = len;
    add_entry(ld, line_no, &f);
}

/* A string value or absent/null (-> NULL); -1 after recording a problem for another type. */
static int json_string(loader_t *ld, int line_no, const cJSON *obj, const char *key, const char **s, size_t *len)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    *s = NULL;
    *len = 0;
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsString(j)) {
        problem(ld, line_no, "\"%s\" is not a string", key);
        return -1;
    }
    *s = j->valuestring;
    *len = strlen(j->valuestring);
    return 0;
}

static void jsonl_entry(loader_t *ld, const cJSON *obj, int line_no)
{
    fields_t f = { .duration = -1 };
    const char *lang2;
    size_t lang2_len;
    if (!cJSON_IsObject(obj)) {
        problem(ld, line_no, "not a JSON object");
        return;
    }
    if (json_string(ld, line_no, obj, "audio_filepath", &f.s[COL_PATH], &f.len[COL_PATH]) ||
        json_string(ld, line_no, obj, "id", &f.s[COL_ID], &f.len[COL_ID]) ||
        json_string(ld, line_no, obj, "lang", &f.s[COL_LANGUAGE], &f.len[COL_LANGUAGE]) ||
        json_string(ld, line_no, obj, "language", &lang2, &lang2_len) ||
        json_string(ld, line_no, obj, "context", &f.s[COL_CONTEXT], &f.len[COL_CONTEXT]) ||
        json_string(ld, line_no, obj, "text", &f.s[COL_TEXT], &f.len[COL_TEXT]))
        return;
    if (!f.s[COL_PATH]) {
        problem(ld, line_no, "no \"audio_filepath\"");
        return;
    }
    if (lang2) {
        if (f.s[COL_LANGUAGE]) {
            problem(ld, line_no, "both \"lang\" and \"language\"");
            return;
        }
        f.s[COL_LANGUAGE] = lang2;
        f.len[COL_LANGUAGE] = lang2_len;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(obj, "duration");
    if (cJSON_IsNumber(d) && d->valuedouble >= 0 && d->valuedouble <= MANIFEST_MAX_DURATION) {
        f.duration = d->valuedouble;
    } else if (d && !cJSON_IsNull(d)) {
        problem(ld, line_no, "\"duration\" is not a number of seconds from 0 to %d (a week)", MANIFEST_MAX_DURATION);
        return;
    }
    add_entry(ld, line_no, &f);
}

static void parse_jsonl(loader_t *ld, size_t len, int line_no)
{
    if (jsonl_has_nul_escape(ld->line, len)) {
        problem(ld, line_no, "a string holds \\u0000 (NUL), which no path, id or text may contain");
        return;
    }
    cJSON *obj = jsonl_parse(ld->line, len);
    if (obj)
        jsonl_entry(ld, obj, line_no); /* says so when it is not an object */
    else
        problem(ld, line_no, "invalid JSON");
    cJSON_Delete(obj);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The next line into ld->line without its '\n'; -1 at end of input. Bytes past
 * MANIFEST_MAX_LINE are consumed and dropped, and *overlong is set. */
static int read_line(loader_t *ld, FILE *f, size_t *len, int *overlong)
{
    size_t n = 0;
    int c;
    *overlong = 0;
    while ((c = getc_unlocked(f)) != EOF && c != '\n') {
        if (n < MANIFEST_MAX_LINE)
            ld->line[n++] = (char)c;
        else
            *overlong = 1;
    }
    ld->line[n] = '\0';
    *len = n;
    return c == EOF && n == 0 ? -1 : 0;
}

/* What a binary first line is, by its magic bytes: the usual mistake is an audio file given
 * where the manifest goes. */
static const char *binary_kind(const char *s, size_t len)
{
    static const struct { const char *magic; size_t at, n; const char *kind; } kinds[] = {
        { "RIFF", 0, 4, "a WAV file" },  { "fLaC", 0, 4, "a FLAC file" }, { "OggS", 0, 4, "an Ogg file" },
        { "ID3", 0, 3, "an MP3 file" },  { "FORM", 0, 4, "an AIFF file" }, { "caff", 0, 4, "a CAF file" },
        { "ftyp", 4, 4, "an MP4/M4A file" }, { "\x1a\x45\xdf\xa3", 0, 4, "a Matroska/WebM file" },
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (len >= kinds[i].at + kinds[i].n && memcmp(s + kinds[i].at, kinds[i].magic, kinds[i].n) == 0)
            return kinds[i].kind;
    return "binary data";
}

static int read_lines(loader_t *ld, FILE *f, manifest_format_t format)
{
    size_t len;
    int overlong;
    for (int line_no = 1; read_line(ld, f, &len, &overlong) == 0; line_no++) {
        char *s = ld->line;
        if (line_no == 1 && len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
            memmove(s, s + 3, len - 2);
            len -= 3;
        }
        if (line_no == 1 && memchr(s, '\0', len)) /* no text file has a NUL byte: not a manifest */
            return qasr_fail("%s: not a manifest: %s (a NUL byte on line 1); qasr-batch reads a list of audio "
                             "files (TSV, one path per line, or JSONL), qasr transcribes audio files given "
                             "directly", ld->name, binary_kind(s, len));
        if (len && s[len - 1] == '\r') s[--len] = '\0';
        if (overlong) {
            problem(ld, line_no, "line longer than %d bytes", MANIFEST_MAX_LINE);
            continue;
        }
        if (len == 0 || s[0] == '#') continue;
        if (memchr(s, '\0', len)) {
            problem(ld, line_no, "NUL byte in the line");
            continue;
        }
        if (format == MANIFEST_AUTO) {
            format = s[0] == '{' ? MANIFEST_JSONL : has_path_cell(s, len) ? MANIFEST_TSV : MANIFEST_LIST;
            ld->m->format = format;
        }
        if (format == MANIFEST_TSV && ld->n_header == 0) { /* the first line is the header */
            if (read_header(ld, len, line_no) != 0) return -1;
            continue;
        }
        switch (format) {
        case MANIFEST_TSV: parse_tsv(ld, len, line_no); break;
        case MANIFEST_JSONL: parse_jsonl(ld, len, line_no); break;
        default: parse_list(ld, len, line_no); break;
        }
    }
    if (ferror(f)) return qasr_fail("%s: read error: %s", ld->name, strerror(errno));
    return 0;
}

/* Fatal if two entries share an id; names both lines. */
static int check_duplicates(const loader_t *ld)
{
    const manifest_t *m = ld->m;
    id_map_t *seen = id_map_new();
    int rc = 0;
    for (size_t i = 0; i < m->n_entries && rc == 0; i++) {
        int *first = id_map_add(seen, m->entries[i].id, (int)i);
        if (first)
            rc = qasr_fail("%s: duplicate id '%.200s' on lines %d and %d", ld->name, m->entries[i].id,
                           m->entries[*first].line, m->entries[i].line);
    }
    id_map_free(seen);
    return rc;
}

/* "data/m.tsv" -> "data/", "/m.tsv" -> "/", "m.tsv" -> "". */
static char *manifest_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) + 1 : 0;
    char *dir = xmalloc(n + 1);
    memcpy(dir, path, n);
    dir[n] = '\0';
    return dir;
}

manifest_t *manifest_load(const char *path, manifest_format_t format)
{
    int from_stdin = strcmp(path, "-") == 0;
    FILE *f = from_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        qasr_fail("%s: %s", path, strerror(errno));
        return NULL;
    }
    if (format == MANIFEST_AUTO && (ends_with(path, ".json") || ends_with(path, ".jsonl"))) format = MANIFEST_JSONL;

    manifest_t *m = xcalloc(1, sizeof *m);
    m->strings = str_pool_new();
    m->format = format;
    loader_t ld = { .m = m, .name = from_stdin ? "<stdin>" : path };
    ld.dir = from_stdin ? xstrdup("") : manifest_dir(path);
    ld.line = xmalloc(MANIFEST_MAX_LINE + 1);
    ld.scratch = xmalloc(strlen(ld.dir) + MANIFEST_MAX_LINE + 1);

    int rc = read_lines(&ld, f, format);
    if (rc == 0 && m->n_entries == 0) {
        if (m->n_problems)
            rc = qasr_fail("%s: no valid entries (%zu malformed lines; the first: %s)", ld.name, m->n_problems,
                           m->problems[0].message);
        else
            rc = qasr_fail("%s: no entries", ld.name);
    }
    if (rc == 0) rc = check_duplicates(&ld);
    if (!from_stdin) fclose(f);
    free(ld.dir);
    free(ld.line);
    free(ld.scratch);
    free(ld.cells);
    if (rc != 0) {
        manifest_free(m);
        return NULL;
    }
    m->entries = xrealloc(m->entries, m->n_entries * sizeof *m->entries); /* drop the doubling slack */
    return m;
}

void manifest_free(manifest_t *m)
{
    if (!m) return;
    free(m->entries);
    free(m->problems);
    str_pool_free(m->strings);
    free(m);
}
