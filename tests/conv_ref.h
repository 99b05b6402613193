/* The conv stem's layer in float64, for the CPU tests: one output of GELU(conv3x3, stride 2,
 * zero padding 1, + bias), layouts in [Cin][N][Hin][Win], w [Cout][Cin][3][3]; with bf16 set,
 * inputs and kernel rounded to bf16 first, as the bf16 path's products see them. */
#ifndef QASR_TEST_CONV_REF_H
#define QASR_TEST_CONV_REF_H

#include <math.h>

#include "util.h"

static inline double conv3x3s2_gelu_ref(const float *in, const float *w, const float *b, int Cin, int N, int Hin,
                                        int Win, int co, int n, int oy, int ox, int bf16)
{
    double acc = b[co];
    for (int ci = 0; ci < Cin; ci++)
        for (int dy = 0; dy < 3; dy++)
            for (int dx = 0; dx < 3; dx++) {
                const int iy = 2 * oy + dy - 1, ix = 2 * ox + dx - 1;
                if (iy < 0 || iy >= Hin || ix < 0 || ix >= Win) continue;
                const float wv = w[((size_t)co * Cin + ci) * 9 + dy * 3 + dx];
                const float xv = in[(((size_t)ci * N + n) * Hin + iy) * Win + ix];
                acc += (bf16 ? (double)bf16_to_f32(f32_to_bf16(wv)) : wv) *
                       (bf16 ? (double)bf16_to_f32(f32_to_bf16(xv)) : xv);
            }
    return 0.5 * acc * (1.0 + erf(acc / sqrt(2.0)));
}

#endif
