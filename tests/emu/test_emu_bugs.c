/* Every bug class the emulation promises to catch is caught: the launch is accepted, the
 * failure surfaces as a sticky cudaErrorLaunchFailure at the next synchronisation, and the
 * report on stderr names the problem. A missing __syncthreads is the race detector's job
 * (test_emu_racecheck); with the detector off (CUEMU_RACECHECK=0, as CI runs this test) it shows
 * as wrong results, in every fiber order for a reversed read and in reversed/shuffled order for
 * a left-neighbour read. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test.h"
#include "capture_stderr.h"
#include "bug_kernels.h"

static void expect_caught(emu_bug bug, const char *report)
{
    float *d_out;
    CHECK(cudaMalloc((void **)&d_out, 256 * sizeof(float)) == cudaSuccess);
    capture_begin();
    cudaError_t launched = emu_launch_bug(bug, d_out);
    cudaError_t synced = cudaDeviceSynchronize();
    cudaError_t last = cudaGetLastError(), again = cudaGetLastError();
    const char *text = capture_end();
    CHECK_INT_EQ(launched, cudaSuccess); /* deferred: the kernel has not run yet */
    CHECK_INT_EQ(synced, cudaErrorLaunchFailure);
    CHECK_INT_EQ(last, cudaErrorLaunchFailure);
    CHECK_INT_EQ(again, cudaErrorLaunchFailure); /* sticky until cudaDeviceReset */
    CHECK(strstr(text, report) != NULL);
    CHECK(strstr(text, "bug_kernels.cu:") != NULL);
    CHECK(strstr(text, "block (0,0,0), thread (") != NULL);
    CHECK_INT_EQ(cudaDeviceReset(), cudaSuccess);
    CHECK_INT_EQ(cudaGetLastError(), cudaSuccess);
}

/* Number of wrong outputs of the kernel that lacks a __syncthreads. */
static int missing_sync_errors(int left_neighbour, float offset)
{
    float h_x[256], h_y[256], *d_x, *d_y;
    for (int i = 0; i < 256; i++) h_x[i] = offset + (float)i;
    CHECK(cudaMalloc((void **)&d_x, sizeof h_x) == cudaSuccess);
    CHECK(cudaMalloc((void **)&d_y, sizeof h_y) == cudaSuccess);
    CHECK(cudaMemcpy(d_x, h_x, sizeof h_x, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(emu_missing_sync(d_x, d_y, left_neighbour) == cudaSuccess);
    CHECK(cudaMemcpy(h_y, d_y, sizeof h_y, cudaMemcpyDeviceToHost) == cudaSuccess);
    int wrong = 0;
    for (int i = 0; i < 256; i++) wrong += h_y[i] != (left_neighbour ? h_x[i ? i - 1 : 0] : h_x[255 - i]);
    cudaFree(d_x);
    cudaFree(d_y);
    return wrong;
}

int main(void)
{
    expect_caught(BUG_EARLY_RETURN, "(divergent barrier)");
    expect_caught(BUG_IF_ELSE_BARRIER, "(divergent barrier)");
    expect_caught(BUG_HALF_WARP_SHUFFLE, "but that lane did not execute this intrinsic");
    expect_caught(BUG_WARP_SITES, "lane(s) of its warp wait at __shfl_xor_sync");
    expect_caught(BUG_DEADLOCK, "deadlock");
    expect_caught(BUG_PARTIAL_MASK, "only the full mask is supported");

    const char *racecheck = getenv("CUEMU_RACECHECK");
    if (!racecheck || strcmp(racecheck, "0")) {
        printf("missing __syncthreads: not run, the race detector may be on (CUEMU_RACECHECK=0 runs it)\n");
        return test_result("test_emu_bugs");
    }
    /* Each launch uses new values, so stale shared memory from the previous one never matches. */
    const char *order = getenv("CUEMU_ORDER");
    int forward = !order || !*order || !strcmp(order, "fwd") || !strcmp(order, "forward");
    int reversed_read = missing_sync_errors(0, 1000.0f), left_read = missing_sync_errors(1, 2000.0f);
    printf("missing __syncthreads: %d wrong (reversed read), %d wrong (left-neighbour read)\n", reversed_read, left_read);
    CHECK(reversed_read >= 100);
    if (forward) CHECK_INT_EQ(left_read, 0); /* forward order hides it: why CI runs other orders */
    else CHECK(left_read >= 50);
    return test_result("test_emu_bugs");
}
