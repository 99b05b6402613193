/* Element-wise ops on bf16 activations: exact GELU, SwiGLU (biases are added in the GEMMs'
 * epilogues). Math in fp32, results rounded to bf16 where the official bf16 model rounds (MODEL.md
 * section 12).
 *
 * Memory-bound, so a thread moves two elements as one 32-bit bf16x2 when a row's width is even
 * and the pointers are 4-byte aligned (always true for the model's widths and for buffers from
 * cudaMalloc); other shapes (odd widths, odd-element views) take the scalar instantiation.
 * Row ops use a 2-D grid, rows on y and the row's elements on x, so no thread divides an index. */
#include "../common.cuh"

#include "kernels.h"

#include <stdint.h>

#define BLOCK 256
#define MAX_BLOCKS 1024 /* about one full wave on an H100 (132 SMs x 8 blocks); kernels stride beyond */
#define MAX_GRID_Y 65535

/* blocks of BLOCK threads for `items` work items, capped (the kernels stride beyond) */
static inline unsigned grid_blocks(int64_t items)
{
    const int64_t b = CEIL_DIV(items, (int64_t)BLOCK);
    return (unsigned)(b < MAX_BLOCKS ? b : MAX_BLOCKS);
}

/* Row ops: threads for one row's items (a multiple of 32, at most BLOCK), blocks on y per row. */
static inline int row_block(int64_t items_per_row)
{
    return items_per_row >= BLOCK ? BLOCK : (int)CEIL_DIV(items_per_row, 32) * 32;
}

static inline dim3 rows_grid(int64_t items_per_row, int rows)
{
    return dim3(grid_blocks(items_per_row), (unsigned)(rows < MAX_GRID_Y ? rows : MAX_GRID_Y));
}

/* silu in fp32: x / (1 + e^-x); for x < -88 e^-x is inf and the result -0 */
static __device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

/* SwiGLU with the reference's two roundings: silu(gate) is a bf16 tensor, then its product with up. */
static __device__ __forceinline__ float swiglu1(float g, float u) { return bf16_round(silu(g)) * u; }

/* grid: ceil(n / (PAIRS ? 2 : 1) / BLOCK) capped at MAX_BLOCKS; block: BLOCK; grid-stride over
 * elements or bf16x2 pairs (with pairs, thread 0 also takes the last element of an odd n). */
template <bool PAIRS>
__global__ void gelu_kernel(bf16 *x, /* [n] */ int64_t n)
{
    const int64_t first = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    if constexpr (PAIRS) {
        bf16x2 *x2 = reinterpret_cast<bf16x2 *>(x);
        for (int64_t i = first; i < n / 2; i += step) {
            const float2 v = __bfloat1622float2(x2[i]);
            x2[i] = __floats2bfloat162_rn(gelu_erf(v.x), gelu_erf(v.y));
        }
        if (first == 0 && n % 2 == 1) x[n - 1] = __float2bfloat16_rn(gelu_erf(__bfloat162float(x[n - 1])));
    } else {
        for (int64_t i = first; i < n; i += step) x[i] = __float2bfloat16_rn(gelu_erf(__bfloat162float(x[i])));
    }
}

extern "C" cudaError_t cuda_gelu(bf16_t *x, int64_t n, cudaStream_t stream)
{
    SHAPE_ASSERT(n >= 1);
    bf16 *dx = reinterpret_cast<bf16 *>(x);
    CUEMU_COST(n * sizeof(bf16_t), n * sizeof(bf16_t), 20.0 * n); /* erf: about 20 operations */
    if (aligned(x, 4))
        CUEMU_LAUNCH(grid_blocks(CEIL_DIV(n, 2)), BLOCK, 0, stream, gelu_kernel<true>)(dx, n);
    else
        CUEMU_LAUNCH(grid_blocks(n), BLOCK, 0, stream, gelu_kernel<false>)(dx, n);
    return cudaGetLastError();
}

/* grid: (ceil(items / BLOCK) capped, rows capped at 65535); block: row_block(items); items =
 * Dff / 2 bf16x2 pairs or Dff elements; thread = one output item of a row, striding over the row,
 * blocks striding over rows. */
template <bool PAIRS>
__global__ void swiglu_kernel(bf16 *out, /* [rows][Dff] */ const bf16 *gu, /* [rows][2 Dff]: gate | up */
                              int rows, int Dff)
{
    const int first = blockIdx.x * blockDim.x + threadIdx.x, step = gridDim.x * blockDim.x;
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const bf16 *g = gu + (size_t)r * 2 * Dff, *u = g + Dff;
        bf16 *o = out + (size_t)r * Dff;
        if constexpr (PAIRS) {
            for (int i = first; i < Dff / 2; i += step) {
                const float2 gv = __bfloat1622float2(reinterpret_cast<const bf16x2 *>(g)[i]);
                const float2 uv = __bfloat1622float2(reinterpret_cast<const bf16x2 *>(u)[i]);
                reinterpret_cast<bf16x2 *>(o)[i] = __floats2bfloat162_rn(swiglu1(gv.x, uv.x), swiglu1(gv.y, uv.y));
            }
        } else {
            for (int i = first; i < Dff; i += step)
                o[i] = __float2bfloat16_rn(swiglu1(__bfloat162float(g[i]), __bfloat162float(u[i])));
        }
    }
}

extern "C" cudaError_t cuda_swiglu(bf16_t *out, const bf16_t *gu, int rows, int Dff, cudaStream_t stream)
{
    SHAPE_ASSERT(rows >= 1 && Dff >= 1);
    bf16 *o = reinterpret_cast<bf16 *>(out);
    const bf16 *g = reinterpret_cast<const bf16 *>(gu);
    CUEMU_COST(2.0 * rows * Dff * sizeof(bf16_t), (double)rows * Dff * sizeof(bf16_t), 6.0 * rows * Dff);
    if (Dff % 2 == 0 && aligned(out, 4) && aligned(gu, 4))
        CUEMU_LAUNCH(rows_grid(Dff / 2, rows), row_block(Dff / 2), 0, stream, swiglu_kernel<true>)(o, g, rows, Dff);
    else
        CUEMU_LAUNCH(rows_grid(Dff, rows), row_block(Dff), 0, stream, swiglu_kernel<false>)(o, g, rows, Dff);
    return cudaGetLastError();
}
