/* parse_asr_output and detect_and_fix_repetitions of the official package
 * (qwen_asr/inference/utils.py), spec 9.2. The Python works on str, so lengths, runs and patterns
 * count code points, and strip()/splitlines() use Python's Unicode whitespace and line breaks. */
#include "transcript.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "util.h"

#define REPEAT_THRESHOLD 20 /* official default */
#define MAX_PATTERN_LEN 20  /* official fix_pattern_repeats max_len */
#define ASR_TEXT_TAG "<asr_text>"
#define LANG_PREFIX "language "

/* Code points of s (n_out of them); a byte that is not valid UTF-8 becomes U+DC80 + byte - 0x80
 * (a lone surrogate, never produced by valid UTF-8) so that it survives the round trip. */
static uint32_t *to_code_points(const char *s, size_t *n_out)
{
    size_t len = strlen(s), n = 0;
    uint32_t *c = xmalloc(sizeof(uint32_t) * (len + 1));
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = utf8_decode(s + i, len - i, &cp);
        if (k < 0) {
            cp = 0xDC00 + (unsigned char)s[i];
            k = 1;
        }
        c[n++] = cp;
        i += (size_t)k;
    }
    *n_out = n;
    return c;
}

static char *from_code_points(const uint32_t *c, size_t n)
{
    char *s = xmalloc(4 * n + 1), *p = s;
    for (size_t i = 0; i < n; i++) {
        if (c[i] >= 0xDC80 && c[i] <= 0xDCFF) *p++ = (char)(c[i] - 0xDC00);
        else p += utf8_encode(c[i], p);
    }
    *p = '\0';
    return s;
}

/* Python str.isspace() */
static int py_isspace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Line boundaries of Python str.splitlines(). Python takes \r\n as one; here it leaves an empty
 * line between, which the only caller skips like any empty line. */
static int py_linebreak(uint32_t c)
{
    return (c >= 0x0A && c <= 0x0D) || (c >= 0x1C && c <= 0x1E) || c == 0x85 || c == 0x2028 ||
           c == 0x2029;
}

/* Python str.strip(): narrows [*b, *e). */
static void py_strip(const uint32_t *c, size_t *b, size_t *e)
{
    while (*b < *e && py_isspace(c[*b])) (*b)++;
    while (*e > *b && py_isspace(c[*e - 1])) (*e)--;
}

/* fix_char_repeats: a run of one character longer than the threshold becomes one character.
 * In place; returns the new length. */
static size_t fix_char_repeats(uint32_t *c, size_t n)
{
    size_t w = 0;
    for (size_t i = 0, run; i < n; i += run) {
        for (run = 1; i + run < n && c[i + run] == c[i]; run++) {}
        size_t keep = run > REPEAT_THRESHOLD ? 1 : run;
        memmove(c + w, c + i, sizeof(uint32_t) * keep);
        w += keep;
    }
    return w;
}

/* Length k (shortest first) of a pattern at c[i] repeated at least threshold times back to
 * back, or 0. */
static size_t pattern_at(const uint32_t *c, size_t n, size_t i)
{
    for (size_t k = 1; k <= MAX_PATTERN_LEN && i + k * REPEAT_THRESHOLD <= n; k++) {
        size_t rep = 1;
        while (rep < REPEAT_THRESHOLD && memcmp(c + i + rep * k, c + i, sizeof(uint32_t) * k) == 0) rep++;
        if (rep == REPEAT_THRESHOLD) return k;
    }
    return 0;
}

/* fix_pattern_repeats. The official function recurses on the rest of the string after a
 * collapsed pattern; continuing the scan there is the same thing. In place (the write position
 * never passes the read position); returns the new length. */
static size_t fix_pattern_repeats(uint32_t *c, size_t n)
{
    const size_t min_chars = 2 * REPEAT_THRESHOLD;
    size_t w = 0, i = 0;
    while (n - i >= min_chars) {
        size_t k = pattern_at(c, n, i);
        if (k == 0) {
            c[w++] = c[i++];
            continue;
        }
        size_t end = i + k * REPEAT_THRESHOLD;
        while (end + k <= n && memcmp(c + end, c + i, sizeof(uint32_t) * k) == 0) end += k;
        memmove(c + w, c + i, sizeof(uint32_t) * k);
        w += k;
        i = end;
    }
    memmove(c + w, c + i, sizeof(uint32_t) * (n - i));
    return w + n - i;
}

static size_t fix_repetitions(uint32_t *c, size_t n)
{
    return fix_pattern_repeats(c, fix_char_repeats(c, n));
}

char *transcript_fix_repetitions(const char *s)
{
    size_t n;
    uint32_t *c = to_code_points(s, &n);
    char *out = from_code_points(c, fix_repetitions(c, n));
    free(c);
    return out;
}

static int ascii_eq(uint32_t c, char want, int nocase)
{
    if (nocase && c >= 'A' && c <= 'Z') c += 'a' - 'A';
    return c == (unsigned char)want;
}

/* Position of an ASCII needle (lower case if nocase) in c[0, n), or SIZE_MAX. Comparing ASCII
 * only is exact for Python's s.lower() here: no non-ASCII character lower-cases to the letters of
 * "language none". */
static size_t find_ascii(const uint32_t *c, size_t n, const char *needle, int nocase)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && ascii_eq(c[i + k], needle[k], nocase)) k++;
        if (k == m) return i;
    }
    return SIZE_MAX;
}

static char *stripped(const uint32_t *c, size_t b, size_t e)
{
    py_strip(c, &b, &e);
    return from_code_points(c + b, e - b);
}

/* normalize_language_name: strip, then first character upper case, the rest lower case. */
static char *normalize_language(uint32_t *c, size_t b, size_t e)
{
    py_strip(c, &b, &e);
    for (size_t i = b; i < e; i++) {
        if (i == b && c[i] >= 'a' && c[i] <= 'z') c[i] -= 'a' - 'A';
        if (i > b && c[i] >= 'A' && c[i] <= 'Z') c[i] += 'a' - 'A';
    }
    return from_code_points(c + b, e - b);
}

char *transcript_normalize_language(const char *name)
{
    size_t n;
    uint32_t *c = to_code_points(name, &n);
    char *out = normalize_language(c, 0, n);
    free(c);
    return out;
}

/* Value of the first line of meta[0, n) that starts with "language " (any case), normalised;
 * "" if there is none. */
static char *meta_language(uint32_t *meta, size_t n)
{
    for (size_t start = 0, end; start < n; start = end + 1) {
        for (end = start; end < n && !py_linebreak(meta[end]); end++) {}
        size_t b = start, e = end;
        py_strip(meta, &b, &e);
        if (b == e) continue;
        if (e - b >= strlen(LANG_PREFIX) && find_ascii(meta + b, strlen(LANG_PREFIX), LANG_PREFIX, 1) == 0)
            return normalize_language(meta, b + strlen(LANG_PREFIX), e);
    }
    return xstrdup("");
}

void transcript_parse(const char *raw, const char *forced_language, char **language, char **text)
{
    size_t n = 0, b = 0;
    uint32_t *c = raw ? to_code_points(raw, &n) : NULL;
    if (c) py_strip(c, &b, &n);
    if (b == n) { /* step 1: nothing */
        free(c);
        *language = xstrdup("");
        *text = xstrdup("");
        return;
    }
    uint32_t *s = c + b;
    n = fix_repetitions(s, n - b);
    size_t tag = find_ascii(s, n, ASR_TEXT_TAG, 0);
    if (forced_language && forced_language[0]) { /* step 3: the output is all text */
        *language = xstrdup(forced_language);
        *text = from_code_points(s, n);
    } else if (tag == SIZE_MAX) { /* step 4 */
        *language = xstrdup("");
        *text = stripped(s, 0, n);
    } else { /* steps 5 and 6 */
        int none = find_ascii(s, tag, "language none", 1) != SIZE_MAX;
        *language = none ? xstrdup("") : meta_language(s, tag);
        *text = stripped(s, tag + strlen(ASR_TEXT_TAG), n);
    }
    free(c);
}
