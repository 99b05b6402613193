/* Minimal test harness: CHECK records a failure and continues; main returns test_result(). */
#ifndef QASR_TEST_H
#define QASR_TEST_H

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        test_checks++;                                                                     \
        if (!(cond)) {                                                                     \
            test_failures++;                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                                  \
    } while (0)

#define CHECK_INT_EQ(a, b)                                                                 \
    do {                                                                                   \
        long long a_ = (long long)(a), b_ = (long long)(b);                                \
        test_checks++;                                                                     \
        if (a_ != b_) {                                                                    \
            test_failures++;                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld)\n", __FILE__,    \
                    __LINE__, #a, #b, a_, b_);                                             \
        }                                                                                  \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                 \
    do {                                                                                   \
        const char *a_ = (a), *b_ = (b);                                                   \
        test_checks++;                                                                     \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                           \
            test_failures++;                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (\"%s\" vs \"%s\")\n", __FILE__, \
                    __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");             \
        }                                                                                  \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_NEAR(a, b, atol, rtol)                                                       \
    do {                                                                                   \
        double a_ = (double)(a), b_ = (double)(b);                                         \
        test_checks++;                                                                     \
        if (!(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_))) {                              \
            test_failures++;                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s ~= %s (%.9g vs %.9g)\n", __FILE__,    \
                    __LINE__, #a, #b, a_, b_);                                             \
        }                                                                                  \
    } while (0)

/* Scratch files. A test that cannot create its directory or write its input cannot run: these
 * exit(1) with the path rather than count a failed check. */

/* mkdir -p dir */
static inline void test_mkdir_p(const char *dir)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(buf, 0755);
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", buf, strerror(errno));
        exit(1);
    }
}

/* $QASR_TEST_TMP/name (ctest sets the variable; /tmp/qasr_test when run by hand), created. The
 * path is in a static buffer: call once per test. */
static inline const char *test_tmp_dir(const char *name)
{
    static char dir[4096];
    const char *root = getenv("QASR_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/%s", root && root[0] ? root : "/tmp/qasr_test", name);
    test_mkdir_p(dir);
    return dir;
}

/* path := the n bytes at bytes */
static inline void test_write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

static inline int test_result(const char *name)
{
    if (test_checks == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    if (test_failures) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, test_failures, test_checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, test_checks);
    return 0;
}

#endif
