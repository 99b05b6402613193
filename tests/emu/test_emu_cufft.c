/* cuFFT shim against a naive double-precision DFT written here: R2C bins, the unnormalised
 * round trip C2R(R2C(x)) = n*x for even and odd n, the advanced layout with strides and
 * distances (and nothing written outside it), the basic in-place padding rule, C2R destroying
 * its input, deferred execution, and the error codes. */
#include <cuda_runtime.h>
#include <cufft.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"

static float signal(int b, int j) { return sinf(0.3f * (float)j + (float)b) + 0.25f * cosf(1.7f * (float)(j * j % 13)); }

/* |got - X_k| for every bin of transform b of signal(b, .), in units of the bin magnitude scale. */
static double dft_error(const cufftComplex *y, size_t ostride, int n, int b)
{
    double worst = 0;
    for (int k = 0; k <= n / 2; k++) {
        double re = 0, im = 0;
        for (int j = 0; j < n; j++) {
            re += signal(b, j) * cos(2 * M_PI * (double)j * k / n);
            im -= signal(b, j) * sin(2 * M_PI * (double)j * k / n);
        }
        double err = hypot(y[k * ostride].x - re, y[k * ostride].y - im) / sqrt((double)n);
        if (!(err <= worst)) worst = err;
    }
    return worst;
}

static void round_trip(int n, int batch)
{
    int bins = n / 2 + 1;
    float *h_x = malloc((size_t)n * batch * sizeof(float)), *h_back = malloc((size_t)n * batch * sizeof(float));
    cufftComplex *h_y = malloc((size_t)bins * batch * sizeof(cufftComplex));
    for (int b = 0; b < batch; b++)
        for (int j = 0; j < n; j++) h_x[b * n + j] = signal(b, j);
    float *d_x, *d_back;
    cufftComplex *d_y;
    cufftHandle r2c, c2r;
    CHECK_INT_EQ(cudaMalloc((void **)&d_x, (size_t)n * batch * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_back, (size_t)n * batch * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_y, (size_t)bins * batch * sizeof(cufftComplex)), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_x, h_x, (size_t)n * batch * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cufftPlan1d(&r2c, n, CUFFT_R2C, batch), CUFFT_SUCCESS);
    CHECK_INT_EQ(cufftPlan1d(&c2r, n, CUFFT_C2R, batch), CUFFT_SUCCESS);
    CHECK_INT_EQ(cufftExecR2C(r2c, d_x, d_y), CUFFT_SUCCESS);
    CHECK_INT_EQ(cudaMemcpy(h_y, d_y, (size_t)bins * batch * sizeof(cufftComplex), cudaMemcpyDeviceToHost), cudaSuccess);
    for (int b = 0; b < batch; b++) CHECK(dft_error(h_y + (size_t)b * bins, 1, n, b) < 1e-5);
    CHECK_INT_EQ(cufftExecC2R(c2r, d_y, d_back), CUFFT_SUCCESS);
    CHECK_INT_EQ(cudaMemcpy(h_back, d_back, (size_t)n * batch * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    double worst = 0;
    for (int i = 0; i < n * batch; i++) worst = fmax(worst, fabs(h_back[i] - (double)n * h_x[i]) / n);
    CHECK(worst < 1e-5);
    /* out-of-place C2R leaves its input destroyed */
    CHECK_INT_EQ(cudaMemcpy(h_y, d_y, sizeof(cufftComplex), cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK(isnan(h_y[0].x));
    cufftDestroy(r2c);
    cufftDestroy(c2r);
    cudaFree(d_x);
    cudaFree(d_back);
    cudaFree(d_y);
    free(h_x);
    free(h_back);
    free(h_y);
}

/* Advanced layout: batch 3 of n = 64, every 2nd input float of rows 140 floats apart, into
 * bins at odist 40; the rest of the output buffer stays untouched. */
static void advanced_layout(void)
{
    enum { NF = 64, BATCH = 3, ISTRIDE = 2, IDIST = 140, OSTRIDE = 1, ODIST = 40, BINS = NF / 2 + 1 };
    int n = NF, inembed = NF, onembed = BINS;
    float h_x[IDIST * BATCH];
    cufftComplex h_y[ODIST * BATCH];
    for (int i = 0; i < IDIST * BATCH; i++) h_x[i] = 1e6f; /* poison between the used elements */
    for (int b = 0; b < BATCH; b++)
        for (int j = 0; j < NF; j++) h_x[b * IDIST + j * ISTRIDE] = signal(b, j);
    float *d_x;
    cufftComplex *d_y;
    cufftHandle plan;
    cudaStream_t s;
    CHECK_INT_EQ(cudaStreamCreate(&s), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_x, sizeof h_x), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_y, sizeof h_y), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_x, h_x, sizeof h_x, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cufftPlanMany(&plan, 1, &n, &inembed, ISTRIDE, IDIST, &onembed, OSTRIDE, ODIST, CUFFT_R2C, BATCH),
                 CUFFT_SUCCESS);
    CHECK_INT_EQ(cufftSetStream(plan, s), CUFFT_SUCCESS);
    CHECK_INT_EQ(cufftExecR2C(plan, d_x, d_y), CUFFT_SUCCESS);
    CHECK_INT_EQ(cudaMemcpyAsync(h_y, d_y, sizeof h_y, cudaMemcpyDeviceToHost, s), cudaSuccess);
    CHECK_INT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    uint32_t bits;
    for (int b = 0; b < BATCH; b++) {
        CHECK(dft_error(h_y + b * ODIST, OSTRIDE, NF, b) < 1e-5);
        memcpy(&bits, &h_y[b * ODIST + BINS].x, 4);
        CHECK(bits == 0xffffffffu); /* past the last bin: still cudaMalloc's fill */
    }
    cufftDestroy(plan);
    cudaStreamDestroy(s);
    cudaFree(d_x);
    cudaFree(d_y);
}

/* Basic layout in place: real rows padded to 2 * (n/2 + 1) floats. */
static void in_place(void)
{
    enum { NF = 30, BATCH = 2, PADDED = 2 * (NF / 2 + 1) };
    float h[PADDED * BATCH];
    for (int b = 0; b < BATCH; b++)
        for (int j = 0; j < PADDED; j++) h[b * PADDED + j] = j < NF ? signal(b, j) : 0.0f;
    float *d;
    cufftHandle plan;
    CHECK_INT_EQ(cudaMalloc((void **)&d, sizeof h), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cufftPlan1d(&plan, NF, CUFFT_R2C, BATCH), CUFFT_SUCCESS);
    CHECK_INT_EQ(cufftExecR2C(plan, d, (cufftComplex *)d), CUFFT_SUCCESS);
    CHECK_INT_EQ(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int b = 0; b < BATCH; b++) CHECK(dft_error((const cufftComplex *)(h + b * PADDED), 1, NF, b) < 1e-5);
    cufftDestroy(plan);
    /* an advanced in-place layout whose real and complex elements do not coincide */
    int n = NF, embed = NF;
    CHECK_INT_EQ(cufftPlanMany(&plan, 1, &n, &embed, 1, NF, &embed, 1, NF / 2 + 1, CUFFT_R2C, BATCH), CUFFT_SUCCESS);
    CHECK_INT_EQ(cufftExecR2C(plan, d, (cufftComplex *)d), CUFFT_INVALID_VALUE);
    cufftDestroy(plan);
    cudaFree(d);
}

static void errors(void)
{
    cufftHandle plan;
    int n2[2] = {8, 8}, n = 8;
    float *d;
    CHECK_INT_EQ(cudaMalloc((void **)&d, 64 * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cufftPlanMany(&plan, 2, n2, NULL, 1, 0, NULL, 1, 0, CUFFT_R2C, 1), CUFFT_NOT_SUPPORTED);
    CHECK_INT_EQ(cufftPlan1d(&plan, 8, CUFFT_C2C, 1), CUFFT_NOT_SUPPORTED);
    CHECK_INT_EQ(cufftPlan1d(&plan, 0, CUFFT_R2C, 1), CUFFT_INVALID_SIZE);
    CHECK_INT_EQ(cufftPlan1d(&plan, 8, CUFFT_R2C, 0), CUFFT_INVALID_SIZE);
    CHECK_INT_EQ(cufftPlan1d(&plan, 8, (cufftType)0x99, 1), CUFFT_INVALID_TYPE);
    CHECK_INT_EQ(cufftPlanMany(&plan, 1, &n, &n, 0, 8, &n, 1, 5, CUFFT_R2C, 1), CUFFT_INVALID_VALUE);
    CHECK_INT_EQ(cufftPlan1d(&plan, 8, CUFFT_R2C, 1), CUFFT_SUCCESS);
    CHECK_INT_EQ(cufftExecC2R(plan, (cufftComplex *)d, d), CUFFT_INVALID_VALUE); /* wrong direction */
    CHECK_INT_EQ(cufftExecR2C(plan, NULL, (cufftComplex *)d), CUFFT_INVALID_VALUE);
    size_t work = 1;
    CHECK_INT_EQ(cufftGetSize(plan, &work), CUFFT_SUCCESS);
    CHECK(work == 0);
    CHECK_INT_EQ(cufftDestroy(plan), CUFFT_SUCCESS);
    CHECK_INT_EQ(cufftExecR2C(plan, d, (cufftComplex *)d), CUFFT_INVALID_PLAN);
    CHECK_INT_EQ(cufftDestroy(plan), CUFFT_INVALID_PLAN);
    /* a made plan on a buffer too small: a fault when it runs */
    CHECK_INT_EQ(cufftPlan1d(&plan, 64, CUFFT_R2C, 2), CUFFT_SUCCESS);
    CHECK_INT_EQ(cufftExecR2C(plan, d, (cufftComplex *)d + 40), CUFFT_SUCCESS);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaErrorIllegalAddress);
    CHECK_INT_EQ(cudaDeviceReset(), cudaSuccess);
    cufftDestroy(plan);
}

int main(void)
{
    round_trip(400, 3);
    round_trip(397, 2);
    round_trip(1, 1);
    advanced_layout();
    in_place();
    errors();
    return test_result("test_emu_cufft");
}
