/* The conv stem's 3x3 stride-2 convolution (zero padding 1) + bias + exact GELU (MODEL.md 5.2) as
 * one implicit GEMM on tensor cores (nvcuda::wmma 16x16x16, bf16 in, fp32 accumulators):
 * out [Cout][N*Ho*Wo] = w [Cout][K] . col [K][N*Ho*Wo], K = Cin*9, where col, the im2col matrix,
 * is never stored: each K slice of it is gathered from the input into shared memory (taps outside
 * the image are zeros), and w, already [Cout][Cin*9], is the A matrix as it is.
 *
 * A block computes a CT_M x CT_N tile of out (output channels x output positions) over K in
 * slices of CT_K; the next slice's loads (w as uint4 when K % 8 == 0, the gathered taps) are in
 * registers while the MMAs run on the current one. Epilogue (MODEL.md 12.2): the conv output with
 * its bias is a bf16 tensor, GELU runs on it in fp32 and is rounded on store; the accumulators go
 * through shared memory (the fragment layout is unspecified). K is padded with zeros to a
 * multiple of 16 (conv1: K = 9, one MMA step); tile rows past Cout and columns past the last
 * position are zeros, never stored. */
#include "../common.cuh"

#include "kernels.h"

#include <stdint.h>

#define CT_M 96  /* output channels per block: the model's 480 is 5 tiles */
#define CT_N 64  /* output positions per block */
#define CT_K 32  /* K slice per stage: two MMA steps */
#define CT_THREADS 128 /* 4 warps, 2 x 2, each 48 x 32: 3 x 2 accumulator fragments */
#define LDA (CT_K + 8) /* bf16; rows of 80 bytes: multiples of 16, fragment pointers 32-byte aligned */
#define LDB (CT_N + 8) /* bf16 */
#define LDC (CT_N + 4) /* fp32 */
#define A_CHUNKS (CT_M * CT_K / 8 / CT_THREADS) /* 8-element pieces of the w slice per thread: 3 */
#define B_TAPS (CT_K * CT_N / CT_THREADS)       /* gathered taps per thread: 16 */
#define A_BYTES (CT_M * LDA * 2)
#define STAGE_BYTES (A_BYTES + CT_K * LDB * 2)
#define C_BYTES (CT_M * LDC * 4)
#define SMEM_BYTES (STAGE_BYTES > C_BYTES ? STAGE_BYTES : C_BYTES)

static_assert(CT_M * CT_K % (8 * CT_THREADS) == 0 && CT_K * CT_N % CT_THREADS == 0 && CT_THREADS % CT_N == 0 &&
                  CT_THREADS / CT_N < 9,
              "tile loads");
static_assert(A_BYTES % 32 == 0, "B fragments 32-byte aligned");

/* grid: (ceil(Cout / CT_M), ceil(N*Ho*Wo / CT_N)); block: CT_THREADS; static shared memory: the
 * stage (A slice, B slice) and, after the K loop, the fp32 tile of the epilogue in the same bytes.
 * Output channel tiles on x, so the blocks of one position tile run together and its input taps
 * come from DRAM once (the 480 x 4320 weights, 4 MB, stay in L2). Thread t gathers position
 * t % CT_N of the tile, slice rows t / CT_N + 2 i; stores column t % CT_N, rows t / CT_N + 2 i.
 * Four blocks per SM: 128 registers, 4 x 26 KiB of shared memory. */
template <bool VEC_A>
__global__ void __launch_bounds__(CT_THREADS, 4)
conv3x3s2_gelu_kernel(bf16 *out, /* [Cout][N][Ho][Wo] */ const bf16 *in, /* [Cin][N][Hin][Win] */
                      const bf16 *w, /* [Cout][Cin*9] */ const bf16 *bias, /* [Cout] */ int Cin, int Cout, int N,
                      int Hin, int Win, int Ho, int Wo)
{
    namespace wmma = nvcuda::wmma;
    __shared__ __align__(128) unsigned char smem[SMEM_BYTES];
    bf16 *As = reinterpret_cast<bf16 *>(smem), *Bs = reinterpret_cast<bf16 *>(smem + A_BYTES);
    float *Cs = reinterpret_cast<float *>(smem);
    const uint16_t *wbits = reinterpret_cast<const uint16_t *>(w), *ibits = reinterpret_cast<const uint16_t *>(in);
    const int tid = threadIdx.x, warp = tid / 32, wm = warp / 2, wn = warp % 2;
    const int co0 = blockIdx.x * CT_M, NP = N * Ho * Wo, K = Cin * 9;
    const int64_t plane = (int64_t)Hin * Win, chan = N * plane;

    /* this thread's output position and the input offset of its top-left tap */
    const int col = tid % CT_N, row0 = tid / CT_N, j = blockIdx.y * CT_N + col;
    const int n = j / (Ho * Wo), oy = j % (Ho * Wo) / Wo, ox = j % Wo;
    const int iy0 = 2 * oy - 1, ix0 = 2 * ox - 1;
    const int64_t base = n * plane + (int64_t)iy0 * Win + ix0;

    /* k = 9 cin + tap of this thread's next gathered row, stepped by 2 (no division per tap): a
     * load's B_TAPS steps cover one slice, so it ends on its row of the next slice */
    int cin = 0, tap = row0;
    int64_t coff = 0; /* cin * chan */
    uint4 a_reg[A_CHUNKS];
    uint16_t b_reg[B_TAPS];
    auto load = [&](int k0) {
        for (int i = 0; i < A_CHUNKS; i++) {
            const int c = tid + i * CT_THREADS, r = c / (CT_K / 8), k = k0 + 8 * (c % (CT_K / 8));
            const size_t at = (size_t)(co0 + r) * K + k;
            if (VEC_A) {
                a_reg[i] = co0 + r < Cout && k < K ? *reinterpret_cast<const uint4 *>(wbits + at) : make_uint4(0, 0, 0, 0);
            } else {
                unsigned h[8];
                for (int e = 0; e < 8; e++) h[e] = co0 + r < Cout && k + e < K ? wbits[at + e] : 0u;
                a_reg[i] = make_uint4(h[0] | h[1] << 16, h[2] | h[3] << 16, h[4] | h[5] << 16, h[6] | h[7] << 16);
            }
        }
        for (int i = 0; i < B_TAPS; i++) {
            const int ky = tap / 3, kx = tap - 3 * ky;
            const bool inside = j < NP && cin < Cin && (unsigned)(iy0 + ky) < (unsigned)Hin &&
                                (unsigned)(ix0 + kx) < (unsigned)Win;
            b_reg[i] = inside ? ibits[coff + base + ky * Win + kx] : 0;
            tap += CT_THREADS / CT_N; /* the next row of this thread: k + 2 */
            if (tap >= 9) tap -= 9, cin++, coff += chan;
        }
    };

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[3][2];
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 2; b++) wmma::fill_fragment(acc[a][b], 0.0f);
    load(0);
    for (int k0 = 0; k0 < K; k0 += CT_K) {
        /* registers -> the stage; the 32-bit stores of a uint4 are seen by the race detector */
        for (int i = 0; i < A_CHUNKS; i++) {
            const int c = tid + i * CT_THREADS;
            unsigned *d = reinterpret_cast<unsigned *>(As + (c / (CT_K / 8)) * LDA + 8 * (c % (CT_K / 8)));
            d[0] = a_reg[i].x;
            d[1] = a_reg[i].y;
            d[2] = a_reg[i].z;
            d[3] = a_reg[i].w;
        }
        uint16_t *bs = reinterpret_cast<uint16_t *>(Bs);
        for (int i = 0; i < B_TAPS; i++) bs[(row0 + i * (CT_THREADS / CT_N)) * LDB + col] = b_reg[i];
        __syncthreads();
        if (k0 + CT_K < K) load(k0 + CT_K); /* in flight during the MMAs */
        for (int ks = 0; ks < CT_K && k0 + ks < K; ks += 16) { /* block-uniform: conv1 takes one step */
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[3];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb[2];
            for (int a = 0; a < 3; a++) wmma::load_matrix_sync(fa[a], As + (48 * wm + 16 * a) * LDA + ks, LDA);
            for (int b = 0; b < 2; b++) wmma::load_matrix_sync(fb[b], Bs + ks * LDB + 32 * wn + 16 * b, LDB);
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 2; b++) wmma::mma_sync(acc[a][b], fa[a], fb[b], acc[a][b]);
        }
        __syncthreads(); /* the stage is consumed: rewritten next, or the epilogue's tile */
    }

    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 2; b++)
            wmma::store_matrix_sync(Cs + (48 * wm + 16 * a) * LDC + 32 * wn + 16 * b, acc[a][b], LDC,
                                    wmma::mem_row_major);
    __syncthreads();
    if (j < NP) {
        for (int r = row0; r < CT_M && co0 + r < Cout; r += CT_THREADS / CT_N) {
            const float v = bf16_round(Cs[r * LDC + col] + __bfloat162float(bias[co0 + r]));
            out[(size_t)(co0 + r) * NP + j] = __float2bfloat16_rn(gelu_erf(v));
        }
    }
}

extern "C" cudaError_t cuda_conv3x3s2_gelu(bf16_t *out, const bf16_t *in, const bf16_t *w, const bf16_t *bias,
                                           int Cin, int Cout, int N, int Hin, int Win, cudaStream_t stream)
{
    const int Ho = (Hin - 1) / 2 + 1, Wo = (Win - 1) / 2 + 1;
    SHAPE_ASSERT(Cin >= 1 && Cout >= 1 && N >= 1 && Hin >= 1 && Win >= 1);
    SHAPE_ASSERT((int64_t)N * Ho * Wo <= INT32_MAX && (int64_t)Cin * 9 <= INT32_MAX);
    const int NP = N * Ho * Wo, K = Cin * 9;
    const dim3 grid(CEIL_DIV(Cout, CT_M), CEIL_DIV(NP, CT_N));
    SHAPE_ASSERT(grid.x <= 65535 && grid.y <= 65535);
    /* unique bytes (every input element is some position's tap; the tile order above keeps the
     * re-reads in L2); tensor-core flops as issued: whole tiles, K padded to 16 */
    const double K16 = CEIL_DIV(K, 16) * 16.0;
    CUEMU_COST_TC(((double)Cin * N * Hin * Win + (double)Cout * K + Cout) * sizeof(bf16_t),
                  (double)Cout * NP * sizeof(bf16_t), 2.0 * grid.x * CT_M * grid.y * CT_N * K16);
    bf16 *o = reinterpret_cast<bf16 *>(out);
    const bf16 *x = reinterpret_cast<const bf16 *>(in), *wt = reinterpret_cast<const bf16 *>(w);
    const bf16 *b = reinterpret_cast<const bf16 *>(bias);
    if (K % 8 == 0 && aligned(w, 16))
        CUEMU_LAUNCH(grid, CT_THREADS, 0, stream, conv3x3s2_gelu_kernel<true>)(o, x, wt, b, Cin, Cout, N, Hin, Win,
                                                                               Ho, Wo);
    else
        CUEMU_LAUNCH(grid, CT_THREADS, 0, stream, conv3x3s2_gelu_kernel<false>)(o, x, wt, b, Cin, Cout, N, Hin, Win,
                                                                                Ho, Wo);
    return cudaGetLastError();
}
