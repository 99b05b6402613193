/* CPU attention: encoder windows and decoder attention over the paged KV cache (backend.h
 * describes the layouts). Products go through sgemm wherever a block of query rows shares its
 * keys: encoder windows, and runs of consecutive prompt rows of one sequence (causal prefill);
 * single decode rows use vectorised dot products that read each KV page once for the query
 * heads sharing it. The cache holds fp32, or bf16 on the bf16 path (widened a page at a time
 * as it is read). */
#ifndef QASR_CPU_ATTENTION_H
#define QASR_CPU_ATTENTION_H

#include "backend.h"

/* The CPU backend's KV cache. */
struct kv_cache {
    kv_geom_t g;
    int bf16;    /* elements are bf16 (the bf16 path: half the memory and the bytes read per step) */
    void *data;  /* [layers][pages][2 (K, V)][Hkv][P][Dh], fp32 or bf16 */
};

void cpu_attn_window(float *out, const float *qkv, const int *win_start, const int *win_len,
                     int n_win, int H, int Dh, float scale);
void cpu_attn_kv_store(kv_cache_t *kv, int layer, const float *qkv, const int *slot, int rows,
                       int H, int Hkv, int Dh);
void cpu_attn_paged(float *out, const float *q, const kv_cache_t *kv, int layer, const paged_attn_t *p);

#endif
