/* C launchers of kernels with deliberate bugs (tests/emu/bug_kernels.cu) that the emulation
 * must catch. Each returns cudaGetLastError() after queueing its kernel on the legacy stream. */
#ifndef QASR_EMU_BUG_KERNELS_H
#define QASR_EMU_BUG_KERNELS_H

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BUG_EARLY_RETURN,       /* return before __syncthreads in part of the block */
    BUG_IF_ELSE_BARRIER,    /* a __syncthreads in each branch of an if/else */
    BUG_HALF_WARP_SHUFFLE,  /* half a warp skips a shuffle the other half reads from */
    BUG_WARP_SITES,         /* the two halves of a warp at different shuffles */
    BUG_DEADLOCK,           /* lane 0 at __syncthreads, lanes 1-31 in a shuffle waiting for it */
    BUG_PARTIAL_MASK,       /* a mask other than the full warp (unsupported) */
    BUG_COUNT
} emu_bug;

cudaError_t emu_launch_bug(emu_bug bug, float *out);
/* Missing __syncthreads between writing a shared tile and reading it: y[i] = t[255 - i]
 * (reversed) or t[i - 1] (left neighbour, y[0] = x[0]). One block of 256 threads. */
cudaError_t emu_missing_sync(const float *x, float *y, int left_neighbour);

#ifdef __cplusplus
}
#endif

#endif
