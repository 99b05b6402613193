/* Prompt construction (spec section 7): the qwen-asr chat-template form with the system block
 * always present, one audio item expanded to A <|audio_pad|> tokens, and optionally a forced
 * language after the generation prompt:
 *   <|im_start|>system\n{context}<|im_end|>\n<|im_start|>user\n<|audio_start|>
 *   <|audio_pad|> x A <|audio_end|><|im_end|>\n<|im_start|>assistant\n[language {Name}<asr_text>]
 * Special-token ids are looked up in the tokenizer files by name, never hard-coded. */
#ifndef QASR_PROMPT_H
#define QASR_PROMPT_H

#include "config.h"
#include "tokenizer.h"

typedef struct {
    int im_start, im_end, endoftext, audio_start, audio_end, audio_pad, asr_text;
} special_ids_t;

/* Find the special tokens in the tokenizer and check them against config.json's ids.
 * -1 + qasr_fail() naming the missing token or the mismatch. */
int special_ids_load(special_ids_t *s, const tokenizer_t *tok, const model_config_t *cfg);

typedef struct {
    int *ids;      /* [n] */
    int n;
    int audio_at;  /* index of the first <|audio_pad|> */
    int n_audio;
} prompt_t;

/* context may be NULL or ""; language NULL for automatic detection, else a normalised name.
 * -1 + qasr_fail() if the text cannot be tokenized. */
int prompt_build(prompt_t *p, const tokenizer_t *tok, const special_ids_t *sp, int n_audio,
                 const char *context, const char *language);
void prompt_free(prompt_t *p);

#endif
