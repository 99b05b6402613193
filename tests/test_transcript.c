/* Transcript parsing tests: each rule of spec 9.2, with expectations worked out by hand from the
 * official Python (detect_and_fix_repetitions, parse_asr_output). */
#include "test.h"
#include "transcript.h"
#include "util.h"

#include <stdlib.h>

/* a x na + b x nb + c x nc, malloc'd */
static char *build(const char *a, int na, const char *b, int nb, const char *c, int nc)
{
    const char *parts[3] = { a, b, c };
    int counts[3] = { na, nb, nc };
    size_t len = 0;
    for (int k = 0; k < 3; k++) len += strlen(parts[k]) * (size_t)counts[k];
    char *out = xmalloc(len + 1), *p = out;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < counts[k]; i++) p = stpcpy(p, parts[k]);
    *p = '\0';
    return out;
}

static char *repeat(const char *s, int n) { return build(s, n, "", 0, "", 0); }

static void check_fix(char *input, const char *want, int line)
{
    char *got = transcript_fix_repetitions(input);
    if (strcmp(got, want) != 0) fprintf(stderr, "  line %d: fix_repetitions mismatch\n", line);
    CHECK_STR_EQ(got, want);
    free(got);
    free(input);
}

/* Takes ownership of input (built with build/repeat/xstrdup). */
#define CHECK_FIX(input, want) check_fix(input, want, __LINE__)

static void check_parse(const char *raw, const char *forced, const char *want_lang, const char *want_text,
                        int line)
{
    char *lang = NULL, *text = NULL;
    transcript_parse(raw, forced, &lang, &text);
    if (!lang || !text || strcmp(lang, want_lang) != 0 || strcmp(text, want_text) != 0)
        fprintf(stderr, "  line %d: parse mismatch\n", line);
    CHECK_STR_EQ(lang, want_lang);
    CHECK_STR_EQ(text, want_text);
    free(lang);
    free(text);
}

#define CHECK_PARSE(raw, forced, lang, text) check_parse(raw, forced, lang, text, __LINE__)

static void test_char_runs(void)
{
    CHECK_FIX(xstrdup(""), "");
    CHECK_FIX(xstrdup("hello"), "hello");
    /* more than 20 of one character -> one; exactly 20 stays (and 20 < 40 skips step b) */
    CHECK_FIX(repeat("a", 21), "a");
    CHECK_FIX(repeat("a", 20), "aaaaaaaaaaaaaaaaaaaa");
    CHECK_FIX(build("x", 1, "a", 25, "y", 1), "xay");
    CHECK_FIX(build("-", 30, " ok ", 1, "=", 22), "- ok =");
    /* code points, not bytes: 20 x 3-byte character is 20 characters (60 bytes) and is kept */
    CHECK_FIX(repeat("啊", 21), "啊");
    CHECK_FIX(repeat("啊", 20), "啊啊啊啊啊啊啊啊啊啊啊啊啊啊啊啊啊啊啊啊");
    CHECK_FIX(repeat("😀", 25), "😀");
}

static void test_patterns(void)
{
    /* 20 copies of a 2-character pattern = 40 characters: collapsed; 19 copies: too short */
    CHECK_FIX(repeat("ab", 20), "ab");
    char *want = repeat("ab", 19);
    CHECK_FIX(repeat("ab", 19), want);
    free(want);
    want = build("ab", 19, "xy", 1, "", 0);
    CHECK_FIX(build("ab", 19, "xy", 1, "", 0), want); /* 40 characters, 19 copies */
    free(want);
    /* shortest pattern first: "ab", not "abab" */
    CHECK_FIX(repeat("ab", 40), "ab");
    /* a pattern may start anywhere as long as 40 characters remain */
    CHECK_FIX(build("c", 1, "ab", 20, "", 0), "cab");
    CHECK_FIX(build("Hello. ", 1, "ha", 30, " bye.", 1), "Hello. ha bye.");
    /* after a collapse the rest is cleaned again */
    CHECK_FIX(build("x", 1, "ab", 20, "cd", 20), "xabcd");
    /* a run of exactly 20 survives step a; step b collapses it only while 40 characters remain */
    CHECK_FIX(build("a", 20, "b", 20, "", 0), "abbbbbbbbbbbbbbbbbbbb");
    /* the GitHub issue #129 loop, and a partial last copy */
    CHECK_FIX(repeat("I think. ", 2000), "I think. ");
    CHECK_FIX(build("I think. ", 1999, "I think.", 1, "", 0), "I think. I think.");
    /* 7 CJK characters = 21 bytes: beyond max_len 20 if counted in bytes */
    CHECK_FIX(repeat("我们今天去哪里", 25), "我们今天去哪里");
    /* a 21-character pattern is longer than max_len: kept */
    want = repeat("abcdefghijklmnopqrstu", 25);
    CHECK_FIX(repeat("abcdefghijklmnopqrstu", 25), want);
    free(want);
    /* bytes that are not UTF-8 pass through */
    CHECK_FIX(xstrdup("\xFF\xFE ok \xC3"), "\xFF\xFE ok \xC3");
}

static void test_parse(void)
{
    /* 1: nothing */
    CHECK_PARSE(NULL, NULL, "", "");
    CHECK_PARSE("", NULL, "", "");
    CHECK_PARSE(" \n\t\xE3\x80\x80 ", NULL, "", "");
    CHECK_PARSE("", "English", "", "");
    /* 5, 6: the usual output */
    CHECK_PARSE("language English<asr_text>Hello world.", NULL, "English", "Hello world.");
    CHECK_PARSE("  language english<asr_text>  Hello world.  \n", NULL, "English", "Hello world.");
    CHECK_PARSE("language eNgLiSh<asr_text>x", NULL, "English", "x");
    CHECK_PARSE("language Chinese<asr_text>你好，世界。", NULL, "Chinese", "你好，世界。");
    CHECK_PARSE("language English<asr_text>a<asr_text>b", NULL, "English", "a<asr_text>b");
    /* 5: no speech; "language none" anywhere in the meta part, any case */
    CHECK_PARSE("language None<asr_text>", NULL, "", "");
    CHECK_PARSE("LANGUAGE NONE<asr_text>  something ", NULL, "", "something");
    CHECK_PARSE("language Nonexistent<asr_text>t", NULL, "", "t");
    /* 6: the first non-empty line starting with "language " gives the language */
    CHECK_PARSE("noise\n  Language CHINESE  \n<asr_text>你好", NULL, "Chinese", "你好");
    CHECK_PARSE("language French\nlanguage German<asr_text>x", NULL, "French", "x");
    CHECK_PARSE("junk\xE2\x80\xA8language Korean<asr_text>안녕", NULL, "Korean", "안녕"); /* U+2028 */
    CHECK_PARSE("junk\x1Elanguage Thai<asr_text>x", NULL, "Thai", "x"); /* Python splitlines */
    CHECK_PARSE("junk\r\nlanguage Malay\r<asr_text>x", NULL, "Malay", "x");
    CHECK_PARSE("junk language Dutch<asr_text>x", NULL, "", "x");
    CHECK_PARSE("language <asr_text>x", NULL, "", "x");
    CHECK_PARSE("languages English<asr_text>x", NULL, "", "x");
    CHECK_PARSE("<asr_text>text only", NULL, "", "text only");
    /* Python's strip() whitespace, wider than ASCII (0x1F included) */
    CHECK_PARSE("language English<asr_text>\xE3\x80\x80Hello\xC2\xA0\x1F", NULL, "English", "Hello");
    CHECK_PARSE("language English<asr_text>\xE2\x80\x8BHi", NULL, "English", "\xE2\x80\x8BHi"); /* ZWSP stays */
    /* 4: no tag -> all text, no language */
    CHECK_PARSE("  Hello there ", NULL, "", "Hello there");
    CHECK_PARSE("language English Hello", NULL, "", "language English Hello");
    /* 3: forced language -> everything is text (after strip and clean-up) */
    CHECK_PARSE("language English<asr_text>Hi", "German", "German", "language English<asr_text>Hi");
    CHECK_PARSE("  Bonjour  ", "French", "French", "Bonjour");
    CHECK_PARSE("language English<asr_text>Hi", "", "English", "Hi"); /* "" is not forcing */
    /* 2: clean-up runs on the whole string before the split */
    char *loop = repeat("I think. ", 2000);
    CHECK_PARSE(loop, NULL, "", "I think. I think.");
    char *tagged = build("language English<asr_text>", 1, "I think. ", 2000, "", 0);
    CHECK_PARSE(tagged, NULL, "English", "I think. I think.");
    CHECK_PARSE(tagged, "English", "English", "language English<asr_text>I think. I think.");
    free(tagged);
    free(loop);
    char *run = build("language Japanese<asr_text>", 1, "あ", 50, "", 0);
    CHECK_PARSE(run, NULL, "Japanese", "あ");
    free(run);
}

static void test_normalize_language(void)
{
    static const char *cases[][2] = {
        { "english", "English" }, { "ENGLISH", "English" }, { "eNgLiSh", "English" }, { "e", "E" },
        { "", "" },               { "  german\t", "German" }, { "Chinese", "Chinese" },
        { "ÉNGLISH", "Énglish" },
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char *got = transcript_normalize_language(cases[k][0]);
        CHECK_STR_EQ(got, cases[k][1]);
        free(got);
    }
}

int main(void)
{
    test_char_runs();
    test_patterns();
    test_parse();
    test_normalize_language();
    return test_result("test_transcript");
}
