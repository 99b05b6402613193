/* CUDA runtime shim: deferred per-stream execution (results appear only once the host waits,
 * so a missing synchronisation is observable), stream/event ordering and the legacy default
 * stream's implicit barriers, the allocation registry's checks, launch-configuration checks,
 * sticky errors, two emulated devices, host threads sharing the runtime, and graph
 * capture/replay. Run with CUEMU_SYNC=eager and CUEMU_SYNC=random too: the expectations that
 * depend on when queued work runs switch accordingly (random: either outcome), and
 * test_overtaking checks that random lets unordered streams run in either order. */
#include <cuda_runtime.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "runtime_kernels.h"

#define N 1000

static int eager, deferred; /* CUEMU_SYNC: eager, deferred (the default); neither: random */

/* Copy n floats from the device on `stream` and wait for that stream only. */
static void fetch(float *h_pinned, const float *d, int n, cudaStream_t stream)
{
    CHECK_INT_EQ(cudaMemcpyAsync(h_pinned, d, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost, stream), cudaSuccess);
    CHECK_INT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
}

static void test_deferred(void)
{
    cudaStream_t s;
    float *d_y, *h_pinned, h_page[N];
    CHECK_INT_EQ(cudaStreamCreate(&s), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_y, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMallocHost((void **)&h_pinned, N * sizeof(float)), cudaSuccess);
    CHECK(isnan(h_pinned[0])); /* pinned and device memory start as 0xFF */

    CHECK_INT_EQ(emu_fill(d_y, 1.0f, N, s), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpyAsync(h_pinned, d_y, N * sizeof(float), cudaMemcpyDeviceToHost, s), cudaSuccess);
    for (int i = 0; i < N; i++) h_page[i] = -7.0f;
    CHECK_INT_EQ(cudaMemcpyAsync(h_page, d_y, N * sizeof(float), cudaMemcpyDeviceToHost, s), cudaSuccess);
    /* The host forgot to synchronise: it still sees the old contents, as it could on a GPU. */
    if (eager) CHECK(h_pinned[N - 1] == 1.0f && h_page[N - 1] == 1.0f);
    else if (deferred) CHECK(isnan(h_pinned[N - 1]) && h_page[N - 1] == -7.0f);
    CHECK_INT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    CHECK(h_pinned[0] == 1.0f && h_pinned[N - 1] == 1.0f && h_page[0] == 1.0f && h_page[N - 1] == 1.0f);

    /* A pinned source is read when the copy runs; a pageable one is staged at the call. */
    h_pinned[0] = 5.0f;
    CHECK_INT_EQ(cudaMemcpyAsync(d_y, h_pinned, sizeof(float), cudaMemcpyHostToDevice, s), cudaSuccess);
    h_pinned[0] = 6.0f;
    fetch(h_pinned, d_y, 1, s);
    if (eager || deferred) CHECK(h_pinned[0] == (eager ? 5.0f : 6.0f));
    else CHECK(h_pinned[0] == 5.0f || h_pinned[0] == 6.0f);
    h_page[0] = 5.0f;
    CHECK_INT_EQ(cudaMemcpyAsync(d_y, h_page, sizeof(float), cudaMemcpyHostToDevice, s), cudaSuccess);
    h_page[0] = 6.0f;
    fetch(h_pinned, d_y, 1, s);
    CHECK(h_pinned[0] == 5.0f);

    /* A query reports unfinished work once, then completes it. */
    CHECK_INT_EQ(emu_fill(d_y, 2.0f, N, s), cudaSuccess);
    cudaError_t first = cudaStreamQuery(s); /* random: done already, or not */
    if (deferred || eager) CHECK_INT_EQ(first, deferred ? cudaErrorNotReady : cudaSuccess);
    else CHECK(first == cudaErrorNotReady || first == cudaSuccess);
    CHECK_INT_EQ(cudaStreamQuery(s), cudaSuccess);
    CHECK_INT_EQ(cudaGetLastError(), cudaSuccess); /* not-ready is not an error */

    /* cudaFree waits for queued work that still writes the buffer (ASan would see it otherwise). */
    float *d_tmp;
    CHECK_INT_EQ(cudaMalloc((void **)&d_tmp, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d_tmp, 3.0f, N, s), cudaSuccess);
    CHECK_INT_EQ(cudaFree(d_tmp), cudaSuccess);

    /* Destroying a stream still completes its work. */
    CHECK_INT_EQ(emu_fill(d_y, 4.0f, N, s), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpyAsync(h_pinned, d_y, N * sizeof(float), cudaMemcpyDeviceToHost, s), cudaSuccess);
    CHECK_INT_EQ(cudaStreamDestroy(s), cudaSuccess);
    CHECK(h_pinned[N - 1] == 4.0f);
    CHECK_INT_EQ(cudaStreamSynchronize(s), cudaErrorInvalidResourceHandle);
    CHECK_INT_EQ(cudaGetLastError(), cudaErrorInvalidResourceHandle);
    CHECK_INT_EQ(cudaGetLastError(), cudaSuccess);
    cudaFree(d_y);
    cudaFreeHost(h_pinned);
}

static void test_events(void)
{
    cudaStream_t s1, s2;
    cudaEvent_t e, start, stop, untimed;
    float *d_x, *d_y, *h;
    CHECK_INT_EQ(cudaStreamCreate(&s1), cudaSuccess);
    CHECK_INT_EQ(cudaStreamCreate(&s2), cudaSuccess);
    CHECK_INT_EQ(cudaEventCreate(&e), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_x, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_y, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMallocHost((void **)&h, N * sizeof(float)), cudaSuccess);

    /* s2 waits for s1's event: synchronising s2 alone runs s1's work first. */
    CHECK_INT_EQ(emu_fill(d_x, 3.0f, N, s1), cudaSuccess);
    CHECK_INT_EQ(cudaEventRecord(e, s1), cudaSuccess);
    CHECK_INT_EQ(cudaStreamWaitEvent(s2, e, 0), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d_y, 0.0f, N, s2), cudaSuccess);
    CHECK_INT_EQ(emu_axpy(d_y, d_x, 2.0f, N, s2), cudaSuccess);
    fetch(h, d_y, N, s2);
    CHECK(h[0] == 6.0f && h[N - 1] == 6.0f);

    /* Without the wait, s2 reads x before s1 has written it. */
    CHECK_INT_EQ(cudaFree(d_x), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_x, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d_x, 3.0f, N, s1), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d_y, 0.0f, N, s2), cudaSuccess);
    CHECK_INT_EQ(emu_axpy(d_y, d_x, 2.0f, N, s2), cudaSuccess);
    fetch(h, d_y, N, s2);
    if (eager) CHECK(h[0] == 6.0f);
    else if (deferred) CHECK(isnan(h[0]));
    else CHECK(h[0] == 6.0f || isnan(h[0]));
    CHECK_INT_EQ(cudaStreamSynchronize(s1), cudaSuccess);

    /* Queries, synchronisation and timing. */
    CHECK_INT_EQ(cudaEventCreate(&start), cudaSuccess);
    CHECK_INT_EQ(cudaEventCreate(&stop), cudaSuccess);
    CHECK_INT_EQ(cudaEventCreateWithFlags(&untimed, cudaEventDisableTiming), cudaSuccess);
    CHECK_INT_EQ(cudaEventRecord(start, s1), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d_x, 1.0f, N, s1), cudaSuccess);
    CHECK_INT_EQ(cudaEventRecord(stop, s1), cudaSuccess);
    CHECK_INT_EQ(cudaEventRecord(untimed, s1), cudaSuccess);
    cudaError_t first = cudaEventQuery(stop);
    if (deferred || eager) CHECK_INT_EQ(first, deferred ? cudaErrorNotReady : cudaSuccess);
    else CHECK(first == cudaErrorNotReady || first == cudaSuccess);
    CHECK_INT_EQ(cudaEventSynchronize(untimed), cudaSuccess);
    CHECK_INT_EQ(cudaEventQuery(stop), cudaSuccess);
    float ms = -1.0f;
    CHECK_INT_EQ(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
    CHECK(ms >= 0.0f);
    CHECK_INT_EQ(cudaEventElapsedTime(&ms, start, untimed), cudaErrorInvalidResourceHandle);
    CHECK_INT_EQ(cudaGetLastError(), cudaErrorInvalidResourceHandle);

    cudaEventDestroy(e);
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    cudaEventDestroy(untimed);
    CHECK_INT_EQ(cudaEventDestroy(e), cudaErrorInvalidResourceHandle);
    cudaGetLastError();
    cudaStreamDestroy(s1);
    cudaStreamDestroy(s2);
    cudaFree(d_x);
    cudaFree(d_y);
    cudaFreeHost(h);
}

/* Stream s1 reads x, then s2 overwrites it (a write-after-read across streams). Without an event
 * between them nothing orders the two: deferred execution always runs s1's read first (the host
 * waits for s1 first), random lets s2 overtake in some of the trials (new streams each trial, so
 * new paces); with the event no mode may. */
static void test_overtaking(void)
{
    enum { TRIALS = 64 };
    cudaEvent_t read_done;
    float *d_x, *d_y, *h;
    CHECK_INT_EQ(cudaEventCreateWithFlags(&read_done, cudaEventDisableTiming), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_x, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_y, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMallocHost((void **)&h, N * sizeof(float)), cudaSuccess);
    for (int ordered = 0; ordered < 2; ordered++) {
        int overtaken = 0;
        for (int t = 0; t < TRIALS; t++) {
            cudaStream_t s1, s2;
            CHECK_INT_EQ(cudaStreamCreate(&s1), cudaSuccess);
            CHECK_INT_EQ(cudaStreamCreate(&s2), cudaSuccess);
            CHECK_INT_EQ(emu_fill(d_x, 1.0f, N, s1), cudaSuccess);
            CHECK_INT_EQ(emu_fill(d_y, 0.0f, N, s1), cudaSuccess);
            CHECK_INT_EQ(emu_axpy(d_y, d_x, 1.0f, N, s1), cudaSuccess); /* reads x = 1 */
            if (ordered) {
                CHECK_INT_EQ(cudaEventRecord(read_done, s1), cudaSuccess);
                CHECK_INT_EQ(cudaStreamWaitEvent(s2, read_done, 0), cudaSuccess);
            }
            CHECK_INT_EQ(emu_fill(d_x, 2.0f, N, s2), cudaSuccess);
            CHECK_INT_EQ(cudaMemcpyAsync(h, d_y, N * sizeof(float), cudaMemcpyDeviceToHost, s1), cudaSuccess);
            CHECK_INT_EQ(cudaStreamSynchronize(s1), cudaSuccess); /* deferred: s1's work runs now, s2's after */
            CHECK_INT_EQ(cudaStreamSynchronize(s2), cudaSuccess);
            CHECK(h[0] == 1.0f || h[0] == 2.0f);
            overtaken += h[0] == 2.0f;
            CHECK_INT_EQ(cudaStreamDestroy(s1), cudaSuccess);
            CHECK_INT_EQ(cudaStreamDestroy(s2), cudaSuccess);
        }
        if (ordered || eager || deferred) CHECK_INT_EQ(overtaken, 0);
        else CHECK(overtaken > 0);
    }
    cudaEventDestroy(read_done);
    cudaFree(d_x);
    cudaFree(d_y);
    cudaFreeHost(h);
}

/* The legacy default stream (0) waits for blocking streams, not for non-blocking ones. */
static void test_legacy_stream(void)
{
    cudaStream_t blocking, non_blocking;
    float *d_a, *d_b, h;
    CHECK_INT_EQ(cudaStreamCreate(&blocking), cudaSuccess);
    CHECK_INT_EQ(cudaStreamCreateWithFlags(&non_blocking, cudaStreamNonBlocking), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_a, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_b, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d_a, 1.0f, N, blocking), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(&h, d_a, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK(h == 1.0f);
    CHECK_INT_EQ(emu_fill(d_b, 1.0f, N, non_blocking), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(&h, d_b, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    if (eager) CHECK(h == 1.0f);
    else if (deferred) CHECK(isnan(h));
    else CHECK(h == 1.0f || isnan(h));
    CHECK_INT_EQ(cudaStreamSynchronize(non_blocking), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(&h, d_b, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK(h == 1.0f);
    /* ...and blocking streams wait for work queued before on the legacy stream. */
    CHECK_INT_EQ(cudaMemsetAsync(d_a, 0, N * sizeof(float), 0), cudaSuccess);
    CHECK_INT_EQ(emu_axpy(d_a, d_b, 1.0f, N, blocking), cudaSuccess);
    CHECK_INT_EQ(cudaStreamSynchronize(blocking), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(&h, d_a, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK(h == 1.0f);
    cudaStreamDestroy(blocking);
    cudaStreamDestroy(non_blocking);
    cudaFree(d_a);
    cudaFree(d_b);
}

static void test_memory_checks(void)
{
    char h[4096], *d, *pinned;
    memset(h, 1, sizeof h);
    CHECK_INT_EQ(cudaMalloc((void **)&d, 4000), cudaSuccess);
    CHECK_INT_EQ(cudaMallocHost((void **)&pinned, 16), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d, h, 4000, cudaMemcpyHostToDevice), cudaSuccess);
    /* wrong kinds */
    CHECK_INT_EQ(cudaMemcpy(h, d, 4000, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaGetLastError(), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d, h, 4000, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaMemcpy(h, d, 4000, cudaMemcpyDeviceToDevice), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaMemcpy(h, h + 2048, 100, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaMemcpy(h, d, 16, (enum cudaMemcpyKind)7), cudaErrorInvalidMemcpyDirection);
    CHECK_INT_EQ(cudaMemset(h, 0, 16), cudaErrorInvalidValue);
    /* overruns, from the start and from inside the allocation */
    CHECK_INT_EQ(cudaMemcpy(d, h, 4001, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaMemcpy(h, d + 1000, 3001, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaMemsetAsync(d + 3999, 0, 2, 0), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaMemcpy(d, pinned, 32, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    /* correct copies, including cudaMemcpyDefault in both directions */
    CHECK_INT_EQ(cudaMemcpy(d + 1000, h, 3000, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(h, d, 4000, cudaMemcpyDefault), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d, h, 4000, cudaMemcpyDefault), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(h, h + 2048, 100, cudaMemcpyHostToHost), cudaSuccess);
    /* 2-D: 3 rows of 5 floats, pitches 8 (host) -> 6 (device) -> 5 (host) */
    float src[24], back[15], *d2;
    for (int i = 0; i < 24; i++) src[i] = (float)i;
    CHECK_INT_EQ(cudaMalloc((void **)&d2, 18 * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy2D(d2, 6 * sizeof(float), src, 8 * sizeof(float), 5 * sizeof(float), 3, cudaMemcpyHostToDevice),
                 cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy2D(back, 5 * sizeof(float), d2, 6 * sizeof(float), 5 * sizeof(float), 3,
                              cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK(back[0] == 0.0f && back[4] == 4.0f && back[5] == 8.0f && back[14] == 20.0f);
    CHECK_INT_EQ(cudaMemcpy2D(d2, 4, src, 32, 8, 3, cudaMemcpyHostToDevice), cudaErrorInvalidPitchValue);
    CHECK_INT_EQ(cudaMemcpy2D(d2, 28, src, 32, 20, 3, cudaMemcpyHostToDevice), cudaErrorInvalidValue); /* 76 > 72 bytes */
    /* frees */
    CHECK_INT_EQ(cudaFree(h), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaFree(d + 4), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaFreeHost(d), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaFree(pinned), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaFree(d), cudaSuccess);
    CHECK_INT_EQ(cudaFree(d), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaFreeHost(pinned), cudaSuccess);
    CHECK_INT_EQ(cudaFree(d2), cudaSuccess);
    /* the emulated device's memory budget */
    size_t free0, total, free1;
    void *big;
    CHECK_INT_EQ(cudaMemGetInfo(&free0, &total), cudaSuccess);
    CHECK(total == (size_t)4096 << 20);
    CHECK_INT_EQ(cudaMalloc(&big, 1 << 20), cudaSuccess);
    CHECK_INT_EQ(cudaMemGetInfo(&free1, &total), cudaSuccess);
    CHECK(free0 - free1 == 1 << 20);
    cudaFree(big);
    CHECK_INT_EQ(cudaMalloc(&big, (size_t)1 << 40), cudaErrorMemoryAllocation);
    CHECK(big == NULL);
    CHECK_INT_EQ(cudaGetLastError(), cudaErrorMemoryAllocation);
}

/* __constant__ memory: cudaMemcpyToSymbol is ordered after kernels queued before it. */
static void test_constant(void)
{
    const float c1[4] = {1, 2, 3, 4}, c2[4] = {10, 10, 10, 10}, c5[5] = {0};
    float *d, h[4];
    CHECK_INT_EQ(cudaMalloc((void **)&d, 4 * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(emu_set_coeff(c1), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d, 1.0f, 4, 0), cudaSuccess);
    CHECK_INT_EQ(emu_scale_by_coeff(d, 4, 0), cudaSuccess);
    CHECK_INT_EQ(emu_set_coeff(c2), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK(h[0] == 1.0f && h[3] == 4.0f);
    CHECK_INT_EQ(emu_scale_by_coeff(d, 4, 0), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK(h[0] == 10.0f && h[3] == 40.0f);
    CHECK_INT_EQ(emu_set_coeff_overrun(c5), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
    cudaFree(d);
}

/* Launch configurations the real runtime rejects; these errors are not sticky. */
static void test_launch_config(void)
{
    CHECK_INT_EQ(emu_configured(1, 1025, 1, 0, 0), cudaErrorInvalidConfiguration);
    CHECK_INT_EQ(cudaGetLastError(), cudaSuccess);
    CHECK_INT_EQ(emu_configured(0, 32, 1, 0, 0), cudaErrorInvalidConfiguration);
    CHECK_INT_EQ(emu_configured(1, 32, 65, 0, 0), cudaErrorInvalidConfiguration);
    CHECK_INT_EQ(emu_configured(1, 512, 4, 0, 0), cudaErrorInvalidConfiguration); /* 2048 threads */
    CHECK_INT_EQ(emu_configured(1, 32, 1, 49 << 10, 0), cudaErrorInvalidValue);
    CHECK_INT_EQ(emu_configured(1, 32, 1, 49 << 10, 1), cudaSuccess);
    CHECK_INT_EQ(emu_configured(1, 32, 1, 300 << 10, 1), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaGetLastError(), cudaErrorInvalidValue); /* from cudaFuncSetAttribute */
    CHECK_INT_EQ(emu_configured(1, 32, 32, 0, 0), cudaSuccess);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

/* A kernel fault poisons the device until cudaDeviceReset, which also frees its memory. */
static void test_sticky(void)
{
    float *d;
    void *p;
    CHECK_INT_EQ(cudaMalloc((void **)&d, 64 * sizeof(float)), cudaSuccess);
    cudaError_t launched = emu_faulty(d, 0); /* runs at once when eager, perhaps when random */
    if (eager || deferred) CHECK_INT_EQ(launched, eager ? cudaErrorLaunchFailure : cudaSuccess);
    else CHECK(launched == cudaSuccess || launched == cudaErrorLaunchFailure);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
    CHECK_INT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
    CHECK_INT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
    CHECK_INT_EQ(cudaMalloc(&p, 16), cudaErrorLaunchFailure);
    CHECK_INT_EQ(emu_fill(d, 1.0f, 64, 0), cudaErrorLaunchFailure);
    CHECK_INT_EQ(cudaDeviceReset(), cudaSuccess);
    CHECK_INT_EQ(cudaGetLastError(), cudaSuccess);
    CHECK_INT_EQ(cudaFree(d), cudaErrorInvalidValue); /* freed by the reset */
    CHECK_INT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaMalloc(&p, 16), cudaSuccess);
    CHECK_INT_EQ(cudaFree(p), cudaSuccess);
}

static void test_devices(void)
{
    int count = 0, device = -1, can = -1;
    CHECK_INT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
    CHECK_INT_EQ(count, 2);
    CHECK_INT_EQ(cudaSetDevice(2), cudaErrorInvalidDevice);
    cudaGetLastError();
    struct cudaDeviceProp prop;
    CHECK_INT_EQ(cudaGetDeviceProperties(&prop, 1), cudaSuccess);
    CHECK(prop.major == 9 && prop.warpSize == 32 && prop.sharedMemPerBlockOptin == 232448);

    float *d0, *d1, h = 0;
    cudaStream_t s1;
    cudaEvent_t e0;
    size_t free0, free1, total;
    CHECK_INT_EQ(cudaSetDevice(1), cudaSuccess);
    CHECK_INT_EQ(cudaGetDevice(&device), cudaSuccess);
    CHECK_INT_EQ(device, 1);
    CHECK_INT_EQ(cudaMemGetInfo(&free1, &total), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d1, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMemGetInfo(&free0, &total), cudaSuccess);
    CHECK(free1 - free0 == N * sizeof(float)); /* charged to device 1 */
    CHECK_INT_EQ(cudaStreamCreate(&s1), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d1, 7.0f, N, 0), cudaSuccess);
    CHECK_INT_EQ(cudaSetDevice(0), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d0, N * sizeof(float)), cudaSuccess);

    /* streams and events belong to their device */
    CHECK_INT_EQ(emu_fill(d0, 1.0f, N, s1), cudaErrorInvalidResourceHandle);
    CHECK_INT_EQ(cudaEventCreate(&e0), cudaSuccess);
    CHECK_INT_EQ(cudaEventRecord(e0, s1), cudaErrorInvalidResourceHandle);
    cudaGetLastError();

    /* peer copies check that each pointer is on the device the arguments name */
    CHECK_INT_EQ(cudaMemcpyPeer(d0, 0, d1, 1, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(&h, d0 + N - 1, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK(h == 7.0f);
    CHECK_INT_EQ(cudaMemcpyPeer(d0, 1, d1, 0, N * sizeof(float)), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaMemcpyPeer(d0, 0, d1, 1, N * sizeof(float) + 4), cudaErrorInvalidValue);
    CHECK_INT_EQ(cudaDeviceCanAccessPeer(&can, 0, 1), cudaSuccess);
    CHECK_INT_EQ(can, 1);
    CHECK_INT_EQ(cudaDeviceCanAccessPeer(&can, 0, 0), cudaSuccess);
    CHECK_INT_EQ(can, 0);
    CHECK_INT_EQ(cudaDeviceEnablePeerAccess(1, 0), cudaSuccess);
    CHECK_INT_EQ(cudaDeviceEnablePeerAccess(1, 0), cudaErrorPeerAccessAlreadyEnabled);
    CHECK_INT_EQ(cudaDeviceDisablePeerAccess(1), cudaSuccess);
    CHECK_INT_EQ(cudaDeviceDisablePeerAccess(1), cudaErrorPeerAccessNotEnabled);
    cudaGetLastError();

    CHECK_INT_EQ(cudaFree(d1), cudaSuccess); /* any device may free it */
    CHECK_INT_EQ(cudaFree(d0), cudaSuccess);
    CHECK_INT_EQ(cudaStreamDestroy(s1), cudaSuccess);
    CHECK_INT_EQ(cudaEventDestroy(e0), cudaSuccess);
}

typedef struct {
    int device, ok;
} worker_arg;

/* One host thread with its own device and stream; CHECK is not thread-safe, so it reports ok. */
static void *worker(void *p)
{
    worker_arg *w = p;
    cudaStream_t s;
    float *d_x, *d_y, *h;
    int device = -1;
    w->ok = cudaSetDevice(w->device) == cudaSuccess && cudaGetDevice(&device) == cudaSuccess && device == w->device &&
            cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess &&
            cudaMalloc((void **)&d_x, N * sizeof(float)) == cudaSuccess &&
            cudaMalloc((void **)&d_y, N * sizeof(float)) == cudaSuccess &&
            cudaMallocHost((void **)&h, N * sizeof(float)) == cudaSuccess;
    for (int it = 0; it < 20 && w->ok; it++) {
        w->ok = emu_fill(d_x, (float)it, N, s) == cudaSuccess && emu_fill(d_y, 1.0f, N, s) == cudaSuccess &&
                emu_axpy(d_y, d_x, 2.0f, N, s) == cudaSuccess &&
                cudaMemcpyAsync(h, d_y, N * sizeof(float), cudaMemcpyDeviceToHost, s) == cudaSuccess &&
                cudaStreamSynchronize(s) == cudaSuccess && h[0] == 1.0f + 2.0f * (float)it && h[N - 1] == h[0];
    }
    cudaFree(d_x);
    cudaFree(d_y);
    cudaFreeHost(h);
    cudaStreamDestroy(s);
    return NULL;
}

/* The current device is per host thread, and concurrent hosts run one kernel at a time. */
static void test_threads(void)
{
    pthread_t threads[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){i % 2, 0};
        CHECK_INT_EQ(pthread_create(&threads[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK(args[i].ok);
    }
    int device = -1;
    CHECK_INT_EQ(cudaGetDevice(&device), cudaSuccess);
    CHECK_INT_EQ(device, 0);
}

static void test_graphs(void)
{
    cudaStream_t s, s2;
    cudaEvent_t e1, e2;
    cudaGraph_t g;
    cudaGraphExec_t x;
    enum cudaStreamCaptureStatus status;
    float *h_in, *h_out, *d_x, *d_y;
    void *p;
    CHECK_INT_EQ(cudaStreamCreate(&s), cudaSuccess);
    CHECK_INT_EQ(cudaStreamCreate(&s2), cudaSuccess);
    CHECK_INT_EQ(cudaEventCreate(&e1), cudaSuccess);
    CHECK_INT_EQ(cudaEventCreate(&e2), cudaSuccess);
    CHECK_INT_EQ(cudaMallocHost((void **)&h_in, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMallocHost((void **)&h_out, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_x, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_y, N * sizeof(float)), cudaSuccess);

    /* capture: upload, y = 1 + 2x, download; nothing runs until the graph is launched */
    h_out[0] = -1.0f;
    CHECK_INT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    CHECK_INT_EQ(cudaStreamIsCapturing(s, &status), cudaSuccess);
    CHECK_INT_EQ(status, cudaStreamCaptureStatusActive);
    CHECK_INT_EQ(cudaMemcpyAsync(d_x, h_in, N * sizeof(float), cudaMemcpyHostToDevice, s), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d_y, 1.0f, N, s), cudaSuccess);
    CHECK_INT_EQ(emu_axpy(d_y, d_x, 2.0f, N, s), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpyAsync(h_out, d_y, N * sizeof(float), cudaMemcpyDeviceToHost, s), cudaSuccess);
    CHECK_INT_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
    CHECK(g != NULL && h_out[0] == -1.0f);
    CHECK_INT_EQ(cudaGraphInstantiate(&x, g, 0), cudaSuccess);
    /* each replay reads the pinned input as it is then */
    for (int rep = 1; rep <= 2; rep++) {
        for (int i = 0; i < N; i++) h_in[i] = (float)(rep * i);
        CHECK_INT_EQ(cudaGraphLaunch(x, s), cudaSuccess);
        CHECK_INT_EQ(cudaStreamSynchronize(s), cudaSuccess);
        CHECK(h_out[0] == 1.0f && h_out[N - 1] == 1.0f + 2.0f * (float)(rep * (N - 1)));
    }
    CHECK_INT_EQ(cudaGraphExecDestroy(x), cudaSuccess);
    CHECK_INT_EQ(cudaGraphDestroy(g), cudaSuccess);

    /* calls that would synchronise are refused and invalidate the capture */
    CHECK_INT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);
    CHECK_INT_EQ(emu_fill(d_y, 1.0f, N, s), cudaErrorStreamCaptureInvalidated);
    CHECK_INT_EQ(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    CHECK(g == NULL);
    CHECK_INT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    CHECK_INT_EQ(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
    CHECK_INT_EQ(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    CHECK_INT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    float pageable[4];
    CHECK_INT_EQ(cudaMemcpyAsync(d_x, pageable, sizeof pageable, cudaMemcpyHostToDevice, s),
                 cudaErrorStreamCaptureUnsupported);
    CHECK_INT_EQ(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    CHECK_INT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    CHECK_INT_EQ(cudaMemsetAsync(d_x, 0, 4, 0), cudaErrorStreamCaptureImplicit);
    CHECK_INT_EQ(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);
    CHECK_INT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc(&p, 16), cudaSuccess); /* relaxed mode allows it */
    CHECK_INT_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
    CHECK_INT_EQ(cudaGraphDestroy(g), cudaSuccess);
    CHECK_INT_EQ(cudaFree(p), cudaSuccess);
    cudaGetLastError();

    /* fork into s2 and join back through events: y = 2 + x = 3 */
    CHECK_INT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d_x, 1.0f, N, s), cudaSuccess);
    CHECK_INT_EQ(cudaEventRecord(e1, s), cudaSuccess);
    CHECK_INT_EQ(cudaStreamWaitEvent(s2, e1, 0), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d_y, 2.0f, N, s2), cudaSuccess);
    CHECK_INT_EQ(cudaEventRecord(e2, s2), cudaSuccess);
    CHECK_INT_EQ(cudaStreamWaitEvent(s, e2, 0), cudaSuccess);
    CHECK_INT_EQ(emu_axpy(d_y, d_x, 1.0f, N, s), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpyAsync(h_out, d_y, N * sizeof(float), cudaMemcpyDeviceToHost, s), cudaSuccess);
    CHECK_INT_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
    CHECK_INT_EQ(cudaStreamIsCapturing(s2, &status), cudaSuccess);
    CHECK_INT_EQ(status, cudaStreamCaptureStatusNone);
    CHECK_INT_EQ(cudaGraphInstantiate(&x, g, 0), cudaSuccess);
    CHECK_INT_EQ(cudaGraphLaunch(x, s), cudaSuccess);
    CHECK_INT_EQ(cudaStreamSynchronize(s), cudaSuccess);
    CHECK(h_out[0] == 3.0f && h_out[N - 1] == 3.0f);
    cudaGraphExecDestroy(x);
    cudaGraphDestroy(g);

    /* a fork that is not joined back */
    CHECK_INT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    CHECK_INT_EQ(cudaEventRecord(e1, s), cudaSuccess);
    CHECK_INT_EQ(cudaStreamWaitEvent(s2, e1, 0), cudaSuccess);
    CHECK_INT_EQ(emu_fill(d_y, 2.0f, N, s2), cudaSuccess);
    CHECK_INT_EQ(cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureUnjoined);
    CHECK(g == NULL);
    cudaGetLastError();

    cudaEventDestroy(e1);
    cudaEventDestroy(e2);
    cudaStreamDestroy(s);
    cudaStreamDestroy(s2);
    cudaFreeHost(h_in);
    cudaFreeHost(h_out);
    cudaFree(d_x);
    cudaFree(d_y);
}

int main(void)
{
    /* Two emulated devices; must be set before the first CUDA call. */
    setenv("CUEMU_DEVICES", "2", 0);
    const char *sync = getenv("CUEMU_SYNC");
    eager = sync && !strcmp(sync, "eager");
    deferred = !sync || !*sync || !strcmp(sync, "deferred");
    test_deferred();
    test_events();
    test_overtaking();
    test_legacy_stream();
    test_memory_checks();
    test_constant();
    test_launch_config();
    test_devices();
    test_threads();
    test_graphs();
    test_sticky();
    CHECK_INT_EQ(cudaGetLastError(), cudaSuccess);
    return test_result(eager ? "test_emu_runtime (eager)" : deferred ? "test_emu_runtime" : "test_emu_runtime (random)");
}
