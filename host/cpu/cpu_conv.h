/* The fp32 3x3 stride-2 convolution + bias + GELU of the conv stem: im2col + one sgemm. It is
 * the fp32 reference, and on the bf16 path still the first layer (one input channel: 1/50 of
 * the FLOPs, where im2col + sgemm takes half the time of oneDNN's fp32 kernel). Its own file so
 * that the backend and the precision plan's timings (cpu_plan_measure.c) run the same code. */
#ifndef QASR_CPU_CONV_H
#define QASR_CPU_CONV_H

#include <stddef.h>

/* Floats of the work space conv3x3s2_gelu_fp32 needs. */
size_t conv3x3s2_fp32_work(int Cin, int N, int Hin, int Win);

/* out [Cout][N][Ho][Wo] = GELU(conv(in [Cin][N][Hin][Win], w [Cout][Cin][3][3]) + bias [Cout]),
 * stride 2, zero padding 1, Ho = (Hin-1)/2+1, Wo = (Win-1)/2+1; col: conv3x3s2_fp32_work floats. */
void conv3x3s2_gelu_fp32(float *out, const float *in, const float *w, const float *bias, int Cin, int Cout, int N,
                         int Hin, int Win, float *col);

#endif
