/* A file split into segments is one result: the segments' texts and languages joined. */
#ifndef QASR_JOIN_H
#define QASR_JOIN_H

/* Texts in order, NULL and empty ones skipped, with a space between two texts unless one is
 * already there or the boundary touches a script written without spaces (CJK, kana, Thai), as
 * the official joiner does for them. Malloc'd. */
char *join_texts(const char *const *texts, int n);

/* Languages, empty ones and consecutive repeats dropped, joined with ",". Malloc'd. */
char *join_languages(const char *const *languages, int n);

#endif
