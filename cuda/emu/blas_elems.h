/* Matrix elements of the cuBLAS and cuBLASLt shims by cudaDataType (bf16, fp16, else fp32): size,
 * widening load, and store rounded to nearest even. */
#ifndef CUEMU_BLAS_ELEMS_H
#define CUEMU_BLAS_ELEMS_H

#include "cuemu.h"

namespace cuemu {
namespace blas {

inline size_t type_size(int t) { return t == CUDA_R_32F ? 4 : 2; }

inline float load(const void *p, int t, size_t i)
{
    switch (t) {
    case CUDA_R_16BF: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case CUDA_R_16F: return __half2float(((const __half *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

inline void store(void *p, int t, size_t i, float v)
{
    switch (t) {
    case CUDA_R_16BF: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v); break;
    case CUDA_R_16F: ((__half *)p)[i] = __float2half_rn(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

} // namespace blas
} // namespace cuemu

#endif
