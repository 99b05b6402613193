/* fp32 conv stem layer (contract in cpu_conv.h). */
#include "cpu_conv.h"

#include "cpu_gemm.h"
#include "cpu_math.h"
#include "util.h"

/* im2col of all N chunks side by side, [Cin*9][N][Ho*Wo], so that one GEMM over N*P columns
 * writes the [Cout][N][Ho][Wo] layout directly: a few parallel regions per layer, not per chunk
 * (each region costs a barrier, and a barrier costs a time slice on a busy machine). Each output
 * row is a stride-2 read of one input row between zero edges, with the bounds found once per
 * row so that the copy vectorises. */
static void im2col_s2(float *col, const float *x, int Cin, int N, int Hin, int Win)
{
    const int Ho = (Hin - 1) / 2 + 1, Wo = (Win - 1) / 2 + 1, P = Ho * Wo;
    const size_t NP = (size_t)N * P;
#pragma omp parallel for collapse(2)
    for (int k = 0; k < Cin * 9; k++)
        for (int n = 0; n < N; n++) {
            const int c = k / 9, dy = k % 9 / 3, dx = k % 3;
            /* ox is inside the input for lo <= ox < hi: 0 <= 2 ox + dx - 1 < Win */
            const int lo = dx == 0, hi = MIN(Wo, (Win - dx + 2) / 2);
            const float *xc = x + ((size_t)c * N + n) * Hin * Win;
            for (int oy = 0; oy < Ho; oy++) {
                const int iy = 2 * oy + dy - 1, inside = iy >= 0 && iy < Hin;
                const float *src = xc + (size_t)(inside ? iy : 0) * Win;
                float *d = col + (size_t)k * NP + (size_t)n * P + (size_t)oy * Wo;
                for (int ox = 0; ox < Wo; ox++) d[ox] = 0.0f;
                if (inside)
                    for (int ox = lo; ox < hi; ox++) d[ox] = src[2 * ox + dx - 1];
            }
        }
}

size_t conv3x3s2_fp32_work(int Cin, int N, int Hin, int Win)
{
    return (size_t)Cin * 9 * N * ((Hin - 1) / 2 + 1) * ((Win - 1) / 2 + 1);
}

void conv3x3s2_gelu_fp32(float *o, const float *in, const float *k, const float *b, int Cin, int Cout, int N,
                         int Hin, int Win, float *col)
{
    const int Ho = (Hin - 1) / 2 + 1, Wo = (Win - 1) / 2 + 1, K = Cin * 9;
    const size_t NP = (size_t)N * Ho * Wo;
    im2col_s2(col, in, Cin, N, Hin, Win);
    sgemm('N', 'N', Cout, (int)NP, K, 1.0f, k, K, col, (int)NP, 0.0f, o, (int)NP);
#pragma omp parallel for
    for (int co = 0; co < Cout; co++) {
        float *r = o + (size_t)co * NP;
        for (size_t i = 0; i < NP; i++) r[i] = qgelu(r[i] + b[co]);
    }
}
