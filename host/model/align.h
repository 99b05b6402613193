/* Qwen3-ForcedAligner's text and time rules (spec qwen3-forced-aligner.md sections 5, 6 and 8):
 * the transcript cut into the words that get times, the aligner's input ids with two
 * <timestamp> slots after each word, and the slot classes turned into monotonic times. */
#ifndef QASR_ALIGN_H
#define QASR_ALIGN_H

#include "tokenizer.h"

typedef struct {
    char **words; /* [n] cleaned words, malloc'd UTF-8 */
    int n;
} align_words_t;

/* Spec section 5: the language (any case) picks the splitter: "japanese" -> NFKC then the
 * default splitter (the official code uses nagisa's segmenter: see README), "korean" -> the
 * official dictionary prefix split, anything else (also "" or NULL) -> whitespace, then every
 * CJK ideograph a word of its own. Characters other than letters, digits and ' are deleted.
 * -1 + qasr_fail() only when text is not valid UTF-8. */
int align_split_words(const char *text, const char *language, align_words_t *out);
void align_words_free(align_words_t *w);

/* Where each of the n words came from in text (the transcript they were split from, or one
 * that contains them in order with other text between): spans[k] = byte range [start, end) from
 * the word's first to its last character. Cleaning only deletes characters, so a word's
 * characters appear in text in order with only deleted ones (not letters, digits or ')
 * between them. 0, or -1 when a word is not found so (e.g. Japanese words, NFKC-normalised). */
int align_word_spans(const char *text, char *const *words, int n, int (*spans)[2]);

typedef struct {
    int audio_start, audio_pad, audio_end, timestamp;
} align_ids_t;

typedef struct {
    int *ids;   /* [n] */
    int n;
    int audio_at, n_audio; /* <|audio_pad|> rows: [audio_at, audio_at + n_audio) */
    int *slots; /* [n_slots] row of each <timestamp>: 2 per word, 2 when there is no word */
    int n_slots;
} align_prompt_t;

/* Spec section 6: <|audio_start|> <|audio_pad|> x n_audio <|audio_end|>, then each word's BPE
 * ids (the word alone: no leading space) and two <timestamp>; two <timestamp> when w has no
 * word. -1 + qasr_fail() if a word cannot be tokenized. */
int align_prompt_build(align_prompt_t *p, const tokenizer_t *tok, const align_ids_t *ids, int n_audio,
                       const align_words_t *w);
void align_prompt_free(align_prompt_t *p);

/* Spec section 8.2, the official fix_timestamp exactly: keep one longest non-decreasing
 * subsequence of t[0..n-1] (earliest predecessor, earliest end), fill the other runs from
 * their kept neighbours (nearest for runs of <= 2, ties left; linear steps for longer runs, in
 * double without fused multiply-add), truncate to integers into out[0..n-1]. */
void align_repair(const double *t, int n, int *out);

#endif
