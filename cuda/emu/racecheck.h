/* Race detector of the CUDA emulation (racecheck.cpp): the interface between the fiber scheduler
 * (scheduler.cpp), which tells it when barriers complete and which GPU thread runs, and the
 * detector, which receives every memory access of the instrumented kernel code. Internal to
 * cuda/emu; kernels only see the atomic and fence notes declared in cuemu.h. */
#ifndef QASR_CUEMU_RACECHECK_H
#define QASR_CUEMU_RACECHECK_H

#include "cuemu.h"

#include <atomic>
#include <stdint.h>

namespace cuemu {
namespace detail {

/* The GPU thread a fiber runs: its stack (accesses there are locals, never shared) and its
 * linear index in the block. */
struct rc_thread {
    uintptr_t stack_lo, stack_size;
    uint32_t tid, warp;
};

/* The running fiber while the detector is on, else null: the only thing the access hooks look
 * at when the detector is off. Set by the scheduler at every switch. */
extern std::atomic<const rc_thread *> rc_cur;

/* CUEMU_RACECHECK (default on when kernel code is instrumented); prints a warning once when it
 * asks for the detector but no kernel was compiled with the instrumentation. */
bool rc_enabled();

void rc_launch_begin(const kernel_info &info, dim3 grid, dim3 block, const void *smem, size_t smem_bytes,
                     bool abort_on_error);
void rc_block_begin(uint64_t block_linear);
void rc_block_barrier();          /* a __syncthreads (any form) completed */
void rc_warp_barrier(unsigned warp); /* a warp collective completed */
/* Prints the races found in the block that just ran; false if there were any. */
bool rc_block_end();
void rc_launch_end();

} // namespace detail
} // namespace cuemu

#endif
