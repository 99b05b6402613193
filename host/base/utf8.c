/* UTF-8 decoding, encoding and repair (see utf8.h). */
#include "utf8.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

int utf8_decode(const char *str, size_t n, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char b = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    int need;
    if (b < 0x80) {
        *cp = b;
        return 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0) lo = 0xA0; /* overlong */
        if (b == 0xED) hi = 0x9F; /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0) lo = 0x90; /* overlong */
        if (b == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else {
        return -1;
    }
    uint32_t c = b & (0x7Fu >> (need + 1));
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n || s[k] < lo || s[k] > hi) return -k;
        c = c << 6 | (s[k] & 0x3Fu);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = c;
    return need + 1;
}

int utf8_encode(uint32_t c, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | c >> 6);
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | c >> 12);
        o[1] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | c >> 18);
    o[1] = (unsigned char)(0x80 | (c >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

size_t utf8_valid_prefix(const char *s, size_t len)
{
    uint32_t cp;
    size_t i = 0;
    for (int k; i < len && (k = utf8_decode(s + i, len - i, &cp)) > 0;) i += (size_t)k;
    return i;
}

int utf8_valid(const char *s, size_t len) { return utf8_valid_prefix(s, len) == len; }

char *utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
    char *out = xmalloc(3 * len + 1), *o = out; /* U+FFFD is 3 bytes: the worst case */
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        const int k = utf8_decode(s + i, len - i, &cp);
        if (k > 0) {
            memcpy(o, s + i, (size_t)k);
            o += k;
            i += (size_t)k;
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

uint32_t utf8_first(const char *s)
{
    uint32_t cp = 0xFFFD;
    if (*s) utf8_decode(s, strlen(s), &cp);
    return cp;
}

uint32_t utf8_last(const char *s, size_t n)
{
    size_t i = n - 1;
    while (i > 0 && n - i < 4 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    uint32_t cp = 0xFFFD;
    if (utf8_decode(s + i, n - i, &cp) != (int)(n - i)) cp = 0xFFFD;
    return cp;
}

char *utf8_printable(const char *s)
{
    const size_t n = strlen(s);
    char *out = xmalloc(6 * n + 1), *o = out; /* \u00NN for each 2-byte C1 at most triples */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        const int k = utf8_decode(s + i, n - i, &cp);
        if (k > 0 && (cp < 0x20 || cp == 0x7f)) {
            o += sprintf(o, "\\x%02x", (unsigned)cp);
        } else if (k > 0 && cp >= 0x80 && cp < 0xa0) {
            o += sprintf(o, "\\u%04x", (unsigned)cp);
        } else {
            const size_t len = (size_t)(k > 0 ? k : -k);
            memcpy(o, s + i, len);
            o += len;
        }
        i += (size_t)(k > 0 ? k : -k);
    }
    *o = '\0';
    return out;
}
