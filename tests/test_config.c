/* config.json parsing: the published 0.6B file (tests/fixtures/qwen3-asr-0.6b, byte for byte, its
 * layout included), a 1.7B variant, derived sizes, malformed inputs.
 * Expected values are the spec's (section 2.2 tables, 5.5 token counts), not this code's output. */
#include "config.h"
#include "util.h"

#include "test.h"

#include <stdlib.h>

/* Spec 2.2, 1.7B column (only the keys the engine reads, plus the checked strings). */
static const char config_1p7b[] =
    "{\"model_type\": \"qwen3_asr\", \"support_languages\": [\"Chinese\", \"English\"],\n"
    " \"thinker_config\": {\"model_type\": \"qwen3_asr\",\n"
    "  \"audio_token_id\": 151676, \"audio_start_token_id\": 151669, \"audio_end_token_id\": 151670,\n"
    "  \"audio_config\": {\"num_mel_bins\": 128, \"d_model\": 1024, \"encoder_layers\": 24,\n"
    "   \"num_hidden_layers\": 24, \"encoder_attention_heads\": 16, \"encoder_ffn_dim\": 4096,\n"
    "   \"output_dim\": 2048, \"downsample_hidden_size\": 480, \"n_window\": 50,\n"
    "   \"n_window_infer\": 800, \"max_source_positions\": 1500, \"activation_function\": \"gelu\"},\n"
    "  \"text_config\": {\"vocab_size\": 151936, \"hidden_size\": 2048, \"intermediate_size\": 6144,\n"
    "   \"num_hidden_layers\": 28, \"num_attention_heads\": 16, \"num_key_value_heads\": 8,\n"
    "   \"head_dim\": 128, \"hidden_act\": \"silu\", \"rms_norm_eps\": 1e-06,\n"
    "   \"rope_theta\": 1000000, \"tie_word_embeddings\": true,\n"
    "   \"max_position_embeddings\": 65536}}}\n";

static const char origin[] = "variant/config.json";

/* base with its single occurrence of `from` replaced by `to`; malloc'd. */
static char *replaced(const char *base, const char *from, const char *to)
{
    const char *at = strstr(base, from);
    if (!at || strstr(at + 1, from)) {
        fprintf(stderr, "test bug: '%s' must occur exactly once\n", from);
        exit(1);
    }
    size_t pre = (size_t)(at - base), nf = strlen(from), nt = strlen(to);
    char *out = xmalloc(strlen(base) - nf + nt + 1);
    memcpy(out, base, pre);
    memcpy(out + pre, to, nt);
    strcpy(out + pre + nt, at + nf);
    return out;
}

static const char *fixture_dir(void)
{
    const char *d = getenv("QASR_SHARED_FIXTURES");
    return d ? d : "fixtures";
}

/* The fixture's config.json (a published checkpoint's) into c; 0 if it loaded. */
static int load_fixture(const char *name, model_config_t *c)
{
    char *dir = path_join(fixture_dir(), name);
    const int rc = config_load(c, dir);
    free(dir);
    CHECK_INT_EQ(rc, 0);
    if (rc != 0) fprintf(stderr, "config_load: %s\n", qasr_last_error());
    return rc;
}

static void test_real_0p6b(void)
{
    model_config_t c;
    if (load_fixture("qwen3-asr-0.6b", &c) != 0) return;
    CHECK_INT_EQ(c.n_mels, 128);
    CHECK_INT_EQ(c.enc_d, 896);
    CHECK_INT_EQ(c.enc_layers, 18);
    CHECK_INT_EQ(c.enc_heads, 14);
    CHECK_INT_EQ(c.enc_head_dim, 64);
    CHECK_INT_EQ(c.enc_ffn, 3584);
    CHECK_INT_EQ(c.enc_out, 1024);
    CHECK_INT_EQ(c.conv_ch, 480);
    CHECK_INT_EQ(c.n_window, 50);
    CHECK_INT_EQ(c.n_window_infer, 800);
    CHECK_INT_EQ(c.max_source_positions, 1500);
    CHECK_INT_EQ(c.vocab, 151936);
    CHECK_INT_EQ(c.dec_hidden, 1024);
    CHECK_INT_EQ(c.dec_inter, 3072);
    CHECK_INT_EQ(c.dec_layers, 28);
    CHECK_INT_EQ(c.dec_heads, 16);
    CHECK_INT_EQ(c.dec_kv_heads, 8);
    CHECK_INT_EQ(c.dec_head_dim, 128);
    CHECK_INT_EQ(c.max_positions, 65536);
    CHECK(c.rms_eps == 1e-6f);
    CHECK(c.rope_theta == 1000000.0f);
    CHECK_INT_EQ(c.tie_word_embeddings, 1);
    CHECK_INT_EQ(c.audio_token_id, 151676);
    CHECK_INT_EQ(c.audio_start_token_id, 151669);
    CHECK_INT_EQ(c.audio_end_token_id, 151670);
    CHECK_INT_EQ(c.n_languages, 30); /* spec 9.3 */
    CHECK_STR_EQ(c.languages[0], "Chinese");
    CHECK_STR_EQ(c.languages[1], "English");
    CHECK_STR_EQ(c.languages[29], "Macedonian");
    CHECK_INT_EQ(config_conv_chunk(&c), 100);
    CHECK_INT_EQ(config_tokens_per_chunk(&c), 13);
    CHECK_INT_EQ(config_enc_window(&c), 104);
    CHECK_INT_EQ(config_conv_out_freq(&c), 16);
    CHECK_INT_EQ(c.aligner, 0);
    CHECK_INT_EQ(c.head_rows, 151936);
}

/* The published Qwen3-ForcedAligner-0.6B config.json, byte for byte (aligner spec 2.2). */
static void test_real_aligner(void)
{
    model_config_t c;
    if (load_fixture("qwen3-forced-aligner-0.6b", &c) != 0) return;
    CHECK_INT_EQ(c.aligner, 1);
    CHECK_INT_EQ(c.head_rows, 5000);
    CHECK_INT_EQ(c.timestamp_token_id, 151705);
    CHECK_INT_EQ(c.timestamp_ms, 80);
    CHECK_INT_EQ(c.enc_d, 1024);
    CHECK_INT_EQ(c.enc_layers, 24);
    CHECK_INT_EQ(c.enc_heads, 16);
    CHECK_INT_EQ(c.enc_ffn, 4096);
    CHECK_INT_EQ(c.enc_out, 1024);
    CHECK_INT_EQ(c.vocab, 152064);
    CHECK_INT_EQ(c.tie_word_embeddings, 0);
    CHECK_INT_EQ(c.max_positions, 8192);
    CHECK_INT_EQ(c.dec_layers, 28);
    CHECK_INT_EQ(c.dec_hidden, 1024);
    CHECK_INT_EQ(c.audio_token_id, 151676);
    CHECK_INT_EQ(c.n_languages, 11);
}

/* The aligner's own keys, malformed in the published file: named in the message. */
static void test_aligner_malformed(void)
{
    char *dir = path_join(fixture_dir(), "qwen3-forced-aligner-0.6b"), *path = path_join(dir, "config.json");
    char *text = read_text_file(path, NULL);
    free(dir);
    free(path);
    CHECK(text != NULL);
    if (!text) return;
    static const struct {
        const char *from, *to, *want;
    } cases[] = {
        { "\"timestamp_token_id\": 151705", "\"timestamp_token_id\": 999999",
          "timestamp_token_id: 999999 is outside the vocabulary" },
        { "\"timestamp_token_id\": 151705", "\"timestamp_token_id\": \"151705\"", "timestamp_token_id" },
        { "\"timestamp_segment_time\": 80", "\"timestamp_segment_time\": 0", "timestamp_segment_time" },
        { "\"classify_num\": 5000", "\"classify_num\": -1", "thinker_config.classify_num" },
        { "\"classify_num\": 5000", "\"classify_nums\": 5000", "thinker_config.classify_num: missing" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(strstr(text, cases[i].from) != NULL);
        char *bad = replaced(text, cases[i].from, cases[i].to);
        model_config_t c;
        CHECK_INT_EQ(config_parse(&c, bad, "config.json"), -1);
        if (!strstr(qasr_last_error(), cases[i].want))
            fprintf(stderr, "case %zu: message '%s' lacks '%s'\n", i, qasr_last_error(), cases[i].want);
        CHECK(strstr(qasr_last_error(), cases[i].want) != NULL);
        free(bad);
    }
    free(text);
}

static void test_1p7b(void)
{
    model_config_t c;
    int rc = config_parse(&c, config_1p7b, origin);
    CHECK_INT_EQ(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "config_parse: %s\n", qasr_last_error());
        return;
    }
    CHECK_INT_EQ(c.n_mels, 128);
    CHECK_INT_EQ(c.enc_d, 1024);
    CHECK_INT_EQ(c.enc_layers, 24);
    CHECK_INT_EQ(c.enc_heads, 16);
    CHECK_INT_EQ(c.enc_head_dim, 64);
    CHECK_INT_EQ(c.enc_ffn, 4096);
    CHECK_INT_EQ(c.enc_out, 2048);
    CHECK_INT_EQ(c.conv_ch, 480);
    CHECK_INT_EQ(c.vocab, 151936);
    CHECK_INT_EQ(c.dec_hidden, 2048);
    CHECK_INT_EQ(c.dec_inter, 6144);
    CHECK_INT_EQ(c.dec_layers, 28);
    CHECK_INT_EQ(c.dec_heads, 16);
    CHECK_INT_EQ(c.dec_kv_heads, 8);
    CHECK_INT_EQ(c.dec_head_dim, 128);
    CHECK_INT_EQ(c.max_positions, 65536);
    CHECK_INT_EQ(c.tie_word_embeddings, 1);
    CHECK_INT_EQ(c.n_languages, 2);
    CHECK_INT_EQ(config_tokens_per_chunk(&c), 13);
    CHECK_INT_EQ(config_enc_window(&c), 104);
    CHECK_INT_EQ(config_conv_out_freq(&c), 16);
}

/* Defaults and fallbacks for optional keys. */
static void test_optional_keys(void)
{
    model_config_t c;
    /* encoder_layers wins over the num_hidden_layers alias; the alias is used when it is absent. */
    char *s = replaced(config_1p7b, "\"num_hidden_layers\": 24", "\"num_hidden_layers\": 7");
    CHECK_INT_EQ(config_parse(&c, s, origin), 0);
    CHECK_INT_EQ(c.enc_layers, 24);
    free(s);
    s = replaced(config_1p7b, "\"encoder_layers\": 24,", "");
    CHECK_INT_EQ(config_parse(&c, s, origin), 0);
    CHECK_INT_EQ(c.enc_layers, 24);
    free(s);

    /* head_dim absent: hidden_size / num_attention_heads = 1024 / 16 for the 0.6B sizes. */
    char *dir = path_join(fixture_dir(), "qwen3-asr-0.6b");
    char *path = path_join(dir, "config.json");
    char *real = read_text_file(path, NULL);
    CHECK(real != NULL);
    if (real) {
        s = replaced(real, "\"head_dim\": 128,", "");
        CHECK_INT_EQ(config_parse(&c, s, origin), 0);
        CHECK_INT_EQ(c.dec_head_dim, 64);
        free(s);
    }
    free(real);
    free(path);
    free(dir);

    s = replaced(config_1p7b, "\"tie_word_embeddings\": true,", "");
    CHECK_INT_EQ(config_parse(&c, s, origin), 0);
    CHECK_INT_EQ(c.tie_word_embeddings, 1);
    free(s);
    s = replaced(config_1p7b, "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false");
    CHECK_INT_EQ(config_parse(&c, s, origin), 0);
    CHECK_INT_EQ(c.tie_word_embeddings, 0);
    free(s);

    s = replaced(config_1p7b, "\"support_languages\": [\"Chinese\", \"English\"],", "");
    CHECK_INT_EQ(config_parse(&c, s, origin), 0);
    CHECK_INT_EQ(c.n_languages, 0);
    free(s);

    char *t = replaced(config_1p7b, ", \"activation_function\": \"gelu\"", "");
    s = replaced(t, "\"hidden_act\": \"silu\",", "");
    CHECK_INT_EQ(config_parse(&c, s, origin), 0);
    free(s);
    free(t);
}

/* Each malformed variant must fail with a message naming the file and the key. */
static void test_malformed(void)
{
    static const struct {
        const char *from, *to, *want;
    } cases[] = {
        { "\"num_key_value_heads\": 8,", "", "thinker_config.text_config.num_key_value_heads: missing" },
        { "\"d_model\": 1024", "\"d_model\": \"1024\"", "thinker_config.audio_config.d_model" },
        { "\"d_model\": 1024", "\"d_model\": 1024.5", "thinker_config.audio_config.d_model" },
        { "\"rope_theta\": 1000000", "\"rope_theta\": \"1e6\"", "text_config.rope_theta" },
        { "\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 0", "text_config.rms_norm_eps" },
        { "\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 1e-86", "text_config.rms_norm_eps: 1e-86 is too small" },
        { "\"num_key_value_heads\": 8", "\"num_key_value_heads\": 6", "num_key_value_heads" },
        { "\"encoder_attention_heads\": 16", "\"encoder_attention_heads\": 15",
          "audio_config.encoder_attention_heads" },
        { "{\"model_type\": \"qwen3_asr\", \"support",
          "{\"model_type\": \"qwen3_forced_aligner\", \"support",
          "config.json: model_type: \"qwen3_forced_aligner\" belongs in thinker_config" },
        /* an aligner's thinker needs its head size */
        { "{\"model_type\": \"qwen3_asr\",\n", "{\"model_type\": \"qwen3_forced_aligner\",\n",
          "thinker_config.classify_num: missing" },
        { "{\"model_type\": \"qwen3_asr\",\n", "{\"model_type\": \"qwen3_tts\",\n",
          "thinker_config.model_type: expected \"qwen3_asr\"" },
        { "{\"model_type\": \"qwen3_asr\", \"support", "{\"model_type\": \"whisper\", \"support",
          "config.json: model_type: expected \"qwen3_asr\"" },
        { "\"output_dim\": 2048", "\"output_dim\": 1024", "audio_config.output_dim" },
        { "\"activation_function\": \"gelu\"", "\"activation_function\": \"gelu_new\"",
          "audio_config.activation_function" },
        { "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "text_config.hidden_act" },
        { "\"n_window_infer\": 800", "\"n_window_infer\": 750", "audio_config.n_window_infer" },
        { "\"n_window\": 50", "\"n_window\": 1500000000", "audio_config.n_window:" },
        { "\"head_dim\": 128", "\"head_dim\": 127", "text_config.head_dim" },
        { "\"intermediate_size\": 6144", "\"intermediate_size\": 0", "text_config.intermediate_size" },
        { "\"vocab_size\": 151936", "\"vocab_size\": -5", "text_config.vocab_size" },
        { "\"thinker_config\"", "\"thinker\"", "thinker_config: missing" },
        { "\"text_config\": {", "\"text_config\": [", "JSON" }, /* syntax error */
        { "\"audio_config\": {\"num_mel_bins\": 128, \"d_model\": 1024, \"encoder_layers\": 24,\n"
          "   \"num_hidden_layers\": 24,",
          "\"audio_config\": {\"num_mel_bins\": 128, \"d_model\": 1024,",
          "audio_config.encoder_layers: missing" },
        { "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": \"yes\"",
          "text_config.tie_word_embeddings" },
        { "\"audio_token_id\": 151676", "\"audio_token_id\": 200000", "thinker_config.audio_token_id" },
        { "[\"Chinese\", \"English\"]", "\"Chinese\"", "support_languages" },
        { "[\"Chinese\", \"English\"]", "[\"Chinese\", 7]", "support_languages" },
        { "\"max_source_positions\": 1500", "\"max_source_positions\": 12",
          "audio_config.max_source_positions" },
        { "\"max_position_embeddings\": 65536}}}\n", "\"max_position_embeddings\": 65536}}} x",
          "JSON" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        model_config_t c;
        char *s = replaced(config_1p7b, cases[i].from, cases[i].to);
        int rc = config_parse(&c, s, origin);
        const char *err = qasr_last_error();
        CHECK_INT_EQ(rc, -1);
        CHECK(strstr(err, origin) != NULL);
        if (!strstr(err, cases[i].want)) {
            fprintf(stderr, "case %zu: message \"%s\" lacks \"%s\"\n", i, err, cases[i].want);
            CHECK(0);
        }
        free(s);
    }
    /* Odd d_model (with heads dividing it): the sinusoid table needs two equal halves. */
    model_config_t c;
    char *t = replaced(config_1p7b, "\"d_model\": 1024", "\"d_model\": 1023");
    char *s = replaced(t, "\"encoder_attention_heads\": 16", "\"encoder_attention_heads\": 3");
    CHECK_INT_EQ(config_parse(&c, s, origin), -1);
    CHECK(strstr(qasr_last_error(), "audio_config.d_model") != NULL);
    free(s);
    free(t);
    CHECK_INT_EQ(config_parse(&c, "[1, 2]", origin), -1);
    CHECK(strstr(qasr_last_error(), "not a JSON object") != NULL);
    CHECK_INT_EQ(config_load(&c, "no/such/dir"), -1);
    CHECK(strstr(qasr_last_error(), "no/such/dir: No such file or directory") != NULL);
}

/* Official _get_feat_extract_output_lengths with Python floor division (spec 5.5). */
static int floor_div(int a, int b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

static int official_tokens(int t)
{
    int r = t % 100;
    int f = floor_div(r - 1, 2) + 1;
    return floor_div(floor_div(f - 1, 2) + 1 - 1, 2) + 1 + 13 * floor_div(t, 100);
}

static void test_audio_tokens(void)
{
    model_config_t c;
    if (config_parse(&c, config_1p7b, origin) != 0) {
        CHECK(0);
        return;
    }
    /* Spec 5.5 table, plus the vLLM path's jfk.wav length (T = 1101 -> 144). */
    static const int table[][2] = {
        { 100, 13 },   { 500, 65 },   { 800, 104 }, { 1000, 130 }, { 1100, 143 },
        { 3000, 390 }, { 6000, 780 }, { 120000, 15600 }, { 99, 13 }, { 101, 14 },
        { 109, 15 },   { 0, 0 },      { 1101, 144 },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        CHECK_INT_EQ(config_audio_tokens(&c, table[i][0]), table[i][1]);
    for (int t = 1; t <= 8; t++) CHECK_INT_EQ(config_audio_tokens(&c, t), 1);
    for (int t = 9; t <= 16; t++) CHECK_INT_EQ(config_audio_tokens(&c, t), 2);
    int mismatches = 0;
    for (int t = 0; t <= 20000; t++) mismatches += config_audio_tokens(&c, t) != official_tokens(t);
    CHECK_INT_EQ(mismatches, 0);

    /* The chunk size comes from n_window: 2 * 25 = 50 frames -> 25 -> 13 -> 7 tokens. */
    char *s = replaced(config_1p7b, "\"n_window\": 50", "\"n_window\": 25");
    CHECK_INT_EQ(config_parse(&c, s, origin), 0);
    CHECK_INT_EQ(config_tokens_per_chunk(&c), 7);
    CHECK_INT_EQ(config_enc_window(&c), 7 * 16);
    CHECK_INT_EQ(config_audio_tokens(&c, 120), 2 * 7 + 3);
    free(s);
}

int main(void)
{
    test_real_0p6b();
    test_real_aligner();
    test_aligner_malformed();
    test_1p7b();
    test_optional_keys();
    test_malformed();
    test_audio_tokens();
    return test_result("test_config");
}
