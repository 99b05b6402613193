/* Per-op timings of a backend (cpu or cuda) at the shapes of the real models: for each op the
 * time per call, and the achieved TFLOP/s and GB/s against which bench/ROOFLINE.md sets the
 * expected figures. Times are wall clock around backend-synchronised repetitions (the CUDA
 * backend's sync is a stream synchronize), best of 3 runs.
 *
 * usage: bench_ops [--backend cpu|cuda] [--size 0.6b|1.7b] [--rows M] [--ctx N] [--threads T]
 *   --rows: decoder rows per step (batch of decode rows, default 64)
 *   --ctx:  context length of each decode row for paged attention (default 512) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_select.h"
#include "util.h"

typedef struct {
    const char *size;
    int enc_d, enc_ffn, enc_heads, dec_h, dec_inter, layers_hint;
} dims_t;

static const dims_t DIMS[] = {
    { "0.6b", 896, 3584, 14, 1024, 3072, 28 },
    { "1.7b", 1024, 4096, 16, 2048, 6144, 28 },
};

typedef struct {
    backend_ref_t bk;
    double best;
} timer_t_;

static weight_t *rand_weight(backend_ref_t bk, size_t n, weight_kind_t kind)
{
    uint16_t *h = xmalloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) h[i] = f32_to_bf16((float)((i * 2654435761u) % 2001) * 1e-3f - 1.0f);
    weight_t *w = bk.ops->weight_alloc(bk.be, n, kind, DTYPE_BF16);
    if (!w) qasr_die(3, "%s", qasr_last_error());
    bk.ops->weight_upload(bk.be, w, 0, h, DTYPE_BF16, n);
    free(h);
    return w;
}

/* Fill an activation buffer with small values (through a weight upload of the same size would
 * not work: activations have their own dtype), via embed from a random table. */
static void fill(backend_ref_t bk, void *x, int rows, int D, const weight_t *table)
{
    int *ids = xmalloc(rows * sizeof(int));
    for (int i = 0; i < rows; i++) ids[i] = i % 64;
    const size_t mark = bk.ops->scratch_mark(bk.be);
    bk.ops->embed(bk.be, x, table, bk.ops->ints(bk.be, ids, rows), rows, D);
    bk.ops->sync(bk.be);
    bk.ops->scratch_release(bk.be, mark);
    free(ids);
}

#define TIME(label, flops, bytes, call)                                                            \
    do {                                                                                           \
        call;                                                                                      \
        bk.ops->sync(bk.be);                                                                       \
        double best = 1e30;                                                                        \
        for (int run_ = 0; run_ < 3; run_++) {                                                     \
            const double t0_ = now_seconds();                                                      \
            for (int r_ = 0; r_ < reps; r_++) call;                                                \
            bk.ops->sync(bk.be);                                                                   \
            best = fmin(best, (now_seconds() - t0_) / reps);                                       \
        }                                                                                          \
        printf("%-34s %10.3f ms  %8.2f TFLOP/s  %8.1f GB/s\n", label, best * 1e3,                   \
               (double)(flops) / best / 1e12, (double)(bytes) / best / 1e9);                       \
    } while (0)

int main(int argc, char **argv)
{
    const char *backend = NULL, *size = "0.6b", *precision = NULL;
    int rows = 64, ctx = 512, threads = 0, reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--backend")) backend = argv[i + 1];
        else if (!strcmp(argv[i], "--size")) size = argv[i + 1];
        else if (!strcmp(argv[i], "--rows")) rows = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--ctx")) ctx = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--precision")) precision = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else qasr_die(2, "unknown option %s (see the header of bench/bench_ops.c)", argv[i]);
    }
    const dims_t *d = NULL;
    for (size_t i = 0; i < sizeof DIMS / sizeof DIMS[0]; i++)
        if (!strcmp(DIMS[i].size, size)) d = &DIMS[i];
    if (!d) qasr_die(2, "--size 0.6b or 1.7b");
    backend_ref_t bk;
    const backend_params_t bp = { .device = 0, .threads = threads, .n_mels = 128, .precision = precision };
    if (backend_create(&bk, backend, &bp) != 0) qasr_die(3, "%s", qasr_last_error());
    printf("bench_ops: backend %s, Qwen3-ASR-%s shapes, %d decode rows, context %d\n", bk.ops->name, size, rows, ctx);

    const int Hd = d->dec_h, I = d->dec_inter, QKV = (16 + 2 * 8) * 128, V = 151936, P = 16;
    const int enc_rows = 13 * 80; /* 80 s of audio in one encoder pass */
    const size_t act = bk.ops->act_size;
    weight_t *table = rand_weight(bk, (size_t)V * Hd, WEIGHT_TABLE);
    weight_t *w_qkv = rand_weight(bk, (size_t)QKV * Hd, WEIGHT_MATRIX);
    weight_t *w_o = rand_weight(bk, (size_t)Hd * 2048, WEIGHT_MATRIX);
    weight_t *w_gu = rand_weight(bk, (size_t)2 * I * Hd, WEIGHT_MATRIX);
    weight_t *w_down = rand_weight(bk, (size_t)Hd * I, WEIGHT_MATRIX);
    weight_t *w_enc_qkv = rand_weight(bk, (size_t)3 * d->enc_d * d->enc_d, WEIGHT_MATRIX);
    weight_t *w_fc1 = rand_weight(bk, (size_t)d->enc_ffn * d->enc_d, WEIGHT_MATRIX);
    weight_t *w_conv1 = rand_weight(bk, (size_t)480 * 9, WEIGHT_PARAM);
    weight_t *w_conv = rand_weight(bk, (size_t)480 * 480 * 9, WEIGHT_PARAM);
    weight_t *b_conv = rand_weight(bk, 480, WEIGHT_PARAM);
    weight_t *norm_w = rand_weight(bk, (size_t)MAX(Hd, d->enc_d), WEIGHT_PARAM);

    void *x = bk.ops->buf_alloc(bk.be, (size_t)MAX(rows, enc_rows) * MAX(Hd, d->enc_d));
    void *y = bk.ops->buf_alloc(bk.be, (size_t)MAX(rows, enc_rows) * MAX(2 * I, d->enc_ffn));
    void *qkv = bk.ops->buf_alloc(bk.be, (size_t)MAX(rows, enc_rows) * MAX(QKV, 3 * d->enc_d));
    void *logits = bk.ops->buf_alloc(bk.be, (size_t)rows * V);
    fill(bk, x, MAX(rows, enc_rows), MAX(Hd, d->enc_d), table);
    fill(bk, qkv, MAX(rows, enc_rows), Hd, table);

    printf("%-34s %13s  %15s  %11s\n", "op", "time", "compute", "memory");
    /* decoder linear layers at M = rows */
    TIME("dec q|k|v     [rows x H -> 4096]", 2.0 * rows * Hd * QKV, (double)QKV * Hd * 2,
         bk.ops->matmul(bk.be, qkv, x, w_qkv, NULL, rows, Hd, QKV, 0));
    TIME("dec o_proj    [rows x 2048 -> H]", 2.0 * rows * 2048 * Hd, (double)Hd * 2048 * 2,
         bk.ops->matmul(bk.be, x, qkv, w_o, NULL, rows, 2048, Hd, 0));
    TIME("dec gate|up   [rows x H -> 2I]", 2.0 * rows * Hd * 2 * I, (double)2 * I * Hd * 2,
         bk.ops->matmul(bk.be, y, x, w_gu, NULL, rows, Hd, 2 * I, 0));
    TIME("dec down      [rows x I -> H]", 2.0 * rows * I * Hd, (double)I * Hd * 2,
         bk.ops->matmul(bk.be, x, y, w_down, NULL, rows, I, Hd, 0));
    TIME("lm head       [rows x H -> V]", 2.0 * rows * Hd * V, (double)V * Hd * 2,
         bk.ops->matmul(bk.be, logits, x, table, NULL, rows, Hd, V, 0));
    TIME("rmsnorm       [rows x H]", 4.0 * rows * Hd, 2.0 * rows * Hd * act,
         bk.ops->rmsnorm(bk.be, x, x, norm_w, rows, Hd, 1e-6f));
    TIME("add + rmsnorm [rows x H]", 7.0 * rows * Hd, 4.0 * rows * Hd * act,
         bk.ops->add_rmsnorm(bk.be, y, x, y, norm_w, rows, Hd, 1e-6f));
    TIME("swiglu        [rows x I]", 6.0 * rows * I, 3.0 * rows * I * act,
         bk.ops->swiglu(bk.be, x, y, rows, I));
    int *ids = xmalloc(rows * sizeof(int));
    TIME("argmax        [rows x V]", (double)rows * V, (double)rows * V * act,
         bk.ops->argmax(bk.be, ids, logits, rows, V));

    /* paged decode attention: rows sequences of ctx tokens each, pages scattered */
    const int pages_per = CEIL_DIV(ctx, P);
    const kv_geom_t g = { 1, rows * pages_per, P, 8, 128 };
    kv_cache_t *kv = bk.ops->kv_alloc(bk.be, &g);
    if (!kv) qasr_die(3, "%s", qasr_last_error());
    int *tables = xmalloc((size_t)rows * pages_per * sizeof(int)), *seq = xmalloc(rows * sizeof(int));
    int *len = xmalloc(rows * sizeof(int)), *pos = xmalloc(rows * sizeof(int)), *slot = xmalloc(rows * sizeof(int));
    for (int s = 0; s < rows; s++) {
        for (int j = 0; j < pages_per; j++) tables[s * pages_per + j] = (j * rows + s) % (rows * pages_per);
        seq[s] = s;
        len[s] = ctx;
        pos[s] = ctx - 1;
        slot[s] = tables[s * pages_per + (ctx - 1) / P] * P + (ctx - 1) % P;
    }
    const size_t mark = bk.ops->scratch_mark(bk.be);
    const paged_attn_t pa = {
        .n_rows = rows, .n_heads = 16, .n_kv_heads = 8, .head_dim = 128, .q_stride = QKV,
        .scale = 1.0f / sqrtf(128.0f), .ctx_len = bk.ops->ints(bk.be, len, rows),
        .row_seq = bk.ops->ints(bk.be, seq, rows),
        .block_tables = bk.ops->ints(bk.be, tables, (size_t)rows * pages_per), .max_blocks = pages_per, .max_ctx = ctx,
    };
    const int *d_slot = bk.ops->ints(bk.be, slot, rows);
    weight_t *rope = bk.ops->weight_alloc(bk.be, (size_t)ctx * 128, WEIGHT_PARAM, DTYPE_F32);
    if (!rope) qasr_die(3, "%s", qasr_last_error());
    bk.ops->rope_table(bk.be, rope, ctx, 128, 1e6f);
    const int *d_pos = bk.ops->ints(bk.be, pos, rows);
    TIME("qk norm + rope + kv store [rows]", 12.0 * rows * 24 * 128, (double)rows * (QKV + 128 + 4096) * act,
         bk.ops->qk_norm_rope_store(bk.be, kv, 0, qkv, norm_w, norm_w, rope, d_pos, d_slot, rows, 16, 8, 128, 1e-6f));
    TIME("paged attention decode [rows x ctx]", 4.0 * rows * 16 * ctx * 128, (double)rows * ctx * 2 * 1024 * act,
         bk.ops->paged_attention(bk.be, y, qkv, kv, 0, &pa));
    bk.ops->scratch_release(bk.be, mark);

    /* encoder at 80 s of audio per pass */
    const int D = d->enc_d, F = d->enc_ffn;
    TIME("enc q|k|v     [1040 x D -> 3D]", 2.0 * enc_rows * D * 3 * D, (double)3 * D * D * 2,
         bk.ops->matmul(bk.be, qkv, x, w_enc_qkv, NULL, enc_rows, D, 3 * D, 0));
    TIME("enc fc1       [1040 x D -> F]", 2.0 * enc_rows * D * F, (double)F * D * 2,
         bk.ops->matmul(bk.be, y, x, w_fc1, NULL, enc_rows, D, F, 0));
    TIME("layernorm     [1040 x D]", 8.0 * enc_rows * D, 2.0 * enc_rows * D * act,
         bk.ops->layernorm(bk.be, x, x, norm_w, norm_w, enc_rows, D, 1e-5f));
    TIME("add + layernorm [1040 x D]", 10.0 * enc_rows * D, 4.0 * enc_rows * D * act,
         bk.ops->add_layernorm(bk.be, y, x, y, norm_w, norm_w, enc_rows, D, 1e-5f));
    TIME("gelu          [1040 x F]", 20.0 * enc_rows * F, 2.0 * enc_rows * F * act,
         bk.ops->gelu(bk.be, y, (size_t)enc_rows * F));
    int ws[10], wl[10];
    for (int w = 0; w < 10; w++) ws[w] = w * 104, wl[w] = 104;
    const size_t m2 = bk.ops->scratch_mark(bk.be);
    const int *d_ws = bk.ops->ints(bk.be, ws, 10), *d_wl = bk.ops->ints(bk.be, wl, 10);
    TIME("window attention [10 x 104, H]", 4.0 * 10 * d->enc_heads * 104 * 104 * 64, 4.0 * enc_rows * D * act,
         bk.ops->window_attention(bk.be, x, qkv, d_ws, d_wl, 10, d->enc_heads, D / d->enc_heads, 0.125f));
    bk.ops->scratch_release(bk.be, m2);
    /* conv1 and conv2 of the stem for 8 chunks (8 s of audio): conv2 is the stem's largest layer;
     * bytes: input, weights, output */
    void *cmel = bk.ops->buf_alloc(bk.be, (size_t)8 * 128 * 100);
    void *cin = bk.ops->buf_alloc(bk.be, (size_t)480 * 8 * 64 * 50), *cout = bk.ops->buf_alloc(bk.be, (size_t)480 * 8 * 32 * 25);
    TIME("conv1 3x3/2 + GELU [8 chunks]", 2.0 * 480 * 9 * 8 * 64 * 50,
         ((double)8 * 128 * 100 + 480 * 9 + 480.0 * 8 * 64 * 50) * act,
         bk.ops->conv3x3s2_gelu(bk.be, cin, cmel, w_conv1, b_conv, 1, 480, 8, 128, 100));
    TIME("conv2 3x3/2 + GELU [8 chunks]", 2.0 * 480 * 480 * 9 * 8 * 32 * 25,
         ((double)480 * 8 * (64 * 50 + 32 * 25) + 480.0 * 480 * 9) * act,
         bk.ops->conv3x3s2_gelu(bk.be, cout, cin, w_conv, b_conv, 480, 480, 8, 64, 50));
    float *audio = xmalloc(30 * 16000 * sizeof(float));
    for (int i = 0; i < 30 * 16000; i++) audio[i] = 0.1f * sinf(0.01f * i);
    void *mel = bk.ops->buf_alloc(bk.be, (size_t)3000 * 128);
    TIME("log-mel       [30 s]", 3000.0 * 400 * 9 * 2, 30 * 16000 * 4.0, bk.ops->log_mel(bk.be, mel, audio, 30 * 16000, 128));
    /* an encoder call's front end: 32 utterances of 7.5 s (LibriSpeech's mean) in one op */
    enum { NB = 32, NS = 120000 };
    void *mels[NB];
    const float *clips[NB];
    int64_t lens[NB];
    for (int i = 0; i < NB; i++) {
        mels[i] = bk.ops->buf_alloc(bk.be, (size_t)(NS / 160) * 128);
        clips[i] = audio + (size_t)i * 10000; /* inside the 30 s */
        lens[i] = NS;
    }
    TIME("log-mel batch [32 x 7.5 s]", NB * 750.0 * 400 * 9 * 2, NB * NS * 4.0,
         bk.ops->log_mel_batch(bk.be, mels, clips, lens, NB, 128));
    for (int i = 0; i < NB; i++) bk.ops->buf_free(bk.be, mels[i]);

    bk.ops->kv_free(bk.be, kv);
    bk.ops->destroy(bk.be);
    free(audio), free(ids), free(tables), free(seq), free(len), free(pos), free(slot);
    return 0;
}
