/* The precision plan's decision (contract in cpu_plan.h). */
#include "cpu_plan.h"

#include <stdio.h>
#include <string.h>

const int plan_class_rows[N_ROW_CLASSES] = { 1, 16, 256 };

#define CONV_CHUNKS 8 /* chunks of the conv stem timed at once: an encoder pass's worth */

static void add_shape(cpu_plan_t *p, int N, int K, int role)
{
    for (int i = 0; i < p->n; i++)
        if (p->m[i].N == N && p->m[i].K == K) {
            p->m[i].roles |= role;
            return;
        }
    if (p->n < PLAN_MAX_MATRICES) p->m[p->n++] = (plan_matrix_t){ .N = N, .K = K, .roles = role };
}

void plan_shapes(cpu_plan_t *p, const model_config_t *c)
{
    memset(p, 0, sizeof *p);
    const int D = c->enc_d, Cc = c->conv_ch, H3 = config_conv_out_freq(c);
    add_shape(p, D, Cc * H3, ROLE_ENC); /* conv_out */
    add_shape(p, 3 * D, D, ROLE_ENC);
    add_shape(p, D, D, ROLE_ENC);       /* attention out, proj1 */
    add_shape(p, c->enc_ffn, D, ROLE_ENC);
    add_shape(p, D, c->enc_ffn, ROLE_ENC);
    add_shape(p, c->enc_out, D, ROLE_ENC);
    const int Hd = c->dec_hidden, Hq = c->dec_heads * c->dec_head_dim, Hkv = c->dec_kv_heads * c->dec_head_dim;
    add_shape(p, Hq + 2 * Hkv, Hd, ROLE_DEC);
    add_shape(p, Hd, Hq, ROLE_DEC);
    add_shape(p, 2 * c->dec_inter, Hd, ROLE_DEC);
    add_shape(p, Hd, c->dec_inter, ROLE_DEC);
    add_shape(p, c->head_rows, Hd, ROLE_DEC);
    p->conv_cin = Cc;
    p->conv_n = CONV_CHUNKS;
    p->conv_hin = (c->n_mels - 1) / 2 + 1;
    p->conv_win = (config_conv_chunk(c) - 1) / 2 + 1;
}

void plan_uniform(cpu_plan_t *p, int bf16)
{
    for (int i = 0; i < p->n; i++) {
        plan_matrix_t *m = &p->m[i];
        m->pack = bf16;
        for (int c = 0; c < N_ROW_CLASSES; c++) m->run[c] = bf16 ? RUN_BF16_PACKED : RUN_FP32;
    }
    p->conv_bf16 = p->kv_bf16 = p->any_bf16 = p->other_bf16 = bf16;
}

/* a faster than b, both measured (a tie is not faster) */
static int faster(double a, double b) { return a > 0 && b > 0 && a < b; }

void plan_decide(cpu_plan_t *p)
{
    int dec_all_bf16 = 1, dec_any = 0;
    p->any_bf16 = 0;
    for (int i = 0; i < p->n; i++) {
        plan_matrix_t *m = &p->m[i];
        m->pack = 1;
        for (int c = 0; c < N_ROW_CLASSES; c++)
            if (!faster(m->t[c][RUN_BF16_PACKED], m->t[c][RUN_FP32])) m->pack = 0;
        for (int c = 0; c < N_ROW_CLASSES; c++) {
            m->run[c] = m->pack ? RUN_BF16_PACKED
                      : faster(m->t[c][RUN_BF16_PLAIN], m->t[c][RUN_FP32]) ? RUN_BF16_PLAIN : RUN_FP32;
            if (m->run[c] != RUN_FP32) p->any_bf16 = 1;
        }
        if (m->roles & ROLE_DEC) {
            dec_any = 1;
            dec_all_bf16 &= m->pack;
        }
    }
    /* decode steps read the whole cache: bf16 halves that where the decoder is bf16 anyway; with
     * fp32 products anywhere in the decoder it stays fp32, as the fp32 path has it */
    p->kv_bf16 = dec_any && dec_all_bf16;
    p->conv_bf16 = faster(p->conv_t[1], p->conv_t[0]);
    p->other_bf16 = 0; /* a shape nobody timed: the reference */
}

const plan_matrix_t *plan_find(const cpu_plan_t *p, int N, int K)
{
    for (int i = 0; i < p->n; i++)
        if (p->m[i].N == N && p->m[i].K == K) return &p->m[i];
    return NULL;
}

static const char *const run_name[N_RUNS] = { "fp32", "bf16", "bf16 (plain weights)" };
static const char *const class_name[N_ROW_CLASSES] = { "1-4 rows", "5-63 rows", "64+ rows" };

static size_t put(char *buf, size_t n, size_t at, const char *fmt, double a, double b)
{
    if (at >= n) return at;
    const int k = snprintf(buf + at, n - at, fmt, a, b);
    return k > 0 ? at + (size_t)k : at;
}

void plan_describe(const cpu_plan_t *p, char *buf, size_t n)
{
    size_t at = 0;
    if (n) buf[0] = '\0';
    at += snprintf(buf, n, "precision plan (%s): conv stem %s, KV cache %s", p->source, p->conv_bf16 ? "bf16" : "fp32",
                   p->kv_bf16 ? "bf16" : "fp32");
    if (p->conv_t[0] > 0 && p->conv_t[1] > 0)
        at = put(buf, n, at, " (conv layer fp32 %.2f ms, bf16 %.2f ms)", p->conv_t[0] * 1e3, p->conv_t[1] * 1e3);
    for (int i = 0; i < p->n; i++) {
        const plan_matrix_t *m = &p->m[i];
        if (at < n)
            at += snprintf(buf + at, n - at, "\n  %6d x %-6d (%s%s%s):", m->N, m->K, m->roles & ROLE_ENC ? "encoder" : "",
                           m->roles == (ROLE_ENC | ROLE_DEC) ? ", " : "", m->roles & ROLE_DEC ? "decoder" : "");
        for (int c = 0; c < N_ROW_CLASSES; c++) {
            if (at < n) at += snprintf(buf + at, n - at, "%s %s %s", c ? "," : "", class_name[c], run_name[m->run[c]]);
            const double *t = m->t[c];
            if (t[RUN_FP32] > 0)
                at = put(buf, n, at, " (ms: fp32 %.3f, bf16 %.3f", t[RUN_FP32] * 1e3, t[RUN_BF16_PACKED] * 1e3);
            if (t[RUN_FP32] > 0) at = put(buf, n, at, ", plain %.3f)", t[RUN_BF16_PLAIN] * 1e3, 0);
        }
    }
    if (at >= n && n > 4) memcpy(buf + n - 4, "...", 4);
}
