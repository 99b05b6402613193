/* The aligner's words and input ids (spec qwen3-forced-aligner.md sections 5 and 6). */
#include "align.h"
#include "util.h"
#include "utf8.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "id_map.h"
#include "str_pool.h"

/* Python's str.isspace(), which str.split() splits on (Unicode White_Space minus nothing, plus
 * the four ASCII separators 0x1c..0x1f). */
static int py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

/* Spec 5.2: letters, numbers and the ASCII apostrophe survive. */
static int kept_char(uint32_t c)
{
    if (c == '\'') return 1;
    const utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* Spec 5.3: the ideograph blocks the official splitter names, nothing else. */
static int cjk_char(uint32_t c)
{
    return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x20000 && c <= 0x2a6df) ||
           (c >= 0x2a700 && c <= 0x2b73f) || (c >= 0x2b740 && c <= 0x2b81f) || (c >= 0x2b820 && c <= 0x2ceaf) ||
           (c >= 0xf900 && c <= 0xfaff);
}

static void push(align_words_t *w, const char *s, size_t len)
{
    if (len == 0) return;
    w->words = xrealloc(w->words, sizeof(char *) * (size_t)(w->n + 1));
    char *copy = xmalloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    w->words[w->n++] = copy;
}

/* Piece s[0..len) (valid UTF-8) cleaned; with split_cjk, each ideograph its own word and each
 * run of other kept characters one word; else the cleaned piece one word. */
static void push_cleaned(align_words_t *w, const char *s, size_t len, int split_cjk)
{
    char *buf = xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        const int k = utf8_decode(s + i, len - i, &c);
        if (kept_char(c)) {
            if (split_cjk && cjk_char(c)) {
                push(w, buf, n);
                push(w, s + i, (size_t)k);
                n = 0;
            } else {
                memcpy(buf + n, s + i, (size_t)k);
                n += (size_t)k;
            }
        }
        i += (size_t)k;
    }
    push(w, buf, n);
    free(buf);
}

/* ---- the Korean dictionary (spec 5.5): first fields of the official korean_dict_jieba.dict,
 * built into the program (korean_dict.S) ---- */
extern const char qasr_korean_dict[];
extern const char qasr_korean_dict_end[];

static id_map_t *korean_words;
static str_pool_t *korean_pool;
static int korean_longest; /* code points of the longest entry */
static pthread_once_t korean_once = PTHREAD_ONCE_INIT;

static size_t n_code_points(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

static void korean_load(void)
{
    korean_words = id_map_new();
    korean_pool = str_pool_new();
    for (const char *p = qasr_korean_dict, *end = qasr_korean_dict_end; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *a = p;
        while (a < eol && isspace((unsigned char)*a)) a++;
        const char *b = a;
        while (b < eol && !isspace((unsigned char)*b)) b++;
        if (b > a) {
            const char *key = str_pool_add(korean_pool, a, (size_t)(b - a));
            id_map_add(korean_words, key, 1);
            korean_longest = MAX(korean_longest, (int)n_code_points(a, (size_t)(b - a)));
        }
        p = eol + 1;
    }
}

/* The official LTokenizer with equal scores: a piece of 3+ code points whose longest dictionary
 * prefix (2 code points or more) is shorter than the piece is cut after it. */
static void korean_piece(align_words_t *w, const char *s, size_t len)
{
    pthread_once(&korean_once, korean_load);
    size_t cut = 0, cps = 0;
    char *key = xmalloc(len + 1);
    if (n_code_points(s, len) > 2)
        for (size_t i = 0; i < len;) {
            uint32_t c;
            i += (size_t)utf8_decode(s + i, len - i, &c);
            if (++cps > (size_t)korean_longest) break;
            if (cps < 2) continue;
            memcpy(key, s, i);
            key[i] = '\0';
            if (id_map_find(korean_words, key)) cut = i;
        }
    free(key);
    if (cut > 0 && cut < len) {
        push_cleaned(w, s, cut, 0);
        push_cleaned(w, s + cut, len - cut, 0);
    } else {
        push_cleaned(w, s, len, 0);
    }
}

static int lang_is(const char *language, const char *name)
{
    return language && !strcasecmp(language, name);
}

int align_split_words(const char *text, const char *language, align_words_t *out)
{
    memset(out, 0, sizeof *out);
    if (!utf8_valid(text, strlen(text))) return qasr_fail("transcript is not valid UTF-8");
    const int korean = lang_is(language, "korean");
    char *nfkc = lang_is(language, "japanese") ? (char *)utf8proc_NFKC((const utf8proc_uint8_t *)text) : NULL;
    const char *s = nfkc ? nfkc : text;
    const size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        uint32_t c;
        int k = utf8_decode(s + i, len - i, &c);
        if (py_space(c)) {
            i += (size_t)k;
            continue;
        }
        size_t j = i;
        while (j < len && (k = utf8_decode(s + j, len - j, &c)) > 0 && !py_space(c)) j += (size_t)k;
        if (korean) korean_piece(out, s + i, j - i);
        else push_cleaned(out, s + i, j - i, 1);
        i = j;
    }
    free(nfkc);
    return 0;
}

void align_words_free(align_words_t *w)
{
    for (int i = 0; i < w->n; i++) free(w->words[i]);
    free(w->words);
    memset(w, 0, sizeof *w);
}

int align_word_spans(const char *text, char *const *words, int n, int (*spans)[2])
{
    const size_t len = strlen(text);
    size_t pos = 0;
    for (int k = 0; k < n; k++) {
        const char *w = words[k];
        const size_t wl = strlen(w);
        spans[k][0] = -1;
        for (size_t i = 0; i < wl;) {
            uint32_t want, c = 0;
            i += (size_t)MAX(1, utf8_decode(w + i, wl - i, &want));
            int k_len = 0;
            while (pos < len) { /* skip what cleaning deleted; any other character is a mismatch */
                k_len = utf8_decode(text + pos, len - pos, &c);
                if (k_len <= 0 || c == want || kept_char(c)) break;
                pos += (size_t)k_len;
            }
            if (pos >= len || k_len <= 0 || c != want) return -1;
            if (spans[k][0] < 0) spans[k][0] = (int)pos;
            pos += (size_t)k_len;
            spans[k][1] = (int)pos;
        }
    }
    return 0;
}

static void append(align_prompt_t *p, int *cap, const int *ids, int n)
{
    if (p->n + n > *cap) p->ids = xrealloc(p->ids, sizeof(int) * (size_t)(*cap = MAX(2 * *cap, p->n + n)));
    memcpy(p->ids + p->n, ids, sizeof(int) * (size_t)n);
    p->n += n;
}

int align_prompt_build(align_prompt_t *p, const tokenizer_t *tok, const align_ids_t *sp, int n_audio,
                       const align_words_t *w)
{
    memset(p, 0, sizeof *p);
    int cap = n_audio + 16 + 8 * w->n;
    p->ids = xmalloc(sizeof(int) * (size_t)cap);
    p->n_slots = 2 * MAX(w->n, 1);
    p->slots = xmalloc(sizeof(int) * (size_t)p->n_slots);
    append(p, &cap, &sp->audio_start, 1);
    p->audio_at = p->n;
    p->n_audio = n_audio;
    for (int i = 0; i < n_audio; i++) append(p, &cap, &sp->audio_pad, 1);
    append(p, &cap, &sp->audio_end, 1);
    const int two[2] = { sp->timestamp, sp->timestamp };
    for (int k = 0; k < MAX(w->n, 1); k++) {
        if (w->n > 0) {
            int *ids = NULL;
            const int n = tokenizer_encode(tok, w->words[k], &ids);
            if (n < 0) {
                align_prompt_free(p);
                return -1;
            }
            append(p, &cap, ids, n);
            free(ids);
        }
        p->slots[2 * k] = p->n;
        p->slots[2 * k + 1] = p->n + 1;
        append(p, &cap, two, 2);
    }
    return 0;
}

void align_prompt_free(align_prompt_t *p)
{
    free(p->ids);
    free(p->slots);
    memset(p, 0, sizeof *p);
}
