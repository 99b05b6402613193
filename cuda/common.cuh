/* First include of every project .cu: the CUDA layer (real under nvcc, emulated on the CPU, see
 * cuda/emu/README.md), the error checks, the launchers' SHAPE_ASSERT, CEIL_DIV, the bf16 types
 * and the few helpers several kernels share.
 *
 * The checks abort with the failing statement, the current device and file:line on stderr, so
 * a debugger or a sanitizer stops at the culprit (unless the thread set a device-fault trap,
 * host/util.h: then they unwind to it). Check every launch with
 * CUDA_CHECK(cudaGetLastError()); a kernel fault surfaces later, at the next synchronising call,
 * as cudaErrorLaunchFailure or cudaErrorIllegalAddress. */
#ifndef QASR_CUDA_COMMON_CUH
#define QASR_CUDA_COMMON_CUH

#include "emu/cuemu.h"

#include <cublas_v2.h>
#include <cufft.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* host/util.c: jumps to the calling thread's device-fault trap if it has one (weak: kernel tests
 * link no host code, and then every failure aborts). */
extern "C" void qasr_device_fault(const char *message) __attribute__((weak));

[[noreturn]] static inline void cuda_check_failed(const char *stmt, const char *why, const char *file, int line)
{
    int device = -1;
    cudaGetDevice(&device);
    char msg[768];
    snprintf(msg, sizeof msg, "%s failed: %s (device %d) at %s:%d", stmt, why, device, file, line);
    if (qasr_device_fault) qasr_device_fault(msg); /* returns when the thread has no trap */
    fprintf(stderr, "qasr: %s\n", msg);
    abort();
}

static inline const char *cufft_result_name(cufftResult r)
{
    switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_UNALIGNED_DATA: return "CUFFT_UNALIGNED_DATA";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "cuFFT error";
    }
}

#define CUDA_CHECK(x)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) cuda_check_failed(#x, cudaGetErrorString(e_), __FILE__, __LINE__);  \
    } while (0)
#define CUBLAS_CHECK(x)                                                                            \
    do {                                                                                           \
        cublasStatus_t s_ = (x);                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS) cuda_check_failed(#x, cublasGetStatusName(s_), __FILE__, __LINE__); \
    } while (0)
#define CUFFT_CHECK(x)                                                                             \
    do {                                                                                           \
        cufftResult r_ = (x);                                                                      \
        if (r_ != CUFFT_SUCCESS) cuda_check_failed(#x, cufft_result_name(r_), __FILE__, __LINE__); \
    } while (0)

/* A launcher's assumption about its shapes or pointer alignment: a violation is a programmer
 * error, so it aborts like the checks above, in release builds too. */
#define SHAPE_ASSERT(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) cuda_check_failed(#cond, "launcher shape assumption", __FILE__, __LINE__);    \
    } while (0)

static inline bool aligned(const void *p, size_t a) { return (uintptr_t)p % a == 0; }

#define FULL_MASK 0xffffffffu /* all 32 lanes of a warp, for the *_sync intrinsics */

/* Same definition as host/util.h, so both headers can be included. */
#ifndef CEIL_DIV
#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
#endif

/* Device activations are bf16. Its bits are those of host/util.h's uint16_t bf16 (the upper half
 * of an fp32), so host buffers upload unchanged; conversions round to nearest even. */
typedef __nv_bfloat16 bf16;
typedef __nv_bfloat162 bf16x2;
static_assert(sizeof(bf16) == 2 && sizeof(bf16x2) == 4, "bf16 layout");

/* x rounded to bf16 precision and back: what storing an fp32 value in a bf16 tensor does. */
static __host__ __device__ __forceinline__ float bf16_round(float x)
{
    return __bfloat162float(__float2bfloat16_rn(x));
}

/* exact GELU, 0.5 x (1 + erf(x / sqrt 2)); one definition, so the conv stem's fused bias + GELU
 * and the standalone GELU compute the same values */
static __device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

#endif
