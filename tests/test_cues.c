/* Subtitle cues cut from word times (cues.h): each rule at its edge. */
#include "cues.h"
#include "test.h"
#include "util.h"

typedef struct {
    const char *word;
    int start, end;
} w_t;

static int cut(const char *text, const w_t *w, int n, cue_t **cues)
{
    qasr_word_t *words = xcalloc((size_t)n, sizeof *words);
    for (int i = 0; i < n; i++) words[i] = (qasr_word_t){ (char *)w[i].word, w[i].start, w[i].end };
    const int k = cues_from_words(text, words, n, cues);
    free(words);
    return k;
}

static void test_sentences_and_min_duration(void)
{
    const w_t w[] = { { "Hello", 0, 300 }, { "there", 300, 600 }, { "How", 700, 900 }, { "are", 900, 1000 },
                      { "you", 1000, 1200 } };
    cue_t *c;
    const int n = cut("Hello there. How are  you?", w, 5, &c);
    CHECK_INT_EQ(n, 2);
    CHECK_STR_EQ(c[0].text, "Hello there.");
    CHECK_STR_EQ(c[1].text, "How are you?"); /* the transcript's own text, spaces squeezed */
    CHECK_NEAR(c[0].start, 0.0, 1e-9, 0);
    CHECK_NEAR(c[0].end, 0.7, 1e-9, 0);      /* 5/6 s wanted, the next cue starts at 0.7 */
    CHECK_NEAR(c[1].start, 0.7, 1e-9, 0);
    CHECK_NEAR(c[1].end, 0.7 + 0.833, 1e-9, 0); /* 0.5 s of words shown 5/6 s */
    cues_free(c, n);
    /* CJK sentence marks too */
    const w_t z[] = { { "\u597d", 0, 100 }, { "\u6211", 200, 300 } };
    CHECK_INT_EQ(cut("\u597d\u3002\u6211", z, 2, &c), 2);
    cues_free(c, 2);
}

static void test_pause(void)
{
    const w_t a[] = { { "one", 0, 1000 }, { "two", 1499, 2000 } }, b[] = { { "one", 0, 1000 }, { "two", 1500, 2000 } };
    cue_t *c;
    CHECK_INT_EQ(cut("one two", a, 2, &c), 1); /* 499 ms: no cut */
    CHECK_STR_EQ(c[0].text, "one two");
    cues_free(c, 1);
    CHECK_INT_EQ(cut("one two", b, 2, &c), 2); /* 500 ms: a cut */
    cues_free(c, 2);
}

static void test_seven_seconds(void)
{
    w_t w[15];
    const char *names[15] = { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o" };
    for (int i = 0; i < 15; i++) w[i] = (w_t){ names[i], 1000 * i, 1000 * (i + 1) };
    cue_t *c;
    const int n = cut("a b c d e f g h i j k l m n o", w, 15, &c);
    CHECK_INT_EQ(n, 3); /* 7 words of 1 s, 7 more, 1 */
    CHECK_STR_EQ(c[0].text, "a b c d e f g");
    CHECK_NEAR(c[0].end - c[0].start, 7.0, 1e-9, 0);
    CHECK_STR_EQ(c[2].text, "o");
    cues_free(c, n);
}

static void test_characters(void)
{
    /* nine-letter words: 8 make 79 characters (two lines), a ninth would make 89 > 84 */
    w_t w[10];
    char text[128] = "", words[10][10];
    for (int i = 0; i < 10; i++) {
        memset(words[i], 'a' + i, 9);
        words[i][9] = '\0';
        w[i] = (w_t){ words[i], 100 * i, 100 * i + 50 };
        if (i) strcat(text, " ");
        strcat(text, words[i]);
    }
    cue_t *c;
    const int n = cut(text, w, 10, &c);
    CHECK_INT_EQ(n, 2);
    CHECK_STR_EQ(c[0].text, "aaaaaaaaa bbbbbbbbb ccccccccc ddddddddd\neeeeeeeee fffffffff ggggggggg hhhhhhhhh");
    CHECK_STR_EQ(c[1].text, "iiiiiiiii jjjjjjjjj");
    cues_free(c, n);
    /* 42 characters stay one line, 43 wrap */
    const w_t a[] = { { "aaaaaaaaaaaaaaaaaaaa", 0, 100 }, { "bbbbbbbbbbbbbbbbbbbbb", 100, 200 } };
    CHECK_INT_EQ(cut("aaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbb", a, 2, &c), 1);
    CHECK_STR_EQ(c[0].text, "aaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbb");
    cues_free(c, 1);
    const w_t b[] = { { "aaaaaaaaaaaaaaaaaaaa", 0, 100 }, { "bbbbbbbbbbbbbbbbbbbbbb", 100, 200 } };
    CHECK_INT_EQ(cut("aaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbb", b, 2, &c), 1);
    CHECK_STR_EQ(c[0].text, "aaaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbbbbb");
    cues_free(c, 1);
}

static void test_cjk_wrap_and_fallback(void)
{
    /* 44 ideographs without spaces: wrapped before the 23rd */
    w_t w[44];
    char text[44 * 3 + 1] = "", ch[44][4];
    for (int i = 0; i < 44; i++) {
        snprintf(ch[i], sizeof ch[i], "\u4e00");
        ch[i][2] = (char)(0x80 + i); /* U+4E00 + i */
        w[i] = (w_t){ ch[i], 10 * i, 10 * i + 10 };
        strcat(text, ch[i]);
    }
    cue_t *c;
    CHECK_INT_EQ(cut(text, w, 44, &c), 1);
    const char *nl = strchr(c[0].text, '\n');
    CHECK(nl && nl - c[0].text == 22 * 3);
    cues_free(c, 1);
    /* words not found in the text in order: the words themselves */
    const w_t x[] = { { "zwei", 0, 100 }, { "eins", 100, 200 } };
    CHECK_INT_EQ(cut("eins zwei", x, 2, &c), 1);
    CHECK_STR_EQ(c[0].text, "zwei eins");
    cues_free(c, 1);
    CHECK_INT_EQ(cut("nothing", x, 0, &c), 0);
}

/* Found by tests/fuzz/fuzz_cues.c (regressions/cues). */
static void test_lines_fit(void)
{
    /* 30 + 30 + 22 letters: 84 characters, but no space leaves two lines of 42: the third word
     * starts a cue (it made a line of 53) */
    char a30[31], b30[31], c22[23], text[128];
    memset(a30, 'a', 30), a30[30] = '\0';
    memset(b30, 'b', 30), b30[30] = '\0';
    memset(c22, 'c', 22), c22[22] = '\0';
    snprintf(text, sizeof text, "%s %s %s", a30, b30, c22);
    const w_t w[] = { { a30, 0, 100 }, { b30, 100, 200 }, { c22, 200, 300 } };
    cue_t *c;
    CHECK_INT_EQ(cut(text, w, 3, &c), 2);
    CHECK(strchr(c[0].text, '\n') && strchr(c[0].text, '\n') - c[0].text == 30);
    CHECK_STR_EQ(c[1].text, c22);
    cues_free(c, 2);
    /* 50 ideographs and " OK": broken between ideographs, not at the space (a line of 50) */
    w_t z[51];
    char zh[50 * 3 + 4] = "", ch[50][4];
    for (int i = 0; i < 50; i++) {
        snprintf(ch[i], sizeof ch[i], "\u4e00");
        ch[i][2] = (char)(0x80 + i);
        z[i] = (w_t){ ch[i], 10 * i, 10 * i + 10 };
        strcat(zh, ch[i]);
    }
    strcat(zh, " OK");
    z[50] = (w_t){ "OK", 500, 600 };
    CHECK_INT_EQ(cut(zh, z, 51, &c), 1);
    const char *nl = strchr(c[0].text, '\n');
    CHECK(nl && nl - c[0].text == 26 * 3 && !strcmp(nl + 1 + 24 * 3, " OK"));
    cues_free(c, 1);
}

static void test_piece_past_its_end(void)
{
    /* a piece's last word placed at 399.92 s, past the piece's end (180 s), over the next
     * piece's first word at 180.1 s: shown at that word's start, the cues in time order */
    const w_t w[] = { { "One", 0, 300 }, { "Two", 179000, 399920 }, { "Three", 180100, 180400 } };
    cue_t *c;
    const int n = cut("One. Two. Three.", w, 3, &c);
    CHECK_INT_EQ(n, 3);
    CHECK_NEAR(c[1].start, 179.0, 1e-9, 0);
    CHECK_NEAR(c[1].end, 180.1, 1e-9, 0);
    CHECK_NEAR(c[2].start, 180.1, 1e-9, 0);
    const w_t x[] = { { "One", 0, 300 }, { "Two", 399920, 399920 }, { "Three", 180100, 180400 } };
    cues_free(c, n);
    CHECK_INT_EQ(cut("One. Two. Three.", x, 3, &c), 3);
    CHECK_NEAR(c[1].start, 180.1, 1e-9, 0);
    CHECK_NEAR(c[1].end, 180.1, 1e-9, 0);
    CHECK(c[0].end <= c[1].start && c[1].start <= c[2].start);
    cues_free(c, 3);
}

int main(void)
{
    test_sentences_and_min_duration();
    test_pause();
    test_seven_seconds();
    test_characters();
    test_cjk_wrap_and_fallback();
    test_lines_fit();
    test_piece_past_its_end();
    return test_result("test_cues");
}
