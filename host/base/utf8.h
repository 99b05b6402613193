/* UTF-8: the one decoder and encoder of the project, and the repair of text that leaves the
 * program as JSON. Paths are bytes and stay bytes; ids, transcripts and messages written to
 * results.jsonl must be valid UTF-8, so invalid sequences become U+FFFD. "Valid" is Unicode's:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
#ifndef QASR_UTF8_H
#define QASR_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The sequence at s (n > 0 bytes available): its length (1..4) with *cp its code point, or,
 * when s does not start a valid sequence, minus the length of its maximal invalid subpart (what
 * Python's errors="replace" and Rust's from_utf8_lossy turn into one U+FFFD; *cp untouched). */
int utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Write code point cp (a Unicode scalar value) at out; returns its length (1..4). */
int utf8_encode(uint32_t cp, char *out);

/* 1 if the len bytes at s are valid UTF-8. */
int utf8_valid(const char *s, size_t len);

/* The length of the longest valid UTF-8 prefix of the len bytes at s (len if all are valid). */
size_t utf8_valid_prefix(const char *s, size_t len);

/* Copy of s with each byte that does not start a valid sequence replaced by U+FFFD
 * (so "\xe2\x82" becomes two U+FFFD). Malloc'd, NUL-terminated; *out_len (optional) gets its length. */
char *utf8_sanitize(const char *s, size_t len, size_t *out_len);

/* Copy of the NUL-terminated s safe to print on a terminal: control characters (C0, DEL and
 * C1, which can move the cursor, retitle the window or clear the screen) written as \xNN or
 * \u00NN, a backslash as itself; other bytes as they are. Malloc'd. */
char *utf8_printable(const char *s);

/* First code point of the NUL-terminated s, and last of the n > 0 bytes at s (U+FFFD where the
 * bytes there are not valid UTF-8). */
uint32_t utf8_first(const char *s);
uint32_t utf8_last(const char *s, size_t n);

#endif
