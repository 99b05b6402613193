/* C launchers of the harness test kernels (tests/emu/harness_kernels.cu): each returns
 * cudaGetLastError() after queueing its kernel on `stream`. */
#ifndef QASR_EMU_HARNESS_KERNELS_H
#define QASR_EMU_HARNESS_KERNELS_H

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* sum += x[0..n), max_int = max(max_int, (int)x), max_cas = max(max_cas, x) with a CAS loop;
 * block is 256 or 1024. */
cudaError_t emu_block_reduce(const float *x, int n, int block, float *sum, int *max_int, float *max_cas,
                             cudaStream_t stream);
/* Row softmax of bf16 [rows, cols] with the row kept in dynamic shared memory as fp32. The
 * launcher raises the kernel's shared memory limit above 48 KiB only when opt_in is set. */
cudaError_t emu_softmax_bf16(const uint16_t *x, uint16_t *y, int rows, int cols, int threads, int opt_in,
                             cudaStream_t stream);
/* out[0..32): a static __shared__ array never written; out[32..64): dynamic shared memory never
 * written. Both hold the launcher's poison when the build poisons them. */
cudaError_t emu_read_unwritten_shared(float *out, cudaStream_t stream);
/* 1 if this build fills static shared memory with 0xFF per block (clang, no ASan). */
int emu_static_shared_poisoned(void);
/* One block of `threads` (<= 1024): every thread writes EMU_INTRINSIC_RESULTS ints to
 * out[tid * EMU_INTRINSIC_RESULTS ...]; the test recomputes them on the host. */
#define EMU_INTRINSIC_RESULTS 20
cudaError_t emu_intrinsics(int *out, int threads, cudaStream_t stream);
/* `iters` __syncthreads (kind 0) or __shfl_xor_sync (kind 1) per thread, one block. */
cudaError_t emu_barrier_bench(int threads, int iters, int kind, float *sink, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
