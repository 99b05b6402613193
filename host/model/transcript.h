/* Turning the decoded string into (language, text): the official parse_asr_output
 * (spec section 9.2), including its repetition clean-up. */
#ifndef QASR_TRANSCRIPT_H
#define QASR_TRANSCRIPT_H

/* Official repetition clean-up with threshold 20 (spec 9.2 step 2). Returns malloc'd string. */
char *transcript_fix_repetitions(const char *s);

/* Parse the raw decoded string. forced_language: the language the prompt forced, or NULL.
 * *language and *text are malloc'd (caller frees); language is "" when unknown/none. */
void transcript_parse(const char *raw, const char *forced_language, char **language, char **text);

/* Normalise a language name to first-letter-upper, rest-lower ("english" -> "English"),
 * ASCII only. Returns malloc'd string. */
char *transcript_normalize_language(const char *name);

#endif
