/* cuBLASLt shim of the emulation, on the real cublasLt.h prototypes: the subset the backend uses
 * for a GEMM with its bias in the epilogue. D = alpha * op(A) op(B) + beta * C (+ bias, one value
 * per row of D, broadcast along its columns) as a naive column-major loop with fp32 accumulation;
 * the sum, the scaling and the bias stay in fp32 and D is rounded once, to its type (RNE).
 *
 * Emulated: handles; matmul descriptors with compute type CUBLAS_COMPUTE_32F(_PEDANTIC), scale type
 * CUDA_R_32F and the attributes TRANSA, TRANSB, EPILOGUE (DEFAULT or BIAS), BIAS_POINTER,
 * BIAS_DATA_TYPE (D's type, the only one cuBLASLt takes for these types) and POINTER_MODE (host);
 * column-major layouts of bf16, fp16 or fp32 matrices, no batch; preferences with
 * MAX_WORKSPACE_BYTES and MIN_ALIGNMENT_A..D_BYTES; the heuristic; cublasLtMatmul. Anything
 * else is a link error or CUBLAS_STATUS_NOT_SUPPORTED, with the reason on stderr, never a silently
 * different result.
 *
 * As strict as cuBLASLt or stricter: the heuristic's one algorithm needs the whole workspace the
 * preference allows, and its matrices as aligned as the preference says (256 bytes by default)
 * and the bias 16-byte aligned; the matmul checks the workspace size at the call and, when it
 * runs on its stream, faults (sticky) on a misaligned or out-of-allocation operand and scribbles
 * over the workspace. beta == 0 never reads C. */
#include "blas_elems.h"
#include "cuemu.h"
#include "trace.h"

#include <cublasLt.h>
#include <stdarg.h>
#include <stdio.h>
#include <algorithm>
#include <map>
#include <mutex>
#include <new>
#include <vector>

struct cublasLtContext {
    int device;
};

namespace {

using cuemu::detail::enum_value;

enum kind { HANDLE, DESC, LAYOUT, PREF };

std::mutex mu;
std::map<const void *, kind> live_objects;

struct desc {
    int compute, ta, tb, epilogue, bias_type;
    const void *bias;
};

struct layout {
    int type;
    int64_t rows, cols, ld;
};

struct pref {
    uint64_t max_workspace;
    uint32_t align[4]; /* A, B, C, D */
};

/* What the heuristic's algorithm needs, kept in cublasLtMatmulAlgo_t.data. */
struct algo {
    uint64_t magic;
    uint64_t workspace;
    uint32_t align[4];
    int ta, tb, epilogue, at, dt;
};
const uint64_t ALGO_MAGIC = 0x63756c7461676f31ull;

static_assert(sizeof(desc) <= sizeof(cublasLtMatmulDescOpaque_t), "desc fits the opaque descriptor");
static_assert(sizeof(layout) <= sizeof(cublasLtMatrixLayoutOpaque_t), "layout fits the opaque descriptor");
static_assert(sizeof(pref) <= sizeof(cublasLtMatmulPreferenceOpaque_t), "pref fits the opaque descriptor");
static_assert(sizeof(algo) <= sizeof(cublasLtMatmulAlgo_t), "algo fits cublasLtMatmulAlgo_t");

__attribute__((format(printf, 3, 4))) cublasStatus_t fail(cublasStatus_t st, const char *api, const char *fmt, ...)
{
    fprintf(stderr, "cuemu: %s: ", api);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (%s)\n", cublasLtGetStatusName(st));
    return st;
}

bool live(const void *p, kind k)
{
    std::lock_guard<std::mutex> lock(mu);
    auto it = live_objects.find(p);
    return it != live_objects.end() && it->second == k;
}

/* Our state lives inside the opaque struct the header declares (new'd here, so its pointer is
 * the one the caller holds). */
template <class Opaque, class T> Opaque *create(kind k, const T &init)
{
    Opaque *o = new Opaque();
    new (o->data) T(init);
    std::lock_guard<std::mutex> lock(mu);
    live_objects[o] = k;
    return o;
}

template <class Opaque> cublasStatus_t destroy(Opaque *o, kind k)
{
    {
        std::lock_guard<std::mutex> lock(mu);
        auto it = live_objects.find(o);
        if (!o || it == live_objects.end() || it->second != k) return CUBLAS_STATUS_INVALID_VALUE;
        live_objects.erase(it);
    }
    delete o;
    return CUBLAS_STATUS_SUCCESS;
}

template <class T, class Opaque> T &state(Opaque *o) { return *reinterpret_cast<T *>(o->data); }

using cuemu::blas::load;
using cuemu::blas::store;
using cuemu::blas::type_size;

/* Elements spanned by a stored matrix. */
size_t extent(const layout &l) { return l.rows && l.cols ? (size_t)(l.ld * (l.cols - 1) + l.rows) : 0; }

/* The problem of a matmul or a heuristic query, checked as cuBLASLt does (codes from its docs). */
struct problem {
    desc d;
    layout a, b, c, dl;
    int64_t m, n, k;
};

cublasStatus_t check_problem(const char *api, cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t A,
                             cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D, problem *p)
{
    if (!live(h, HANDLE)) return fail(CUBLAS_STATUS_NOT_INITIALIZED, api, "%p is not a live cuBLASLt handle", (void *)h);
    if (!live(op, DESC) || !live(A, LAYOUT) || !live(B, LAYOUT) || !live(C, LAYOUT) || !live(D, LAYOUT))
        return fail(CUBLAS_STATUS_INVALID_VALUE, api, "a descriptor or layout is not live");
    p->d = state<desc>(op);
    p->a = state<layout>(A);
    p->b = state<layout>(B);
    p->c = state<layout>(C);
    p->dl = state<layout>(D);
    const desc &d = p->d;
    bool ta = d.ta != CUBLAS_OP_N, tb = d.tb != CUBLAS_OP_N;
    p->m = p->dl.rows;
    p->n = p->dl.cols;
    p->k = ta ? p->a.rows : p->a.cols;
    int64_t a_m = ta ? p->a.cols : p->a.rows, b_k = tb ? p->b.cols : p->b.rows, b_n = tb ? p->b.rows : p->b.cols;
    if (a_m != p->m || b_k != p->k || b_n != p->n || p->c.rows != p->m || p->c.cols != p->n)
        return fail(CUBLAS_STATUS_INVALID_VALUE, api,
                    "op(A) %lldx%lld, op(B) %lldx%lld, C %lldx%lld, D %lldx%lld do not make a product", (long long)a_m,
                    (long long)p->k, (long long)b_k, (long long)b_n, (long long)p->c.rows, (long long)p->c.cols,
                    (long long)p->m, (long long)p->n);
    /* cublasLtMatmul's type table for CUBLAS_COMPUTE_32F with scale type 32F: A = B; C = D, of A's
     * type or fp32 for 16-bit A; the bias of D's type. */
    int at = p->a.type, ct = p->c.type, dt = p->dl.type;
    bool types_ok = at == p->b.type && ct == dt &&
                    (dt == at || ((at == CUDA_R_16BF || at == CUDA_R_16F) && dt == CUDA_R_32F));
    if (!types_ok)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, api, "Atype %d, Btype %d, Ctype %d, Dtype %d", at, p->b.type, ct, dt);
    if (d.epilogue == CUBLASLT_EPILOGUE_BIAS && d.bias_type != -1 && d.bias_type != dt)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, api, "bias type %d with D of type %d (the bias has D's type)",
                    d.bias_type, dt);
    if (cuemu::detail::current_device() != h->device)
        return fail(CUBLAS_STATUS_EXECUTION_FAILED, api, "handle of device %d used on device %d", h->device,
                    cuemu::detail::current_device());
    return CUBLAS_STATUS_SUCCESS;
}

/* One operand as the running matmul reads or writes it: aligned as its algorithm assumes, inside
 * one allocation; else the fault a GPU would take. */
cudaError_t operand(const void *p, size_t elems, int type, uint32_t align, const char *what)
{
    if (!elems) return cudaSuccess;
    if ((uintptr_t)p % align) {
        fprintf(stderr, "cuemu: %s at %p is not %u-byte aligned, as its algorithm assumes (misaligned address)\n",
                what, p, align);
        return cudaErrorMisalignedAddress;
    }
    return cuemu::detail::device_range(p, elems * type_size(type), what) ? cudaSuccess : cudaErrorIllegalAddress;
}

/* D = alpha * op(A) op(B) + beta * C + bias, rounded once into D. */
void matmul_run(const problem &p, float alpha, float beta, const void *A, const void *B, const void *C, void *D)
{
    size_t m = (size_t)p.m, n = (size_t)p.n, k = (size_t)p.k;
    bool ta = p.d.ta != CUBLAS_OP_N, tb = p.d.tb != CUBLAS_OP_N, bias = p.d.epilogue == CUBLASLT_EPILOGUE_BIAS;
    std::vector<float> a(m * k), b(n * k), out(m * n);
    for (size_t i = 0; i < m; i++)
        for (size_t l = 0; l < k; l++) a[i * k + l] = load(A, p.a.type, ta ? l + i * p.a.ld : i + l * p.a.ld);
    for (size_t j = 0; j < n; j++)
        for (size_t l = 0; l < k; l++) b[j * k + l] = load(B, p.b.type, tb ? j + l * p.b.ld : l + j * p.b.ld);
    /* all of D is computed before any of it is stored: C may be D */
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < m; i++) {
            float acc = 0.0f;
            for (size_t l = 0; l < k; l++) acc += a[i * k + l] * b[j * k + l];
            float v = alpha * acc;
            if (beta != 0.0f) v += beta * load(C, p.c.type, i + j * p.c.ld);
            if (bias) v += load(p.d.bias, p.dl.type, i);
            out[j * m + i] = v;
        }
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < m; i++) store(D, p.dl.type, i + j * p.dl.ld, out[j * m + i]);
}

} // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle)
{
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    cublasLtHandle_t h = new cublasLtContext{cuemu::detail::current_device()};
    std::lock_guard<std::mutex> lock(mu);
    live_objects[h] = HANDLE;
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

/* Work already queued keeps its own copy of everything it needs. */
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle)
{
    {
        std::lock_guard<std::mutex> lock(mu);
        auto it = live_objects.find(handle);
        if (it == live_objects.end() || it->second != HANDLE) return CUBLAS_STATUS_NOT_INITIALIZED;
        live_objects.erase(it);
    }
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType)
{
    const char *api = "cublasLtMatmulDescCreate";
    if (!matmulDesc) return fail(CUBLAS_STATUS_INVALID_VALUE, api, "matmulDesc is null");
    int c = enum_value(computeType);
    if (c != CUBLAS_COMPUTE_32F && c != CUBLAS_COMPUTE_32F_PEDANTIC)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, api, "compute type %d is not emulated (CUBLAS_COMPUTE_32F only)", c);
    if (enum_value(scaleType) != CUDA_R_32F)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, api, "scale type %d with CUBLAS_COMPUTE_32F (needs CUDA_R_32F)",
                    enum_value(scaleType));
    *matmulDesc = create<cublasLtMatmulDescOpaque_t>(
        DESC, desc{c, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, -1, nullptr});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) { return destroy(matmulDesc, DESC); }

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t sizeInBytes)
{
    const char *api = "cublasLtMatmulDescSetAttribute";
    if (!live(matmulDesc, DESC)) return fail(CUBLAS_STATUS_INVALID_VALUE, api, "%p is not a live descriptor", (void *)matmulDesc);
    desc &d = state<desc>(matmulDesc);
    int a = enum_value(attr);
    if (a != CUBLASLT_MATMUL_DESC_TRANSA && a != CUBLASLT_MATMUL_DESC_TRANSB && a != CUBLASLT_MATMUL_DESC_EPILOGUE &&
        a != CUBLASLT_MATMUL_DESC_BIAS_POINTER && a != CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE &&
        a != CUBLASLT_MATMUL_DESC_POINTER_MODE)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, api, "attribute %d is not emulated", a);
    size_t want = a == CUBLASLT_MATMUL_DESC_BIAS_POINTER ? sizeof(void *) : 4;
    if (!buf || sizeInBytes != want)
        return fail(CUBLAS_STATUS_INVALID_VALUE, api, "attribute %d: %zu bytes at %p (needs %zu)", a, sizeInBytes, buf, want);
    int32_t v;
    memcpy(&v, buf, 4);
    switch (a) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
        if (v != CUBLAS_OP_N && v != CUBLAS_OP_T && v != CUBLAS_OP_C)
            return fail(CUBLAS_STATUS_INVALID_VALUE, api, "operation %d", v);
        (a == CUBLASLT_MATMUL_DESC_TRANSA ? d.ta : d.tb) = v;
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        if (v != CUBLASLT_EPILOGUE_DEFAULT && v != CUBLASLT_EPILOGUE_BIAS)
            return fail(CUBLAS_STATUS_NOT_SUPPORTED, api, "epilogue %d is not emulated (DEFAULT and BIAS only)", v);
        d.epilogue = v;
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: memcpy(&d.bias, buf, sizeof d.bias); return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: d.bias_type = v; return CUBLAS_STATUS_SUCCESS;
    default: /* CUBLASLT_MATMUL_DESC_POINTER_MODE */
        if (v != CUBLASLT_POINTER_MODE_HOST)
            return fail(CUBLAS_STATUS_NOT_SUPPORTED, api, "pointer mode %d is not emulated (host only)", v);
        return CUBLAS_STATUS_SUCCESS;
    }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld)
{
    const char *api = "cublasLtMatrixLayoutCreate";
    int t = enum_value(type);
    if (!matLayout) return fail(CUBLAS_STATUS_INVALID_VALUE, api, "matLayout is null");
    if (t != CUDA_R_16BF && t != CUDA_R_16F && t != CUDA_R_32F)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, api, "type %d is not emulated", t);
    if (rows > INT32_MAX || cols > INT32_MAX || ld < std::max<int64_t>(1, (int64_t)rows))
        return fail(CUBLAS_STATUS_INVALID_VALUE, api, "rows %llu, cols %llu, ld %lld (needs >= max(1, rows))",
                    (unsigned long long)rows, (unsigned long long)cols, (long long)ld);
    *matLayout = create<cublasLtMatrixLayoutOpaque_t>(LAYOUT, layout{t, (int64_t)rows, (int64_t)cols, ld});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) { return destroy(matLayout, LAYOUT); }

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p)
{
    if (!p) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceCreate", "pref is null");
    *p = create<cublasLtMatmulPreferenceOpaque_t>(PREF, pref{0, {256, 256, 256, 256}});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { return destroy(p, PREF); }

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t sizeInBytes)
{
    const char *api = "cublasLtMatmulPreferenceSetAttribute";
    if (!live(p, PREF)) return fail(CUBLAS_STATUS_INVALID_VALUE, api, "%p is not a live preference", (void *)p);
    pref &s = state<pref>(p);
    int a = enum_value(attr);
    bool align = a >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && a <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES;
    if (a != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && !align)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, api, "attribute %d is not emulated", a);
    size_t want = a == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES ? 8 : 4;
    if (!buf || sizeInBytes != want)
        return fail(CUBLAS_STATUS_INVALID_VALUE, api, "attribute %d: %zu bytes at %p (needs %zu)", a, sizeInBytes, buf, want);
    if (a == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        memcpy(&s.max_workspace, buf, 8);
        return CUBLAS_STATUS_SUCCESS;
    }
    uint32_t v;
    memcpy(&v, buf, 4);
    if (!v || (v & (v - 1))) return fail(CUBLAS_STATUS_INVALID_VALUE, api, "alignment %u", v);
    s.align[a - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES] = v;
    return CUBLAS_STATUS_SUCCESS;
}

/* One algorithm for any problem that check_problem accepts. */
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int *returnAlgoCount)
{
    const char *api = "cublasLtMatmulAlgoGetHeuristic";
    if (requestedAlgoCount <= 0 || !heuristicResultsArray || !returnAlgoCount)
        return fail(CUBLAS_STATUS_INVALID_VALUE, api, "requestedAlgoCount %d, results %p, returnAlgoCount %p",
                    requestedAlgoCount, (void *)heuristicResultsArray, (void *)returnAlgoCount);
    *returnAlgoCount = 0;
    if (!live(preference, PREF)) return fail(CUBLAS_STATUS_INVALID_VALUE, api, "the preference is not live");
    problem p;
    if (cublasStatus_t st = check_problem(api, lightHandle, operationDesc, Adesc, Bdesc, Cdesc, Ddesc, &p)) return st;
    const pref &s = state<pref>(preference);
    algo a{ALGO_MAGIC, s.max_workspace, {s.align[0], s.align[1], s.align[2], s.align[3]}, p.d.ta, p.d.tb,
           p.d.epilogue, p.a.type, p.dl.type};
    cublasLtMatmulHeuristicResult_t &r = heuristicResultsArray[0];
    memset(&r, 0, sizeof r);
    new (r.algo.data) algo(a);
    r.workspaceSize = s.max_workspace;
    r.state = CUBLAS_STATUS_SUCCESS;
    r.wavesCount = 1.0f;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc,
                              const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo_p, void *workspace,
                              size_t workspaceSizeInBytes, cudaStream_t stream)
{
    const char *api = "cublasLtMatmul";
    problem p;
    if (cublasStatus_t st = check_problem(api, lightHandle, computeDesc, Adesc, Bdesc, Cdesc, Ddesc, &p)) return st;
    if (!algo_p)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, api, "no algo: pass one from cublasLtMatmulAlgoGetHeuristic");
    algo a;
    memcpy(&a, algo_p->data, sizeof a);
    if (a.magic != ALGO_MAGIC)
        return fail(CUBLAS_STATUS_INVALID_VALUE, api, "the algo does not come from cublasLtMatmulAlgoGetHeuristic");
    if (a.ta != p.d.ta || a.tb != p.d.tb || a.epilogue != p.d.epilogue || a.at != p.a.type || a.dt != p.dl.type)
        return fail(CUBLAS_STATUS_INVALID_VALUE, api, "the algo was chosen for other transposes, epilogue or types");
    if (workspaceSizeInBytes < a.workspace)
        return fail(CUBLAS_STATUS_INVALID_VALUE, api, "workspace of %zu bytes, the algo needs %llu", workspaceSizeInBytes,
                    (unsigned long long)a.workspace);
    if (!alpha || !beta) return fail(CUBLAS_STATUS_INVALID_VALUE, api, "alpha or beta is null");
    if (cuemu::detail::is_device_memory(alpha) || cuemu::detail::is_device_memory(beta))
        return fail(CUBLAS_STATUS_INVALID_VALUE, api, "alpha/beta point to device memory in host pointer mode");
    bool bias = p.d.epilogue == CUBLASLT_EPILOGUE_BIAS;
    if (bias && !p.d.bias) return fail(CUBLAS_STATUS_INVALID_VALUE, api, "the BIAS epilogue without a bias pointer");
    /* In place, C and D must be one matrix: the same layout. */
    if (C == D && (p.c.type != p.dl.type || p.c.ld != p.dl.ld))
        return fail(CUBLAS_STATUS_INVALID_VALUE, api, "C == D with different layouts (ldc %lld, ldd %lld)",
                    (long long)p.c.ld, (long long)p.dl.ld);
    /* Host pointer mode: the scalars (of the scale type, float) are read at the call. */
    float al = *(const float *)alpha, be = *(const float *)beta;
    if (!p.m || !p.n) return CUBLAS_STATUS_SUCCESS;

    char shape[96];
    snprintf(shape, sizeof shape, "m=%lld n=%lld k=%lld batch=1", (long long)p.m, (long long)p.n, (long long)p.k);
    /* the performance trace's GEMM (as cublas.cpp's): 2mnk flops, A, B, C when beta != 0, the bias, D */
    double m = p.m, n = p.n, k = p.k, cbytes = m * n * type_size(p.c.type);
    double rd = m * k * type_size(p.a.type) + k * n * type_size(p.b.type) + (be != 0.0f ? cbytes : 0) +
                (bias ? m * type_size(p.dl.type) : 0);
    const char *op = p.a.type == CUDA_R_16BF ? "gemm_bf16" : p.a.type == CUDA_R_16F ? "gemm_f16" : "gemm_f32";
    cudaError_t e = cuemu::detail::enqueue_library(stream, op, 2 * m * n * k, rd, m * n * type_size(p.dl.type), shape, [=] {
        cudaError_t err = operand(A, extent(p.a), p.a.type, a.align[0], "cublasLtMatmul matrix A");
        if (!err) err = operand(B, extent(p.b), p.b.type, a.align[1], "cublasLtMatmul matrix B");
        if (!err && be != 0.0f) err = operand(C, extent(p.c), p.c.type, a.align[2], "cublasLtMatmul matrix C");
        if (!err) err = operand(D, extent(p.dl), p.dl.type, a.align[3], "cublasLtMatmul matrix D");
        if (!err && bias) err = operand(p.d.bias, (size_t)p.m, p.dl.type, 16, "cublasLtMatmul bias");
        if (err) return err;
        if (a.workspace) {
            if (!cuemu::detail::device_range(workspace, a.workspace, "cublasLtMatmul workspace"))
                return cudaErrorIllegalAddress;
            memset(workspace, 0xa5, a.workspace); /* the algorithm's own use of it */
        }
        matmul_run(p, al, be, A, B, C, D);
        return cudaSuccess;
    });
    if (e) return fail(CUBLAS_STATUS_EXECUTION_FAILED, api, "%s", cudaGetErrorString(e));
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasLtGetStatusName(cublasStatus_t st) { return cublasGetStatusName(st); }
const char *cublasLtGetStatusString(cublasStatus_t st) { return cublasGetStatusString(st); }
