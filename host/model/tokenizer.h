/* Byte-level BPE tokenizer (Qwen2 family) read from a checkpoint directory.
 *
 * Files: vocab.json (token string -> id), merges.txt (ranked merges, optional "#version" line),
 * tokenizer_config.json ("added_tokens_decoder": id -> {content, special, ...}).
 * Encoding (spec 2.3): NFC normalisation; added tokens are matched as whole strings first and
 * split the text into segments; each segment is pre-tokenized with the Qwen2 regex, mapped
 * through the GPT-2 bytes-to-unicode table and BPE-merged by rank.
 * Decoding: ids -> token strings; added tokens marked special are dropped when skip_special is
 * set, non-special added tokens (e.g. "<asr_text>") are kept literally; byte-level strings are
 * mapped back to bytes; invalid UTF-8 becomes U+FFFD. Ids with no entry decode to nothing. */
#ifndef QASR_TOKENIZER_H
#define QASR_TOKENIZER_H

typedef struct tokenizer tokenizer_t;

/* NULL + qasr_fail() message (naming the file and the problem) on error. */
tokenizer_t *tokenizer_load(const char *dir);
void tokenizer_free(tokenizer_t *t);

/* Id of an exact token string: an added token's content or a vocab.json key
 * (byte-level form, e.g. "Ġthe"); -1 if absent. */
int tokenizer_token_id(const tokenizer_t *t, const char *token);
/* 1 if id is an added token with special = true. */
int tokenizer_is_special(const tokenizer_t *t, int id);
/* One past the largest id known to the tokenizer (vocab + added tokens). */
int tokenizer_n_ids(const tokenizer_t *t);

/* Encode UTF-8 text. Returns the number of ids and sets *ids (malloc'd, caller frees);
 * -1 + qasr_fail() if the text cannot be encoded (invalid UTF-8, or a byte with no vocab entry). */
int tokenizer_encode(const tokenizer_t *t, const char *text, int **ids);

/* Decode ids to a malloc'd NUL-terminated UTF-8 string (caller frees). */
char *tokenizer_decode(const tokenizer_t *t, const int *ids, int n, int skip_special);

#endif
