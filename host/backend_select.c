/* Backend selection by name. Compiled once per kind of executable: without QASR_HAVE_CUDA for
 * builds with the CPU backend only, with it where the CUDA backend (real or emulated) is linked. */
#include <string.h>

#include "backend.h"
#include "cpu_gemm_bf16.h"
#include "util.h"

#ifdef QASR_HAVE_CUDA
int backend_cuda_create(backend_ref_t *out, int device, int n_mels);
int backend_cuda_device_count(void);
int backend_cuda_broadcast_weights(const backend_ref_t *bk, int n);
#endif

const char *backend_default(void)
{
#ifdef QASR_HAVE_CUDA
    if (backend_cuda_device_count() > 0) return "cuda";
#endif
    return "cpu";
}

int backend_precision_known(const char *s)
{
    return !strcmp(s, "fp32") || !strcmp(s, "bf16") || !strcmp(s, "auto");
}

static int cpu_create(backend_ref_t *out, int threads, int n_mels, const char *precision)
{
    if (precision && !backend_precision_known(precision))
        return qasr_fail("--precision '%s': expected fp32, bf16 or auto", precision);
    const char *isa;
    const int native = bf16_gemm_native(&isa);
    if (!precision || !strcmp(precision, "auto"))
        return backend_cpu_create(out, threads, n_mels, native ? PRECISION_BF16 : PRECISION_FP32);
    if (!strcmp(precision, "fp32")) return backend_cpu_create(out, threads, n_mels, PRECISION_FP32);
    if (!native) /* bf16 asked for */
        return qasr_fail("--precision bf16: this CPU has no native bf16 arithmetic (oneDNN finds %s; it needs "
                         "AVX512-BF16 or AMX): use --precision fp32 or auto", isa);
    return backend_cpu_create(out, threads, n_mels, PRECISION_BF16);
}

int backend_create(backend_ref_t *out, const char *name, int device, int threads, int n_mels,
                   const char *precision)
{
    if (!name) name = backend_default();
    if (!strcmp(name, "cpu")) return cpu_create(out, threads, n_mels, precision);
#ifdef QASR_HAVE_CUDA
    if (!strcmp(name, "cuda")) {
        if (precision && strcmp(precision, "auto") && strcmp(precision, "bf16"))
            return qasr_fail("--precision %s: the CUDA backend computes in bf16 with fp32 accumulation only (fp32 "
                             "is a choice of the CPU backend: --backend cpu)", precision);
        return backend_cuda_create(out, device, n_mels);
    }
    return qasr_fail("unknown backend '%s' (this build has: cpu, cuda)", name);
#else
    if (!strcmp(name, "cuda"))
        return qasr_fail("this build of qasr has no CUDA backend (built without a CUDA compiler): use --backend cpu");
    return qasr_fail("unknown backend '%s' (this build has: cpu)", name);
#endif
}

int backend_broadcast_weights(const backend_ref_t *bk, int n)
{
#ifdef QASR_HAVE_CUDA
    if (!strcmp(bk[0].ops->name, "cuda")) return backend_cuda_broadcast_weights(bk, n);
#endif
    return qasr_fail("the %s backend cannot copy weights between devices", bk[0].ops->name);
}

int backend_device_count(void)
{
#ifdef QASR_HAVE_CUDA
    return backend_cuda_device_count();
#else
    return 0;
#endif
}
