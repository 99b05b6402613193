/* Loading an official checkpoint directory onto a backend: config.json for every size,
 * safetensors tensors checked against the shapes the config implies (spec 2.6), q|k|v and
 * gate|up fused into one matrix each, the encoder's sinusoid table and the decoder's RoPE table
 * computed (they are not stored). */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mel.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

typedef struct {
    const st_model_t *st;
    backend_ref_t bk;
    int upload;   /* 0: allocate and check only; the data is broadcast from another device */
    int dry;      /* check names and shapes only: nothing allocated (the pass before the real one) */
    int failed;
    int mapped;   /* a weight uses the checkpoint's mapping: keep it open */
    size_t n_params;
} loader_t;

/* Tensor `name`, its shape and dtype checked; NULL (and L->failed) if it is missing or wrong. */
static const st_tensor_t *find_checked(loader_t *L, const char *name, int ndim, const int64_t *shape)
{
    if (L->failed) return NULL;
    const st_tensor_t *t = st_find(L->st, name);
    if (!t) {
        L->failed = qasr_fail("tensor %s is missing from the checkpoint", name);
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[128] = "", got[128] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "", (long long)shape[i]);
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        L->failed = qasr_fail("%s: tensor %s has shape [%s], config.json implies [%s]", t->file, name, got, want);
        return NULL;
    }
    if (t->dtype != DTYPE_BF16 && t->dtype != DTYPE_F32 && t->dtype != DTYPE_F16) {
        L->failed = qasr_fail("%s: tensor %s has dtype %s (expected BF16, F16 or F32)", t->file, name,
                              dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

/* Upload tensor `name` into dst at element offset off after checking its shape. */
static void put(loader_t *L, weight_t *dst, size_t off, const char *name, int ndim, const int64_t *shape)
{
    const st_tensor_t *t = find_checked(L, name, ndim, shape);
    if (!t) return;
    if (L->upload) {
        /* in slices, each dropped from the process once copied: a large tensor (the LM head)
         * is never resident twice, as file pages and as its copy */
        const size_t slice = ((size_t)32 << 20) / dtype_size(t->dtype), esize = dtype_size(t->dtype);
        for (size_t i = 0; i < (size_t)t->numel; i += slice) {
            const size_t n = MIN(slice, (size_t)t->numel - i);
            L->bk.ops->weight_upload(L->bk.be, dst, off + i, (const char *)t->data + i * esize, t->dtype, n);
            st_release_bytes((const char *)t->data + i * esize, n * esize);
        }
        st_release(t);
    }
    L->n_params += (size_t)t->numel;
}

static size_t numel(int ndim, const int64_t *shape)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

/* Checkpoint dtype of the named tensors: BF16 if all are BF16 (or absent), else F32. */
static dtype_t src_dtype(const loader_t *L, int n, const char *const *names)
{
    for (int i = 0; i < n; i++) {
        const st_tensor_t *t = st_find(L->st, names[i]);
        if (t && t->dtype != DTYPE_BF16) return DTYPE_F32;
    }
    return DTYPE_BF16;
}

/* Matrix w [N][K] is loaded: the backend may pack it now, before any activation exists. */
static void matrix_ready(loader_t *L, weight_t *w, int64_t N, int64_t K)
{
    if (L->upload && !L->failed && L->bk.ops->matrix_ready && L->bk.ops->matrix_ready(L->bk.be, w, (int)N, (int)K) != 0)
        L->failed = -1;
}

/* A weight of n elements; NULL (and L->failed) when the backend has no memory for it. */
static weight_t *alloc_weight(loader_t *L, size_t n, weight_kind_t kind, dtype_t src)
{
    if (L->failed || L->dry) return NULL;
    weight_t *w = L->bk.ops->weight_alloc(L->bk.be, n, kind, src);
    if (!w) L->failed = -1;
    return w;
}

/* Allocate and load one tensor. Names are printf formats with one layer index at most. */
static weight_t *get(loader_t *L, weight_kind_t kind, int ndim, const int64_t *shape, const char *fmt, ...)
{
    char name[256];
    const char *names[1] = { name };
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    weight_t *w = alloc_weight(L, numel(ndim, shape), kind, src_dtype(L, 1, names));
    put(L, w, 0, name, ndim, shape);
    if (kind == WEIGHT_MATRIX) matrix_ready(L, w, shape[0], shape[1]);
    return w;
}

/* The embedding table: the checkpoint's bytes used in place where the backend can (only the rows
 * of tokens in use are ever read, so only their pages become resident: ~300 MB less for 0.6B),
 * else a copy. The checkpoint then stays mapped while the model lives. */
static weight_t *get_table(loader_t *L, int ndim, const int64_t *shape, const char *name)
{
    const st_tensor_t *t = L->upload && L->bk.ops->weight_map ? find_checked(L, name, ndim, shape) : NULL;
    weight_t *w = t ? L->bk.ops->weight_map(L->bk.be, t->data, (size_t)t->numel, WEIGHT_TABLE, t->dtype) : NULL;
    if (!w) return get(L, WEIGHT_TABLE, ndim, shape, "%s", name);
    L->mapped = 1;
    L->n_params += (size_t)t->numel;
    return w;
}

/* Allocate one matrix of rows_0 + rows_1 + ... rows and load the named tensors into it in order
 * (cols == 0: vectors). */
static weight_t *get_fused(loader_t *L, weight_kind_t kind, int n, const int64_t *rows, int64_t cols,
                           const char *const *names)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)rows[i] * (cols > 0 ? cols : 1);
    weight_t *w = alloc_weight(L, total, kind, src_dtype(L, n, names));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (cols > 0)
            put(L, w, off, names[i], 2, (int64_t[]){ rows[i], cols });
        else
            put(L, w, off, names[i], 1, (int64_t[]){ rows[i] });
        off += (size_t)rows[i] * (cols > 0 ? cols : 1);
    }
    if (kind == WEIGHT_MATRIX) matrix_ready(L, w, (int64_t)(total / cols), cols);
    return w;
}

#define SHAPE(...) (sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), (int64_t[]){ __VA_ARGS__ }

/* Sinusoid position table of spec 5.4 (rows 0 .. n-1, sin block then cos block), in float32
 * as the reference computes it. */
static weight_t *make_pos_emb(loader_t *L, int n, int D)
{
    if (L->dry || L->failed) return NULL;
    const int half = D / 2;
    const float inc = (float)(log(10000.0) / (half - 1));
    float *pe = xmalloc((size_t)n * D * sizeof(float));
    for (int p = 0; p < n; p++)
        for (int i = 0; i < half; i++) {
            const float a = (float)p * expf(-inc * (float)i);
            pe[p * D + i] = sinf(a);
            pe[p * D + half + i] = cosf(a);
        }
    weight_t *w = alloc_weight(L, (size_t)n * D, WEIGHT_PARAM, DTYPE_F32);
    if (w && L->upload) L->bk.ops->weight_upload(L->bk.be, w, 0, pe, DTYPE_F32, (size_t)n * D);
    free(pe);
    return w;
}

/* The RoPE table of every position the model has (spec 6.4), computed once by the backend in
 * its own arithmetic (backend.h rope_table) rather than per row in every layer. */
static weight_t *make_rope(loader_t *L, int n_pos, int Dh, float theta)
{
    if (L->dry || L->failed) return NULL;
    weight_t *w = alloc_weight(L, (size_t)n_pos * Dh, WEIGHT_PARAM, DTYPE_F32);
    if (w && L->upload) L->bk.ops->rope_table(L->bk.be, w, n_pos, Dh, theta);
    return w;
}

/* Nonzero (and L->failed) unless the checkpoint holds exactly config.json's layer count under
 * prefix ("<prefix><i>." for i = 0 .. layers-1): said before anything is sized by the count, and
 * a count too small would otherwise leave the checkpoint's last layers silently unused. */
static int layers_match(loader_t *L, const char *key, int layers, const char *prefix)
{
    const size_t n = strlen(prefix);
    long have = 0;
    for (int i = 0; i < st_count(L->st) && !L->failed; i++) {
        const char *name = st_get(L->st, i)->name;
        char *end;
        if (strncmp(name, prefix, n) != 0 || name[n] < '0' || name[n] > '9') continue;
        const long k = strtol(name + n, &end, 10);
        if (*end == '.' && k < INT_MAX && k + 1 > have) have = k + 1;
    }
    if (!L->failed && have != layers)
        L->failed = qasr_fail("config.json: %s is %d, but the checkpoint has %ld layers (tensors %s0. to %s%ld.)",
                              key, layers, have, prefix, prefix, have - 1);
    return L->failed;
}

static void load_encoder(loader_t *L, const model_config_t *c, encoder_weights_t *e)
{
    const int64_t C = c->conv_ch, D = c->enc_d, F = c->enc_ffn, Fq = config_conv_out_freq(c);
    const char *p = "thinker.audio_tower.";
    e->conv1_w = get(L, WEIGHT_PARAM, SHAPE(C, 1, 3, 3), "%sconv2d1.weight", p);
    e->conv1_b = get(L, WEIGHT_PARAM, SHAPE(C), "%sconv2d1.bias", p);
    e->conv2_w = get(L, WEIGHT_PARAM, SHAPE(C, C, 3, 3), "%sconv2d2.weight", p);
    e->conv2_b = get(L, WEIGHT_PARAM, SHAPE(C), "%sconv2d2.bias", p);
    e->conv3_w = get(L, WEIGHT_PARAM, SHAPE(C, C, 3, 3), "%sconv2d3.weight", p);
    e->conv3_b = get(L, WEIGHT_PARAM, SHAPE(C), "%sconv2d3.bias", p);
    e->conv_out_w = get(L, WEIGHT_MATRIX, SHAPE(D, C * Fq), "%sconv_out.weight", p);
    e->pos_emb = make_pos_emb(L, config_tokens_per_chunk(c), (int)D);
    if (layers_match(L, "audio_config.encoder_layers", c->enc_layers, "thinker.audio_tower.layers.")) return;
    e->layers = xcalloc(c->enc_layers, sizeof *e->layers);
    for (int i = 0; i < c->enc_layers && !L->failed; i++) {
        enc_layer_t *l = &e->layers[i];
        char n[3][160];
        const char *names[3] = { n[0], n[1], n[2] };
        const char *proj[3] = { "q_proj", "k_proj", "v_proj" };
        l->ln1_w = get(L, WEIGHT_PARAM, SHAPE(D), "%slayers.%d.self_attn_layer_norm.weight", p, i);
        l->ln1_b = get(L, WEIGHT_PARAM, SHAPE(D), "%slayers.%d.self_attn_layer_norm.bias", p, i);
        for (int k = 0; k < 3; k++) snprintf(n[k], sizeof n[k], "%slayers.%d.self_attn.%s.weight", p, i, proj[k]);
        l->wqkv = get_fused(L, WEIGHT_MATRIX, 3, (int64_t[]){ D, D, D }, D, names);
        for (int k = 0; k < 3; k++) snprintf(n[k], sizeof n[k], "%slayers.%d.self_attn.%s.bias", p, i, proj[k]);
        l->bqkv = get_fused(L, WEIGHT_PARAM, 3, (int64_t[]){ D, D, D }, 0, names);
        l->wo = get(L, WEIGHT_MATRIX, SHAPE(D, D), "%slayers.%d.self_attn.out_proj.weight", p, i);
        l->bo = get(L, WEIGHT_PARAM, SHAPE(D), "%slayers.%d.self_attn.out_proj.bias", p, i);
        l->ln2_w = get(L, WEIGHT_PARAM, SHAPE(D), "%slayers.%d.final_layer_norm.weight", p, i);
        l->ln2_b = get(L, WEIGHT_PARAM, SHAPE(D), "%slayers.%d.final_layer_norm.bias", p, i);
        l->fc1_w = get(L, WEIGHT_MATRIX, SHAPE(F, D), "%slayers.%d.fc1.weight", p, i);
        l->fc1_b = get(L, WEIGHT_PARAM, SHAPE(F), "%slayers.%d.fc1.bias", p, i);
        l->fc2_w = get(L, WEIGHT_MATRIX, SHAPE(D, F), "%slayers.%d.fc2.weight", p, i);
        l->fc2_b = get(L, WEIGHT_PARAM, SHAPE(D), "%slayers.%d.fc2.bias", p, i);
    }
    e->ln_post_w = get(L, WEIGHT_PARAM, SHAPE(D), "%sln_post.weight", p);
    e->ln_post_b = get(L, WEIGHT_PARAM, SHAPE(D), "%sln_post.bias", p);
    e->proj1_w = get(L, WEIGHT_MATRIX, SHAPE(D, D), "%sproj1.weight", p);
    e->proj1_b = get(L, WEIGHT_PARAM, SHAPE(D), "%sproj1.bias", p);
    e->proj2_w = get(L, WEIGHT_MATRIX, SHAPE(c->enc_out, D), "%sproj2.weight", p);
    e->proj2_b = get(L, WEIGHT_PARAM, SHAPE(c->enc_out), "%sproj2.bias", p);
}

static void load_decoder(loader_t *L, const model_config_t *c, decoder_weights_t *d, int *tied)
{
    /* Wq, Wkv: widths of the query and key/value projections (heads x head dim) */
    const int64_t Hd = c->dec_hidden, Dh = c->dec_head_dim, Wq = c->dec_heads * Dh,
                  Wkv = c->dec_kv_heads * Dh, I = c->dec_inter, V = c->vocab;
    const char *p = "thinker.model.";
    d->embed = get_table(L, SHAPE(V, Hd), "thinker.model.embed_tokens.weight");
    if (layers_match(L, "text_config.num_hidden_layers", c->dec_layers, "thinker.model.layers.")) return;
    d->layers = xcalloc(c->dec_layers, sizeof *d->layers);
    for (int i = 0; i < c->dec_layers && !L->failed; i++) {
        dec_layer_t *l = &d->layers[i];
        char n[3][160];
        const char *names[3] = { n[0], n[1], n[2] };
        const char *proj[3] = { "q_proj", "k_proj", "v_proj" };
        l->in_norm = get(L, WEIGHT_PARAM, SHAPE(Hd), "%slayers.%d.input_layernorm.weight", p, i);
        for (int k = 0; k < 3; k++) snprintf(n[k], sizeof n[k], "%slayers.%d.self_attn.%s.weight", p, i, proj[k]);
        l->wqkv = get_fused(L, WEIGHT_MATRIX, 3, (int64_t[]){ Wq, Wkv, Wkv }, Hd, names);
        l->q_norm = get(L, WEIGHT_PARAM, SHAPE(Dh), "%slayers.%d.self_attn.q_norm.weight", p, i);
        l->k_norm = get(L, WEIGHT_PARAM, SHAPE(Dh), "%slayers.%d.self_attn.k_norm.weight", p, i);
        l->wo = get(L, WEIGHT_MATRIX, SHAPE(Hd, Wq), "%slayers.%d.self_attn.o_proj.weight", p, i);
        l->post_norm = get(L, WEIGHT_PARAM, SHAPE(Hd), "%slayers.%d.post_attention_layernorm.weight", p, i);
        snprintf(n[0], sizeof n[0], "%slayers.%d.mlp.gate_proj.weight", p, i);
        snprintf(n[1], sizeof n[1], "%slayers.%d.mlp.up_proj.weight", p, i);
        l->w_gate_up = get_fused(L, WEIGHT_MATRIX, 2, (int64_t[]){ I, I }, Hd, names);
        l->w_down = get(L, WEIGHT_MATRIX, SHAPE(Hd, I), "%slayers.%d.mlp.down_proj.weight", p, i);
    }
    d->norm = get(L, WEIGHT_PARAM, SHAPE(Hd), "%snorm.weight", p);
    d->rope = make_rope(L, c->max_positions, (int)Dh, c->rope_theta);
    /* The released ASR files store the head separately (equal to the embedding, spec 2.6); use
     * it when present, otherwise share the embedding. The aligner's head is its own
     * [classify_num][Hd] classifier, never the embedding. */
    *tied = !c->aligner && st_find(L->st, "thinker.lm_head.weight") == NULL;
    d->lm_head = *tied ? d->embed : get(L, WEIGHT_MATRIX, SHAPE(c->head_rows, Hd), "thinker.lm_head.weight");
    if (*tied) matrix_ready(L, d->embed, V, Hd);
}

int model_load(model_t *m, const char *dir, backend_ref_t bk, int upload)
{
    memset(m, 0, sizeof *m);
    m->bk = bk;
    if (config_load(&m->cfg, dir) != 0) return -1;
    st_model_t *st = st_open_dir(dir);
    if (!st) return -1;
    /* every tensor's name, shape and dtype first, so that a config.json at odds with the
     * checkpoint fails before any weight memory is taken */
    loader_t L = { .st = st, .bk = bk, .dry = 1 };
    load_encoder(&L, &m->cfg, &m->enc);
    load_decoder(&L, &m->cfg, &m->dec, &m->lm_head_tied);
    free(m->enc.layers);
    free(m->dec.layers);
    memset(&m->enc, 0, sizeof m->enc);
    memset(&m->dec, 0, sizeof m->dec);
    if (!L.failed) {
        L = (loader_t){ .st = st, .bk = bk, .upload = upload };
        load_encoder(&L, &m->cfg, &m->enc);
        load_decoder(&L, &m->cfg, &m->dec, &m->lm_head_tied);
    }
    m->n_params = L.n_params;
    if (L.mapped && !L.failed)
        m->st = st;
    else
        st_close(st);
    if (L.failed) {
        qasr_fail_prefix("cannot load the model in %s", dir);
        return -1;
    }
    return 0;
}

void model_free(model_t *m)
{
    /* weight memory belongs to the backend and is freed when it is destroyed */
    free(m->enc.layers);
    free(m->dec.layers);
    st_close(m->st); /* after the backend's last read of a mapped weight */
    memset(m, 0, sizeof *m);
}
