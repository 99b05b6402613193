/* C launchers of the small kernels the runtime-shim test queues (tests/emu/runtime_kernels.cu).
 * Each returns cudaGetLastError(). */
#ifndef QASR_EMU_RUNTIME_KERNELS_H
#define QASR_EMU_RUNTIME_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = v */
cudaError_t emu_fill(float *y, float v, int n, cudaStream_t stream);
/* y[i] += a * x[i] */
cudaError_t emu_axpy(float *y, const float *x, float a, int n, cudaStream_t stream);
/* y[i] *= emu_coeff[i % 4], a __constant__ array set with emu_set_coeff. */
cudaError_t emu_scale_by_coeff(float *y, int n, cudaStream_t stream);
cudaError_t emu_set_coeff(const float coeff[4]);
/* cudaMemcpyToSymbol with a count beyond the symbol: rejected. */
cudaError_t emu_set_coeff_overrun(const float coeff[5]);
/* A kernel that fails in the emulation (divergent barrier). */
cudaError_t emu_faulty(float *y, cudaStream_t stream);
/* An empty kernel with the given configuration; opt_in raises its shared-memory limit to smem. */
cudaError_t emu_configured(unsigned grid_x, unsigned block_x, unsigned block_z, size_t smem, int opt_in);

#ifdef __cplusplus
}
#endif

#endif
