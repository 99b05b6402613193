/* join_results (join.h): a cut file's pieces as one result. Apart from join.c, which the fuzz
 * build compiles without the engine that frees results. */
#include "join.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "cues.h"
#include "util.h"

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
        size_t at = 0;
        for (int i = 0, k = 0; i < n_seg; k += seg[i++].n_tokens) {
            const size_t len = strlen(seg[i].raw);
            memcpy(r.raw + at, seg[i].raw, len);
            at += len;
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
