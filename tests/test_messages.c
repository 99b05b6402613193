/* Messages: a long one keeps its reason, control characters never reach a terminal raw, JSONL
 * lines with a \u0000 escape are refused. */
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "test.h"
#include "utf8.h"
#include "util.h"

static void test_long_message(void)
{
    /* a path longer than the buffer: the start and the reason at the end both survive */
    const size_t n = 3 * QASR_ERR_LEN;
    char *path = xmalloc(n + 1);
    memset(path, 'd', n);
    memcpy(path, "/data/", 6);
    path[n] = '\0';
    qasr_fail("%s: %s", path, "No such file or directory");
    const char *e = qasr_last_error();
    CHECK(strlen(e) == QASR_ERR_LEN - 1);
    CHECK(strncmp(e, "/data/ddd", 9) == 0);
    CHECK(strstr(e, " [...] ") != NULL);
    CHECK(strstr(e, "ddd: No such file or directory") == e + strlen(e) - 30);
    /* a prefix added to a long message keeps both ends too */
    qasr_fail_prefix("cannot load the model in %s", "/m");
    e = qasr_last_error();
    CHECK(strncmp(e, "cannot load the model in /m: /data/", 35) == 0);
    CHECK(strstr(e, "No such file or directory") != NULL);
    /* short ones are untouched */
    qasr_fail("%s: %d", "short", 7);
    CHECK_STR_EQ(qasr_last_error(), "short: 7");
    qasr_fail_prefix("ctx");
    CHECK_STR_EQ(qasr_last_error(), "ctx: short: 7");
    free(path);
}

static void test_printable(void)
{
    char *s;
    CHECK_STR_EQ(s = utf8_printable("a\x1b[2Jb\tc\x7f"), "a\\x1b[2Jb\\x09c\\x7f");
    free(s);
    CHECK_STR_EQ(s = utf8_printable("caf\xc3\xa9 \xe4\xb8\x96 \xc2\x9b"), "caf\xc3\xa9 \xe4\xb8\x96 \\u009b"); /* C1 CSI */
    free(s);
    CHECK_STR_EQ(s = utf8_printable("bad \xff byte"), "bad \xff byte"); /* bytes stay bytes */
    free(s);
    CHECK_STR_EQ(s = utf8_printable(""), "");
    free(s);
}

static void test_jsonl(void)
{
    CHECK(jsonl_has_nul_escape("{\"a\": \"x\\u0000y\"}", 17));
    CHECK(!jsonl_has_nul_escape("{\"a\": \"x\\\\u0000y\"}", 18)); /* an escaped backslash, then text */
    CHECK(jsonl_has_nul_escape("{\"a\": \"\\\\\\u0000\"}", 16));  /* backslash, then a NUL */
    CHECK(!jsonl_has_nul_escape("{\"a\": \"\\u00001\"}", 10));     /* cut before the escape ends */
    const char *ok = "{\"id\": \"x\"}  ", *nul = "{\"id\": \"x\\u0000\"}", *arr = "[1]", *trail = "{} x";
    cJSON *j = jsonl_parse_object(ok, strlen(ok));
    CHECK(j != NULL);
    cJSON_Delete(j);
    CHECK(jsonl_parse_object(nul, strlen(nul)) == NULL);
    CHECK(jsonl_parse_object(arr, strlen(arr)) == NULL);
    CHECK((j = jsonl_parse(arr, strlen(arr))) != NULL);
    cJSON_Delete(j);
    CHECK(jsonl_parse(trail, strlen(trail)) == NULL);
}

int main(void)
{
    test_long_message();
    test_printable();
    test_jsonl();
    CHECK_STR_EQ(qasr_program_name(), "qasr");
    qasr_set_program_name("qasr-batch");
    CHECK_STR_EQ(qasr_program_name(), "qasr-batch");
    return test_result("test_messages");
}
