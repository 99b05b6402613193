/* cuFFT shim of the emulation, on the real cufft.h prototypes: 1-D real transforms (R2C, C2R)
 * with the basic and the full advanced data layout, computed as a naive DFT in double and
 * queued on the plan's stream like a kernel.
 *
 * The semantic traps are encoded exactly: R2C writes n/2+1 bins per transform; neither
 * direction normalises (C2R(R2C(x)) = n*x); basic-layout in-place R2C pads every real row to
 * 2*(n/2+1) floats; C2R ignores the imaginary parts of bins 0 and n/2 and, out of place,
 * overwrites its input afterwards (here with NaN), as cuFFT may. */
#include "cuemu.h"
#include "trace.h"

#include <cufft.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <map>
#include <mutex>
#include <vector>

namespace {

struct plan_s {
    int device;
    cudaStream_t stream;
    bool made;
    int n, batch;
    int type; /* raw cufftType, see cuemu::detail::enum_value */
    bool advanced; /* basic layout when inembed or onembed is NULL */
    int istride, idist, ostride, odist;
};

std::mutex mu;
std::map<cufftHandle, plan_s> plans;
cufftHandle next_handle = 1;

__attribute__((format(printf, 3, 4))) cufftResult fail(cufftResult r, const char *api, const char *fmt, ...)
{
    fprintf(stderr, "cuemu: %s: ", api);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (cufftResult %d)\n", (int)r);
    return r;
}

cufftResult make_plan(const char *api, cufftHandle h, int rank, const int *n, const int *inembed, int istride,
                      int idist, const int *onembed, int ostride, int odist, int t, int batch, size_t *work)
{
    std::lock_guard<std::mutex> lock(mu);
    auto it = plans.find(h);
    if (it == plans.end()) return fail(CUFFT_INVALID_PLAN, api, "plan %d does not exist", h);
    if (t != CUFFT_R2C && t != CUFFT_C2R && t != CUFFT_C2C && t != CUFFT_D2Z && t != CUFFT_Z2D && t != CUFFT_Z2Z)
        return fail(CUFFT_INVALID_TYPE, api, "type %d", t);
    if (t != CUFFT_R2C && t != CUFFT_C2R)
        return fail(CUFFT_NOT_SUPPORTED, api, "only R2C and C2R transforms are emulated");
    if (rank != 1) return fail(CUFFT_NOT_SUPPORTED, api, "only rank 1 is emulated (rank %d)", rank);
    if (!n || n[0] < 1 || batch < 1) return fail(CUFFT_INVALID_SIZE, api, "n %d, batch %d", n ? n[0] : 0, batch);
    bool advanced = inembed && onembed;
    if (advanced && (istride < 1 || ostride < 1 || idist < 1 || odist < 1))
        return fail(CUFFT_INVALID_VALUE, api, "istride %d, idist %d, ostride %d, odist %d", istride, idist, ostride, odist);
    plan_s &p = it->second;
    p.n = n[0];
    p.batch = batch;
    p.type = t;
    p.advanced = advanced;
    p.istride = istride;
    p.idist = idist;
    p.ostride = ostride;
    p.odist = odist;
    p.made = true;
    if (work) *work = 0;
    return CUFFT_SUCCESS;
}

/* Element layout of one execution: strides and distances in elements of each side's type
 * (floats for real data, complex pairs for complex data). */
struct layout {
    int istride, idist, ostride, odist;
};

cufftResult resolve_layout(const char *api, const plan_s &p, bool in_place, layout *l)
{
    int bins = p.n / 2 + 1, padded = 2 * bins;
    bool r2c = p.type == CUFFT_R2C;
    if (!p.advanced) {
        *l = r2c ? layout{1, in_place ? padded : p.n, 1, bins} : layout{1, bins, 1, in_place ? padded : p.n};
        return CUFFT_SUCCESS;
    }
    *l = {p.istride, p.idist, p.ostride, p.odist};
    /* In place, every transform's real and complex elements must share the same bytes. */
    if (in_place && (r2c ? (l->idist != 2 * l->odist || l->istride != 2 * l->ostride)
                         : (l->odist != 2 * l->idist || l->ostride != 2 * l->istride)))
        return fail(CUFFT_INVALID_VALUE, api,
                    "in-place layout needs real stride/distance = 2 x complex stride/distance (istride %d, idist %d, "
                    "ostride %d, odist %d)", l->istride, l->idist, l->ostride, l->odist);
    return CUFFT_SUCCESS;
}

size_t span(int count, int stride, int dist, int batch)
{
    return (size_t)dist * (batch - 1) + (size_t)stride * (count - 1) + 1;
}

cufftResult exec(const char *api, cufftHandle h, int type, void *in, void *out)
{
    plan_s p;
    {
        std::lock_guard<std::mutex> lock(mu);
        auto it = plans.find(h);
        if (it == plans.end() || !it->second.made) return fail(CUFFT_INVALID_PLAN, api, "plan %d does not exist or has no size yet", h);
        p = it->second;
    }
    if (p.type != type) return fail(CUFFT_INVALID_VALUE, api, "plan %d has type %d", h, p.type);
    if (!in || !out) return fail(CUFFT_INVALID_VALUE, api, "null data pointer");
    if (p.device != cuemu::detail::current_device())
        return fail(CUFFT_INVALID_DEVICE, api, "plan of device %d executed on device %d", p.device,
                    cuemu::detail::current_device());
    layout l;
    bool in_place = in == out;
    if (cufftResult r = resolve_layout(api, p, in_place, &l)) return r;
    int n = p.n, bins = n / 2 + 1;
    bool r2c = type == CUFFT_R2C;
    size_t in_bytes = span(r2c ? n : bins, l.istride, l.idist, p.batch) * (r2c ? sizeof(cufftReal) : sizeof(cufftComplex));
    size_t out_bytes = span(r2c ? bins : n, l.ostride, l.odist, p.batch) * (r2c ? sizeof(cufftComplex) : sizeof(cufftReal));
    /* the trace's cost: 2.5 n log2 n flops per real transform (half the 5 n log2 n of a complex
     * one, the usual convention), the bytes of the real and complex sides */
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d batch=%d", n, p.batch);
    double real_bytes = (double)n * sizeof(cufftReal) * p.batch, cplx_bytes = (double)bins * sizeof(cufftComplex) * p.batch;
    cudaError_t e = cuemu::detail::enqueue_library(p.stream, r2c ? "fft_r2c" : "fft_c2r", 2.5 * n * log2((double)n) * p.batch,
                                                   r2c ? real_bytes : cplx_bytes, r2c ? cplx_bytes : real_bytes, shape, [=] {
        if (!cuemu::detail::device_range(in, in_bytes, r2c ? "cufftExecR2C input" : "cufftExecC2R input") ||
            !cuemu::detail::device_range(out, out_bytes, r2c ? "cufftExecR2C output" : "cufftExecC2R output"))
            return cudaErrorIllegalAddress;
        std::vector<double> c(n), s(n);
        for (int m = 0; m < n; m++) {
            c[m] = cos(2.0 * M_PI * m / n);
            s[m] = sin(2.0 * M_PI * m / n);
        }
        for (int b = 0; b < p.batch; b++) {
            if (r2c) {
                const cufftReal *x = (const cufftReal *)in + (size_t)b * l.idist;
                cufftComplex *y = (cufftComplex *)out + (size_t)b * l.odist;
                std::vector<double> xs(n);
                for (int j = 0; j < n; j++) xs[j] = x[(size_t)j * l.istride];
                for (int k = 0; k < bins; k++) {
                    double re = 0, im = 0;
                    for (int j = 0; j < n; j++) {
                        int m = (int)((long long)j * k % n);
                        re += xs[j] * c[m];
                        im -= xs[j] * s[m];
                    }
                    y[(size_t)k * l.ostride] = make_cuComplex((float)re, (float)im);
                }
            } else {
                const cufftComplex *x = (const cufftComplex *)in + (size_t)b * l.idist;
                cufftReal *y = (cufftReal *)out + (size_t)b * l.odist;
                std::vector<double> re(bins), im(bins);
                for (int k = 0; k < bins; k++) {
                    re[k] = x[(size_t)k * l.istride].x;
                    im[k] = x[(size_t)k * l.istride].y;
                }
                for (int j = 0; j < n; j++) {
                    double v = re[0];
                    if (n % 2 == 0) v += (j % 2 ? -re[n / 2] : re[n / 2]);
                    for (int k = 1; k < (n + 1) / 2; k++) {
                        int m = (int)((long long)j * k % n);
                        v += 2.0 * (re[k] * c[m] - im[k] * s[m]);
                    }
                    y[(size_t)j * l.ostride] = (cufftReal)v;
                }
            }
        }
        /* Out-of-place C2R may destroy its input on a GPU; make code that reuses it fail here. */
        if (!r2c && !in_place)
            for (int b = 0; b < p.batch; b++)
                for (int k = 0; k < bins; k++)
                    ((cufftComplex *)in)[(size_t)b * l.idist + (size_t)k * l.istride] = make_cuComplex(NAN, NAN);
        return cudaSuccess;
    });
    if (e) return fail(CUFFT_EXEC_FAILED, api, "%s", cudaGetErrorString(e));
    return CUFFT_SUCCESS;
}

} // namespace

cufftResult cufftCreate(cufftHandle *handle)
{
    if (!handle) return CUFFT_INVALID_VALUE;
    std::lock_guard<std::mutex> lock(mu);
    *handle = next_handle++;
    plans[*handle] = plan_s{cuemu::detail::current_device(), nullptr, false, 0, 0, 0, false, 0, 0, 0, 0};
    return CUFFT_SUCCESS;
}

cufftResult cufftMakePlanMany(cufftHandle plan, int rank, int *n, int *inembed, int istride, int idist, int *onembed,
                              int ostride, int odist, cufftType type, int batch, size_t *workSize)
{
    return make_plan("cufftMakePlanMany", plan, rank, n, inembed, istride, idist, onembed, ostride, odist,
                     cuemu::detail::enum_value(type), batch, workSize);
}

cufftResult cufftMakePlan1d(cufftHandle plan, int nx, cufftType type, int batch, size_t *workSize)
{
    return make_plan("cufftMakePlan1d", plan, 1, &nx, nullptr, 1, 0, nullptr, 1, 0, cuemu::detail::enum_value(type), batch,
                     workSize);
}

namespace {

cufftResult plan_many(const char *api, cufftHandle *plan, int rank, int *n, int *inembed, int istride, int idist,
                      int *onembed, int ostride, int odist, int type, int batch)
{
    if (cufftResult r = cufftCreate(plan)) return r;
    cufftResult r = make_plan(api, *plan, rank, n, inembed, istride, idist, onembed, ostride, odist, type, batch, nullptr);
    if (r) cufftDestroy(*plan);
    return r;
}

} // namespace

cufftResult cufftPlanMany(cufftHandle *plan, int rank, int *n, int *inembed, int istride, int idist, int *onembed,
                          int ostride, int odist, cufftType type, int batch)
{
    return plan_many("cufftPlanMany", plan, rank, n, inembed, istride, idist, onembed, ostride, odist,
                     cuemu::detail::enum_value(type), batch);
}

cufftResult cufftPlan1d(cufftHandle *plan, int nx, cufftType type, int batch)
{
    return plan_many("cufftPlan1d", plan, 1, &nx, nullptr, 1, 0, nullptr, 1, 0, cuemu::detail::enum_value(type), batch);
}

cufftResult cufftSetStream(cufftHandle plan, cudaStream_t stream)
{
    std::lock_guard<std::mutex> lock(mu);
    auto it = plans.find(plan);
    if (it == plans.end()) return CUFFT_INVALID_PLAN;
    it->second.stream = stream;
    return CUFFT_SUCCESS;
}

/* The naive DFT needs no device workspace. */
cufftResult cufftGetSize(cufftHandle plan, size_t *workSize)
{
    std::lock_guard<std::mutex> lock(mu);
    if (!plans.count(plan)) return CUFFT_INVALID_PLAN;
    if (!workSize) return CUFFT_INVALID_VALUE;
    *workSize = 0;
    return CUFFT_SUCCESS;
}

cufftResult cufftSetWorkArea(cufftHandle plan, void *workArea)
{
    (void)workArea;
    std::lock_guard<std::mutex> lock(mu);
    return plans.count(plan) ? CUFFT_SUCCESS : CUFFT_INVALID_PLAN;
}

cufftResult cufftDestroy(cufftHandle plan)
{
    std::lock_guard<std::mutex> lock(mu);
    return plans.erase(plan) ? CUFFT_SUCCESS : CUFFT_INVALID_PLAN;
}

cufftResult cufftExecR2C(cufftHandle plan, cufftReal *idata, cufftComplex *odata)
{
    return exec("cufftExecR2C", plan, CUFFT_R2C, idata, odata);
}

cufftResult cufftExecC2R(cufftHandle plan, cufftComplex *idata, cufftReal *odata)
{
    return exec("cufftExecC2R", plan, CUFFT_C2R, idata, odata);
}
