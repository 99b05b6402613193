/* NCCL shim: ncclBroadcast over 3 emulated devices from one thread with group calls (the way
 * qasr copies its weights), stream order around the collective on every rank (it waits for each
 * rank's earlier work, later work waits for it), and each misuse the shim must catch as NCCL
 * would fail or hang: calls that do not match across ranks, one thread driving several ranks
 * outside a group, waiting on a collective a rank never issued, bad buffers and streams, and a
 * clique destroyed with unmatched calls. Also CUEMU_FAIL's injected device fault. */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "runtime_kernels.h"

#define R 3
#define N 4096

static ncclComm_t comms[R];
static cudaStream_t streams[R];
static float *buf[R];
static float *h_out;

static void setup(void)
{
    const int devs[R] = { 0, 1, 2 };
    CHECK_INT_EQ(ncclCommInitAll(comms, R, devs), ncclSuccess);
    for (int r = 0; r < R; r++) {
        CHECK_INT_EQ(cudaSetDevice(r), cudaSuccess);
        CHECK_INT_EQ(cudaStreamCreateWithFlags(&streams[r], cudaStreamNonBlocking), cudaSuccess);
        CHECK_INT_EQ(cudaMalloc((void **)&buf[r], N * sizeof(float)), cudaSuccess);
    }
    CHECK_INT_EQ(cudaMallocHost((void **)&h_out, N * sizeof(float)), cudaSuccess);
}

static void teardown(void)
{
    for (int r = 0; r < R; r++) {
        CHECK_INT_EQ(ncclCommDestroy(comms[r]), ncclSuccess);
        cudaSetDevice(r);
        cudaFree(buf[r]);
        cudaStreamDestroy(streams[r]);
    }
    cudaFreeHost(h_out);
}

/* All N values of rank r's buffer equal v. */
static int all_equal(int r, float v)
{
    cudaSetDevice(r);
    if (cudaMemcpyAsync(h_out, buf[r], N * sizeof(float), cudaMemcpyDeviceToHost, streams[r]) != cudaSuccess ||
        cudaStreamSynchronize(streams[r]) != cudaSuccess)
        return 0;
    for (int i = 0; i < N; i++)
        if (h_out[i] != v) return 0;
    return 1;
}

static ncclResult_t broadcast_all(int root, const size_t count[R])
{
    ncclGroupStart();
    for (int r = 0; r < R; r++)
        ncclBroadcast(buf[root], buf[r], count[r], ncclFloat32, root, comms[r], streams[r]);
    return ncclGroupEnd();
}

static void test_broadcast(void)
{
    const size_t n[R] = { N, N, N };
    for (int r = 0; r < R; r++) {
        cudaSetDevice(r);
        CHECK_INT_EQ(emu_fill(buf[r], (float)(10 + r), N, streams[r]), cudaSuccess);
    }
    /* root 1: its fill (queued before) lands everywhere; work queued after waits for the copy */
    CHECK_INT_EQ(broadcast_all(1, n), ncclSuccess);
    cudaSetDevice(1);
    CHECK_INT_EQ(emu_fill(buf[1], 99.0f, N, streams[1]), cudaSuccess); /* root overwrites after */
    cudaSetDevice(2);
    CHECK_INT_EQ(emu_axpy(buf[2], buf[2], 1.0f, N, streams[2]), cudaSuccess); /* 11 + 11 */
    CHECK(all_equal(0, 11.0f));
    CHECK(all_equal(2, 22.0f));
    CHECK(all_equal(1, 99.0f));

    int count = 0, dev = -1, rank = -1;
    CHECK_INT_EQ(ncclCommCount(comms[2], &count), ncclSuccess);
    CHECK_INT_EQ(ncclCommCuDevice(comms[2], &dev), ncclSuccess);
    CHECK_INT_EQ(ncclCommUserRank(comms[2], &rank), ncclSuccess);
    CHECK(count == R && dev == 2 && rank == 2);
}

static void test_misuse(void)
{
    /* counts differ across ranks: the last rank to issue it is told, and waiting on it fails */
    const size_t bad[R] = { N, N, N / 2 };
    CHECK_INT_EQ(broadcast_all(0, bad), ncclInvalidUsage);
    CHECK(strstr(ncclGetLastError(comms[2]), "does not match across ranks") != NULL);
    cudaSetDevice(0);
    CHECK(cudaStreamSynchronize(streams[0]) != cudaSuccess); /* the collective fails the device */
    for (int r = 0; r < R; r++) ncclCommDestroy(comms[r]); /* may report the failed call: freed anyway */
    for (int r = 0; r < R; r++) {
        cudaSetDevice(r);
        cudaDeviceReset(); /* the misuse poisoned the devices: start again */
    }
    CHECK_INT_EQ(cudaFreeHost(h_out), cudaSuccess); /* pinned memory outlives a reset */
    setup();

    /* one thread, two ranks, no group: NCCL may deadlock, the shim refuses */
    CHECK_INT_EQ(ncclBroadcast(buf[0], buf[0], N, ncclFloat32, 0, comms[0], streams[0]), ncclSuccess);
    CHECK_INT_EQ(ncclBroadcast(buf[0], buf[1], N, ncclFloat32, 0, comms[1], streams[1]), ncclInvalidUsage);
    /* rank 1 and 2 never issued collective #0: waiting for it on rank 0 is a deadlock */
    cudaSetDevice(0);
    CHECK(cudaStreamSynchronize(streams[0]) != cudaSuccess);
    /* a host pointer is not a device buffer; a stream of another device is refused */
    float host[4];
    CHECK_INT_EQ(ncclBroadcast(buf[0], host, 4, ncclFloat32, 0, comms[0], streams[0]), ncclInvalidArgument);
    CHECK_INT_EQ(ncclBroadcast(buf[0], buf[0], 4, ncclFloat32, 5, comms[0], streams[0]), ncclInvalidArgument);
    CHECK(ncclBroadcast(buf[0], buf[0], 4, ncclFloat32, 0, comms[0], streams[1]) != ncclSuccess);
    /* rank 0 issued a collective the others never did: destroying the clique reports it */
    CHECK_INT_EQ(ncclCommDestroy(comms[0]), ncclSuccess);
    CHECK_INT_EQ(ncclCommDestroy(comms[1]), ncclSuccess);
    CHECK_INT_EQ(ncclCommDestroy(comms[2]), ncclInvalidUsage);
    for (int r = 0; r < R; r++) {
        cudaSetDevice(r);
        cudaDeviceReset();
    }
    CHECK_INT_EQ(cudaFreeHost(h_out), cudaSuccess);
    const int dup[2] = { 1, 1 };
    ncclComm_t two[2];
    CHECK_INT_EQ(ncclCommInitAll(two, 2, dup), ncclInvalidUsage);
    const int missing[1] = { 7 };
    CHECK_INT_EQ(ncclCommInitAll(two, 1, missing), ncclInvalidArgument);
}

/* CUEMU_FAIL=1:3 (set by ctest): device 1's third launch fails, stickily; device 0 lives on. */
static void test_injected_fault(void)
{
    float *x0, *x1;
    cudaSetDevice(0);
    CHECK_INT_EQ(cudaMalloc((void **)&x0, N * sizeof(float)), cudaSuccess);
    cudaSetDevice(1);
    CHECK_INT_EQ(cudaMalloc((void **)&x1, N * sizeof(float)), cudaSuccess);
    for (int i = 0; i < 2; i++) CHECK_INT_EQ(emu_fill(x1, 1.0f, N, 0), cudaSuccess);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    CHECK_INT_EQ(emu_fill(x1, 2.0f, N, 0), cudaSuccess); /* queued; fails when it runs */
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
    CHECK_INT_EQ(emu_fill(x1, 3.0f, N, 0), cudaErrorLaunchFailure); /* sticky */
    cudaSetDevice(0);
    CHECK_INT_EQ(cudaGetLastError(), cudaErrorLaunchFailure); /* this thread's last error, once */
    CHECK_INT_EQ(emu_fill(x0, 4.0f, N, 0), cudaSuccess);
    CHECK_INT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    cudaFree(x0);
    cudaSetDevice(1);
    cudaDeviceReset();
}

/* usage: test_emu_nccl          the collectives
 *        test_emu_nccl fault    the injected fault (ctest sets CUEMU_FAIL=1:3) */
int main(int argc, char **argv)
{
    setenv("CUEMU_DEVICES", "3", 1); /* before the first CUDA call */
    if (argc > 1 && !strcmp(argv[1], "fault")) {
        test_injected_fault();
        return test_result("test_emu_nccl fault");
    }
    setup();
    test_broadcast();
    teardown();
    setup();
    test_misuse();
    return test_result("test_emu_nccl");
}
