/* C-callable launchers of the CUDA kernels (one op per file in cuda/kernels/). Each launcher
 * enqueues its kernel(s) on `stream` and returns cudaGetLastError(); it never synchronises.
 * Every pointer is device memory. Activations and weights are bf16 (stored as the bits of
 * __nv_bfloat16); math inside the kernels is fp32, results rounded to bf16 on store (round to
 * nearest even), as the official bf16 model rounds at each op's output (MODEL.md section 12).
 * Shapes follow host/model/backend.h, whose CPU implementation (host/cpu/backend_cpu.c) is the reference
 * each kernel is tested against. */
#ifndef QASR_CUDA_KERNELS_H
#define QASR_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t bf16_t; /* device bf16 as seen from C */

/* ---- mel front end (mel.cu): the host runs the FFT with cuFFT between these steps ----
 * n utterances at once: utterance u's samples are x + x_off[u], x_len[u] (>= 201) of them; its
 * T_u = x_len[u] / 160 frames are the global frames f_off[u] .. f_off[u+1] - 1 (f_off [n+1]
 * ascending from 0), so frames, power and mel rows of all utterances lie one after another. */
/* frames [nf][400] fp32: row i = global frame g = f0 + i, frame t = g - f_off[u] of its utterance
 * u, i.e. the reflect-padded samples xu[160 t - 200 .. 160 t + 199] times the periodic Hann
 * window. h_f_off, h_x_len: host copies of f_off and x_len (for the shape checks and the cost). */
cudaError_t cuda_mel_frames(float *frames, const float *x, const int64_t *x_off, const int64_t *x_len,
                            const int *f_off, int n, int f0, int nf, const int *h_f_off,
                            const int64_t *h_x_len, cudaStream_t stream);
/* power [T][201] = |spec|^2, spec [T][201] complex (cufftComplex, interleaved re, im). */
cudaError_t cuda_mel_power(float *power, const float *spec, int T, cudaStream_t stream);
/* Blocks per utterance of the log and finish kernels, at most: partial holds n x this. */
#define MEL_MAX_SEG_BLOCKS 32
/* mel [total_frames][n_mels] holds filterbank energies: log10(max(x, 1e-10)) in place, and
 * partial [n][MEL_MAX_SEG_BLOCKS] the partial maxima of each utterance (max_frames: the longest
 * T_u; the same value must reach cuda_mel_finish). */
cudaError_t cuda_mel_log(float *mel, const int *f_off, int n, int n_mels, int total_frames, int max_frames,
                         float *partial, cudaStream_t stream);
/* outs[u] [T_u][n_mels] bf16 = (max(mel_u, G_u - 8) + 4) / 4, G_u = utterance u's largest log
 * (from partial); outs: a device array of n device pointers. */
cudaError_t cuda_mel_finish(bf16_t *const *outs, const float *mel, const int *f_off, int n, int n_mels,
                            int total_frames, int max_frames, const float *partial, cudaStream_t stream);

/* ---- encoder front (conv.cu, conv_implicit.cu) ---- */
/* out [N][n_mels][W] from mel [*][n_mels]: see backend.h mel_chunks */
cudaError_t cuda_mel_chunks(bf16_t *out, const bf16_t *mel, const int *start, const int *len,
                            int N, int n_mels, int W, cudaStream_t stream);
/* out [Cout][N][Ho][Wo] = gelu(conv3x3, stride 2, pad 1 (in [Cin][N][Hin][Win], w [Cout][Cin*9])
 * + bias) (exact erf GELU), Ho = (Hin-1)/2+1; an implicit GEMM (conv_implicit.cu): no work space.
 * ceil(N*Ho*Wo / 64) <= 65535. */
cudaError_t cuda_conv3x3s2_gelu(bf16_t *out, const bf16_t *in, const bf16_t *w, const bf16_t *bias, int Cin,
                                int Cout, int N, int Hin, int Win, cudaStream_t stream);
/* in [C][N][F][W] -> out [N*W][C*F] */
cudaError_t cuda_conv_flatten(bf16_t *out, const bf16_t *in, int C, int N, int F, int W,
                              cudaStream_t stream);
/* x [rows][D] += pe [period][D] row (r % period) */
cudaError_t cuda_add_pos_emb(bf16_t *x, const bf16_t *pe, int rows, int period, int D,
                             cudaStream_t stream);

/* ---- element-wise and row ops (norm.cu, act.cu, rows.cu) ---- */
cudaError_t cuda_layernorm(bf16_t *out, const bf16_t *x, const bf16_t *w, const bf16_t *b,
                           int rows, int D, float eps, cudaStream_t stream);
/* See backend.h add_layernorm: x = bf16(x + delta), out = layernorm(x) with w, b. out may be delta. */
cudaError_t cuda_add_layernorm(bf16_t *out, bf16_t *x, const bf16_t *delta, const bf16_t *w, const bf16_t *b,
                               int rows, int D, float eps, cudaStream_t stream);
cudaError_t cuda_rmsnorm(bf16_t *out, const bf16_t *x, const bf16_t *w, int rows, int D, float eps,
                         cudaStream_t stream);
/* See backend.h add_rmsnorm: x = bf16(x + delta), out = rmsnorm(x) with w; out and w both NULL:
 * the add alone. out may be delta. */
cudaError_t cuda_add_rmsnorm(bf16_t *out, bf16_t *x, const bf16_t *delta, const bf16_t *w, int rows, int D,
                             float eps, cudaStream_t stream);
cudaError_t cuda_gelu(bf16_t *x, int64_t n, cudaStream_t stream);
/* out [rows][Dff] = silu(gu[:, :Dff]) * gu[:, Dff:] */
cudaError_t cuda_swiglu(bf16_t *out, const bf16_t *gu, int rows, int Dff, cudaStream_t stream);
/* out [n][D] = table rows ids[i]; ids[i] < 0: row prev[-ids[i] - 1] (the previous step's argmax
 * ids, read on the device) */
cudaError_t cuda_embed(bf16_t *out, const bf16_t *table, const int *ids, const int *prev, int n, int D,
                       cudaStream_t stream);
/* out [n][D] = in rows idx[i] */
cudaError_t cuda_gather_rows(bf16_t *out, const bf16_t *in, const int *idx, int n, int D,
                             cudaStream_t stream);
/* ids[i] = argmax of logits row i [n][V]; lowest index on an exact tie. work: device workspace of
 * at least cuda_argmax_work_bytes(n, V) bytes (partials of the first pass), 4-byte aligned. */
cudaError_t cuda_argmax(int *ids, const bf16_t *logits, int n, int V, void *work, size_t work_bytes,
                        cudaStream_t stream);
size_t cuda_argmax_work_bytes(int n, int V);

/* ---- attention (window_attention.cu, qk_norm_rope.cu, paged_attention.cu) ---- */
/* See backend.h window_attention; max_len >= every win_len (the grid covers max_len rows per
 * window). Dh <= 128, any value. */
cudaError_t cuda_window_attention(bf16_t *out, const bf16_t *qkv, const int *win_start,
                                  const int *win_len, int n_win, int max_len, int H, int Dh,
                                  float scale, cudaStream_t stream);
/* rope [n_pos][Dh]: see backend.h rope_table; bf16(cos), bf16(sin) of the fp32 angles
 * (qk_norm_rope.cu). Dh even. */
cudaError_t cuda_rope_table(bf16_t *rope, int n_pos, int Dh, float theta, cudaStream_t stream);
/* kv: this layer's cache [n_pages][2][Hkv][P][Dh]. See backend.h qk_norm_rope_store; pos[r] <
 * rope's rows; the k part of qkv is left as it was. Dh even, <= 256; kv and qkv 4-byte aligned.
 * Rounds like the bf16 reference (MODEL.md 12.7): see qk_norm_rope.cu. */
cudaError_t cuda_qk_norm_rope_store(bf16_t *kv, bf16_t *qkv, const bf16_t *qw, const bf16_t *kw,
                                    const bf16_t *rope, const int *pos, const int *slot, int rows, int H,
                                    int Hkv, int Dh, int page_size, float eps, cudaStream_t stream);
/* out [n_rows][H*Dh]; q rows with stride p->q_stride; kv: this layer's cache; the int arrays of
 * p are device pointers. See backend.h paged_attention. Dh % 8 == 0, Dh <= 128; q_stride % 8 == 0;
 * q, kv, work 16-byte aligned.
 * h_ctx_len, h_row_seq: host copies of p->ctx_len and p->row_seq (same contents), from which the
 * launcher plans on the host which rows go to the decode kernel and which runs to the tile
 * kernel; the plan goes in the kernel arguments, so the call can be captured in a CUDA graph.
 * Decode rows split their contexts on the device, from p->ctx_len: a captured call replayed with
 * longer contexts in p->ctx_len (a later decode step of the same rows) is right; one whose rows
 * changed (other sequences, prompt runs) must be captured again.
 * work: device workspace for context splits of decode rows, or NULL (no split); splits use at
 * most work_bytes of it. cuda_paged_attention_work_bytes() gives enough for any call on the
 * current device (about 0.5 MiB for H = 16, Hkv = 8, Dh = 128 on 132 SMs). Several calls on one
 * stream may share one workspace. */
cudaError_t cuda_paged_attention(bf16_t *out, const bf16_t *q, const bf16_t *kv, int page_size,
                                 const paged_attn_t *p, const int *h_ctx_len, const int *h_row_seq,
                                 float *work, size_t work_bytes, cudaStream_t stream);
cudaError_t cuda_paged_attention_work_bytes(int n_heads, int n_kv_heads, int head_dim, size_t *bytes);

#ifdef __cplusplus
}
#endif

#endif
