#include "prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int find(const tokenizer_t *tok, const char *name, int *id)
{
    *id = tokenizer_token_id(tok, name);
    if (*id < 0) return qasr_fail("the tokenizer has no %s token (tokenizer_config.json)", name);
    return 0;
}

int special_ids_load(special_ids_t *s, const tokenizer_t *tok, const model_config_t *cfg)
{
    if (find(tok, "<|im_start|>", &s->im_start) || find(tok, "<|im_end|>", &s->im_end) ||
        find(tok, "<|endoftext|>", &s->endoftext) || find(tok, "<|audio_start|>", &s->audio_start) ||
        find(tok, "<|audio_end|>", &s->audio_end) || find(tok, "<|audio_pad|>", &s->audio_pad) ||
        find(tok, "<asr_text>", &s->asr_text))
        return -1;
    const struct { const char *key; int cfg, tok; } pairs[] = {
        { "audio_token_id", cfg->audio_token_id, s->audio_pad },
        { "audio_start_token_id", cfg->audio_start_token_id, s->audio_start },
        { "audio_end_token_id", cfg->audio_end_token_id, s->audio_end },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (pairs[i].cfg != pairs[i].tok)
            return qasr_fail("config.json %s is %d but the tokenizer gives %d: the files come from "
                             "different checkpoints", pairs[i].key, pairs[i].cfg, pairs[i].tok);
    if (s->im_end >= cfg->vocab || s->endoftext >= cfg->vocab || s->audio_pad >= cfg->vocab)
        return qasr_fail("special token ids exceed config.json vocab_size %d", cfg->vocab);
    return 0;
}

static int encode_append(const tokenizer_t *tok, const char *text, int **ids, int *n)
{
    int *part = NULL;
    int k = tokenizer_encode(tok, text, &part);
    if (k < 0) return -1;
    *ids = xrealloc(*ids, (*n + k) * sizeof(int));
    memcpy(*ids + *n, part, k * sizeof(int));
    *n += k;
    free(part);
    return 0;
}

int prompt_build(prompt_t *p, const tokenizer_t *tok, const special_ids_t *sp, int n_audio,
                 const char *context, const char *language)
{
    memset(p, 0, sizeof *p);
    const char *ctx = context ? context : "";
    size_t cap = strlen(ctx) + 128;
    char *head = xmalloc(cap);
    snprintf(head, cap, "<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n<|audio_start|>", ctx);
    int rc = encode_append(tok, head, &p->ids, &p->n);
    free(head);
    if (rc != 0) return qasr_fail_prefix("cannot tokenize the context");
    p->audio_at = p->n;
    p->n_audio = n_audio;
    p->ids = xrealloc(p->ids, (p->n + n_audio) * sizeof(int));
    for (int i = 0; i < n_audio; i++) p->ids[p->n++] = sp->audio_pad;
    char tail[160];
    snprintf(tail, sizeof tail, "<|audio_end|><|im_end|>\n<|im_start|>assistant\n%s%s%s",
             language ? "language " : "", language ? language : "", language ? "<asr_text>" : "");
    if (encode_append(tok, tail, &p->ids, &p->n) != 0) {
        prompt_free(p);
        return qasr_fail_prefix("cannot tokenize the prompt");
    }
    return 0;
}

void prompt_free(prompt_t *p)
{
    free(p->ids);
    memset(p, 0, sizeof *p);
}
