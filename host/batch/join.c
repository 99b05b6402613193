#include "join.h"

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "audio.h"
#include "cues.h"
#include "utf8.h"
#include "util.h"

static int spaceless_script(uint32_t c)
{
    return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF00 && c <= 0xFFEF) ||
           (c >= 0x0E00 && c <= 0x0E7F) || (c >= 0x20000 && c <= 0x3FFFF);
}

char *join_texts(const char *const *texts, int n_texts)
{
    size_t cap = 1;
    for (int i = 0; i < n_texts; i++) cap += strlen(texts[i] ? texts[i] : "") + 1;
    char *out = xmalloc(cap);
    size_t n = 0;
    for (int i = 0; i < n_texts; i++) {
        const char *t = texts[i];
        if (!t || !*t) continue;
        if (n > 0 && !spaceless_script(utf8_last(out, n)) && !spaceless_script(utf8_first(t)) && out[n - 1] != ' ' &&
            t[0] != ' ')
            out[n++] = ' ';
        memcpy(out + n, t, strlen(t));
        n += strlen(t);
    }
    out[n] = '\0';
    return out;
}

char *join_languages(const char *const *languages, int n)
{
    size_t cap = 1;
    for (int i = 0; i < n; i++) cap += strlen(languages[i] ? languages[i] : "") + 1;
    char *out = xcalloc(cap, 1);
    const char *prev = "";
    for (int i = 0; i < n; i++) {
        const char *l = languages[i];
        if (!l || !*l || !strcmp(l, prev)) continue;
        if (*out) strcat(out, ",");
        strcat(out, l);
        prev = l;
    }
    return out;
}

char *join_first_error(const qasr_result_t *seg, const int64_t *bounds, int n_seg)
{
    for (int i = 0; i < n_seg; i++)
        if (seg[i].error) {
            char msg[QASR_ERR_LEN];
            if (n_seg > 1)
                snprintf(msg, sizeof msg, "segment %d (%.1f-%.1f s): %s", i + 1, (double)bounds[i] / QASR_SAMPLE_RATE,
                         (double)bounds[i + 1] / QASR_SAMPLE_RATE, seg[i].error);
            else
                snprintf(msg, sizeof msg, "%s", seg[i].error);
            return xstrdup(msg);
        }
    return NULL;
}

qasr_result_t join_results(qasr_result_t *seg, const int64_t *bounds, int n_seg)
{
    if (n_seg == 1) {
        const qasr_result_t r = seg[0];
        memset(&seg[0], 0, sizeof seg[0]);
        return r;
    }
    qasr_result_t r = { .audio_seconds = (double)bounds[n_seg] / QASR_SAMPLE_RATE,
                        .error = join_first_error(seg, bounds, n_seg) };
    if (!r.error) {
        const char **texts = xmalloc(sizeof *texts * (size_t)n_seg), **langs = xmalloc(sizeof *langs * (size_t)n_seg);
        size_t raw_len = 1;
        for (int i = 0; i < n_seg; i++) {
            texts[i] = seg[i].text, langs[i] = seg[i].language;
            raw_len += strlen(seg[i].raw);
            r.n_tokens += seg[i].n_tokens;
            r.truncated |= seg[i].truncated;
        }
        r.text = join_texts(texts, n_seg);
        r.language = join_languages(langs, n_seg);
        r.raw = xcalloc(raw_len, 1);
        r.token_ids = xmalloc(sizeof *r.token_ids * (size_t)MAX(1, r.n_tokens));
        for (int i = 0, k = 0; i < n_seg; k += seg[i++].n_tokens) {
            strcat(r.raw, seg[i].raw);
            memcpy(r.token_ids + k, seg[i].token_ids, sizeof *r.token_ids * (size_t)seg[i].n_tokens);
        }
        r.words = cues_file_words(seg, bounds, n_seg, &r.n_words); /* takes the words' strings */
        for (int i = 0; i < n_seg; i++) seg[i].n_words = 0;
        free(texts);
        free(langs);
    }
    for (int i = 0; i < n_seg; i++) {
        r.total_seconds = MAX(r.total_seconds, seg[i].total_seconds);
        qasr_result_free(&seg[i]);
    }
    return r;
}
