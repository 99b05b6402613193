/* Joining a long file's segment texts and languages (batch/join.c), and the UTF-8 module's
 * first/last code points it relies on. */
#include <stdlib.h>

#include "join.h"
#include "test.h"
#include "utf8.h"

static void check_join(const char *want, int n, const char *const *texts)
{
    char *got = join_texts(texts, n);
    CHECK_STR_EQ(got, want);
    free(got);
}

int main(void)
{
    check_join("hello world", 2, (const char *[]){ "hello", "world" });
    check_join("hello world", 2, (const char *[]){ "hello ", "world" }); /* a space already there */
    check_join("hello world", 2, (const char *[]){ "hello", " world" });
    check_join("a b", 4, (const char *[]){ NULL, "a", "", "b" });      /* empty and missing skipped */
    check_join("", 0, (const char *[]){ NULL });
    check_join("你好世界", 2, (const char *[]){ "你好", "世界" });     /* CJK: no space */
    check_join("こんにちはworld", 2, (const char *[]){ "こんにちは", "world" }); /* kana on one side: none either */
    check_join("สวัสดีครับ", 2, (const char *[]){ "สวัสดี", "ครับ" }); /* Thai */
    check_join("café olé", 2, (const char *[]){ "café", "olé" });       /* Latin with accents: a space */
    check_join("x\xff y", 2, (const char *[]){ "x\xff", "y" });          /* invalid UTF-8 at the edge: U+FFFD, a space */

    char *l = join_languages((const char *[]){ "English", "English", "", NULL, "German", "English" }, 6);
    CHECK_STR_EQ(l, "English,German,English");
    free(l);

    CHECK_INT_EQ(utf8_first("é!"), 0xE9);
    CHECK_INT_EQ(utf8_first(""), 0xFFFD);
    CHECK_INT_EQ(utf8_last("a世", 4), 0x4E16);
    CHECK_INT_EQ(utf8_last("a\xe4\xb8", 3), 0xFFFD); /* a cut sequence */
    uint32_t cp = 0;
    CHECK_INT_EQ(utf8_decode("\xf0\x9f\x98\x80", 4, &cp), 4);
    CHECK_INT_EQ(cp, 0x1F600);
    CHECK_INT_EQ(utf8_decode("\xe2\x82", 2, &cp), -2);   /* maximal invalid subpart: 2 bytes */
    CHECK_INT_EQ(utf8_decode("\xed\xa0\x80", 3, &cp), -1); /* a surrogate */
    CHECK_INT_EQ(utf8_decode("\xc0\xaf", 2, &cp), -1);    /* overlong */
    char buf[4];
    CHECK_INT_EQ(utf8_encode(0x1F600, buf), 4);
    CHECK(!memcmp(buf, "\xf0\x9f\x98\x80", 4));
    return test_result("test_join");
}
