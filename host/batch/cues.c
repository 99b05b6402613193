/* Subtitle cues from word times: the rules are in cues.h. */
#include "cues.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "align.h"
#include "audio.h"
#include "utf8.h"
#include "util.h"

static int code_points(const char *s, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

/* s[0..n) with whitespace runs made single spaces, trimmed (malloc'd). */
static char *squeeze(const char *s, size_t n)
{
    char *out = xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const int space = s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r';
        if (space && (k == 0 || out[k - 1] == ' ')) continue;
        out[k++] = space ? ' ' : s[i];
    }
    while (k > 0 && out[k - 1] == ' ') k--;
    out[k] = '\0';
    return out;
}

/* Whether the text between two words holds sentence punctuation. */
static int sentence_end(const char *s, size_t n)
{
    static const char *const marks[] = { ".", "!", "?", "\u2026", "\u3002", "\uff01", "\uff1f", "\uff0e" };
    for (size_t m = 0; m < sizeof marks / sizeof marks[0]; m++)
        for (size_t i = 0; i + strlen(marks[m]) <= n; i++)
            if (!memcmp(s + i, marks[m], strlen(marks[m]))) return 1;
    return 0;
}

/* Scripts written without spaces (CJK ideographs, kana): a line may break between two of
 * their characters (as UAX #14 lets it between ideographs). */
static int spaceless(uint32_t c)
{
    return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x20000 && c <= 0x3FFFF);
}

/* Where text (squeezed, chars code points, over CUE_LINE_CHARS) breaks into two lines: the byte
 * offset of the break (a space there becomes the newline; elsewhere one is inserted). Among the
 * spaces and the places between two spaceless characters, the one nearest the middle that
 * leaves both lines within CUE_LINE_CHARS, else the one nearest the middle; without any, the
 * middle character. *fits: both lines are within CUE_LINE_CHARS. */
static size_t break_at(const char *text, int chars, int *fits)
{
    const size_t len = strlen(text);
    size_t best = 0, mid = 0;
    int best_off = -1, best_fit = 0, left = 0;
    uint32_t prev = 0;
    for (size_t i = 0; i < len; left++) {
        uint32_t c;
        const int k = utf8_decode(text + i, len - i, &c);
        if (k <= 0) c = 0xFFFD;
        const int space = c == ' ' && i > 0 && i + 1 < len;
        if (left == chars / 2) mid = i;
        if (space || (i > 0 && spaceless(prev) && spaceless(c))) {
            const int right = chars - left - space, off = abs(2 * left - chars);
            const int fit = left <= CUE_LINE_CHARS && right <= CUE_LINE_CHARS;
            if (best_off < 0 || fit > best_fit || (fit == best_fit && off < best_off))
                best = i, best_off = off, best_fit = fit;
        }
        prev = c;
        i += (size_t)(k > 0 ? k : -k);
    }
    if (best_off < 0) { /* no place to break: the middle character */
        *fits = chars - chars / 2 <= CUE_LINE_CHARS;
        return mid;
    }
    *fits = best_fit;
    return best;
}

/* text wrapped into at most two lines of CUE_LINE_CHARS where it fits (malloc'd; takes text) */
static char *wrap(char *text)
{
    const size_t len = strlen(text);
    const int chars = code_points(text, len);
    if (chars <= CUE_LINE_CHARS) return text;
    int fits;
    const size_t at = break_at(text, chars, &fits);
    if (text[at] == ' ') {
        text[at] = '\n';
        return text;
    }
    char *out = xmalloc(len + 2);
    memcpy(out, text, at);
    out[at] = '\n';
    memcpy(out + at + 1, text + at, len - at + 1);
    free(text);
    return out;
}

/* The display text of words i..j: the transcript's from word i to word j + 1, or the words. */
static char *cue_text(const char *text, const qasr_word_t *w, int n, int (*spans)[2], int i, int j)
{
    if (spans) {
        const size_t a = (size_t)spans[i][0], b = j + 1 < n ? (size_t)spans[j + 1][0] : strlen(text);
        return squeeze(text + a, b - a);
    }
    size_t len = 1;
    for (int k = i; k <= j; k++) len += strlen(w[k].word) + 1;
    char *s = xcalloc(len, 1);
    for (int k = i; k <= j; k++) {
        if (k > i) strcat(s, " ");
        strcat(s, w[k].word);
    }
    return s;
}

qasr_word_t *cues_file_words(const qasr_result_t *seg, const int64_t *bounds, int n_seg, int *n)
{
    *n = 0;
    for (int i = 0; i < n_seg; i++) *n += seg[i].n_words;
    qasr_word_t *w = xmalloc(sizeof *w * (size_t)MAX(1, *n));
    int k = 0;
    for (int i = 0; i < n_seg; i++) {
        const int offset_ms = (int)((bounds[i] * 1000 + QASR_SAMPLE_RATE / 2) / QASR_SAMPLE_RATE); /* rounded */
        for (int j = 0; j < seg[i].n_words; j++) {
            w[k] = seg[i].words[j];
            w[k].start_ms += offset_ms;
            w[k++].end_ms += offset_ms;
        }
    }
    return w;
}

int cues_from_words(const char *text, const qasr_word_t *words, int n, cue_t **cues)
{
    *cues = NULL;
    if (n <= 0) return 0;
    int (*spans)[2] = xmalloc(sizeof *spans * (size_t)n);
    char **wl = xmalloc(sizeof *wl * (size_t)n);
    for (int k = 0; k < n; k++) wl[k] = words[k].word;
    if (!text || align_word_spans(text, wl, n, spans) != 0) {
        free(spans);
        spans = NULL;
    }
    free(wl);
    /* The words' times in order. A piece's are (the repair makes them non-decreasing), but the
     * aligner may place a piece's last words past the piece's end, over the next piece's words,
     * which are within their audio: an earlier word is pulled back to the later ones. */
    int (*t)[2] = xmalloc(sizeof *t * (size_t)n);
    for (int k = n - 1, limit = INT_MAX; k >= 0; k--) {
        t[k][1] = MIN(words[k].end_ms, limit);
        t[k][0] = limit = MIN(words[k].start_ms, t[k][1]);
    }
    cue_t *out = xcalloc((size_t)n, sizeof *out);
    int n_cues = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n) {
            if (spans && sentence_end(text + spans[j][1], (size_t)(spans[j + 1][0] - spans[j][1]))) break;
            if (t[j + 1][0] - t[j][1] >= CUE_PAUSE_MS) break;
            if (t[j + 1][1] - t[i][0] > CUE_MAX_MS) break;
            char *shown = cue_text(text, words, n, spans, i, j + 1);
            const int chars = code_points(shown, strlen(shown));
            int fits = 1;
            if (chars > CUE_LINE_CHARS) break_at(shown, chars, &fits);
            free(shown);
            if (chars > CUE_LINES * CUE_LINE_CHARS || !fits) break;
            j++;
        }
        out[n_cues++] = (cue_t){ .start = t[i][0] / 1000.0, .end = t[j][1] / 1000.0,
                                 .text = wrap(cue_text(text, words, n, spans, i, j)) };
        i = j + 1;
    }
    for (int c = 0; c < n_cues; c++) { /* at least CUE_MIN_MS where the next cue leaves room, never into it */
        const double next = c + 1 < n_cues ? out[c + 1].start : 1e300;
        if (out[c].end - out[c].start < CUE_MIN_MS / 1000.0)
            out[c].end = MAX(out[c].end, MIN(out[c].start + CUE_MIN_MS / 1000.0, next));
        if (out[c].end > next) out[c].end = MAX(out[c].start, next);
    }
    free(spans);
    free(t);
    *cues = out;
    return n_cues;
}

void cues_free(cue_t *cues, int n)
{
    for (int c = 0; c < n; c++) free((char *)cues[c].text);
    free(cues);
}
