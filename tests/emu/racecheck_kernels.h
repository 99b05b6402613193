/* C launchers of the race detector's test kernels (tests/emu/racecheck_kernels.cu): races it must
 * report, whatever the fiber order, and correct kernels it must pass. Each returns
 * cudaGetLastError() after queueing its kernel on the legacy stream. */
#ifndef QASR_EMU_RACECHECK_KERNELS_H
#define QASR_EMU_RACECHECK_KERNELS_H

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    /* races */
    RC_TILE_NO_SYNC,        /* shared tile written, read reversed: __syncthreads removed */
    RC_REDUCE_NO_SYNC,      /* shared tree reduction, one step without its __syncthreads */
    RC_WARP_REDUCE_NO_SYNC, /* warp reduction in shared memory, one __syncwarp removed */
    RC_GLOBAL_BLOCKS,       /* thread 0 of every block writes out[0], no atomic */
    RC_WAR_NO_SYNC,         /* thread t reads s[t + 1] while thread t + 1 overwrites it */
    RC_LAST_BLOCK_NO_FENCE, /* last-block reduction of per-block partials without __threadfence */
    RC_ATOMIC_PLAIN,        /* a plain store to a counter that the other threads add to atomically */
    /* correct kernels */
    RC_TILE,                /* RC_TILE_NO_SYNC with its barrier */
    RC_REDUCE,
    RC_WARP_REDUCE,
    RC_WAR,
    RC_LAST_BLOCK,          /* partials, __threadfence, atomic counter: the last block adds them up */
    RC_ATOMICS,             /* every thread of 4 blocks: atomicAdd on a shared and a global counter */
    RC_SHUFFLE,             /* warp-shuffle reductions */
    RC_OWN_DATA,            /* each thread reads back what it wrote (shared and global) */
    RC_BLOCKS_REUSE,        /* 8 blocks reuse the same static and dynamic shared memory */
    RC_LAUNCHES,            /* two launches on the same global memory */
    RC_CASE_COUNT
} rc_case;

/* x: 1024 floats of input, y: 1024 floats of output, counters: 4 zeroed unsigned ints. */
cudaError_t emu_racecheck_case(rc_case c, const float *x, float *y, unsigned *counters);

#ifdef __cplusplus
}
#endif

#endif
