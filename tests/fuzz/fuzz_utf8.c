/* host/base/utf8.c on arbitrary bytes. Properties: utf8_decode gives a scalar value whose
 * encoding is exactly the bytes read, or the length of an invalid subpart; utf8_valid agrees
 * with utf8proc's decoder; utf8_sanitize's output is valid UTF-8 and equals a valid input;
 * utf8_printable's output holds no C0, DEL or C1 control character. */
#include "fuzz.h"

#include <utf8proc.h>

#include "utf8.h"

/* Valid by utf8proc's decoder: an independent implementation. */
static int reference_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    for (size_t i = 0; i < size; i++) {
        uint32_t cp = 0xFFFFFFFF;
        const int k = utf8_decode(s + i, size - i, &cp);
        FUZZ_CHECK(k != 0 && k >= -3 && k <= 4);
        FUZZ_CHECK((size_t)(k > 0 ? k : -k) <= size - i);
        if (k > 0) {
            FUZZ_CHECK(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF));
            char enc[4];
            FUZZ_CHECK(utf8_encode(cp, enc) == k && memcmp(enc, s + i, (size_t)k) == 0);
        } else {
            FUZZ_CHECK(cp == 0xFFFFFFFF); /* untouched */
        }
    }

    const int valid = utf8_valid(s, size);
    FUZZ_CHECK(valid == reference_valid(s, size));

    size_t n;
    char *clean = utf8_sanitize(s, size, &n);
    FUZZ_CHECK(clean[n] == '\0' && n <= 3 * size);
    FUZZ_CHECK(utf8_valid(clean, n));
    if (valid) FUZZ_CHECK(n == size && memcmp(clean, s, size) == 0);
    free(clean);

    char *str = fuzz_strndup(data, size); /* up to the first NUL */
    char *shown = utf8_printable(str);
    for (const unsigned char *p = (const unsigned char *)shown; *p; p++)
        FUZZ_CHECK(*p >= 0x20 && *p != 0x7f);
    const size_t len = strlen(shown);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        const int k = utf8_decode(shown + i, len - i, &cp);
        FUZZ_CHECK(k < 0 || cp < 0x80 || cp >= 0xa0); /* no C1 control */
        i += (size_t)(k > 0 ? k : -k);
    }
    free(shown);

    const uint32_t first = utf8_first(str);
    FUZZ_CHECK(first <= 0x10FFFF);
    if (size) FUZZ_CHECK(utf8_last(s, size) <= 0x10FFFF);
    free(str);
    return 0;
}
