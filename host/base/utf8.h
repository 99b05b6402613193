/* UTF-8 validity for text that leaves the program as JSON. Paths are bytes and stay bytes; ids,
 * transcripts and messages written to results.jsonl must be valid UTF-8, so invalid sequences
 * become U+FFFD. "Valid" is utf8proc's: no overlong forms, no surrogates, nothing above U+10FFFF. */
#ifndef QASR_UTF8_H
#define QASR_UTF8_H

#include <stddef.h>

/* 1 if the len bytes at s are valid UTF-8. */
int utf8_valid(const char *s, size_t len);

/* Copy of s with each byte that does not start a valid sequence replaced by U+FFFD
 * (so "\xe2\x82" becomes two U+FFFD). Malloc'd, NUL-terminated; *out_len (optional) gets its length. */
char *utf8_sanitize(const char *s, size_t len, size_t *out_len);

#endif
