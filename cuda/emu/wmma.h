/* nvcuda::wmma of the CUDA emulation, included by cuemu.h (emulation only; nvcc gets <mma.h>).
 *
 * CUDA's overloads for the 16x16x16 shape with __nv_bfloat16 inputs (matrix_a / matrix_b,
 * row_major or col_major) and float accumulators, and the fragment counts CUDA gives them (8
 * elements per lane). Every call is a warp collective: all 32 lanes at the same call site, as
 * for the shuffles. CUDA leaves the fragment layout unspecified, so this one is deliberately
 * scrambled (wmma_pos): code that reads x[i] as a given matrix element gets wrong results here.
 * Element-wise operations on x[] (the same op on every element) work as on a GPU.
 *
 * Loads and stores are made by the calling lane, each its own 8 elements, in the kernel's
 * (instrumented) code, so the race detector sees them as that lane's accesses. The collectives
 * do not order memory between lanes (CUDA promises no such ordering): data one lane wrote needs a
 * __syncwarp() or __syncthreads() before another lane's load_matrix_sync reads it. */
#ifndef QASR_CUEMU_WMMA_H
#define QASR_CUEMU_WMMA_H

namespace cuemu {
namespace detail {

enum wmma_use { WMMA_A, WMMA_B, WMMA_ACC };

/* Element i of lane's fragment is element row * 16 + col of the 16x16 matrix (a: m x k,
 * b: k x n, accumulator: m x n). An odd multiplier is a bijection mod 256, so each lane holds 8
 * distinct elements, in an order unlike any row or column order, different for a, b and c. */
constexpr int wmma_pos(int use, int lane, int i)
{
    return ((lane * 8 + i) * (use == WMMA_A ? 77 : use == WMMA_B ? 45 : 109) +
            (use == WMMA_A ? 13 : use == WMMA_B ? 200 : 91)) & 255;
}

/* scheduler.cpp: a warp collective that checks convergence (all 32 lanes, one call site) without
 * ordering memory, returning the caller's lane; d = a * b + c combining the fragments of the 32 lanes (mma_sync); a kernel error. */
int wmma_converge(const char *op, site where); /* returns the lane */
void wmma_mma(float *d, const __nv_bfloat16 *a, const __nv_bfloat16 *b, const float *c, site where);
[[noreturn]] void wmma_fail(const char *op, const char *why, site where);

/* CUDA requires a 256-bit aligned pointer and ldm a multiple of 16 bytes. */
template <class T> inline void wmma_check(const char *op, const T *p, unsigned ldm, site where)
{
    if ((uintptr_t)p % 32) wmma_fail(op, "pointer not 256-bit aligned", where);
    if (ldm * sizeof(T) % 16) wmma_fail(op, "ldm not a multiple of 16 bytes", where);
}

/* Element (r, c) of a matrix at p with leading dimension ldm. */
inline size_t wmma_offset(int r, int c, unsigned ldm, bool row_major)
{
    return row_major ? (size_t)r * ldm + c : (size_t)c * ldm + r;
}

} // namespace detail
} // namespace cuemu

/* Inlined into the kernel, so the race detector's report names the kernel line of a load or store. */
#define CUEMU_WMMA_INLINE inline __attribute__((always_inline))

namespace nvcuda {
namespace wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;

enum layout_t { mem_row_major, mem_col_major };

template <typename T, int size, int packed_size = size> struct alignas(8) __frag_base {
    enum { num_elements = size };
    enum { num_storage_elements = packed_size };
    typedef T element_type;
    typedef T storage_element_type;
    T x[packed_size];
};

template <typename T> struct helper_traits {
    typedef T element_type;
    typedef T storage_element_type;
    typedef T fill_argument_type;
};

/* The value's type is not deduced, as in CUDA: fill_fragment(bf16_frag, 0.0f) converts. */
template <typename T, int size, int packed_size>
inline void fill_fragment(__frag_base<T, size, packed_size> &f, const typename helper_traits<T>::fill_argument_type &in)
{
    for (int i = 0; i < f.num_storage_elements; i++) f.x[i] = in;
}

template <typename Use, int m, int n, int k, typename T, typename Layout = void> class fragment;
template <> class fragment<matrix_a, 16, 16, 16, __nv_bfloat16, row_major> : public __frag_base<__nv_bfloat16, 8> {};
template <> class fragment<matrix_a, 16, 16, 16, __nv_bfloat16, col_major> : public __frag_base<__nv_bfloat16, 8> {};
template <> class fragment<matrix_b, 16, 16, 16, __nv_bfloat16, row_major> : public __frag_base<__nv_bfloat16, 8> {};
template <> class fragment<matrix_b, 16, 16, 16, __nv_bfloat16, col_major> : public __frag_base<__nv_bfloat16, 8> {};
template <> class fragment<accumulator, 16, 16, 16, float> : public __frag_base<float, 8> {};

#define CUEMU_WMMA_LOAD(USE, U, LAYOUT, ROW)                                                      \
    CUEMU_WMMA_INLINE void load_matrix_sync(fragment<USE, 16, 16, 16, __nv_bfloat16, LAYOUT> &a,              \
                                            const __nv_bfloat16 *p, unsigned ldm, CUEMU_SITE_ARGS)  \
    {                                                                                             \
        ::cuemu::detail::wmma_check("nvcuda::wmma::load_matrix_sync", p, ldm, CUEMU_HERE);        \
        int lane = ::cuemu::detail::wmma_converge("nvcuda::wmma::load_matrix_sync", CUEMU_HERE);  \
        for (int i = 0; i < 8; i++) {                                                             \
            int e = ::cuemu::detail::wmma_pos(::cuemu::detail::U, lane, i);                       \
            a.x[i] = p[::cuemu::detail::wmma_offset(e / 16, e % 16, ldm, ROW)];                   \
        }                                                                                         \
    }
CUEMU_WMMA_LOAD(matrix_a, WMMA_A, row_major, true)
CUEMU_WMMA_LOAD(matrix_a, WMMA_A, col_major, false)
CUEMU_WMMA_LOAD(matrix_b, WMMA_B, row_major, true)
CUEMU_WMMA_LOAD(matrix_b, WMMA_B, col_major, false)
#undef CUEMU_WMMA_LOAD

CUEMU_WMMA_INLINE void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &a, const float *p, unsigned ldm,
                             layout_t layout, CUEMU_SITE_ARGS)
{
    ::cuemu::detail::wmma_check("nvcuda::wmma::load_matrix_sync", p, ldm, CUEMU_HERE);
    int lane = ::cuemu::detail::wmma_converge("nvcuda::wmma::load_matrix_sync", CUEMU_HERE);
    for (int i = 0; i < 8; i++) {
        int e = ::cuemu::detail::wmma_pos(::cuemu::detail::WMMA_ACC, lane, i);
        a.x[i] = p[::cuemu::detail::wmma_offset(e / 16, e % 16, ldm, layout == mem_row_major)];
    }
}

CUEMU_WMMA_INLINE void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &a, unsigned ldm,
                              layout_t layout, CUEMU_SITE_ARGS)
{
    ::cuemu::detail::wmma_check("nvcuda::wmma::store_matrix_sync", p, ldm, CUEMU_HERE);
    int lane = ::cuemu::detail::wmma_converge("nvcuda::wmma::store_matrix_sync", CUEMU_HERE);
    for (int i = 0; i < 8; i++) {
        int e = ::cuemu::detail::wmma_pos(::cuemu::detail::WMMA_ACC, lane, i);
        p[::cuemu::detail::wmma_offset(e / 16, e % 16, ldm, layout == mem_row_major)] = a.x[i];
    }
}

#define CUEMU_WMMA_MMA(LA, LB)                                                                    \
    inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,                             \
                         const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,              \
                         const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,              \
                         const fragment<accumulator, 16, 16, 16, float> &acc, CUEMU_SITE_ARGS)    \
    {                                                                                             \
        ::cuemu::detail::wmma_mma(d.x, a.x, b.x, acc.x, CUEMU_HERE);                              \
    }
CUEMU_WMMA_MMA(row_major, row_major)
CUEMU_WMMA_MMA(row_major, col_major)
CUEMU_WMMA_MMA(col_major, row_major)
CUEMU_WMMA_MMA(col_major, col_major)
#undef CUEMU_WMMA_MMA

} // namespace wmma
} // namespace nvcuda

#undef CUEMU_WMMA_INLINE

#endif
