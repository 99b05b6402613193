/* The bf16 path's 3x3 stride-2 convolutions of the conv stem (the 480-channel layers) on
 * oneDNN's convolution primitive (brgconv kernels on AVX512-BF16 / AMX): inputs rounded to
 * bf16, fp32 accumulation, the bias and the exact (erf) GELU fused. It reads the input once
 * where an im2col GEMM writes and reads it nine times, and evaluates GELU on the accumulators.
 * The fp32 path (and the first layer, one input channel) keep im2col + sgemm (backend_cpu.c). */
#ifndef QASR_CPU_CONV_DNNL_H
#define QASR_CPU_CONV_DNNL_H

#include <stddef.h>

/* One kernel w [Cout][Cin][3][3] (fp32) with what oneDNN makes for it: per shape, the primitives
 * and the kernel's bf16 copy in oneDNN's layout, all freed with it. w must stay at its address,
 * unchanged, while the object lives. */
typedef struct conv_bf16 conv_bf16_t;
conv_bf16_t *conv3x3s2_bf16_new(const float *w);
void conv3x3s2_bf16_free(conv_bf16_t *c);

/* out [Cout][N][Ho][Wo] = GELU(conv(in [Cin][N][Hin][Win], w) + bias [Cout]), stride 2, zero
 * padding 1, Ho = (Hin-1)/2+1, Wo = (Win-1)/2+1. work: at least conv3x3s2_bf16_work_bytes (the
 * input in bf16 and the output, in oneDNN's layouts), 64-byte aligned. */
size_t conv3x3s2_bf16_work_bytes(conv_bf16_t *c, int Cin, int Cout, int N, int Hin, int Win);
void conv3x3s2_gelu_bf16(conv_bf16_t *c, float *out, const float *in, const float *bias, int Cin, int Cout, int N,
                         int Hin, int Win, void *work);

#endif
