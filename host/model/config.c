/* config.json -> model_config_t (spec 2.2). Every size is read from the file; each error names
 * the file and the dotted key, e.g. "config.json: thinker_config.text_config.head_dim: ...". */
#include "config.h"

#include "mel.h" /* the features the front end computes */
#include "util.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One JSON object with its dotted path, so messages can name the full key. */
typedef struct {
    const cJSON *obj;
    char path[64];
    const char *origin;
} section_t;

static int key_fail(const section_t *s, const char *key, const char *fmt, ...) QASR_PRINTF(3, 4);
static int key_fail(const section_t *s, const char *key, const char *fmt, ...)
{
    char msg[QASR_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qasr_fail("%s: %s%s%s: %s", s->origin, s->path, s->path[0] ? "." : "", key, msg);
}

static const char *json_type(const cJSON *j)
{
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "a list";
    return "an object";
}

static const cJSON *get(const section_t *s, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(s->obj, key);
}

static int get_section(const section_t *parent, const char *key, section_t *out)
{
    const cJSON *j = get(parent, key);
    if (!j) return key_fail(parent, key, "missing");
    if (!cJSON_IsObject(j))
        return key_fail(parent, key, "expected an object, got %s", json_type(j));
    out->obj = j;
    out->origin = parent->origin;
    int n = snprintf(out->path, sizeof out->path, "%s%s%s", parent->path,
                     parent->path[0] ? "." : "", key);
    QASR_ASSERT(n < (int)sizeof out->path); /* keys are this file's constants */
    return 0;
}

/* Required integer >= min. */
static int get_int(const section_t *s, const char *key, int min, int *out)
{
    const cJSON *j = get(s, key);
    if (!j) return key_fail(s, key, "missing");
    if (!cJSON_IsNumber(j)) return key_fail(s, key, "expected an integer, got %s", json_type(j));
    double v = j->valuedouble;
    if (!(v >= min && v <= INT_MAX) || v != (double)(int)v)
        return key_fail(s, key, "expected an integer >= %d, got %.17g", min, v);
    *out = (int)v;
    return 0;
}

/* Required finite number > 0, also once stored as a float. */
static int get_positive(const section_t *s, const char *key, float *out)
{
    const cJSON *j = get(s, key);
    if (!j) return key_fail(s, key, "missing");
    if (!cJSON_IsNumber(j)) return key_fail(s, key, "expected a number, got %s", json_type(j));
    if (!(j->valuedouble > 0 && j->valuedouble < 1e30))
        return key_fail(s, key, "expected a positive number, got %g", j->valuedouble);
    /* 1e-86 is positive as a double but 0 as a float: an rms_norm_eps of 0 divides by zero. */
    if (!((float)j->valuedouble > 0))
        return key_fail(s, key, "%g is too small: it is 0 as a 32-bit float", j->valuedouble);
    *out = (float)j->valuedouble;
    return 0;
}

/* Optional string key that must equal `want` when present. */
static int check_string(const section_t *s, const char *key, const char *want)
{
    const cJSON *j = get(s, key);
    if (!j) return 0;
    if (!cJSON_IsString(j)) return key_fail(s, key, "expected a string, got %s", json_type(j));
    if (strcmp(j->valuestring, want) != 0)
        return key_fail(s, key, "expected \"%s\", got \"%s\"", want, j->valuestring);
    return 0;
}

static int check_model_type(const section_t *s)
{
    const cJSON *j = get(s, "model_type");
    if (cJSON_IsString(j) && strcmp(j->valuestring, "qwen3_forced_aligner") == 0)
        return key_fail(s, "model_type", "\"qwen3_forced_aligner\" belongs in thinker_config; the "
                        "published aligner's top-level model_type is \"qwen3_asr\"");
    return check_string(s, "model_type", "qwen3_asr");
}

/* The official class builds the timestamp head when thinker_config.model_type contains
 * "forced_aligner" (aligner spec 2.2); the top-level model_type is "qwen3_asr" for both. */
static int parse_variant(model_config_t *c, const section_t *top, const section_t *th)
{
    const cJSON *j = get(th, "model_type");
    if (j && !cJSON_IsString(j)) return key_fail(th, "model_type", "expected a string, got %s", json_type(j));
    c->aligner = j && strstr(j->valuestring, "forced_aligner") != NULL;
    if (!c->aligner) {
        c->head_rows = c->vocab;
        return check_model_type(th);
    }
    if (get_int(th, "classify_num", 1, &c->head_rows) || get_int(top, "timestamp_token_id", 0, &c->timestamp_token_id) ||
        get_int(top, "timestamp_segment_time", 1, &c->timestamp_ms))
        return -1;
    if (c->timestamp_token_id >= c->vocab)
        return key_fail(top, "timestamp_token_id", "%d is outside the vocabulary (vocab_size %d)",
                        c->timestamp_token_id, c->vocab);
    return 0;
}

static int parse_audio(model_config_t *c, const section_t *a)
{
    if (get_int(a, "num_mel_bins", 1, &c->n_mels) || get_int(a, "d_model", 1, &c->enc_d) ||
        get_int(a, "encoder_attention_heads", 1, &c->enc_heads) ||
        get_int(a, "encoder_ffn_dim", 1, &c->enc_ffn) || get_int(a, "output_dim", 1, &c->enc_out) ||
        get_int(a, "downsample_hidden_size", 1, &c->conv_ch) ||
        get_int(a, "n_window", 1, &c->n_window) ||
        get_int(a, "n_window_infer", 1, &c->n_window_infer) ||
        get_int(a, "max_source_positions", 1, &c->max_source_positions) ||
        check_string(a, "activation_function", "gelu"))
        return -1;
    /* The released files carry both names; num_hidden_layers is the generic HF alias. */
    if (get(a, "encoder_layers")) return get_int(a, "encoder_layers", 1, &c->enc_layers);
    if (get(a, "num_hidden_layers")) return get_int(a, "num_hidden_layers", 1, &c->enc_layers);
    return key_fail(a, "encoder_layers", "missing (and no num_hidden_layers either)");
}

static int parse_text(model_config_t *c, const section_t *t)
{
    if (get_int(t, "vocab_size", 1, &c->vocab) || get_int(t, "hidden_size", 1, &c->dec_hidden) ||
        get_int(t, "intermediate_size", 1, &c->dec_inter) ||
        get_int(t, "num_hidden_layers", 1, &c->dec_layers) ||
        get_int(t, "num_attention_heads", 1, &c->dec_heads) ||
        get_int(t, "num_key_value_heads", 1, &c->dec_kv_heads) ||
        get_int(t, "max_position_embeddings", 1, &c->max_positions) ||
        get_positive(t, "rms_norm_eps", &c->rms_eps) ||
        get_positive(t, "rope_theta", &c->rope_theta) || check_string(t, "hidden_act", "silu"))
        return -1;
    if (get(t, "head_dim")) {
        if (get_int(t, "head_dim", 1, &c->dec_head_dim)) return -1;
    } else if (c->dec_hidden % c->dec_heads != 0) {
        return key_fail(t, "head_dim", "missing, and hidden_size %d is not divisible by "
                        "num_attention_heads %d", c->dec_hidden, c->dec_heads);
    } else {
        c->dec_head_dim = c->dec_hidden / c->dec_heads;
    }
    const cJSON *tie = get(t, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie))
        return key_fail(t, "tie_word_embeddings", "expected a boolean, got %s", json_type(tie));
    c->tie_word_embeddings = !tie || cJSON_IsTrue(tie);
    return 0;
}

static int parse_token_ids(model_config_t *c, const section_t *th)
{
    static const char *const keys[3] = { "audio_token_id", "audio_start_token_id",
                                         "audio_end_token_id" };
    int *ids[3] = { &c->audio_token_id, &c->audio_start_token_id, &c->audio_end_token_id };
    for (int i = 0; i < 3; i++) {
        if (get_int(th, keys[i], 0, ids[i])) return -1;
        if (*ids[i] >= c->vocab)
            return key_fail(th, keys[i], "%d is outside the vocabulary (vocab_size %d)", *ids[i],
                            c->vocab);
    }
    return 0;
}

static int parse_languages(model_config_t *c, const section_t *top)
{
    const cJSON *list = get(top, "support_languages"), *j;
    if (!list) return 0;
    if (!cJSON_IsArray(list))
        return key_fail(top, "support_languages", "expected a list, got %s", json_type(list));
    cJSON_ArrayForEach(j, list) {
        if (c->n_languages == QASR_MAX_LANGUAGES)
            return key_fail(top, "support_languages", "more than %d entries", QASR_MAX_LANGUAGES);
        if (!cJSON_IsString(j) || !j->valuestring[0] ||
            strlen(j->valuestring) >= sizeof c->languages[0])
            return key_fail(top, "support_languages", "entry %d is not a name of 1 to %zu bytes",
                            c->n_languages, sizeof c->languages[0] - 1);
        strcpy(c->languages[c->n_languages++], j->valuestring);
    }
    return 0;
}

/* Relations between sizes that the encoder and decoder rely on. */
static int check_consistency(model_config_t *c, const section_t *a, const section_t *t)
{
    if (c->enc_d % c->enc_heads != 0)
        return key_fail(a, "encoder_attention_heads", "d_model %d is not divisible by %d heads",
                        c->enc_d, c->enc_heads);
    c->enc_head_dim = c->enc_d / c->enc_heads;
    if (c->enc_d % 2 != 0)
        return key_fail(a, "d_model", "%d is odd; the sinusoid table needs sin and cos halves",
                        c->enc_d);
    if (c->enc_out != c->dec_hidden)
        return key_fail(a, "output_dim", "%d differs from text_config.hidden_size %d", c->enc_out,
                        c->dec_hidden);
    if (c->n_window > INT_MAX / 2)
        return key_fail(a, "n_window", "%d is too large", c->n_window);
    if (c->n_window_infer % (2 * c->n_window) != 0)
        return key_fail(a, "n_window_infer", "%d is not a multiple of 2 * n_window = %d",
                        c->n_window_infer, 2 * c->n_window);
    /* Positions restart at 0 in every conv chunk (spec 5.4), so one chunk must fit the table. */
    if (config_tokens_per_chunk(c) > c->max_source_positions)
        return key_fail(a, "max_source_positions", "%d is below the %d tokens of one conv chunk",
                        c->max_source_positions, config_tokens_per_chunk(c));
    if (c->dec_heads % c->dec_kv_heads != 0)
        return key_fail(t, "num_key_value_heads", "num_attention_heads %d is not a multiple of %d",
                        c->dec_heads, c->dec_kv_heads);
    if (c->dec_head_dim % 2 != 0)
        return key_fail(t, "head_dim", "%d is odd; RoPE rotates pairs of dimensions",
                        c->dec_head_dim);
    return 0;
}

int config_parse(model_config_t *cfg, const char *json, const char *origin)
{
    memset(cfg, 0, sizeof *cfg);
    const char *end = json;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) return qasr_fail("%s: not valid JSON (error near byte %td)", origin, end - json);
    section_t top = { .obj = root, .origin = origin }, thinker, audio, text;
    int rc = -1;
    if (!cJSON_IsObject(root))
        qasr_fail("%s: top level is not a JSON object", origin);
    else if (check_model_type(&top) == 0 && get_section(&top, "thinker_config", &thinker) == 0 &&
             get_section(&thinker, "audio_config", &audio) == 0 &&
             get_section(&thinker, "text_config", &text) == 0 && parse_audio(cfg, &audio) == 0 &&
             parse_text(cfg, &text) == 0 && parse_variant(cfg, &top, &thinker) == 0 &&
             parse_token_ids(cfg, &thinker) == 0 && parse_languages(cfg, &top) == 0)
        rc = check_consistency(cfg, &audio, &text);
    cJSON_Delete(root);
    return rc;
}

/* preprocessor_config.json (spec 2.4), where present: the features it describes must be those
 * the front end computes (mel.h), or the model would be fed features it was not trained on. */
static int check_features(const model_config_t *c, const char *dir)
{
    char *path = path_join(dir, "preprocessor_config.json");
    if (access(path, F_OK) != 0 && errno == ENOENT) { /* not needed: the features are fixed */
        free(path);
        return 0;
    }
    char *text = read_text_file(path, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    int rc = -1;
    if (text && !cJSON_IsObject(root)) {
        qasr_fail("%s: not a JSON object", path);
    } else if (root) {
        const section_t top = { .obj = root, .origin = path };
        const struct { const char *key; double want; } fixed[] = {
            { "feature_size", c->n_mels }, { "sampling_rate", QASR_SAMPLE_RATE }, { "n_fft", QASR_N_FFT },
            { "hop_length", QASR_HOP }, { "dither", 0 },
        };
        rc = 0;
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] && rc == 0; i++) {
            const cJSON *j = get(&top, fixed[i].key);
            if (j && !cJSON_IsNumber(j))
                rc = key_fail(&top, fixed[i].key, "expected a number, got %s", json_type(j));
            else if (j && j->valuedouble != fixed[i].want)
                rc = key_fail(&top, fixed[i].key, "%g, but qasr computes features with %g (%s)", j->valuedouble,
                              fixed[i].want, i == 0 ? "config.json's num_mel_bins" : "as the published checkpoints");
        }
    }
    cJSON_Delete(root);
    free(text);
    free(path);
    return rc;
}

int config_load(model_config_t *cfg, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) return qasr_fail("%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return qasr_fail("%s: not a directory (a model is the checkpoint's folder: config.json, *.safetensors, "
                         "vocab.json, ...)", dir);
    char *path = path_join(dir, "config.json");
    char *text = read_text_file(path, NULL);
    int rc = text ? config_parse(cfg, text, path) : -1;
    free(text);
    free(path);
    return rc == 0 ? check_features(cfg, dir) : rc;
}

/* One stride-2, kernel-3, padding-1 conv: n -> (n - 1) / 2 + 1, i.e. ceil(n / 2); 0 stays 0. */
static int conv_out(int n) { return n > 0 ? (n - 1) / 2 + 1 : 0; }

static int conv_out3(int n) { return conv_out(conv_out(conv_out(n))); }

int config_tokens_per_chunk(const model_config_t *c) { return conv_out3(config_conv_chunk(c)); }

int config_enc_window(const model_config_t *c)
{
    return config_tokens_per_chunk(c) * (c->n_window_infer / config_conv_chunk(c));
}

/* The official formula floors (r - 1) // 2 in Python, giving 0 tokens for r == 0; C division
 * would give 1 (spec 5.5), hence conv_out's explicit zero case. */
int config_audio_tokens(const model_config_t *c, int frames)
{
    QASR_ASSERT(frames >= 0);
    int chunk = config_conv_chunk(c);
    return config_tokens_per_chunk(c) * (frames / chunk) + conv_out3(frames % chunk);
}

int config_conv_out_freq(const model_config_t *c) { return conv_out3(c->n_mels); }
