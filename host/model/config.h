/* Model hyper-parameters, read from the checkpoint's config.json (never hard-coded).
 *
 * Layout: top level -> thinker_config -> audio_config / text_config (spec section 2.2).
 * Every size the engine uses comes from here; missing or inconsistent values are errors that
 * name config.json and the key. */
#ifndef QASR_CONFIG_H
#define QASR_CONFIG_H

#define QASR_MAX_LANGUAGES 64

typedef struct {
    /* audio encoder (thinker_config.audio_config) */
    int n_mels;              /* num_mel_bins (128) */
    int enc_d;               /* d_model (896 | 1024) */
    int enc_layers;          /* encoder_layers */
    int enc_heads;           /* encoder_attention_heads */
    int enc_head_dim;        /* enc_d / enc_heads */
    int enc_ffn;             /* encoder_ffn_dim */
    int enc_out;             /* output_dim, == dec_hidden */
    int conv_ch;             /* downsample_hidden_size (480) */
    int n_window;            /* conv chunk = 2 * n_window mel frames (100) */
    int n_window_infer;      /* attention window in mel frames (800) */
    int max_source_positions;/* rows of the sinusoid table (1500) */

    /* text decoder (thinker_config.text_config) */
    int vocab;               /* vocab_size (rows of embed_tokens / lm_head) */
    int dec_hidden;          /* hidden_size */
    int dec_inter;           /* intermediate_size */
    int dec_layers;          /* num_hidden_layers */
    int dec_heads;           /* num_attention_heads */
    int dec_kv_heads;        /* num_key_value_heads */
    int dec_head_dim;        /* head_dim */
    int max_positions;       /* max_position_embeddings */
    float rms_eps;           /* rms_norm_eps */
    float rope_theta;        /* rope_theta */
    int tie_word_embeddings;

    /* special ids named in thinker_config (cross-checked against the tokenizer) */
    int audio_token_id, audio_start_token_id, audio_end_token_id;

    /* Qwen3-ForcedAligner (aligner spec 2.2): thinker_config.model_type names a forced aligner;
     * its head gives timestamp classes, not tokens. */
    int aligner;
    int head_rows;           /* rows of lm_head: vocab, or thinker_config.classify_num */
    int timestamp_token_id;  /* top level: the <timestamp> slot token (aligner only) */
    int timestamp_ms;        /* top level timestamp_segment_time: ms per class (aligner only) */

    int n_languages;         /* top-level support_languages */
    char languages[QASR_MAX_LANGUAGES][32];
} model_config_t;

/* Parse dir/config.json into cfg. 0 on success, -1 + qasr_fail() message otherwise. */
int config_load(model_config_t *cfg, const char *dir);
/* Same from a JSON string; `origin` names the source in error messages. */
int config_parse(model_config_t *cfg, const char *json, const char *origin);

/* Derived sizes. */
static inline int config_conv_chunk(const model_config_t *c) { return 2 * c->n_window; }
/* Encoder tokens produced by one full conv chunk: three stride-2 convs, 100 -> 13. */
int config_tokens_per_chunk(const model_config_t *c);
/* Attention window in tokens (spec 5.6): tokens_per_chunk * (n_window_infer / (2 n_window)). */
int config_enc_window(const model_config_t *c);
/* Mel frames -> audio tokens, official formula (spec 5.5), valid for T >= 0. */
int config_audio_tokens(const model_config_t *c, int frames);
/* Conv stem output height: n_mels after three stride-2 convs (128 -> 16). */
int config_conv_out_freq(const model_config_t *c);

#endif
