/* What the kernel tests in tests/cuda share: the CPU backend they compare against, the stream
 * the kernels run on, bf16 inputs, device upload and download, and the element-wise comparison
 * that prints the max errors. One test per translation unit includes it. */
#ifndef QASR_KERNEL_TEST_H
#define QASR_KERNEL_TEST_H

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "backend_cpu.h"
#include "util.h"
#include "../test.h"

#define U 0x1p-8 /* bf16 unit roundoff */

static backend_ref_t ref;    /* the CPU backend: reference ops and host scratch */
static cudaStream_t stream;  /* where the kernels run */

/* bound on the relative error of k roundings to bf16 */
static inline double roundings(int k) { return pow(1.0 + U, k) - 1.0; }

/* ---------------- the device ---------------- */

/* Called first in main: without a CUDA device (no driver, no GPU: the *_gpu builds of these
 * tests on a machine without one) the test is skipped, exit 77, as ctest's SKIP_RETURN_CODE says.
 * The emulation always has a device. */
static inline void require_device(void)
{
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n < 1) {
        printf("SKIPPED: no CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        exit(77);
    }
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) printf("device 0: %s, sm_%d%d\n", p.name, p.major, p.minor);
}

/* ---------------- inputs ---------------- */

/* The xorshift64 step. Each test keeps its own seed and derives frand() from it in its own way,
 * so its inputs stay fixed. */
static inline uint64_t xorshift64(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float frand(float lo, float hi); /* uniform in [lo, hi); defined by each test */

static inline float bf16r(float x) { return bf16_to_f32(f32_to_bf16(x)); }

/* n bf16-representable values uniform in [lo, hi), in a CPU-backend scratch buffer */
static inline float *rand_bf16(size_t n, float lo, float hi)
{
    float *h = ref.ops->scratch(ref.be, n);
    for (size_t i = 0; i < n; i++) h[i] = bf16r(frand(lo, hi));
    return h;
}

/* h [n] (fp32) as a weight of the CPU backend, for its ops that take weights (kept until the
 * backend is destroyed) */
static inline weight_t *ref_weight(const float *h, size_t n)
{
    weight_t *w = ref.ops->weight_alloc(ref.be, n, WEIGHT_PARAM, DTYPE_F32);
    CHECK(w != NULL);
    ref.ops->weight_upload(ref.be, w, 0, h, DTYPE_F32, n);
    return w;
}

/* ---------------- device memory ---------------- */

/* Device memory filled with 0xFF (bf16 NaN, int -1), on a GPU too: an output element a kernel
 * forgets to write stays NaN and fails the comparison (the emulation poisons cudaMalloc itself). */
static inline void *dev_alloc(size_t bytes)
{
    void *d = NULL;
    CHECK_INT_EQ(cudaMalloc(&d, bytes), cudaSuccess);
    if (d) CHECK_INT_EQ(cudaMemset(d, 0xff, bytes), cudaSuccess);
    return d;
}

/* A device bf16 copy of h [n], `offset` elements into its allocation (offset 1: a pointer that is
 * 2 mod 4, for the kernels' scalar paths). Free with dev_free(p, offset). */
static inline bf16_t *to_dev(const float *h, size_t n, size_t offset)
{
    uint16_t *tmp = xmalloc((n + offset) * sizeof *tmp);
    for (size_t i = 0; i < n + offset; i++) tmp[i] = i < offset ? 0 : f32_to_bf16(h[i - offset]);
    bf16_t *d = dev_alloc((n + offset) * sizeof *d);
    CHECK_INT_EQ(cudaMemcpy(d, tmp, (n + offset) * sizeof *d, cudaMemcpyHostToDevice), cudaSuccess);
    free(tmp);
    return d + offset;
}

/* An output buffer of n bf16, `offset` elements into its allocation as to_dev's, all NaN: what
 * a kernel leaves unwritten fails the comparison. Free with dev_free(p, offset). */
static inline bf16_t *dev_nan(size_t n, size_t offset)
{
    bf16_t *d = dev_alloc((n + offset) * sizeof *d);
    return d + offset;
}

static inline void dev_free(void *d, size_t offset) { cudaFree((bf16_t *)d - offset); }

/* Waits for the stream (where kernels run, in the emulation), then copies d [n] back as fp32. */
static inline void from_dev(float *h, const bf16_t *d, size_t n)
{
    CHECK_INT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    uint16_t *tmp = xmalloc(n * sizeof *tmp);
    CHECK_INT_EQ(cudaMemcpy(tmp, d, n * sizeof *tmp, cudaMemcpyDeviceToHost), cudaSuccess);
    for (size_t i = 0; i < n; i++) h[i] = bf16_to_f32(tmp[i]);
    free(tmp);
}

static inline int *ints_to_dev(const int *h, size_t n)
{
    int *d = dev_alloc(n * sizeof *d);
    CHECK_INT_EQ(cudaMemcpy(d, h, n * sizeof *d, cudaMemcpyHostToDevice), cudaSuccess);
    return d;
}

/* ---------------- comparison ---------------- */

/* |got - want| <= atol + rtol |want| element-wise (NaN fails); prints the max abs and rel errors
 * and, on failure, the count and the first element outside the tolerance. */
static inline void compare(const char *what, const float *got, const float *want, size_t n, double atol, double rtol)
{
    double max_abs = 0, max_rel = 0;
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i])) && bad++ == 0) first_bad = i;
        if (d > max_abs || isnan(d)) max_abs = d;
        if (want[i] != 0 && d / fabs(want[i]) > max_rel) max_rel = d / fabs(want[i]);
    }
    printf("  %-58s max abs %.3g  max rel %.3g  (atol %.3g, rtol %.3g)\n", what, max_abs, max_rel, atol, rtol);
    if (bad)
        fprintf(stderr, "  %s: %zu of %zu outside tolerance, first [%zu]: %.9g vs %.9g\n", what, bad, n,
                first_bad, got[first_bad], want[first_bad]);
    CHECK(bad == 0);
}

#endif
