/* Branch-free float math for the CPU backend's element-wise loops. glibc's expf/erff are
 * scalar calls that stop GCC from vectorising a loop, and the conv stem alone applies GELU to
 * ~2 million values per second of audio, so these inline versions matter.
 * Accuracy: qexpf within ~2 ulp of expf on [-87, 88]; qerff within 1.5e-7 absolute of erf
 * (Abramowitz & Stegun 7.1.26), which makes GELU accurate to ~1.5e-7 relative. */
#ifndef QASR_CPU_MATH_H
#define QASR_CPU_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float qexpf(float x)
{
    /* plain compares, not fminf/fmaxf: those stay libm calls without -ffinite-math-only */
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    /* round to nearest by adding 1.5 * 2^23 (floorf would block vectorisation) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    /* x - n ln2 with ln2 split in two so the reduction is exact to float precision (Cephes) */
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float qerff(float x)
{
    float a = fabsf(x);
    float t = 1.0f / fmaf(0.3275911f, a, 1.0f);
    float poly = fmaf(fmaf(fmaf(fmaf(1.061405429f, t, -1.453152027f), t, 1.421413741f), t,
                           -0.284496736f), t, 0.254829592f) * t;
    float y = 1.0f - poly * qexpf(-a * a);
    return copysignf(y, x);
}

/* exact GELU: 0.5 x (1 + erf(x / sqrt 2)) */
static inline float qgelu(float x) { return 0.5f * x * (1.0f + qerff(x * 0.70710678118654752f)); }

static inline float qsilu(float x) { return x / (1.0f + qexpf(-x)); }

#endif
