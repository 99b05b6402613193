/* Launchers of bench/gpu_constants_kernels.cu. */
#ifndef QASR_GPU_CONSTANTS_KERNELS_H
#define QASR_GPU_CONSTANTS_KERNELS_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dst = src, bytes a multiple of 16, with `blocks` blocks of 256 threads */
cudaError_t gc_stream_copy(void *dst, const void *src, size_t bytes, int blocks, cudaStream_t stream);
/* blocks x 256 threads of fp32 FMA chains; out [blocks * 256]; gc_fma_flops: the flops it does */
cudaError_t gc_fma(float *out, int blocks, int iters, cudaStream_t stream);
double gc_fma_flops(int blocks, int iters);
/* one block of 32 threads that does nothing: launch costs */
cudaError_t gc_empty(cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
