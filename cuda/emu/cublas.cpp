/* cuBLAS shim of the emulation, on the real cublas_v2.h prototypes: handles and the GEMM entry
 * points the project uses (cublasGemmEx, cublasGemmStridedBatchedEx, cublasGemmBatchedEx) as a
 * naive column-major loop with fp32 accumulation, queued on the handle's stream like a kernel.
 *
 * It is at least as strict as cuBLAS: the documented argument checks return the documented
 * codes, beta == 0 never reads C (which cudaMalloc fills with NaN), host pointer mode only, and
 * every matrix must lie inside device memory when the GEMM runs (else the device is poisoned
 * with cudaErrorIllegalAddress, as a GPU fault would). Compute-type rounding is emulated: inputs
 * are rounded to TF32 for COMPUTE_32F_FAST_TF32 (or COMPUTE_32F under TF32 math mode), to bf16 or
 * fp16 for the FAST_16BF / FAST_16F types; the result is rounded to C's type (RNE). */
#include "blas_elems.h"
#include "cuemu.h"
#include "trace.h"

#include <cublas_v2.h>
#include <stdarg.h>
#include <stdio.h>
#include <algorithm>
#include <mutex>
#include <set>
#include <vector>

struct cublasContext {
    int device;
    cudaStream_t stream;
    cublasMath_t math;
    void *workspace;
    size_t workspace_size;
};

namespace {

std::mutex mu;
std::set<cublasHandle_t> handles;

enum input_rounding { ROUND_NONE, ROUND_TF32, ROUND_BF16, ROUND_FP16 };

/* Enum arguments are kept as raw ints (see cuemu::detail::enum_value). */
struct gemm_desc {
    const char *api;
    int ta, tb;
    int m, n, k, lda, ldb, ldc;
    int at, bt, ct;
    float alpha, beta;
    input_rounding rounding;
};

__attribute__((format(printf, 3, 4))) cublasStatus_t fail(cublasStatus_t st, const char *api, const char *fmt, ...)
{
    fprintf(stderr, "cuemu: %s: ", api);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (%s)\n", cublasGetStatusName(st));
    return st;
}

bool live(cublasHandle_t h)
{
    std::lock_guard<std::mutex> lock(mu);
    return handles.count(h) != 0;
}

using cuemu::blas::load;
using cuemu::blas::store;
using cuemu::blas::type_size;

/* TF32 keeps 10 mantissa bits; round to nearest, ties away, as cvt.rna.tf32.f32 does. */
float round_input(float x, input_rounding r)
{
    switch (r) {
    case ROUND_TF32: {
        uint32_t u;
        memcpy(&u, &x, 4);
        if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
        memcpy(&x, &u, 4);
        return x;
    }
    case ROUND_BF16: return __bfloat162float(__float2bfloat16_rn(x));
    case ROUND_FP16: return __half2float(__float2half_rn(x));
    default: return x;
    }
}

/* Elements spanned by one stored matrix of rows x cols with leading dimension ld. */
size_t extent(int rows, int cols, int ld)
{
    return rows && cols ? (size_t)ld * (cols - 1) + rows : 0;
}

size_t a_extent(const gemm_desc &g) { return g.ta == CUBLAS_OP_N ? extent(g.m, g.k, g.lda) : extent(g.k, g.m, g.lda); }
size_t b_extent(const gemm_desc &g) { return g.tb == CUBLAS_OP_N ? extent(g.k, g.n, g.ldb) : extent(g.n, g.k, g.ldb); }
bool reads_ab(const gemm_desc &g) { return g.alpha != 0.0f && g.k > 0; }

/* Batches at a (possibly zero or negative) element stride: the byte range they span. */
bool batch_range(const void *p, size_t elems, long long stride, int batch, int t, const char *what)
{
    if (!elems || !batch) return true;
    long long first = stride < 0 ? stride * (batch - 1) : 0, last = stride > 0 ? stride * (batch - 1) : 0;
    const char *lo = (const char *)p + first * (long long)type_size(t);
    return cuemu::detail::device_range(lo, ((size_t)(last - first) + elems) * type_size(t), what);
}

/* One C = alpha * op(A) * op(B) + beta * C, column-major. op(A) and op(B) are first copied,
 * rounded, into row-per-output arrays so the inner loop is a contiguous dot product. */
void gemm_one(const gemm_desc &g, const void *A, const void *B, void *C)
{
    size_t m = (size_t)g.m, n = (size_t)g.n, k = (size_t)g.k;
    std::vector<float> a, b;
    if (reads_ab(g)) {
        a.resize(m * k);
        b.resize(n * k);
        for (size_t i = 0; i < m; i++)
            for (size_t l = 0; l < k; l++)
                a[i * k + l] = round_input(load(A, g.at, g.ta == CUBLAS_OP_N ? i + l * g.lda : l + i * g.lda), g.rounding);
        for (size_t j = 0; j < n; j++)
            for (size_t l = 0; l < k; l++)
                b[j * k + l] = round_input(load(B, g.bt, g.tb == CUBLAS_OP_N ? l + j * g.ldb : j + l * g.ldb), g.rounding);
    }
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < m; i++) {
            float acc = 0.0f;
            if (reads_ab(g))
                for (size_t l = 0; l < k; l++) acc += a[i * k + l] * b[j * k + l];
            float v = g.alpha * acc;
            if (g.beta != 0.0f) v += g.beta * load(C, g.ct, i + j * (size_t)g.ldc);
            store(C, g.ct, i + j * (size_t)g.ldc, v);
        }
}

/* The checks cuBLAS documents for the GEMM family, in its status codes; fills g. */
cublasStatus_t check_gemm(gemm_desc &g, cublasHandle_t h, const void *alpha, const void *beta, int batch, int compute,
                          int algo)
{
    if (!live(h)) return fail(CUBLAS_STATUS_NOT_INITIALIZED, g.api, "handle %p is not a live cuBLAS handle", (void *)h);
    int ta = g.ta, tb = g.tb, at = g.at, bt = g.bt, ct = g.ct;
    auto op_ok = [](int t) { return t == CUBLAS_OP_N || t == CUBLAS_OP_T || t == CUBLAS_OP_C; };
    if (!op_ok(ta) || !op_ok(tb)) return fail(CUBLAS_STATUS_INVALID_VALUE, g.api, "transa %d, transb %d", ta, tb);
    if (g.m < 0 || g.n < 0 || g.k < 0 || batch < 0)
        return fail(CUBLAS_STATUS_INVALID_VALUE, g.api, "m %d, n %d, k %d, batchCount %d", g.m, g.n, g.k, batch);
    /* ld >= rows of the stored matrix (real types: OP_C is OP_T). */
    int a_rows = ta == CUBLAS_OP_N ? g.m : g.k, b_rows = tb == CUBLAS_OP_N ? g.k : g.n;
    if (g.lda < std::max(1, a_rows) || g.ldb < std::max(1, b_rows) || g.ldc < std::max(1, g.m))
        return fail(CUBLAS_STATUS_INVALID_VALUE, g.api,
                    "lda %d (needs >= %d), ldb %d (needs >= %d), ldc %d (needs >= %d)", g.lda, std::max(1, a_rows),
                    g.ldb, std::max(1, b_rows), g.ldc, std::max(1, g.m));
    if (!alpha || !beta) return fail(CUBLAS_STATUS_INVALID_VALUE, g.api, "alpha or beta is null");
    if (!((algo >= CUBLAS_GEMM_DEFAULT && algo <= CUBLAS_GEMM_ALGO23) ||
          (algo >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && algo <= CUBLAS_GEMM_ALGO15_TENSOR_OP)))
        return fail(CUBLAS_STATUS_INVALID_VALUE, g.api, "algo %d", algo);
    bool fast = compute == CUBLAS_COMPUTE_32F_FAST_TF32 || compute == CUBLAS_COMPUTE_32F_FAST_16BF ||
                compute == CUBLAS_COMPUTE_32F_FAST_16F;
    bool plain = compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_PEDANTIC;
    if (!fast && !plain)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, g.api, "compute type %d is not emulated (only the 32F family)", compute);
    /* Supported combinations for the 32F compute types (cuBLAS cublasGemmEx table). */
    bool types_ok = at == bt &&
                    (fast ? at == CUDA_R_32F && ct == CUDA_R_32F
                          : (at == CUDA_R_32F && ct == CUDA_R_32F) ||
                                ((at == CUDA_R_16BF || at == CUDA_R_16F) && (ct == at || ct == CUDA_R_32F)));
    if (!types_ok)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, g.api, "Atype %d, Btype %d, Ctype %d with compute type %d", at, bt, ct,
                    compute);
    if (cuemu::detail::is_device_memory(alpha) || cuemu::detail::is_device_memory(beta))
        return fail(CUBLAS_STATUS_INVALID_VALUE, g.api, "alpha/beta point to device memory in host pointer mode");
    if (cuemu::detail::current_device() != h->device)
        return fail(CUBLAS_STATUS_EXECUTION_FAILED, g.api, "handle of device %d used on device %d", h->device,
                    cuemu::detail::current_device());
    /* Host pointer mode: the scalars (of the compute type, float here) are read at the call. */
    g.alpha = *(const float *)alpha;
    g.beta = *(const float *)beta;
    int base_math = h->math & 0xf;
    bool fp32_default = compute == CUBLAS_COMPUTE_32F && at == CUDA_R_32F;
    g.rounding = compute == CUBLAS_COMPUTE_32F_FAST_TF32 ? ROUND_TF32
                 : compute == CUBLAS_COMPUTE_32F_FAST_16BF ? ROUND_BF16
                 : compute == CUBLAS_COMPUTE_32F_FAST_16F ? ROUND_FP16
                 : fp32_default && base_math == CUBLAS_TF32_TENSOR_OP_MATH ? ROUND_TF32
                 : fp32_default && base_math == CUBLAS_TENSOR_OP_MATH ? ROUND_FP16
                                                                      : ROUND_NONE;
    return CUBLAS_STATUS_SUCCESS;
}

/* The performance trace's view of a GEMM (trace.cpp): 2mnk flops per batch item, the bytes of
 * A, B (once when its batch stride is 0) and C (read too when beta != 0); tensor-core types in
 * the op's name (bf16, f16, tf32 inputs) and CUDA cores for plain fp32. */
void trace_gemm(const gemm_desc &g, int batch, bool a_shared, bool b_shared, char *op, size_t opn, char *shape,
                size_t shapen, double *flops, double *rd, double *wr)
{
    const char *t = g.at == CUDA_R_16BF ? "bf16" : g.at == CUDA_R_16F ? "f16" : g.rounding == ROUND_TF32 ? "tf32"
                  : g.rounding == ROUND_NONE ? "f32" : "f32r";
    snprintf(op, opn, "gemm_%s", t);
    snprintf(shape, shapen, "m=%d n=%d k=%d batch=%d", g.m, g.n, g.k, batch);
    double m = g.m, n = g.n, k = g.k, b = batch;
    *flops = reads_ab(g) ? 2 * m * n * k * b : 0;
    double a = reads_ab(g) ? m * k * type_size(g.at) * (a_shared ? 1 : b) : 0;
    double bb = reads_ab(g) ? k * n * type_size(g.bt) * (b_shared ? 1 : b) : 0;
    double c = m * n * type_size(g.ct) * b;
    *rd = a + bb + (g.beta != 0.0f ? c : 0);
    *wr = c;
}

cublasStatus_t submit(cublasHandle_t h, const char *api, std::function<cudaError_t()> fn, const gemm_desc &g,
                      int batch, bool a_shared = false, bool b_shared = false)
{
    char op[32], shape[96];
    double flops, rd, wr;
    trace_gemm(g, batch, a_shared, b_shared, op, sizeof op, shape, sizeof shape, &flops, &rd, &wr);
    cudaError_t e = cuemu::detail::enqueue_library(h->stream, op, flops, rd, wr, shape, std::move(fn));
    if (e) return fail(CUBLAS_STATUS_EXECUTION_FAILED, api, "%s", cudaGetErrorString(e));
    return CUBLAS_STATUS_SUCCESS;
}

/* The strided GEMM every entry point but the pointer-array one reduces to. */
cublasStatus_t gemm_strided(gemm_desc g, cublasHandle_t handle, const void *alpha, const void *A, long long strideA,
                            const void *B, long long strideB, const void *beta, void *C, long long strideC,
                            int batchCount, int compute, int algo)
{
    if (cublasStatus_t st = check_gemm(g, handle, alpha, beta, batchCount, compute, algo)) return st;
    int m = g.m, n = g.n, ldc = g.ldc;
    if (!m || !n || !batchCount) return CUBLAS_STATUS_SUCCESS;
    return submit(handle, g.api, [=] {
        size_t ae = reads_ab(g) ? a_extent(g) : 0, be = reads_ab(g) ? b_extent(g) : 0;
        if (!batch_range(A, ae, strideA, batchCount, g.at, "GEMM matrix A") ||
            !batch_range(B, be, strideB, batchCount, g.bt, "GEMM matrix B") ||
            !batch_range(C, extent(m, n, ldc), strideC, batchCount, g.ct, "GEMM matrix C"))
            return cudaErrorIllegalAddress;
        for (int i = 0; i < batchCount; i++)
            gemm_one(g, (const char *)A + i * strideA * (long long)type_size(g.at),
                     (const char *)B + i * strideB * (long long)type_size(g.bt),
                     (char *)C + i * strideC * (long long)type_size(g.ct));
        return cudaSuccess;
    }, g, batchCount, strideA == 0, strideB == 0);
}

} // namespace

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    cublasHandle_t h = new cublasContext{cuemu::detail::current_device(), nullptr, CUBLAS_DEFAULT_MATH, nullptr, 0};
    std::lock_guard<std::mutex> lock(mu);
    handles.insert(h);
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

/* Work already queued keeps its own copy of everything it needs. */
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
{
    std::lock_guard<std::mutex> lock(mu);
    if (!handles.erase(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream)
{
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t *stream)
{
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!stream) return CUBLAS_STATUS_INVALID_VALUE;
    *stream = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t size)
{
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (size && ((uintptr_t)workspace % 256 || !cuemu::detail::device_range(workspace, size, "cublasSetWorkspace")))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasSetWorkspace",
                    "the workspace must be 256-byte aligned device memory of the given size");
    handle->workspace = workspace;
    handle->workspace_size = size;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    int base = cuemu::detail::enum_value(mode) & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_TENSOR_OP_MATH && base != CUBLAS_PEDANTIC_MATH &&
        base != CUBLAS_TF32_TENSOR_OP_MATH)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasSetMathMode", "mode %d", (int)mode);
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode)
{
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->math;
    return CUBLAS_STATUS_SUCCESS;
}

/* Device pointer mode is refused: the emulation cannot tell host from device scalars apart at
 * the moment cuBLAS would read them. */
cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode)
{
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    int m = cuemu::detail::enum_value(mode);
    if (m == CUBLAS_POINTER_MODE_HOST) return CUBLAS_STATUS_SUCCESS;
    if (m == CUBLAS_POINTER_MODE_DEVICE)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "cublasSetPointerMode", "device pointer mode is not emulated");
    return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t *mode)
{
    if (!live(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = CUBLAS_POINTER_MODE_HOST;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long int strideA, const void *B, cudaDataType Btype, int ldb,
                                          long long int strideB, const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long int strideC, int batchCount, cublasComputeType_t computeType,
                                          cublasGemmAlgo_t algo)
{
    using cuemu::detail::enum_value;
    gemm_desc g{"cublasGemmStridedBatchedEx", enum_value(transa), enum_value(transb), m, n, k, lda, ldb, ldc,
                enum_value(Atype), enum_value(Btype), enum_value(Ctype), 0, 0, ROUND_NONE};
    return gemm_strided(g, handle, alpha, A, strideA, B, strideB, beta, C, strideC, batchCount, enum_value(computeType),
                        enum_value(algo));
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    using cuemu::detail::enum_value;
    gemm_desc g{"cublasGemmEx", enum_value(transa), enum_value(transb), m, n, k, lda, ldb, ldc, enum_value(Atype),
                enum_value(Btype), enum_value(Ctype), 0, 0, ROUND_NONE};
    return gemm_strided(g, handle, alpha, A, 0, B, 0, beta, C, 0, 1, enum_value(computeType), enum_value(algo));
}

/* The pointer arrays live in device memory and are read when the GEMM runs. */
cublasStatus_t cublasGemmBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                   int n, int k, const void *alpha, const void *const Aarray[], cudaDataType Atype,
                                   int lda, const void *const Barray[], cudaDataType Btype, int ldb, const void *beta,
                                   void *const Carray[], cudaDataType Ctype, int ldc, int batchCount,
                                   cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    using cuemu::detail::enum_value;
    gemm_desc g{"cublasGemmBatchedEx", enum_value(transa), enum_value(transb), m, n, k, lda, ldb, ldc, enum_value(Atype),
                enum_value(Btype), enum_value(Ctype), 0, 0, ROUND_NONE};
    if (cublasStatus_t st = check_gemm(g, handle, alpha, beta, batchCount, enum_value(computeType), enum_value(algo)))
        return st;
    if (!m || !n || !batchCount) return CUBLAS_STATUS_SUCCESS;
    return submit(handle, g.api, [=] {
        size_t arrays = (size_t)batchCount * sizeof(void *);
        if (!cuemu::detail::device_range(Aarray, arrays, "cublasGemmBatchedEx Aarray") ||
            !cuemu::detail::device_range(Barray, arrays, "cublasGemmBatchedEx Barray") ||
            !cuemu::detail::device_range(Carray, arrays, "cublasGemmBatchedEx Carray"))
            return cudaErrorIllegalAddress;
        for (int i = 0; i < batchCount; i++) {
            size_t ae = reads_ab(g) ? a_extent(g) : 0, be = reads_ab(g) ? b_extent(g) : 0;
            if (!batch_range(Aarray[i], ae, 0, 1, g.at, "cublasGemmBatchedEx matrix A") ||
                !batch_range(Barray[i], be, 0, 1, g.bt, "cublasGemmBatchedEx matrix B") ||
                !batch_range(Carray[i], extent(m, n, ldc), 0, 1, g.ct, "cublasGemmBatchedEx matrix C"))
                return cudaErrorIllegalAddress;
            gemm_one(g, Aarray[i], Barray[i], Carray[i]);
        }
        return cudaSuccess;
    }, g, batchCount);
}

const char *cublasGetStatusName(cublasStatus_t st)
{
    switch (st) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

const char *cublasGetStatusString(cublasStatus_t st)
{
    switch (st) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "an error was detected when checking the current licensing";
    default: return "unknown error";
    }
}
