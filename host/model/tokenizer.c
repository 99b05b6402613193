/* Byte-level BPE tokenizer (see tokenizer.h): loading and validating vocab.json, merges.txt and
 * tokenizer_config.json; encoding (added-token split, NFC, Qwen2 pre-tokenizer, ranked BPE);
 * decoding (byte-level strings -> bytes -> UTF-8 with U+FFFD replacement).
 * The behaviour follows the HF "fast" tokenizer that the official processor loads. */
#include "tokenizer.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "utf8.h"
#include "util.h"

/* The id -> string table is dense, so ids are bounded to keep a bad file from allocating GBs. */
#define MAX_TOKEN_ID (1 << 24)
/* GPT-2 bytes_to_unicode maps every byte to a code point below 256 + 68. */
#define N_BYTE_CHARS 324

enum { TOK_ADDED = 1, TOK_SPECIAL = 2 };

typedef struct {   /* open addressing: token string -> id; keys are the strings in id_str */
    int *slot;     /* [mask + 1] id, or -1 if empty */
    uint32_t mask;
} str_map_t;

typedef struct {   /* open addressing: (left id, right id) -> rank and merged id */
    uint64_t *key; /* [mask + 1] left << 32 | right, or PAIR_EMPTY */
    int *rank;     /* [mask + 1] line order in merges.txt, lower merges first */
    int *merged;   /* [mask + 1] id of the concatenated token */
    uint32_t mask;
} merge_map_t;

#define PAIR_EMPTY UINT64_MAX

struct tokenizer {
    int n_ids;
    int n_vocab;              /* entries of vocab.json */
    char **id_str;            /* [n_ids] vocab byte-level string or added content; NULL if unused */
    unsigned char *id_flags;  /* [n_ids] TOK_ADDED | TOK_SPECIAL */
    str_map_t by_str;
    merge_map_t merges;
    int byte_id[256];         /* id of each byte's single-character byte-level token */
    int char_byte[N_BYTE_CHARS]; /* byte-level character -> byte, -1 if not one */
    int *added;               /* [n_added] added-token ids */
    int n_added;
};

typedef struct {
    int *v;
    int n, cap;
} ids_t;

typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

static void ids_push(ids_t *a, int id)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->v = xrealloc(a->v, sizeof(int) * (size_t)a->cap);
    }
    a->v[a->n++] = id;
}

static void buf_put(buf_t *b, const void *data, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1);
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static uint32_t pow2_at_least(size_t n)
{
    uint32_t c = 16;
    while (c < n) c *= 2;
    return c;
}

/* ---- hash tables ---- */

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int str_map_find(const tokenizer_t *t, const char *s, size_t n)
{
    const str_map_t *m = &t->by_str;
    for (uint32_t h = hash_bytes(s, n) & m->mask;; h = (h + 1) & m->mask) {
        int id = m->slot[h];
        if (id < 0) return -1;
        const char *k = t->id_str[id];
        /* Exactly n bytes: s may hold a NUL (a merges.txt line), where strncmp would stop and
         * k[n] lie past the end of a shorter k. */
        if (strnlen(k, n + 1) == n && memcmp(k, s, n) == 0) return id;
    }
}

/* Adds id (its string is id_str[id]); returns -1, or the id already holding that string. */
static int str_map_add(tokenizer_t *t, int id)
{
    str_map_t *m = &t->by_str;
    const char *s = t->id_str[id];
    size_t n = strlen(s);
    for (uint32_t h = hash_bytes(s, n) & m->mask;; h = (h + 1) & m->mask) {
        int old = m->slot[h];
        if (old < 0) {
            m->slot[h] = id;
            return -1;
        }
        if (strcmp(t->id_str[old], s) == 0) return old;
    }
}

static uint32_t pair_slot(const merge_map_t *m, int a, int b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & m->mask;
    while (m->key[h] != PAIR_EMPTY && m->key[h] != key) h = (h + 1) & m->mask;
    return h;
}

/* Slot of the merge (a, b), or -1. */
static int merge_find(const merge_map_t *m, int a, int b)
{
    uint32_t h = pair_slot(m, a, b);
    return m->key[h] == PAIR_EMPTY ? -1 : (int)h;
}

/* ---- loading ---- */

static cJSON *read_json(const char *path)
{
    size_t len;
    char *text = read_text_file(path, &len);
    if (!text) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) qasr_fail("%s: invalid JSON near byte %td", path, end ? end - text : (ptrdiff_t)0);
    else if (!cJSON_IsObject(root)) {
        qasr_fail("%s: top level is not a JSON object", path);
        cJSON_Delete(root);
        root = NULL;
    }
    free(text);
    return root;
}

static int parse_vocab_id(const cJSON *v)
{
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < MAX_TOKEN_ID) || d != (double)(int)d) return -1;
    return (int)d;
}

static int parse_added_id(const char *key)
{
    char *end;
    long id = strtol(key, &end, 10);
    if (end == key || *end || id < 0 || id >= MAX_TOKEN_ID) return -1;
    return (int)id;
}

/* Validates the ids of both files and allocates the id and string tables. */
static int alloc_tables(tokenizer_t *t, const cJSON *vocab, const cJSON *added, const char *vocab_path,
                     const char *config_path)
{
    int max_id = -1, n = 0;
    for (const cJSON *e = vocab->child; e; e = e->next, n++) {
        int id = parse_vocab_id(e);
        if (id < 0)
            return qasr_fail("%s: token \"%s\" has an id that is not an integer in [0, %d)", vocab_path,
                             e->string, MAX_TOKEN_ID);
        max_id = MAX(max_id, id);
    }
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next, n++) {
        int id = parse_added_id(e->string);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        const cJSON *special = cJSON_GetObjectItemCaseSensitive(e, "special");
        if (id < 0)
            return qasr_fail("%s: added token key \"%s\" is not an integer in [0, %d)", config_path,
                             e->string, MAX_TOKEN_ID);
        if (!cJSON_IsString(content) || !content->valuestring[0])
            return qasr_fail("%s: added token %d has no \"content\" string", config_path, id);
        /* Matched on the raw text byte by byte: content that is not UTF-8 (a lone lead byte)
         * would split a character, leaving segments the encoder cannot normalise. */
        if (!utf8_valid(content->valuestring, strlen(content->valuestring)))
            return qasr_fail("%s: added token %d: \"content\" is not valid UTF-8", config_path, id);
        if (special && !cJSON_IsBool(special))
            return qasr_fail("%s: added token %d: \"special\" is not a boolean", config_path, id);
        static const char *unsupported[] = { "lstrip", "rstrip", "single_word" };
        for (int k = 0; k < 3; k++)
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, unsupported[k])))
                return qasr_fail("%s: added token %d: \"%s\": true is not supported", config_path, id,
                                 unsupported[k]);
        max_id = MAX(max_id, id);
    }
    t->n_ids = max_id + 1;
    t->id_str = xcalloc((size_t)t->n_ids, sizeof(char *));
    t->id_flags = xcalloc((size_t)t->n_ids, 1);
    t->by_str.mask = pow2_at_least(2 * (size_t)n) - 1;
    t->by_str.slot = xmalloc(sizeof(int) * ((size_t)t->by_str.mask + 1));
    memset(t->by_str.slot, 0xff, sizeof(int) * ((size_t)t->by_str.mask + 1));
    return 0;
}

static int add_vocab(tokenizer_t *t, const cJSON *vocab, const char *path)
{
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int id = parse_vocab_id(e);
        if (t->id_str[id])
            return qasr_fail("%s: id %d is used by both \"%s\" and \"%s\"", path, id, t->id_str[id],
                             e->string);
        t->id_str[id] = xstrdup(e->string);
        if (str_map_add(t, id) >= 0) return qasr_fail("%s: token \"%s\" is listed twice", path, e->string);
        t->n_vocab++;
    }
    return 0;
}

static int add_added(tokenizer_t *t, const cJSON *added, const char *path)
{
    t->added = xmalloc(sizeof(int) * (size_t)(added ? cJSON_GetArraySize(added) + 1 : 1));
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next) {
        int id = parse_added_id(e->string);
        const char *content = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        if (t->id_flags[id] & TOK_ADDED) return qasr_fail("%s: added token id %d is listed twice", path, id);
        if (t->id_str[id] && strcmp(t->id_str[id], content) != 0)
            return qasr_fail("%s: added token \"%s\" has id %d, which vocab.json gives to \"%s\"", path,
                             content, id, t->id_str[id]);
        if (!t->id_str[id]) {
            t->id_str[id] = xstrdup(content);
            int old = str_map_add(t, id);
            if (old >= 0)
                return qasr_fail("%s: added token \"%s\" has id %d but is already token %d", path,
                                 content, id, old);
        }
        t->id_flags[id] = TOK_ADDED;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"))) t->id_flags[id] |= TOK_SPECIAL;
        t->added[t->n_added++] = id;
    }
    return 0;
}

static int load_merges(tokenizer_t *t, const char *path)
{
    size_t len;
    char *text = read_text_file(path, &len);
    if (!text) return -1;
    size_t n_lines = 1;
    for (size_t i = 0; i < len; i++) n_lines += text[i] == '\n';
    merge_map_t *m = &t->merges;
    m->mask = pow2_at_least(2 * n_lines) - 1;
    m->key = xmalloc(sizeof(uint64_t) * ((size_t)m->mask + 1));
    memset(m->key, 0xff, sizeof(uint64_t) * ((size_t)m->mask + 1));
    m->rank = xmalloc(sizeof(int) * ((size_t)m->mask + 1));
    m->merged = xmalloc(sizeof(int) * ((size_t)m->mask + 1));

    char *joined = xmalloc(len + 1);
    int rank = 0, rc = 0, line_no = 0;
    for (char *line = text, *next; line < text + len; line = next) {
        char *eol = memchr(line, '\n', (size_t)(text + len - line));
        next = eol ? eol + 1 : text + len;
        if (!eol) eol = text + len;
        if (eol > line && eol[-1] == '\r') eol--;
        line_no++;
        size_t n = (size_t)(eol - line);
        if (n == 0 || (line_no == 1 && n >= 8 && memcmp(line, "#version", 8) == 0)) continue;
        char *sp = memchr(line, ' ', n);
        if (!sp || sp == line || sp == eol - 1 || memchr(sp + 1, ' ', (size_t)(eol - sp - 1))) {
            rc = qasr_fail("%s:%d: expected two tokens separated by one space", path, line_no);
            break;
        }
        size_t na = (size_t)(sp - line), nb = (size_t)(eol - sp - 1);
        int a = str_map_find(t, line, na), b = str_map_find(t, sp + 1, nb);
        memcpy(joined, line, na);
        memcpy(joined + na, sp + 1, nb);
        int ab = str_map_find(t, joined, na + nb);
        if (a < 0 || b < 0 || ab < 0) {
            const char *what = a < 0 ? "first token" : b < 0 ? "second token" : "merged token";
            rc = qasr_fail("%s:%d: %s of \"%.*s\" is not in vocab.json", path, line_no, what, (int)n, line);
            break;
        }
        /* a repeated pair keeps its last rank, like HF and the Python tokenizer */
        uint32_t h = pair_slot(m, a, b);
        m->key[h] = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        m->rank[h] = rank++;
        m->merged[h] = ab;
    }
    free(joined);
    free(text);
    /* Byte-level BPE: every vocab.json token but the 256 bytes is made by one merge, so a file
     * with fewer lines was cut short (a silent change of how prompts and words are encoded). */
    if (rc == 0 && rank != t->n_vocab - 256)
        rc = qasr_fail("%s: %d merges, but the %d tokens of vocab.json beyond its 256 bytes need %d: the file "
                       "is cut short or belongs to another tokenizer", path, rank, t->n_vocab, t->n_vocab - 256);
    return rc;
}

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes map to
 * U+0100.. in byte order. Every byte must have its single-character token. */
static int map_bytes(tokenizer_t *t, const char *vocab_path)
{
    for (int c = 0; c < N_BYTE_CHARS; c++) t->char_byte[c] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        int c = printable ? b : 256 + extra++;
        char s[4];
        const int n = utf8_encode((uint32_t)c, s);
        t->char_byte[c] = b;
        t->byte_id[b] = str_map_find(t, s, (size_t)n);
        if (t->byte_id[b] < 0)
            return qasr_fail("%s: no token for byte 0x%02x (byte-level character \"%.*s\")", vocab_path,
                             b, (int)n, (const char *)s);
    }
    return 0;
}

static int load_ids(tokenizer_t *t, const cJSON *vocab, const cJSON *config, const char *vocab_path,
                    const char *config_path)
{
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(config, "added_tokens_decoder");
    if (added && !cJSON_IsObject(added))
        return qasr_fail("%s: \"added_tokens_decoder\" is not an object", config_path);
    if (alloc_tables(t, vocab, added, vocab_path, config_path) < 0 || add_vocab(t, vocab, vocab_path) < 0 ||
        add_added(t, added, config_path) < 0)
        return -1;
    return 0;
}

tokenizer_t *tokenizer_load(const char *dir)
{
    char *vocab_path = path_join(dir, "vocab.json");
    char *merges_path = path_join(dir, "merges.txt");
    char *config_path = path_join(dir, "tokenizer_config.json");
    tokenizer_t *t = xcalloc(1, sizeof *t);
    cJSON *vocab = read_json(vocab_path);
    cJSON *config = vocab ? read_json(config_path) : NULL;
    int rc = config ? load_ids(t, vocab, config, vocab_path, config_path) : -1;
    cJSON_Delete(vocab);
    cJSON_Delete(config);
    if (rc == 0) rc = map_bytes(t, vocab_path);
    if (rc == 0) rc = load_merges(t, merges_path);
    free(vocab_path);
    free(merges_path);
    free(config_path);
    if (rc == 0) return t;
    tokenizer_free(t);
    return NULL;
}

void tokenizer_free(tokenizer_t *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_ids; i++) free(t->id_str[i]);
    free(t->id_str);
    free(t->id_flags);
    free(t->by_str.slot);
    free(t->merges.key);
    free(t->merges.rank);
    free(t->merges.merged);
    free(t->added);
    free(t);
}

int tokenizer_token_id(const tokenizer_t *t, const char *token)
{
    return str_map_find(t, token, strlen(token));
}

int tokenizer_is_special(const tokenizer_t *t, int id)
{
    return id >= 0 && id < t->n_ids && (t->id_flags[id] & TOK_SPECIAL) != 0;
}

int tokenizer_n_ids(const tokenizer_t *t) { return t->n_ids; }

/* ---- Qwen2 pre-tokenizer ----
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * matched by hand over code points with the semantics of HF's regex engine (Oniguruma): the first
 * alternative that matches wins; \s is Oniguruma's Unicode \s (the Zs, Zl, Zp categories plus
 * \t \n \v \f \r U+0085). */

static int is_letter(uint32_t c)
{
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static int is_number(uint32_t c)
{
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

static int is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static int is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }

/* [^\s\p{L}\p{N}] */
static int is_other(uint32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); }

/* Case folding as (?i) applies it to the contraction letters: U+017F (long s) folds to 's'. */
static uint32_t fold(uint32_t c)
{
    if (c == 0x17F) return 's';
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* End of the pre-token starting at c[i] (always > i). */
static size_t pretoken_end(const uint32_t *c, size_t n, size_t i)
{
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c[i] == '\'' && i + 1 < n) {
        uint32_t a = fold(c[i + 1]), b = i + 2 < n ? fold(c[i + 2]) : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if (((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    size_t j = i;
    if (!is_letter(c[i]) && !is_crlf(c[i]) && !is_number(c[i]) && i + 1 < n && is_letter(c[i + 1])) j++;
    if (is_letter(c[j])) {
        while (j < n && is_letter(c[j])) j++;
        return j;
    }
    /* \p{N} */
    if (is_number(c[i])) return i + 1;
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    j = c[i] == ' ' && i + 1 < n && is_other(c[i + 1]) ? i + 1 : i;
    if (is_other(c[j])) {
        while (j < n && is_other(c[j])) j++;
        while (j < n && is_crlf(c[j])) j++;
        return j;
    }
    /* c[i] is whitespace from here on */
    size_t end = i;
    while (end < n && is_space(c[end])) end++;
    /* \s*[\r\n]+ : \s* backtracks to the last CR/LF of the run */
    for (j = end; j > i; j--)
        if (is_crlf(c[j - 1])) return j;
    /* \s+(?!\S) gives back the last whitespace before a non-space; a single one falls to \s+ */
    if (end < n && end - i > 1) return end - 1;
    return end;
}

/* ---- BPE ---- */

typedef struct {
    int rank, pos;
} merge_cand_t;

typedef struct {          /* per-segment scratch for one word of up to cap bytes */
    int *id, *prev, *next; /* [cap] symbol list; id -1 = merged away */
    merge_cand_t *heap;   /* [3 * cap] candidate merges, lowest (rank, pos) on top */
    int n_heap;
} bpe_work_t;

static int cand_less(merge_cand_t a, merge_cand_t b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(bpe_work_t *w, merge_cand_t c)
{
    int i = w->n_heap++;
    for (; i > 0 && cand_less(c, w->heap[(i - 1) / 2]); i = (i - 1) / 2) w->heap[i] = w->heap[(i - 1) / 2];
    w->heap[i] = c;
}

static merge_cand_t heap_pop(bpe_work_t *w)
{
    merge_cand_t top = w->heap[0], last = w->heap[--w->n_heap];
    int i = 0;
    for (;;) {
        int k = 2 * i + 1;
        if (k >= w->n_heap) break;
        if (k + 1 < w->n_heap && cand_less(w->heap[k + 1], w->heap[k])) k++;
        if (!cand_less(w->heap[k], last)) break;
        w->heap[i] = w->heap[k];
        i = k;
    }
    w->heap[i] = last;
    return top;
}

static void push_pair(const tokenizer_t *t, bpe_work_t *w, int pos)
{
    int r = pos >= 0 ? w->next[pos] : -1;
    if (r < 0) return;
    int h = merge_find(&t->merges, w->id[pos], w->id[r]);
    if (h >= 0) heap_push(w, (merge_cand_t){ t->merges.rank[h], pos });
}

/* Merges the lowest-ranked adjacent pair first, leftmost on ties (as HF's BPE model). */
static void bpe_word(const tokenizer_t *t, const unsigned char *s, int n, bpe_work_t *w, ids_t *out)
{
    for (int k = 0; k < n; k++) {
        w->id[k] = t->byte_id[s[k]];
        w->prev[k] = k - 1;
        w->next[k] = k + 1 < n ? k + 1 : -1;
    }
    w->n_heap = 0;
    for (int k = 0; k + 1 < n; k++) push_pair(t, w, k);
    while (w->n_heap > 0) {
        merge_cand_t c = heap_pop(w);
        int r = w->next[c.pos];
        if (w->id[c.pos] < 0 || r < 0) continue;
        int h = merge_find(&t->merges, w->id[c.pos], w->id[r]);
        if (h < 0 || t->merges.rank[h] != c.rank) continue; /* stale: a neighbour changed */
        w->id[c.pos] = t->merges.merged[h];
        w->id[r] = -1;
        w->next[c.pos] = w->next[r];
        if (w->next[r] >= 0) w->prev[w->next[r]] = c.pos;
        push_pair(t, w, w->prev[c.pos]);
        push_pair(t, w, c.pos);
    }
    for (int k = 0; k >= 0; k = w->next[k]) ids_push(out, w->id[k]);
}

/* One stretch of text between added tokens: NFC, pre-tokenize, BPE each pre-token. */
static void encode_segment(const tokenizer_t *t, const char *s, size_t len, ids_t *out)
{
    if (len == 0) return;
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &nfc,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    QASR_ASSERT(n >= 0); /* the caller validated the UTF-8 */
    uint32_t *cp = xmalloc(sizeof(uint32_t) * ((size_t)n + 1));
    size_t *off = xmalloc(sizeof(size_t) * ((size_t)n + 1));
    size_t n_cp = 0;
    for (utf8proc_ssize_t i = 0; i < n;) {
        off[n_cp] = (size_t)i;
        i += utf8_decode((const char *)nfc + i, (size_t)(n - i), &cp[n_cp++]); /* NFC output: valid */
    }
    off[n_cp] = (size_t)n;
    bpe_work_t w = { .id = xmalloc(sizeof(int) * (size_t)n), .prev = xmalloc(sizeof(int) * (size_t)n),
                     .next = xmalloc(sizeof(int) * (size_t)n),
                     .heap = xmalloc(sizeof(merge_cand_t) * 3 * (size_t)n) };
    for (size_t i = 0, e; i < n_cp; i = e) {
        e = pretoken_end(cp, n_cp, i);
        bpe_word(t, nfc + off[i], (int)(off[e] - off[i]), &w, out);
    }
    free(w.id);
    free(w.prev);
    free(w.next);
    free(w.heap);
    free(off);
    free(cp);
    free(nfc);
}

/* Id of the longest added token that starts at s (HF matches leftmost-longest), or -1; its
 * length goes to *len. */
static int added_at(const tokenizer_t *t, const char *s, size_t rem, size_t *len)
{
    int best = -1;
    *len = 0;
    for (int k = 0; k < t->n_added; k++) {
        const char *a = t->id_str[t->added[k]];
        if (a[0] != s[0]) continue;
        size_t n = strlen(a);
        if (n > *len && n <= rem && memcmp(a, s, n) == 0) {
            best = t->added[k];
            *len = n;
        }
    }
    return best;
}

/* Added tokens are split off before NFC: they are "normalized": false in the Qwen files, which
 * HF matches on the raw text. */
int tokenizer_encode(const tokenizer_t *t, const char *text, int **ids)
{
    size_t n = strlen(text);
    *ids = NULL;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        const int k = utf8_decode(text + i, n - i, &cp);
        if (k < 0) return qasr_fail("cannot encode text: invalid UTF-8 at byte %zu", i);
        i += (size_t)k;
    }
    ids_t out = { 0 };
    size_t seg = 0;
    for (size_t i = 0; i < n;) {
        size_t len;
        int id = added_at(t, text + i, n - i, &len);
        if (id < 0) {
            i++;
            continue;
        }
        encode_segment(t, text + seg, i - seg, &out);
        ids_push(&out, id);
        seg = i += len;
    }
    encode_segment(t, text + seg, n - seg, &out);
    *ids = out.v ? out.v : xmalloc(sizeof(int));
    return out.n;
}

/* ---- decoding ---- */

/* HF's ByteLevel decoder: map each character back to its byte; a token with any character outside
 * the byte alphabet (e.g. an added token containing a space) is copied as is. */
static void put_token_bytes(const tokenizer_t *t, const char *s, buf_t *b)
{
    size_t start = b->n, len = strlen(s);
    for (size_t i = 0; i < len;) {
        uint32_t c;
        const int k = utf8_decode(s + i, len - i, &c);
        if (k < 0 || c >= N_BYTE_CHARS || t->char_byte[c] < 0) {
            b->n = start;
            buf_put(b, s, len);
            return;
        }
        unsigned char byte = (unsigned char)t->char_byte[c];
        buf_put(b, &byte, 1);
        i += (size_t)k;
    }
}

char *tokenizer_decode(const tokenizer_t *t, const int *ids, int n, int skip_special)
{
    buf_t bytes = { 0 }, text = { 0 };
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_ids || !t->id_str[id]) continue;
        if (skip_special && (t->id_flags[id] & TOK_SPECIAL)) continue;
        put_token_bytes(t, t->id_str[id], &bytes);
    }
    for (size_t i = 0; i < bytes.n;) {
        uint32_t cp;
        const int k = utf8_decode(bytes.p + i, bytes.n - i, &cp);
        if (k < 0) buf_put(&text, "\xEF\xBF\xBD", 3); /* the maximal invalid subpart: one U+FFFD */
        else if (cp != 0) buf_put(&text, bytes.p + i, (size_t)k); /* NUL would cut the string */
        i += (size_t)(k < 0 ? -k : k);
    }
    buf_put(&text, "", 0);
    text.p[text.n] = '\0';
    free(bytes.p);
    return text.p;
}
