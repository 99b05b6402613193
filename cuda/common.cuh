/* First include of every project .cu: the CUDA layer (real under nvcc, emulated on the CPU, see
 * cuda/emu/README.md), the error checks, the launchers' SHAPE_ASSERT, CEIL_DIV, the bf16 types
 * and the few helpers several kernels share.
 *
 * Launchers return the cudaError_t of what they enqueued (cudaGetLastError after each launch);
 * a kernel fault surfaces later, at the next synchronising call, as cudaErrorLaunchFailure or
 * cudaErrorIllegalAddress. The backend (backend_cuda.cu) turns errors into its device fault,
 * never an exit. CUDA_CHECK is for tests and tools: it aborts with the failing statement, the
 * current device and file:line on stderr, so a debugger or a sanitizer stops at the culprit.
 * SHAPE_ASSERT is an assertion: a violated shape assumption is a programmer error and aborts
 * (in release builds too), never a device fault. */
#ifndef QASR_CUDA_COMMON_CUH
#define QASR_CUDA_COMMON_CUH

#include "emu/cuemu.h"

#include <cublas_v2.h>
#include <cufft.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

[[noreturn]] static inline void cuda_check_failed(const char *stmt, const char *why, const char *file, int line)
{
    int device = -1;
    cudaGetDevice(&device);
    fprintf(stderr, "qasr: %s failed: %s (device %d) at %s:%d\n", stmt, why, device, file, line);
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
 * error, so it aborts, in release builds too. */
[[noreturn]] static inline void shape_assert_failed(const char *cond, const char *file, int line)
{
    fprintf(stderr, "qasr: internal error: launcher shape assumption '%s' violated at %s:%d\n", cond, file, line);
    abort();
}
#define SHAPE_ASSERT(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) shape_assert_failed(#cond, __FILE__, __LINE__);                               \
    } while (0)

static inline bool aligned(const void *p, size_t a) { return (uintptr_t)p % a == 0; }

#define FULL_MASK 0xffffffffu /* all 32 lanes of a warp, for the *_sync intrinsics */

/* Same definition as host/base/util.h, so both headers can be included. */
#ifndef CEIL_DIV
#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))
#endif

/* Device activations are bf16. Its bits are those of host/base/util.h's uint16_t bf16 (the upper half
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
