#include "cpu_attention.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_gemm.h"
#include "cpu_math.h"
#include "util.h"

/* Runs of at least this many consecutive prompt rows of one sequence take the GEMM path. */
#define RUN_GEMM_ROWS 8
/* Query rows per GEMM task: bounds the score block [TILE][ctx]. */
#define TILE_ROWS 128

/* Softmax of s[0..n); s[n..total) set to 0 (keys a causal row must not see). */
static void softmax_prefix(float *s, int n, int total)
{
    float mx = -FLT_MAX;
    for (int j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        s[j] = qexpf(s[j] - mx);
        sum += s[j];
    }
    const float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) s[j] *= inv;
    for (int j = n; j < total; j++) s[j] = 0.0f;
}

void cpu_attn_window(float *out, const float *qkv, const int *win_start, const int *win_len,
                     int n_win, int H, int Dh, float scale)
{
    const int HD = H * Dh, ld = 3 * HD;
    int max_len = 1;
    for (int w = 0; w < n_win; w++) max_len = MAX(max_len, win_len[w]);
    /* one (window, head) pair per task: two small sgemms around a row softmax */
#pragma omp parallel
    {
        float *S = xmalloc((size_t)max_len * max_len * sizeof(float));
#pragma omp for schedule(dynamic)
        for (int t = 0; t < n_win * H; t++) {
            const int w = t / H, h = t % H, L = win_len[w];
            const float *q = qkv + (size_t)win_start[w] * ld + h * Dh;
            sgemm('N', 'T', L, L, Dh, scale, q, ld, q + HD, ld, 0.0f, S, L);
            for (int i = 0; i < L; i++) softmax_prefix(S + (size_t)i * L, L, L);
            sgemm('N', 'N', L, Dh, L, 1.0f, S, L, q + 2 * HD, ld, 0.0f, out + (size_t)win_start[w] * HD + h * Dh, HD);
        }
        free(S);
    }
}

/* Element offset of page `page`, keys (which 0) or values (1), kv head g. */
static inline size_t kv_page(const kv_cache_t *kv, int layer, int page, int which, int g)
{
    const kv_geom_t *k = &kv->g;
    const size_t page_elems = (size_t)k->page_size * k->head_dim;
    return ((((size_t)layer * k->n_pages + page) * 2 + which) * k->n_kv_heads + g) * page_elems;
}

static inline void kv_put(const kv_cache_t *kv, size_t at, const float *src, int n)
{
    if (kv->bf16) {
        uint16_t *d = (uint16_t *)kv->data + at;
        for (int i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
    } else {
        memcpy((float *)kv->data + at, src, n * sizeof(float));
    }
}

/* n elements at offset at, as fp32: a pointer into the cache, or widened into buf. */
static inline const float *kv_get(const kv_cache_t *kv, size_t at, int n, float *buf)
{
    if (!kv->bf16) return (const float *)kv->data + at;
    widen_bf16(buf, (const uint16_t *)kv->data + at, n);
    return buf;
}

void cpu_attn_kv_store(kv_cache_t *kv, int layer, const float *qkv, const int *slot, int rows, int H,
                       int Hkv, int Dh)
{
    const int P = kv->g.page_size, stride = (H + 2 * Hkv) * Dh;
    QASR_ASSERT(kv->g.n_kv_heads == Hkv && kv->g.head_dim == Dh);
    for (int r = 0; r < rows; r++) {
        const int page = slot[r] / P, off = slot[r] % P;
        const float *k = qkv + (size_t)r * stride + H * Dh, *v = k + Hkv * Dh;
        for (int g = 0; g < Hkv; g++) {
            kv_put(kv, kv_page(kv, layer, page, 0, g) + (size_t)off * Dh, k + g * Dh, Dh);
            kv_put(kv, kv_page(kv, layer, page, 1, g) + (size_t)off * Dh, v + g * Dh, Dh);
        }
    }
}

/* Copy keys (which 0) or values (1) at positions 0..n-1 of kv head g into dst [n][Dh]. */
static void gather(float *dst, const kv_cache_t *kv, int layer, const int *bt, int n, int which, int g)
{
    const int P = kv->g.page_size, Dh = kv->g.head_dim;
    for (int j0 = 0; j0 < n; j0 += P) {
        const size_t at = kv_page(kv, layer, bt[j0 / P], which, g);
        const int len = MIN(P, n - j0) * Dh;
        if (kv->bf16)
            widen_bf16(dst + (size_t)j0 * Dh, (const uint16_t *)kv->data + at, len);
        else
            memcpy(dst + (size_t)j0 * Dh, (const float *)kv->data + at, len * sizeof(float));
    }
}

/* One decode-style row: the G query heads of kv head g against positions 0..n-1. */
static void attend_row(float *out, const float *qg, const kv_cache_t *kv, int layer, const int *bt, int n,
                       int g, int G, float scale, float *s, float *acc, float *page_buf)
{
    const int Dh = kv->g.head_dim, P = kv->g.page_size;
    for (int j0 = 0; j0 < n; j0 += P) {
        const float *kp = kv_get(kv, kv_page(kv, layer, bt[j0 / P], 0, g), MIN(P, n - j0) * Dh, page_buf);
        for (int j = j0; j < MIN(n, j0 + P); j++) {
            const float *k = kp + (j - j0) * Dh;
            for (int h = 0; h < G; h++) {
                const float *qh = qg + h * Dh;
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int d = 0; d < Dh; d++) dot += qh[d] * k[d];
                s[(size_t)h * n + j] = dot * scale;
            }
        }
    }
    for (int h = 0; h < G; h++) softmax_prefix(s + (size_t)h * n, n, n);
    memset(acc, 0, (size_t)G * Dh * sizeof(float));
    for (int j0 = 0; j0 < n; j0 += P) {
        const float *vp = kv_get(kv, kv_page(kv, layer, bt[j0 / P], 1, g), MIN(P, n - j0) * Dh, page_buf);
        for (int j = j0; j < MIN(n, j0 + P); j++) {
            const float *v = vp + (j - j0) * Dh;
            for (int h = 0; h < G; h++) {
                const float pj = s[(size_t)h * n + j];
                float *a = acc + h * Dh;
                for (int d = 0; d < Dh; d++) a[d] += pj * v[d];
            }
        }
    }
    memcpy(out, acc, (size_t)G * Dh * sizeof(float));
}

/* Rows r0..r0+R-1: consecutive positions of one sequence (a prompt chunk), kv head g. Keys and
 * values are gathered once into contiguous blocks; scores and outputs are two sgemms per query
 * head; row i of the tile sees only keys 0..ctx_len[r0+i]-1 (causal). */
static void attend_rows_gemm(float *out, const float *q, const kv_cache_t *kv, int layer,
                             const paged_attn_t *p, int r0, int R, int g, float *K, float *V, float *S)
{
    const int Dh = p->head_dim, G = p->n_heads / p->n_kv_heads, HD = p->n_heads * Dh;
    const int *bt = p->block_tables + (size_t)p->row_seq[r0] * p->max_blocks;
    const int n = p->ctx_len[r0 + R - 1]; /* keys of the last row, the most */
    gather(K, kv, layer, bt, n, 0, g);
    gather(V, kv, layer, bt, n, 1, g);
    for (int h = g * G; h < (g + 1) * G; h++) {
        sgemm('N', 'T', R, n, Dh, p->scale, q + (size_t)r0 * p->q_stride + h * Dh, p->q_stride, K, Dh, 0.0f, S, n);
        for (int i = 0; i < R; i++) softmax_prefix(S + (size_t)i * n, p->ctx_len[r0 + i], n);
        sgemm('N', 'N', R, Dh, n, 1.0f, S, n, V, Dh, 0.0f, out + (size_t)r0 * HD + h * Dh, HD);
    }
}

typedef struct {
    int r0, R, g; /* R > 1: GEMM tile; R == 1: single row */
} attn_task_t;

void cpu_attn_paged(float *out, const float *q, const kv_cache_t *kv, int layer, const paged_attn_t *p)
{
    const int Dh = p->head_dim, Hkv = p->n_kv_heads, G = p->n_heads / Hkv;
    /* Plan: runs of consecutive positions of one sequence become GEMM tiles, other rows single
     * tasks; every task covers one kv head. */
    attn_task_t *tasks = xmalloc((size_t)p->n_rows * Hkv * sizeof *tasks);
    int n_tasks = 0;
    for (int r = 0; r < p->n_rows;) {
        int run = 1;
        while (r + run < p->n_rows && p->row_seq[r + run] == p->row_seq[r] &&
               p->ctx_len[r + run] == p->ctx_len[r + run - 1] + 1)
            run++;
        if (run < RUN_GEMM_ROWS) {
            for (int i = 0; i < run; i++)
                for (int g = 0; g < Hkv; g++) tasks[n_tasks++] = (attn_task_t){ r + i, 1, g };
        } else {
            for (int t = 0; t < run; t += TILE_ROWS)
                for (int g = 0; g < Hkv; g++) tasks[n_tasks++] = (attn_task_t){ r + t, MIN(TILE_ROWS, run - t), g };
        }
        r += run;
    }
#pragma omp parallel
    {
        float *K = NULL, *V = NULL, *S = NULL;
        float *s = xmalloc((size_t)G * p->max_ctx * sizeof(float)), *acc = xmalloc((size_t)G * Dh * sizeof(float));
        float *page_buf = xmalloc((size_t)kv->g.page_size * Dh * sizeof(float));
#pragma omp for schedule(dynamic)
        for (int t = 0; t < n_tasks; t++) {
            const attn_task_t *k = &tasks[t];
            if (k->R == 1) {
                const int *bt = p->block_tables + (size_t)p->row_seq[k->r0] * p->max_blocks;
                attend_row(out + (size_t)k->r0 * p->n_heads * Dh + (size_t)k->g * G * Dh,
                           q + (size_t)k->r0 * p->q_stride + (size_t)k->g * G * Dh, kv, layer, bt,
                           p->ctx_len[k->r0], k->g, G, p->scale, s, acc, page_buf);
                continue;
            }
            if (!K) { /* per-thread blocks for GEMM tiles, sized for the longest context */
                K = thread_scratch(0, (size_t)p->max_ctx * Dh * sizeof(float));
                V = thread_scratch(1, (size_t)p->max_ctx * Dh * sizeof(float));
                S = thread_scratch(2, (size_t)TILE_ROWS * p->max_ctx * sizeof(float));
            }
            attend_rows_gemm(out, q, kv, layer, p, k->r0, k->R, k->g, K, V, S);
        }
        free(s);
        free(acc);
        free(page_buf);
    }
    free(tasks);
}
