/* UTF-8 validation and U+FFFD replacement on top of utf8proc_iterate (see utf8.h). */
#include "utf8.h"

#include "util.h"

#include <string.h>
#include <utf8proc.h>

/* Length of the valid sequence at s (at most len bytes), or 0 if s does not start one. */
static size_t seq_len(const char *s, size_t len)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &cp);
    return n > 0 ? (size_t)n : 0;
}

int utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = seq_len(s + i, len - i);
        if (!n) return 0;
        i += n;
    }
    return 1;
}

char *utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
    char *out = xmalloc(3 * len + 1), *o = out; /* U+FFFD is 3 bytes: the worst case */
    for (size_t i = 0; i < len;) {
        size_t n = (unsigned char)s[i] < 0x80 ? 1 : seq_len(s + i, len - i);
        if (n) {
            memcpy(o, s + i, n);
            o += n;
            i += n;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    *o = '\0';
    if (out_len) *out_len = (size_t)(o - out);
    return out;
}
