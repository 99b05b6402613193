/* CUDA compatibility layer: the one header every project .cu includes first (via cuda/common.cuh).
 *
 * Under nvcc it is thin: the real cuda_runtime.h / cuda_bf16.h plus two macros, the only
 * source-level concessions the emulation needs:
 *   CUEMU_LAUNCH(grid, block, smem_bytes, stream, kernel<T, N>)(args...);   kernel<<<...>>>(args)
 *   CUEMU_DYNAMIC_SHARED(float, row);         extern __shared__ memory seen as float *row
 * The kernel goes last so that template arguments with commas survive the preprocessor.
 *
 * Under a host C++ compiler it is the emulation: each block's threads run as cooperative fibers
 * on the calling OS thread (cuda/emu/scheduler.cpp), the blocks one after another; barriers and
 * warp intrinsics are the only switch points, and they check that threads meet where CUDA
 * requires it (nvcuda::wmma included: wmma.h). Only what nvcc also accepts is provided
 * (overloads, types, full warp mask), so code that builds here builds under nvcc. Rules for kernel authors: cuda/emu/README.md. */
#ifndef QASR_CUEMU_H
#define QASR_CUEMU_H

#if defined(__CUDACC__)

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#define CUEMU_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<(grid), (block), (smem), (stream)>>>
#define CUEMU_DYNAMIC_SHARED(T, name)                                                  \
    extern __shared__ __align__(16) unsigned char cuemu_dynamic_smem[];                \
    T *name = reinterpret_cast<T *>(cuemu_dynamic_smem)
/* The performance trace is the emulator's (trace.cpp); on a GPU the declaration costs nothing. */
#define CUEMU_COST(bytes_read, bytes_written, flops) ((void)(bytes_read), (void)(bytes_written), (void)(flops))
#define CUEMU_COST_TC(bytes_read, bytes_written, tc_flops) ((void)(bytes_read), (void)(bytes_written), (void)(tc_flops))

#else /* emulation */

#define CUEMU 1

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#define CUEMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUEMU_ASAN 1
#endif
#endif
/* Kernel code compiled with -fsanitize=thread (QASR_EMU_RACECHECK): clang calls __tsan_read4 &
 * co. at every memory access, and the race detector (racecheck.cpp, no TSan runtime) defines them. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CUEMU_RACECHECK_HOOKS 1
#endif
#endif

/* One instance per kernel (per template instance) is right because blocks run one at a time.
 * Outside ASan the arrays go to one section that the launcher fills with 0xFF before every block,
 * so reading shared memory this block never wrote gives NaN / -1. GCC 12 ignores the section
 * attribute on statics inside templates (and inline functions), so only clang poisons templated
 * kernels; CMake builds the emulation with clang++ for that reason. Under ASan the section is
 * dropped: the arrays become ordinary globals with redzones, so overruns are reported by name. */
#undef __shared__
#if defined(CUEMU_ASAN)
#define __shared__ static
#else
#define __shared__ static __attribute__((section("cuemu_shared")))
#endif
#define __launch_bounds__(...)

extern "C" {
/* threadIdx is rewritten at every fiber switch, so each fiber sees its own; blockIdx, blockDim
 * and gridDim are set once per block. */
extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;
extern const int warpSize;
}

namespace cuemu {
namespace detail {

/* Source location of a barrier or warp intrinsic, taken from default arguments so that it
 * names the call site even when the compiler duplicates or unrolls code. */
struct site {
    const char *file;
    int line, column;
};

enum warp_kind {
    WARP_SHFL_IDX, WARP_SHFL_UP, WARP_SHFL_DOWN, WARP_SHFL_XOR,
    WARP_BALLOT, WARP_ANY, WARP_ALL, WARP_SYNC,
    WARP_ADD, WARP_MIN_I, WARP_MAX_I, WARP_MIN_U, WARP_MAX_U, WARP_AND, WARP_OR, WARP_XOR,
    WARP_WMMA, /* nvcuda::wmma (wmma.h): converges the warp but orders no memory */
};
enum block_kind { BLOCK_SYNC, BLOCK_COUNT, BLOCK_AND, BLOCK_OR };

/* scheduler.cpp: the switch points. */
int block_barrier(block_kind kind, int pred, site where);
uint64_t warp_collective(warp_kind kind, unsigned mask, uint64_t value, int arg, int width, site where);
extern unsigned char *dynamic_smem;

struct kernel_info {
    const char *name, *file;
    int line;
    const void *func;
};
/* racecheck.cpp: an atomic of `size` bytes at addr (write: it stores), called from the kernel
 * code of the atomic; a __threadfence(). Both do nothing unless the race detector runs. */
void rc_atomic(const void *addr, unsigned size, bool write);
void rc_fence();

/* trace.cpp: the cost declared for the next launch of this host thread (CUEMU_COST, CUEMU_COST_TC). */
void note_cost(double bytes_read, double bytes_written, double flops, double tc_flops = 0);

/* scheduler.cpp: run every block of one launch now; false after reporting a kernel error. */
bool run_grid(dim3 grid, dim3 block, size_t smem, const kernel_info &info, void (*body)(void *), void *args);

/* runtime.cpp: queue a kernel on its stream (checks the launch like the real runtime does). */
void launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, const kernel_info &info,
            std::shared_ptr<void> args, void (*body)(void *args));

/* runtime.cpp, for the library shims: queue host work on a stream of the current device (or
 * record it while the stream is being captured). fn runs later, in stream order, and returns
 * cudaSuccess or the error that poisons the device (cudaErrorIllegalAddress for a bad range). */
cudaError_t enqueue(cudaStream_t stream, std::function<cudaError_t()> fn);
/* runtime.cpp, for the NCCL shim: queue fn on a stream that must belong to `device` (not
 * necessarily the current one), outside any capture; *pos is the stream's position before fn.
 * From inside a queued fn, run_stream_to(stream, device, pos) runs that stream's work before pos
 * (a collective waits for the work every rank queued before it). NULL: the device's legacy stream. */
cudaError_t enqueue_on(cudaStream_t stream, int device, std::function<cudaError_t()> fn, uint64_t *pos);
cudaError_t run_stream_to(cudaStream_t stream, int device, uint64_t pos);
/* True if [p, p + bytes) lies inside one live cudaMalloc allocation; reports why not on stderr. */
bool device_range(const void *p, size_t bytes, const char *what);
bool is_device_memory(const void *p);
int current_device();
/* Records e as the thread's last error after printing why (for checks made in this header). */
cudaError_t reject_call(cudaError_t e, const char *api, const char *why);

/* An enum argument's raw value. C callers may pass values outside the enum's range, and loading
 * such a value as the enum type is undefined behaviour (UBSan's -fsanitize=enum reports it). */
template <class E> int enum_value(const E &e)
{
    static_assert(sizeof(E) == sizeof(int), "enum_value: int-sized enums only");
    int v;
    memcpy(&v, &e, sizeof v);
    return v;
}

/* A launch converts each argument to the parameter type, as a real launch does. */
template <class T> T implicit_arg(T v) { return v; }

template <class... P> struct launcher {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    kernel_info info;
    void (*kernel)(P...);

    template <class... A> void operator()(A &&...a) const
    {
        static_assert(sizeof...(A) == sizeof...(P), "CUEMU_LAUNCH: wrong number of kernel arguments");
        static_assert(!std::disjunction_v<std::is_reference<P>...>, "kernel parameters cannot be references");
        struct bound {
            void (*kernel)(P...);
            std::tuple<std::decay_t<P>...> args;
        };
        auto b = std::make_shared<bound>(bound{kernel, {implicit_arg<std::decay_t<P>>(std::forward<A>(a))...}});
        /* std::apply passes the stored arguments by value: every thread gets its own copy. */
        launch(grid, block, smem, stream, info, b,
               [](void *p) { auto *b = static_cast<bound *>(p); std::apply(b->kernel, b->args); });
    }
};

template <class... P>
launcher<P...> make_launcher(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, const char *name,
                             const char *file, int line, void (*kernel)(P...))
{
    return launcher<P...>{grid, block, smem, stream, {name, file, line, (const void *)kernel}, kernel};
}

template <class T> T warp_call(warp_kind kind, unsigned mask, T v, int arg, int width, site where)
{
    static_assert(sizeof(T) <= 8, "warp intrinsic on a type wider than 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    bits = warp_collective(kind, mask, bits, arg, width, where);
    asm volatile("" ::: "memory");
    T r;
    memcpy((void *)&r, &bits, sizeof r);
    return r;
}

} // namespace detail
} // namespace cuemu

#define CUEMU_LAUNCH(grid, block, smem, stream, ...)                                               \
    ::cuemu::detail::make_launcher((grid), (block), (smem), (stream), #__VA_ARGS__, __FILE__, __LINE__, \
                                   __VA_ARGS__)
#define CUEMU_DYNAMIC_SHARED(T, name) T *name = reinterpret_cast<T *>(::cuemu::detail::dynamic_smem)
/* The next launch's declared cost, for the performance trace (CUEMU_TRACE, trace.cpp): unique
 * bytes of global memory it reads and writes, and its floating-point operations. Under
 * CUEMU_DRYRUN the kernel does not run and the trace has only this; when it runs, the trace also
 * has the bytes the instrumentation counted, which tests compare with the declaration. */
#define CUEMU_COST(bytes_read, bytes_written, flops)                                              \
    ::cuemu::detail::note_cost((double)(bytes_read), (double)(bytes_written), (double)(flops))
/* The same for a kernel whose floating-point work runs on tensor cores (nvcuda::wmma): tc_flops
 * are its MMA flops (2 per multiply-add), counted at the tensor-core rate by bench/gpu_model.py. */
#define CUEMU_COST_TC(bytes_read, bytes_written, tc_flops)                                        \
    ::cuemu::detail::note_cost((double)(bytes_read), (double)(bytes_written), 0.0, (double)(tc_flops))

#define CUEMU_HERE                                                                                 \
    ::cuemu::detail::site { f, l, c }
/* The column tells apart two intrinsics on one line (GCC 12 has no __builtin_COLUMN). */
#if defined(__clang__)
#define CUEMU_SITE_ARGS const char *f = __builtin_FILE(), int l = __builtin_LINE(), int c = __builtin_COLUMN()
#else
#define CUEMU_SITE_ARGS const char *f = __builtin_FILE(), int l = __builtin_LINE(), int c = 0
#endif

/* ---- block barriers ---- */
/* The asm memory clobber makes the compiler reload shared memory after every switch point. */
inline void __syncthreads(CUEMU_SITE_ARGS)
{
    ::cuemu::detail::block_barrier(::cuemu::detail::BLOCK_SYNC, 0, CUEMU_HERE);
    asm volatile("" ::: "memory");
}
inline int __syncthreads_count(int pred, CUEMU_SITE_ARGS)
{
    int r = ::cuemu::detail::block_barrier(::cuemu::detail::BLOCK_COUNT, pred != 0, CUEMU_HERE);
    asm volatile("" ::: "memory");
    return r;
}
inline int __syncthreads_and(int pred, CUEMU_SITE_ARGS)
{
    int r = ::cuemu::detail::block_barrier(::cuemu::detail::BLOCK_AND, pred != 0, CUEMU_HERE);
    asm volatile("" ::: "memory");
    return r;
}
inline int __syncthreads_or(int pred, CUEMU_SITE_ARGS)
{
    int r = ::cuemu::detail::block_barrier(::cuemu::detail::BLOCK_OR, pred != 0, CUEMU_HERE);
    asm volatile("" ::: "memory");
    return r;
}
/* Fibers never run concurrently: memory is sequentially consistent, fences only stop the compiler.
 * The race detector models a device-scope fence followed by an atomic as a release to the blocks
 * whose atomics on the same address come later (racecheck.cpp). */
#if defined(CUEMU_RACECHECK_HOOKS)
inline void __threadfence() { ::cuemu::detail::rc_fence(); asm volatile("" ::: "memory"); }
inline void __threadfence_system() { ::cuemu::detail::rc_fence(); asm volatile("" ::: "memory"); }
#else
inline void __threadfence() { asm volatile("" ::: "memory"); }
inline void __threadfence_system() { asm volatile("" ::: "memory"); }
#endif
inline void __threadfence_block() { asm volatile("" ::: "memory"); }

/* ---- warp intrinsics: CUDA's exact overload set, full mask only ---- */
#define CUEMU_SHUFFLES(T)                                                                          \
    inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize, CUEMU_SITE_ARGS) \
    {                                                                                              \
        return ::cuemu::detail::warp_call(::cuemu::detail::WARP_SHFL_IDX, mask, var, src_lane, width, CUEMU_HERE); \
    }                                                                                              \
    inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, CUEMU_SITE_ARGS) \
    {                                                                                              \
        return ::cuemu::detail::warp_call(::cuemu::detail::WARP_SHFL_UP, mask, var, (int)delta, width, CUEMU_HERE); \
    }                                                                                              \
    inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize, CUEMU_SITE_ARGS) \
    {                                                                                              \
        return ::cuemu::detail::warp_call(::cuemu::detail::WARP_SHFL_DOWN, mask, var, (int)delta, width, CUEMU_HERE); \
    }                                                                                              \
    inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize, CUEMU_SITE_ARGS) \
    {                                                                                              \
        return ::cuemu::detail::warp_call(::cuemu::detail::WARP_SHFL_XOR, mask, var, lane_mask, width, CUEMU_HERE); \
    }
CUEMU_SHUFFLES(int)
CUEMU_SHUFFLES(unsigned int)
CUEMU_SHUFFLES(long)
CUEMU_SHUFFLES(unsigned long)
CUEMU_SHUFFLES(long long)
CUEMU_SHUFFLES(unsigned long long)
CUEMU_SHUFFLES(float)
CUEMU_SHUFFLES(double)
CUEMU_SHUFFLES(__half)
CUEMU_SHUFFLES(__half2)
CUEMU_SHUFFLES(__nv_bfloat16)
CUEMU_SHUFFLES(__nv_bfloat162)
#undef CUEMU_SHUFFLES

inline unsigned __ballot_sync(unsigned mask, int pred, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_BALLOT, mask, (unsigned)(pred != 0), 0, 32, CUEMU_HERE);
}
inline int __any_sync(unsigned mask, int pred, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_ANY, mask, (int)(pred != 0), 0, 32, CUEMU_HERE);
}
inline int __all_sync(unsigned mask, int pred, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_ALL, mask, (int)(pred != 0), 0, 32, CUEMU_HERE);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, CUEMU_SITE_ARGS)
{
    ::cuemu::detail::warp_call(::cuemu::detail::WARP_SYNC, mask, 0, 0, 32, CUEMU_HERE);
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_ADD, mask, v, 0, 32, CUEMU_HERE);
}
inline int __reduce_add_sync(unsigned mask, int v, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_ADD, mask, v, 0, 32, CUEMU_HERE);
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_MIN_U, mask, v, 0, 32, CUEMU_HERE);
}
inline int __reduce_min_sync(unsigned mask, int v, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_MIN_I, mask, v, 0, 32, CUEMU_HERE);
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_MAX_U, mask, v, 0, 32, CUEMU_HERE);
}
inline int __reduce_max_sync(unsigned mask, int v, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_MAX_I, mask, v, 0, 32, CUEMU_HERE);
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned v, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_AND, mask, v, 0, 32, CUEMU_HERE);
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned v, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_OR, mask, v, 0, 32, CUEMU_HERE);
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v, CUEMU_SITE_ARGS)
{
    return ::cuemu::detail::warp_call(::cuemu::detail::WARP_XOR, mask, v, 0, 32, CUEMU_HERE);
}

/* ---- tensor cores: nvcuda::wmma ---- */
#include "wmma.h"
#undef CUEMU_HERE
#undef CUEMU_SITE_ARGS

/* ---- atomics: a fiber is never preempted, so a plain read-modify-write is atomic. Only the
 * overloads CUDA has (there is no atomicMax(float *)). Signed wrap-around goes through unsigned.
 * Under the race detector each first tells it what it does (a failed compare-and-swap only
 * reads), and its load and store are relaxed __atomic operations, which the instrumentation
 * leaves alone (plain moves on x86-64). */
#if defined(CUEMU_RACECHECK_HOOKS)
namespace cuemu {
namespace detail {
template <class T> inline T rc_load(const T *a)
{
    T v;
    __atomic_load(a, &v, __ATOMIC_RELAXED);
    return v;
}
template <class T> inline void rc_store(T *a, T v) { __atomic_store(a, &v, __ATOMIC_RELAXED); }
} // namespace detail
} // namespace cuemu
#define CUEMU_NOTE_ATOMIC(a, w) ::cuemu::detail::rc_atomic((const void *)(a), sizeof *(a), (w))
#define CUEMU_LD(a) ::cuemu::detail::rc_load(a)
#define CUEMU_ST(a, v) ::cuemu::detail::rc_store(a, v)
#else
#define CUEMU_NOTE_ATOMIC(a, w) (void)0
#define CUEMU_LD(a) (*(a))
#define CUEMU_ST(a, v) (void)(*(a) = (v))
#endif
inline int atomicAdd(int *a, int v) { CUEMU_NOTE_ATOMIC(a, true); int o = CUEMU_LD(a); CUEMU_ST(a, (int)((unsigned)o + (unsigned)v)); return o; }
inline unsigned atomicAdd(unsigned *a, unsigned v) { CUEMU_NOTE_ATOMIC(a, true); unsigned o = CUEMU_LD(a); CUEMU_ST(a, o + v); return o; }
inline unsigned long long atomicAdd(unsigned long long *a, unsigned long long v) { CUEMU_NOTE_ATOMIC(a, true); unsigned long long o = CUEMU_LD(a); CUEMU_ST(a, o + v); return o; }
inline float atomicAdd(float *a, float v) { CUEMU_NOTE_ATOMIC(a, true); float o = CUEMU_LD(a); CUEMU_ST(a, o + v); return o; }
inline double atomicAdd(double *a, double v) { CUEMU_NOTE_ATOMIC(a, true); double o = CUEMU_LD(a); CUEMU_ST(a, o + v); return o; }
inline int atomicSub(int *a, int v) { CUEMU_NOTE_ATOMIC(a, true); int o = CUEMU_LD(a); CUEMU_ST(a, (int)((unsigned)o - (unsigned)v)); return o; }
inline unsigned atomicSub(unsigned *a, unsigned v) { CUEMU_NOTE_ATOMIC(a, true); unsigned o = CUEMU_LD(a); CUEMU_ST(a, o - v); return o; }
inline int atomicMax(int *a, int v) { CUEMU_NOTE_ATOMIC(a, true); int o = CUEMU_LD(a); CUEMU_ST(a, o > v ? o : v); return o; }
inline unsigned atomicMax(unsigned *a, unsigned v) { CUEMU_NOTE_ATOMIC(a, true); unsigned o = CUEMU_LD(a); CUEMU_ST(a, o > v ? o : v); return o; }
inline long long atomicMax(long long *a, long long v) { CUEMU_NOTE_ATOMIC(a, true); long long o = CUEMU_LD(a); CUEMU_ST(a, o > v ? o : v); return o; }
inline unsigned long long atomicMax(unsigned long long *a, unsigned long long v) { CUEMU_NOTE_ATOMIC(a, true); unsigned long long o = CUEMU_LD(a); CUEMU_ST(a, o > v ? o : v); return o; }
inline int atomicMin(int *a, int v) { CUEMU_NOTE_ATOMIC(a, true); int o = CUEMU_LD(a); CUEMU_ST(a, o < v ? o : v); return o; }
inline unsigned atomicMin(unsigned *a, unsigned v) { CUEMU_NOTE_ATOMIC(a, true); unsigned o = CUEMU_LD(a); CUEMU_ST(a, o < v ? o : v); return o; }
inline long long atomicMin(long long *a, long long v) { CUEMU_NOTE_ATOMIC(a, true); long long o = CUEMU_LD(a); CUEMU_ST(a, o < v ? o : v); return o; }
inline unsigned long long atomicMin(unsigned long long *a, unsigned long long v) { CUEMU_NOTE_ATOMIC(a, true); unsigned long long o = CUEMU_LD(a); CUEMU_ST(a, o < v ? o : v); return o; }
inline int atomicCAS(int *a, int cmp, int v) { int o = CUEMU_LD(a); CUEMU_NOTE_ATOMIC(a, o == cmp); if (o == cmp) CUEMU_ST(a, v); return o; }
inline unsigned atomicCAS(unsigned *a, unsigned cmp, unsigned v) { unsigned o = CUEMU_LD(a); CUEMU_NOTE_ATOMIC(a, o == cmp); if (o == cmp) CUEMU_ST(a, v); return o; }
inline unsigned long long atomicCAS(unsigned long long *a, unsigned long long cmp, unsigned long long v) { unsigned long long o = CUEMU_LD(a); CUEMU_NOTE_ATOMIC(a, o == cmp); if (o == cmp) CUEMU_ST(a, v); return o; }
inline int atomicExch(int *a, int v) { CUEMU_NOTE_ATOMIC(a, true); int o = CUEMU_LD(a); CUEMU_ST(a, v); return o; }
inline unsigned atomicExch(unsigned *a, unsigned v) { CUEMU_NOTE_ATOMIC(a, true); unsigned o = CUEMU_LD(a); CUEMU_ST(a, v); return o; }
inline unsigned long long atomicExch(unsigned long long *a, unsigned long long v) { CUEMU_NOTE_ATOMIC(a, true); unsigned long long o = CUEMU_LD(a); CUEMU_ST(a, v); return o; }
inline float atomicExch(float *a, float v) { CUEMU_NOTE_ATOMIC(a, true); float o = CUEMU_LD(a); CUEMU_ST(a, v); return o; }
inline int atomicAnd(int *a, int v) { CUEMU_NOTE_ATOMIC(a, true); int o = CUEMU_LD(a); CUEMU_ST(a, o & v); return o; }
inline unsigned atomicAnd(unsigned *a, unsigned v) { CUEMU_NOTE_ATOMIC(a, true); unsigned o = CUEMU_LD(a); CUEMU_ST(a, o & v); return o; }
inline int atomicOr(int *a, int v) { CUEMU_NOTE_ATOMIC(a, true); int o = CUEMU_LD(a); CUEMU_ST(a, o | v); return o; }
inline unsigned atomicOr(unsigned *a, unsigned v) { CUEMU_NOTE_ATOMIC(a, true); unsigned o = CUEMU_LD(a); CUEMU_ST(a, o | v); return o; }

/* ---- device math. Fast intrinsics map to accurate libm, so compare with tolerances. glibc's
 * math.h already declares __expf & co. (C linkage, noexcept) without exporting them. ---- */
extern "C" {
inline float __expf(float x) noexcept { return expf(x); }
inline float __exp10f(float x) noexcept { return powf(10.0f, x); }
inline float __logf(float x) noexcept { return logf(x); }
inline float __log2f(float x) noexcept { return log2f(x); }
inline float __log10f(float x) noexcept { return log10f(x); }
inline float __sinf(float x) noexcept { return sinf(x); }
inline float __cosf(float x) noexcept { return cosf(x); }
inline float __tanf(float x) noexcept { return tanf(x); }
inline float __powf(float x, float y) noexcept { return powf(x, y); }
inline void __sincosf(float x, float *s, float *c) noexcept { *s = sinf(x); *c = cosf(x); }
}
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __saturatef(float x) { return x > 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline float __int2float_rn(int x) { return (float)x; }
inline int __float_as_int(float x) { int r; memcpy(&r, &x, 4); return r; }
inline unsigned __float_as_uint(float x) { unsigned r; memcpy(&r, &x, 4); return r; }
inline float __int_as_float(int x) { float r; memcpy(&r, &x, 4); return r; }
inline float __uint_as_float(unsigned x) { float r; memcpy(&r, &x, 4); return r; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) { x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1); x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2); x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4); return __builtin_bswap32(x); }
template <class T> inline T __ldg(const T *p) { return *p; }

/* CUDA's device min/max overloads (mixed signed/unsigned picks unsigned, as in CUDA). */
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned min(int a, unsigned b) { return min((unsigned)a, b); }
inline unsigned min(unsigned a, int b) { return min(a, (unsigned)b); }
inline long min(long a, long b) { return a < b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned max(int a, unsigned b) { return max((unsigned)a, b); }
inline unsigned max(unsigned a, int b) { return max(a, (unsigned)b); }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

/* Kernel-pointer overloads that cuda_runtime.h only declares under nvcc. */
template <class T> inline cudaError_t cudaFuncSetAttribute(T *func, cudaFuncAttribute attr, int value)
{
    return ::cudaFuncSetAttribute((const void *)func, attr, value);
}
template <class T>
inline cudaError_t cudaMemcpyToSymbol(const T &symbol, const void *src, size_t count = sizeof(T), size_t offset = 0,
                                      cudaMemcpyKind kind = cudaMemcpyHostToDevice)
{
    /* The emulation knows the symbol's size here, so an overrun is rejected like a bad copy. */
    if (count > sizeof(T) || offset > sizeof(T) - count)
        return ::cuemu::detail::reject_call(cudaErrorInvalidValue, "cudaMemcpyToSymbol", "copy overruns the symbol");
    return ::cudaMemcpyToSymbol((const void *)&symbol, src, count, offset, kind);
}

#endif /* emulation */
#endif
