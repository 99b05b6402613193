/* Kernels that exercise the emulation harness with correct CUDA: a block reduction with warp
 * shuffles and shared memory, a bf16 row softmax with dynamic shared memory, every block and
 * warp intrinsic, shared-memory poisoning, and a barrier micro-benchmark. The same file builds
 * with nvcc (compile check) and with the host compiler (emulated test). */
#include "../../cuda/common.cuh"

#include "harness_kernels.h"

/* grid: ceil(n / BLOCK); block: BLOCK threads; one shared partial per warp. */
template <int BLOCK>
__global__ void block_reduce_kernel(const float *x, int n, float *sum, int *max_int, float *max_cas)
{
    __shared__ float warp_sum[BLOCK / 32];
    __shared__ float warp_max[BLOCK / 32];
    int i = blockIdx.x * BLOCK + threadIdx.x, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float s = i < n ? x[i] : 0.0f, m = i < n ? x[i] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) {
        s += __shfl_xor_sync(FULL_MASK, s, o);
        m = fmaxf(m, __shfl_xor_sync(FULL_MASK, m, o));
    }
    if (lane == 0) {
        warp_sum[warp] = s;
        warp_max[warp] = m;
    }
    __syncthreads();
    if (warp == 0) {
        s = lane < BLOCK / 32 ? warp_sum[lane] : 0.0f;
        m = lane < BLOCK / 32 ? warp_max[lane] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) {
            s += __shfl_xor_sync(FULL_MASK, s, o);
            m = fmaxf(m, __shfl_xor_sync(FULL_MASK, m, o));
        }
        if (lane == 0) {
            atomicAdd(sum, s);
            atomicMax(max_int, (int)m);
            /* CUDA has no atomicMax(float *): the usual compare-and-swap loop. Its first guess
             * is a constant: a plain load of *bits would race with the other blocks' atomics. */
            unsigned *bits = (unsigned *)max_cas, old = __float_as_uint(-INFINITY), assumed;
            do {
                assumed = old;
                old = atomicCAS(bits, assumed, __float_as_uint(fmaxf(__uint_as_float(assumed), m)));
            } while (old != assumed);
        }
    }
}

extern "C" cudaError_t emu_block_reduce(const float *x, int n, int block, float *sum, int *max_int, float *max_cas,
                                        cudaStream_t stream)
{
    if (block == 256) CUEMU_LAUNCH(CEIL_DIV(n, 256), 256, 0, stream, block_reduce_kernel<256>)(x, n, sum, max_int, max_cas);
    else CUEMU_LAUNCH(CEIL_DIV(n, 1024), 1024, 0, stream, block_reduce_kernel<1024>)(x, n, sum, max_int, max_cas);
    return cudaGetLastError();
}

/* Sum or max over the block, returned to every thread. scratch: [32] floats of shared memory,
 * free again when this returns. */
__device__ float block_allreduce(float v, float *scratch, bool take_max)
{
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    for (int o = 16; o > 0; o >>= 1) {
        float u = __shfl_xor_sync(FULL_MASK, v, o);
        v = take_max ? fmaxf(v, u) : v + u;
    }
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : (take_max ? -INFINITY : 0.0f);
    for (int o = 16; o > 0; o >>= 1) {
        float u = __shfl_xor_sync(FULL_MASK, v, o);
        v = take_max ? fmaxf(v, u) : v + u;
    }
    __syncthreads();
    return v;
}

/* grid: rows; block: any multiple of 32; dynamic shared memory: (cols + 32) floats, the row in
 * fp32 followed by the reduction scratch. */
__global__ void softmax_bf16_kernel(const bf16 *x, bf16 *y, int cols)
{
    CUEMU_DYNAMIC_SHARED(float, row);
    float *scratch = row + cols;
    const bf16 *xr = x + (size_t)blockIdx.x * cols;
    bf16 *yr = y + (size_t)blockIdx.x * cols;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        row[c] = __bfloat162float(xr[c]);
        m = fmaxf(m, row[c]);
    }
    m = block_allreduce(m, scratch, true);
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        row[c] = __expf(row[c] - m);
        s += row[c];
    }
    s = block_allreduce(s, scratch, false);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = __float2bfloat16(row[c] / s);
}

extern "C" cudaError_t emu_softmax_bf16(const uint16_t *x, uint16_t *y, int rows, int cols, int threads, int opt_in,
                                        cudaStream_t stream)
{
    size_t smem = (size_t)(cols + 32) * sizeof(float);
    if (opt_in && smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(softmax_bf16_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    CUEMU_LAUNCH(rows, threads, smem, stream, softmax_bf16_kernel)((const bf16 *)x, (bf16 *)y, cols);
    return cudaGetLastError();
}

/* grid: 1; block: 32. `never` is 0: the write keeps the compiler from folding the reads of a
 * never-written static array to zero. */
template <int N>
__global__ void read_unwritten_kernel(float *out, int never)
{
    __shared__ float tile[N];
    CUEMU_DYNAMIC_SHARED(float, dyn);
    if (never) tile[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = tile[threadIdx.x];
    out[N + threadIdx.x] = dyn[threadIdx.x];
}

extern "C" cudaError_t emu_read_unwritten_shared(float *out, cudaStream_t stream)
{
    CUEMU_LAUNCH(1, 32, 32 * sizeof(float), stream, read_unwritten_kernel<32>)(out, 0);
    return cudaGetLastError();
}

extern "C" int emu_static_shared_poisoned(void)
{
#if defined(CUEMU) && defined(__clang__) && !defined(CUEMU_ASAN)
    return 1;
#else
    return 0;
#endif
}

/* grid: 1; block: threads (multiple of 32). Result j of thread t at out[t * 20 + j]. */
__global__ void intrinsics_kernel(int *out)
{
    int tid = threadIdx.x;
    unsigned lane = tid % 32, warp = tid / 32;
    int *o = out + tid * EMU_INTRINSIC_RESULTS;
    o[0] = (int)__ballot_sync(FULL_MASK, lane % 3 == 0);
    o[1] = __any_sync(FULL_MASK, lane == 5);
    o[2] = __all_sync(FULL_MASK, lane < 31);
    o[3] = __all_sync(FULL_MASK, lane < 32);
    o[4] = (int)__reduce_add_sync(FULL_MASK, lane);
    o[5] = __reduce_min_sync(FULL_MASK, (int)lane - 7 - (int)warp);
    o[6] = (int)__reduce_max_sync(FULL_MASK, lane * 3u);
    o[7] = (int)__reduce_and_sync(FULL_MASK, 0xf0u | lane);
    o[8] = (int)__reduce_or_sync(FULL_MASK, 1u << (lane % 8));
    o[9] = (int)__reduce_xor_sync(FULL_MASK, lane);
    o[10] = __shfl_sync(FULL_MASK, tid, 3);
    o[11] = __shfl_sync(FULL_MASK, tid, (int)lane + 5, 16);
    o[12] = __shfl_up_sync(FULL_MASK, tid, 1);
    o[13] = __shfl_down_sync(FULL_MASK, tid, 2, 8);
    o[14] = __shfl_xor_sync(FULL_MASK, tid, 16, 16);
    o[15] = __syncthreads_count(tid % 5 == 0);
    o[16] = __syncthreads_and(tid < (int)blockDim.x);
    o[17] = __syncthreads_or(tid == (int)blockDim.x - 1);
    o[18] = (int)__bfloat162float(__shfl_xor_sync(FULL_MASK, __float2bfloat16((float)lane), 1));
    o[19] = (int)(2.0 * __shfl_down_sync(FULL_MASK, 0.5 * tid, 1));
}

extern "C" cudaError_t emu_intrinsics(int *out, int threads, cudaStream_t stream)
{
    CUEMU_LAUNCH(1, threads, 0, stream, intrinsics_kernel)(out);
    return cudaGetLastError();
}

/* grid: 1; block: threads. */
__global__ void barrier_bench_kernel(int iters, int kind, float *sink)
{
    float v = (float)threadIdx.x;
    for (int i = 0; i < iters; i++) {
        if (kind == 0) __syncthreads();
        else v += __shfl_xor_sync(FULL_MASK, v, 1);
    }
    if (v == -1.0f) *sink = v;
}

extern "C" cudaError_t emu_barrier_bench(int threads, int iters, int kind, float *sink, cudaStream_t stream)
{
    CUEMU_LAUNCH(1, threads, 0, stream, barrier_bench_kernel)(iters, kind, sink);
    return cudaGetLastError();
}
