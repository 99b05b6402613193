/* host/model/config.c: config_parse on the input as config.json. Properties: a failure leaves a
 * message naming the file; an accepted config satisfies every relation the engine relies on
 * (the derived sizes stay positive and the audio token counts grow with the frames). */
#include "fuzz.h"

#include <limits.h>

#include "config.h"
#include "util.h"

static int by_value(const void *a, const void *b)
{
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = fuzz_strndup(data, size);
    model_config_t c;
    if (config_parse(&c, json, "config.json") != 0) {
        FUZZ_CHECK(strncmp(qasr_last_error(), "config.json: ", 13) == 0);
        free(json);
        return 0;
    }
    free(json);
    const int sizes[] = { c.n_mels, c.enc_d, c.enc_layers, c.enc_heads, c.enc_head_dim, c.enc_ffn,
                          c.enc_out, c.conv_ch, c.n_window, c.n_window_infer, c.max_source_positions,
                          c.vocab, c.dec_hidden, c.dec_inter, c.dec_layers, c.dec_heads,
                          c.dec_kv_heads, c.dec_head_dim, c.max_positions };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) FUZZ_CHECK(sizes[i] >= 1);
    FUZZ_CHECK(c.enc_head_dim * c.enc_heads == c.enc_d && c.enc_d % 2 == 0);
    FUZZ_CHECK(c.enc_out == c.dec_hidden && c.dec_heads % c.dec_kv_heads == 0 && c.dec_head_dim % 2 == 0);
    FUZZ_CHECK(c.rms_eps > 0 && c.rope_theta > 0);
    FUZZ_CHECK(c.audio_token_id >= 0 && c.audio_token_id < c.vocab);
    FUZZ_CHECK(c.audio_start_token_id >= 0 && c.audio_start_token_id < c.vocab);
    FUZZ_CHECK(c.audio_end_token_id >= 0 && c.audio_end_token_id < c.vocab);
    FUZZ_CHECK(c.n_languages >= 0 && c.n_languages <= QASR_MAX_LANGUAGES);
    for (int i = 0; i < c.n_languages; i++)
        FUZZ_CHECK(c.languages[i][0] && memchr(c.languages[i], '\0', sizeof c.languages[i]));

    const int chunk = config_conv_chunk(&c), per_chunk = config_tokens_per_chunk(&c);
    FUZZ_CHECK(chunk >= 2 && per_chunk >= 1 && per_chunk <= c.max_source_positions);
    FUZZ_CHECK(config_enc_window(&c) >= per_chunk);
    FUZZ_CHECK(config_conv_out_freq(&c) >= 1);
    int frames[] = { 0, 1, chunk - 1, chunk, chunk < INT_MAX ? chunk + 1 : chunk, 3000, INT_MAX / 2, INT_MAX };
    const size_t n = sizeof frames / sizeof frames[0];
    qsort(frames, n, sizeof frames[0], by_value);
    for (size_t i = 0, prev = 0; i < n; i++) {
        const int t = config_audio_tokens(&c, frames[i]);
        FUZZ_CHECK(t >= 0 && (size_t)t >= prev && t <= frames[i]);
        prev = (size_t)t;
    }
    return 0;
}
