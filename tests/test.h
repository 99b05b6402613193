/* Minimal test harness: CHECK records a failure and continues; main returns test_result(). */
#ifndef QASR_TEST_H
#define QASR_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

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
