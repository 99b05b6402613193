/* The aligner's text and time rules against the spec's worked examples
 * (qwen3-forced-aligner.md 5.3-5.5, 6.3-6.4, 8.2-8.4; outputs of the official code). */
#include "align.h"
#include "test.h"
#include "util.h"

#include <unistd.h>

/* words of text joined by '|' */
static char *split(const char *text, const char *language)
{
    align_words_t w;
    if (align_split_words(text, language, &w) != 0) return xstrdup("(error)");
    size_t len = 1;
    for (int i = 0; i < w.n; i++) len += strlen(w.words[i]) + 1;
    char *s = xcalloc(len, 1);
    for (int i = 0; i < w.n; i++) {
        if (i) strcat(s, "|");
        strcat(s, w.words[i]);
    }
    align_words_free(&w);
    return s;
}

static void check_words(const char *text, const char *language, const char *want)
{
    char *got = split(text, language);
    CHECK_STR_EQ(got, want);
    free(got);
}

static void test_words(void)
{
    check_words("It's 10 o'clock, Mr. O\u2019Neil!", "English", "It's|10|o'clock|Mr|ONeil");
    check_words("\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002", "Chinese",
                "\u4eca|\u5929|\u5929|\u6c14|\u5f88|\u597d");
    check_words("\u6211\u5728Qwen3-ASR\u4e0a\u8dd1\u4e862.5\u5c0f\u65f6\u7684benchmark, it's fine.", "Chinese",
                "\u6211|\u5728|Qwen3ASR|\u4e0a|\u8dd1|\u4e86|25|\u5c0f|\u65f6|\u7684|benchmark|it's|fine");
    check_words("Aujourd'hui, l\u2019h\u00f4tel co\u00fbte 12,50 \u20ac \u2014 tr\u00e8s cher!", "French",
                "Aujourd'hui|lh\u00f4tel|co\u00fbte|1250|tr\u00e8s|cher");
    check_words("well-known x\u00b2 Cafe\u0301 \u01c5 a\u200bb", "", "wellknown|x\u00b2|Cafe|\u01c5|ab");
    check_words("  ... !? \u2014 ", "English", "");
    check_words("", NULL, "");
    /* Python's str.split(): U+3000, U+00A0, U+1680 and \x1c split; U+200B (a format character) does not */
    check_words("a\u3000b\u00a0c\u1680d\x1c" "e", "english", "a|b|c|d|e");
    /* kana and Hangul are not ideographs: they stay glued to their run */
    check_words("\u6771\u4eac\u3067\u3059", "Chinese", "\u6771|\u4eac|\u3067\u3059");
    /* spec 5.5, official output */
    check_words("\ubc18\uac11\uc2b5\ub2c8\ub2e4. \uc800\ub294 \ud559\uc0dd\uc785\ub2c8\ub2e4! "
                "\ud55c\uad6d\uc5b4\ub97c \uacf5\ubd80\ud574\uc694", "Korean",
                "\ubc18\uac11|\uc2b5\ub2c8\ub2e4|\uc800\ub294|\ud559\uc0dd|\uc785\ub2c8\ub2e4|"
                "\ud55c\uad6d\uc5b4|\ub97c|\uacf5\ubd80|\ud574\uc694");
    /* Japanese: NFKC, then the default splitter (the official code uses nagisa, which would give
     * 明日|は|雨|が|降る|でしょう|AI|2|0|2|6|年; README says how this differs) */
    check_words("\u660e\u65e5\u306f\u96e8\u304c\u964d\u308b\u3067\u3057\u3087\u3046\u3002\uff21\uff29\uff12\uff10\uff12\uff16\u5e74",
                "Japanese",
                "\u660e|\u65e5|\u306f|\u96e8|\u304c|\u964d|\u308b\u3067\u3057\u3087\u3046AI2026|\u5e74");
    align_words_t w;
    CHECK_INT_EQ(align_split_words("ab\xff", "English", &w), -1);
}

/* Spec 6.3 and 6.4: the ids of the worked examples. The aligner's tokenizer is the ASR one
 * plus <timestamp> (its tokenizer_config.json). */
static void test_prompt(void)
{
    const char *fx = getenv("QASR_SHARED_FIXTURES");
    if (!fx) fx = "fixtures";
    const char *dir = test_tmp_dir("align_tokenizer");
    char src[4096], dst[8192];
    const char *files[3][2] = { { "qwen3-asr-0.6b", "vocab.json" }, { "qwen3-asr-0.6b", "merges.txt" },
                                { "qwen3-forced-aligner-0.6b", "tokenizer_config.json" } };
    for (int i = 0; i < 3; i++) {
        snprintf(src, sizeof src, "%s/%s/%s", fx, files[i][0], files[i][1]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i][1]);
        char *abs = realpath(src, NULL);
        unlink(dst);
        if (!abs || symlink(abs, dst) != 0) {
            fprintf(stderr, "cannot link %s to %s\n", src, dst);
            exit(1);
        }
        free(abs);
    }
    tokenizer_t *tok = tokenizer_load(dir);
    CHECK(tok != NULL);
    if (!tok) return;
    const align_ids_t sp = { .audio_start = 151669, .audio_pad = 151676, .audio_end = 151670,
                             .timestamp = tokenizer_token_id(tok, "<timestamp>") };
    CHECK_INT_EQ(sp.timestamp, 151705);

    align_words_t w;
    align_prompt_t p;
    CHECK_INT_EQ(align_split_words("It's 10 o'clock, Mr. O\u2019Neil!", "English", &w), 0);
    CHECK_INT_EQ(align_prompt_build(&p, tok, &sp, 26, &w), 0);
    const int TS = 151705, want_en[] = { 2132, 594, TS, TS, 16, 15, TS, TS, 78, 62410, TS, TS, 12275, TS, TS,
                                         711, 58791, TS, TS };
    CHECK_INT_EQ(p.n, 47);
    CHECK_INT_EQ(p.audio_at, 1);
    CHECK_INT_EQ(p.n_audio, 26);
    CHECK_INT_EQ(p.ids[0], 151669);
    CHECK_INT_EQ(p.ids[1], 151676);
    CHECK_INT_EQ(p.ids[26], 151676);
    CHECK_INT_EQ(p.ids[27], 151670);
    for (int i = 0; i < 19 && p.n == 47; i++) CHECK_INT_EQ(p.ids[28 + i], want_en[i]);
    const int slots_en[] = { 30, 31, 34, 35, 38, 39, 41, 42, 45, 46 };
    CHECK_INT_EQ(p.n_slots, 10);
    for (int i = 0; i < 10 && p.n_slots == 10; i++) CHECK_INT_EQ(p.slots[i], slots_en[i]);
    align_prompt_free(&p);
    align_words_free(&w);

    CHECK_INT_EQ(align_split_words("\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002", "Chinese", &w), 0);
    CHECK_INT_EQ(align_prompt_build(&p, tok, &sp, 39, &w), 0);
    const int want_zh[] = { 36171, TS, TS, 35727, TS, TS, 35727, TS, TS, 99180, TS, TS, 99165, TS, TS, 52801, TS, TS };
    CHECK_INT_EQ(p.n, 59);
    for (int i = 0; i < 18 && p.n == 59; i++) CHECK_INT_EQ(p.ids[41 + i], want_zh[i]);
    const int slots_zh[] = { 42, 43, 45, 46, 48, 49, 51, 52, 54, 55, 57, 58 };
    for (int i = 0; i < 12 && p.n_slots == 12; i++) CHECK_INT_EQ(p.slots[i], slots_zh[i]);
    align_prompt_free(&p);
    align_words_free(&w);

    /* no word: still two slots (their classes are discarded) */
    CHECK_INT_EQ(align_split_words("?!", "English", &w), 0);
    CHECK_INT_EQ(align_prompt_build(&p, tok, &sp, 3, &w), 0);
    CHECK_INT_EQ(p.n, 2 + 3 + 2);
    CHECK_INT_EQ(p.n_slots, 2);
    CHECK_INT_EQ(p.slots[0], 5);
    CHECK_INT_EQ(p.ids[5], TS);
    CHECK_INT_EQ(p.ids[6], TS);
    align_prompt_free(&p);
    align_words_free(&w);
    tokenizer_free(tok);
}

static void check_repair(const int *classes, int n, const int *want_ms)
{
    double t[64];
    int out[64];
    for (int i = 0; i < n; i++) t[i] = classes[i] * 80.0;
    align_repair(t, n, out);
    for (int i = 0; i < n; i++) CHECK_INT_EQ(out[i], want_ms[i]);
}

static void test_repair(void)
{
    /* spec 8.4 A and B */
    const int a[] = { 3, 7, 6, 12, 40, 41, 13, 2, 2, 14, 15, 15 };
    const int a_ms[] = { 240, 560, 560, 960, 960, 1040, 1040, 1040, 1120, 1120, 1200, 1200 };
    check_repair(a, 12, a_ms);
    const int b[] = { 2, 1, 5, 9, 8, 30, 31, 32, 10, 11, 12, 12 };
    const int b_ms[] = { 160, 160, 400, 720, 736, 752, 768, 784, 800, 880, 960, 960 };
    check_repair(b, 12, b_ms);
    /* spec 8.2: left 0, right 1840, 13 filled: the 7th is 919.9999999999999 in double, 919 */
    double t[16] = { 0 };
    int out[16];
    for (int i = 1; i <= 13; i++) t[i] = 5000 - 80 * i; /* falling: never part of the longest chain */
    t[14] = 1840;
    t[15] = 1900;
    align_repair(t, 16, out);
    CHECK_INT_EQ(out[0], 0);
    CHECK_INT_EQ(out[7], 919);
    CHECK_INT_EQ(out[14], 1840);
    for (int i = 1; i < 16; i++) CHECK(out[i] >= out[i - 1]);
    /* a leading run takes its right neighbour, a trailing one its left */
    const int c[] = { 9, 8, 1, 2, 3, 0 };
    const int c_ms[] = { 80, 80, 80, 160, 240, 240 };
    check_repair(c, 6, c_ms);
}

static void test_spans(void)
{
    const char *text = "It's 10 o’clock, Mr. O’Neil! 今天 fine";
    align_words_t w;
    CHECK_INT_EQ(align_split_words(text, "English", &w), 0);
    int spans[16][2];
    CHECK_INT_EQ(w.n, 8);
    CHECK_INT_EQ(align_word_spans(text, w.words, w.n, spans), 0);
    /* o’clock: the apostrophe U+2019 is deleted by cleaning but inside the word's span */
    const char *want[] = { "It's", "10", "o’clock", "Mr", "O’Neil", "今", "天", "fine" };
    for (int k = 0; k < w.n && k < 8; k++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", spans[k][1] - spans[k][0], text + spans[k][0]);
        CHECK_STR_EQ(buf, want[k]);
    }
    /* a word that is not in the text in order */
    char *swapped[] = { w.words[1], w.words[0] };
    CHECK_INT_EQ(align_word_spans(text, swapped, 2, spans), -1);
    align_words_free(&w);
}

int main(void)
{
    test_words();
    test_prompt();
    test_repair();
    test_spans();
    return test_result("test_align");
}
