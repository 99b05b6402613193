/* host/model/align_text.c: the aligner's word splitter and where the words sit in the text.
 * Input: a language byte (its low 3 bits pick NULL, "", English, German, Chinese, Korean,
 * japanese, KOREAN), then the transcript (up to its first NUL; any bytes).
 * Properties: text that is not valid UTF-8 is refused (-1, a message, no words) and any other is
 * split (0); every word is non-empty valid UTF-8 of letters, digits and ' only; outside Korean a
 * word holding a CJK ideograph is that ideograph alone; the words joined are the text (NFKC for
 * Japanese) with every other character deleted. align_word_spans finds the words in the text
 * they came from (Japanese: whenever NFKC left the text as it was): spans in order, in bounds,
 * each starting at its word's first character and ending after its last, its bytes cleaned
 * equal to the word, nothing kept between two spans. On text that is not valid UTF-8 (the words
 * of its repaired copy) it may fail, and where it does not the same holds. */
#include "fuzz.h"

#include <utf8proc.h>

#include "align.h"
#include "utf8.h"
#include "util.h"

/* Spec 5.2, written again from the spec: ' and the general categories L* and N*. */
static int kept(uint32_t c)
{
    if (c == '\'') return 1;
    const char *cat = utf8proc_category_string((utf8proc_int32_t)c);
    return cat[0] == 'L' || cat[0] == 'N';
}

static int ideograph(uint32_t c) /* spec 5.3's blocks */
{
    return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x20000 && c <= 0x2ceaf) ||
           (c >= 0xf900 && c <= 0xfaff);
}

/* s[0..n) with every character but letters, digits and ' deleted (invalid bytes too); malloc'd. */
static char *cleaned(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c = 0;
        const int len = utf8_decode(s + i, n - i, &c);
        if (len > 0 && kept(c)) memcpy(out + k, s + i, (size_t)len), k += (size_t)len;
        i += (size_t)(len > 0 ? len : -len);
    }
    out[k] = '\0';
    return out;
}

static void check_word(const char *w, int korean)
{
    const size_t n = strlen(w);
    FUZZ_CHECK(n > 0 && utf8_valid(w, n));
    int chars = 0, has_ideograph = 0;
    for (size_t i = 0; i < n; chars++) {
        uint32_t c;
        i += (size_t)utf8_decode(w + i, n - i, &c);
        FUZZ_CHECK(kept(c));
        has_ideograph |= ideograph(c);
    }
    if (!korean) FUZZ_CHECK(!has_ideograph || chars == 1);
}

/* The spans of words in text, if align_word_spans finds them, checked; 1 if found. */
static int check_spans(const char *text, const align_words_t *w, int nothing_between)
{
    const int len = (int)strlen(text);
    int (*spans)[2] = malloc(sizeof *spans * (size_t)(w->n ? w->n : 1));
    const int rc = align_word_spans(text, w->words, w->n, spans);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        int prev_end = 0;
        for (int k = 0; k < w->n; k++) {
            const int a = spans[k][0], b = spans[k][1];
            const char *word = w->words[k];
            const size_t wl = strlen(word);
            FUZZ_CHECK(a >= prev_end && a < b && b <= len);
            uint32_t first, last, c;
            utf8_decode(word, wl, &first);
            FUZZ_CHECK(utf8_decode(text + a, (size_t)(len - a), &c) > 0 && c == first);
            last = utf8_last(word, wl);
            FUZZ_CHECK(utf8_last(text, (size_t)b) == last);
            char *clean = cleaned(text + a, (size_t)(b - a));
            FUZZ_CHECK(strcmp(clean, word) == 0);
            free(clean);
            if (nothing_between) {
                clean = cleaned(text + prev_end, (size_t)(a - prev_end));
                FUZZ_CHECK(clean[0] == '\0');
                free(clean);
            }
            prev_end = b;
        }
        if (nothing_between) {
            char *clean = cleaned(text + prev_end, (size_t)(len - prev_end));
            FUZZ_CHECK(clean[0] == '\0');
            free(clean);
        }
    }
    free(spans);
    return rc == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const languages[] = { NULL, "", "English", "German", "Chinese", "Korean", "japanese", "KOREAN" };
    const int lang = fuzz_u8(&data, &size) & 7;
    const char *language = languages[lang];
    const int korean = lang == 5 || lang == 7, japanese = lang == 6;
    char *text = fuzz_strndup(data, size);
    const size_t len = strlen(text);

    align_words_t w;
    if (!utf8_valid(text, len)) {
        FUZZ_CHECK(align_split_words(text, language, &w) == -1);
        FUZZ_CHECK(w.n == 0 && w.words == NULL && qasr_last_error()[0]);
        /* the words of the repaired copy, looked for in the bytes as they are */
        char *fixed = utf8_sanitize(text, len, NULL);
        FUZZ_CHECK(align_split_words(fixed, language, &w) == 0);
        if (!japanese) check_spans(text, &w, 1);
        align_words_free(&w);
        free(fixed);
        free(text);
        return 0;
    }

    FUZZ_CHECK(align_split_words(text, language, &w) == 0);
    FUZZ_CHECK(w.n >= 0 && (w.n == 0 || w.words));
    size_t total = 0;
    for (int k = 0; k < w.n; k++) {
        check_word(w.words[k], korean);
        total += strlen(w.words[k]);
    }
    /* the words are the (normalised) text with the other characters deleted, in order */
    char *norm = japanese ? (char *)utf8proc_NFKC((const utf8proc_uint8_t *)text) : NULL;
    const int same = !norm || !strcmp(norm, text);
    char *clean = cleaned(norm ? norm : text, strlen(norm ? norm : text));
    char *joined = malloc(total + 1);
    joined[0] = '\0';
    for (int k = 0, at = 0; k < w.n; k++) at += sprintf(joined + at, "%s", w.words[k]);
    FUZZ_CHECK(strcmp(joined, clean) == 0);
    free(joined);
    free(clean);
    free(norm);

    const int found = check_spans(text, &w, same);
    if (same) FUZZ_CHECK(found);

    align_words_free(&w);
    FUZZ_CHECK(w.n == 0 && w.words == NULL);
    free(text);
    return 0;
}
