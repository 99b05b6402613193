/* host/batch/cues.c: a file's words in file time (cues_file_words) and the subtitle cues cut
 * from them (cues_from_words), fed what qasr-batch feeds them.
 * Input: a mode byte (bits 0-2: the language of the word splitter, as in fuzz_align_text; bit 3:
 * no transcript), then parts separated by FUZZ_SEP: the times, then up to 4 piece transcripts.
 * Each piece's transcript (made valid UTF-8: one that is not fails alignment and gets no cues)
 * is split into words by align_split_words, as the engine does; the times part gives each piece
 * its length (2 bytes) and each word a gap and a length (1 byte each, 0-995 ms in 5 ms steps or
 * whole seconds up to 55 s), so that a piece's times are non-decreasing and at most 399,920 ms
 * (the repair's output: nothing else reaches these functions), while a piece's words may run
 * past its end and so overlap the next piece's (the official aligner does not clamp). The file's
 * transcript is the pieces' joined by join_texts.
 * Properties: the cues hold the words in order, each in exactly one cue (their texts, whitespace
 * aside, are the transcript from the first word on, cut at word starts; without the words in
 * the transcript, the words themselves); a cue's text is squeezed, at most 2 lines, each line at
 * most 42 characters when it holds more than one word; inside a cue no sentence mark, no pause
 * of 0.5 s, at most 7 s of words; a cue ends for one of these reasons or where the next word
 * would make it over 2 x 42 characters or not fit two such lines (breaking at a space or between
 * two CJK characters, or anywhere in text with neither); the words' times, with an earlier word
 * pulled back to a later one's start where a piece's words run over the next piece's, make the
 * cues: a cue starts at its first word's start, is in time order, never runs into the next, lasts
 * at least 5/6 s where the next leaves room and no longer than its words otherwise. */
#include "fuzz.h"

#include <limits.h>

#include "align.h"
#include "audio.h"
#include "cues.h"
#include "join.h"
#include "utf8.h"
#include "util.h"

#define MAX_PIECES 4

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int code_points(const char *s, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

/* s[0..n) with whitespace runs made one space and the ends trimmed (malloc'd). */
static char *squeezed(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_ws(s[i]) && (k == 0 || out[k - 1] == ' ')) continue;
        out[k++] = is_ws(s[i]) ? ' ' : s[i];
    }
    while (k > 0 && out[k - 1] == ' ') k--;
    out[k] = '\0';
    return out;
}

static int spaceless(uint32_t c)
{
    return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x20000 && c <= 0x3FFFF);
}

/* Whether squeezed text s fits two lines of CUE_LINE_CHARS with a break at a space or between
 * two characters of a script without spaces (or anywhere, where there is no such place). */
static int fits_two_lines(const char *s)
{
    const size_t n = strlen(s);
    const int chars = code_points(s, n);
    if (chars <= CUE_LINE_CHARS) return 1;
    int places = 0, left = 0;
    uint32_t prev = 0;
    for (size_t i = 0; i < n; left++) {
        uint32_t c = 0xFFFD;
        const int k = utf8_decode(s + i, n - i, &c);
        const int space = c == ' ';
        if (space || (i > 0 && spaceless(prev) && spaceless(c))) {
            places++;
            if (left <= CUE_LINE_CHARS && chars - left - space <= CUE_LINE_CHARS) return 1;
        }
        prev = c;
        i += (size_t)(k > 0 ? k : -k);
    }
    return !places && chars - chars / 2 <= CUE_LINE_CHARS;
}

static int has_sentence_mark(const char *s, size_t n)
{
    static const char *const marks[] = { ".", "!", "?", "\u2026", "\u3002", "\uff01", "\uff1f", "\uff0e" };
    for (size_t m = 0; m < sizeof marks / sizeof marks[0]; m++)
        if (memmem(s, n, marks[m], strlen(marks[m]))) return 1;
    return 0;
}

/* A gap or a length in ms from one byte. */
static int ms_of(uint8_t b) { return b < 200 ? b * 5 : (b - 200) * 1000; }

static uint8_t next_byte(const fuzz_part_t *p, size_t *at)
{
    return p->n ? (uint8_t)p->p[(*at)++ % p->n] : 0;
}

static void check_cue_text(const char *s, int n_words)
{
    const size_t n = strlen(s);
    FUZZ_CHECK(n > 0 && !is_ws(s[0]) && !is_ws(s[n - 1]));
    const char *nl = strchr(s, '\n');
    FUZZ_CHECK(!nl || !strchr(nl + 1, '\n'));
    for (size_t i = 0; i + 1 < n; i++) FUZZ_CHECK(!(is_ws(s[i]) && is_ws(s[i + 1])) && s[i] != '\t' && s[i] != '\r');
    if (n_words > 1) {
        const size_t first = nl ? (size_t)(nl - s) : n;
        FUZZ_CHECK(code_points(s, first) <= CUE_LINE_CHARS);
        if (nl) FUZZ_CHECK(code_points(nl + 1, n - first - 1) <= CUE_LINE_CHARS);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const languages[] = { NULL, "", "English", "German", "Chinese", "Korean", "japanese", "KOREAN" };
    const int mode = fuzz_u8(&data, &size);
    fuzz_part_t part[1 + MAX_PIECES];
    const int n_parts = (int)fuzz_split(data, size, FUZZ_SEP, strlen(FUZZ_SEP), part, 1 + MAX_PIECES);
    const int n_seg = n_parts > 1 ? n_parts - 1 : 1;
    size_t at = 0;

    /* the pieces as the engine returns them */
    char *texts[MAX_PIECES];
    align_words_t split[MAX_PIECES];
    qasr_result_t seg[MAX_PIECES];
    int64_t bounds[MAX_PIECES + 1] = { 0 };
    memset(seg, 0, sizeof seg);
    for (int i = 0; i < n_seg; i++) {
        texts[i] = n_parts > 1 ? utf8_sanitize(part[i + 1].p, part[i + 1].n, NULL) : fuzz_strndup("", 0);
        FUZZ_CHECK(align_split_words(texts[i], languages[mode & 7], &split[i]) == 0);
        const int hi = next_byte(&part[0], &at), lo = next_byte(&part[0], &at);
        bounds[i + 1] = bounds[i] + (int64_t)(hi << 8 | lo) * 44; /* up to 180 s */
        seg[i].n_words = split[i].n;
        seg[i].words = calloc((size_t)(split[i].n ? split[i].n : 1), sizeof *seg[i].words);
        int t = 0;
        for (int k = 0; k < split[i].n; k++) {
            t = MIN(t + ms_of(next_byte(&part[0], &at)), 399920);
            const int start = t;
            t = MIN(t + ms_of(next_byte(&part[0], &at)), 399920);
            seg[i].words[k] = (qasr_word_t){ .word = split[i].words[k], .start_ms = start, .end_ms = t };
        }
    }
    char *text = mode & 8 ? NULL : join_texts((const char *const *)texts, n_seg);

    int n = -1;
    qasr_word_t *w = cues_file_words(seg, bounds, n_seg, &n);
    FUZZ_CHECK(w);
    for (int i = 0, k = 0; i < n_seg; i++) /* each piece's words, in order, moved by its start */
        for (int j = 0; j < seg[i].n_words; j++, k++) {
            const int offset = (int)((bounds[i] * 1000 + QASR_SAMPLE_RATE / 2) / QASR_SAMPLE_RATE);
            FUZZ_CHECK(k < n && w[k].word == seg[i].words[j].word && w[k].start_ms == seg[i].words[j].start_ms + offset &&
                       w[k].end_ms == seg[i].words[j].end_ms + offset);
        }

    cue_t *cues = (cue_t *)&n; /* must be replaced */
    const int n_cues = cues_from_words(text, w, n, &cues);
    FUZZ_CHECK(n == 0 ? n_cues == 0 && cues == NULL : n_cues >= 1 && n_cues <= n && cues);

    if (n > 0) {
        /* the whitespace-free text the cues must share out, and where each word starts in it */
        int (*spans)[2] = malloc(sizeof *spans * (size_t)n);
        char **wl = malloc(sizeof *wl * (size_t)n);
        for (int k = 0; k < n; k++) wl[k] = w[k].word;
        const int found = text && align_word_spans(text, wl, n, spans) == 0;
        free(wl);
        const char *src = found ? text + spans[0][0] : NULL;
        size_t src_len = 0;
        for (int k = 0; k < n; k++) src_len += strlen(w[k].word);
        if (found) src_len = strlen(src);
        char *all = malloc(src_len + 1);
        int *word_at = malloc(sizeof *word_at * (size_t)(n + 1));
        size_t len = 0;
        if (found) {
            for (size_t i = 0, k = 0; i < src_len; i++) {
                while (k < (size_t)n && src + i == text + spans[k][0]) word_at[k++] = (int)len;
                if (!is_ws(src[i])) all[len++] = src[i];
            }
        } else {
            for (int k = 0; k < n; k++) {
                word_at[k] = (int)len;
                memcpy(all + len, w[k].word, strlen(w[k].word));
                len += strlen(w[k].word);
            }
        }
        word_at[n] = (int)len;

        /* the times the cues show: pulled back where a piece's words run over the next's */
        int (*t)[2] = malloc(sizeof *t * (size_t)n);
        for (int k = n - 1, limit = INT_MAX; k >= 0; k--) {
            t[k][1] = MIN(w[k].end_ms, limit);
            t[k][0] = limit = MIN(w[k].start_ms, t[k][1]);
        }

        /* each cue: which words, its text, its times */
        int *first = malloc(sizeof *first * (size_t)(n_cues + 1));
        size_t pos = 0;
        int k = 0;
        for (int c = 0; c < n_cues; c++) {
            FUZZ_CHECK(word_at[k] == (int)pos);
            first[c] = k;
            const char *s = cues[c].text;
            FUZZ_CHECK(s);
            for (size_t i = 0; s[i]; i++) {
                if (is_ws(s[i])) continue;
                FUZZ_CHECK(pos < len && all[pos] == s[i]);
                pos++;
            }
            while (k < n && word_at[k] < (int)pos) k++;
            FUZZ_CHECK(k > first[c] && (k == n || word_at[k] == (int)pos));
        }
        FUZZ_CHECK(pos == len && k == n);
        first[n_cues] = n;

        for (int c = 0; c < n_cues; c++) {
            const int a = first[c], b = first[c + 1] - 1; /* words a..b */
            const cue_t *q = &cues[c];
            check_cue_text(q->text, b - a + 1);
            FUZZ_CHECK(q->start == t[a][0] / 1000.0 && q->end >= q->start);
            for (int j = a; j < b; j++) {
                FUZZ_CHECK(t[j + 1][0] - t[j][1] < CUE_PAUSE_MS);
                if (found) FUZZ_CHECK(!has_sentence_mark(text + spans[j][1], (size_t)(spans[j + 1][0] - spans[j][1])));
            }
            if (b > a) FUZZ_CHECK(t[b][1] - t[a][0] <= CUE_MAX_MS);
            if (c + 1 < n_cues) { /* why the cue ended there */
                const cue_t *next = &cues[c + 1];
                char *grown; /* the cue's text with the next word */
                if (found) {
                    const size_t end = b + 2 < n ? (size_t)spans[b + 2][0] : strlen(text);
                    grown = squeezed(text + spans[a][0], end - (size_t)spans[a][0]);
                } else {
                    size_t glen = 0;
                    for (int j = a; j <= b + 1; j++) glen += strlen(w[j].word) + 1;
                    grown = calloc(glen, 1);
                    for (int j = a; j <= b + 1; j++) strcat(strcat(grown, j > a ? " " : ""), w[j].word);
                }
                const int too_long = code_points(grown, strlen(grown)) > CUE_LINES * CUE_LINE_CHARS || !fits_two_lines(grown);
                free(grown);
                FUZZ_CHECK((found && has_sentence_mark(text + spans[b][1], (size_t)(spans[b + 1][0] - spans[b][1]))) ||
                           t[b + 1][0] - t[b][1] >= CUE_PAUSE_MS || t[b + 1][1] - t[a][0] > CUE_MAX_MS ||
                           too_long);
                FUZZ_CHECK(next->start >= q->start); /* in time order */
                FUZZ_CHECK(q->end <= next->start);   /* never into the next */
                if (next->start - q->start >= CUE_MIN_MS / 1000.0) FUZZ_CHECK(q->end - q->start >= CUE_MIN_MS / 1000.0 - 1e-9);
            } else {
                FUZZ_CHECK(q->end - q->start >= CUE_MIN_MS / 1000.0 - 1e-9);
            }
            FUZZ_CHECK(q->end <= MAX(t[b][1] / 1000.0, q->start + CUE_MIN_MS / 1000.0) + 1e-9);
        }
        free(t);
        free(first);
        free(word_at);
        free(all);
        free(spans);
    }

    cues_free(cues, n_cues);
    free(w);
    free(text);
    for (int i = 0; i < n_seg; i++) {
        free(seg[i].words);
        align_words_free(&split[i]);
        free(texts[i]);
    }
    return 0;
}
