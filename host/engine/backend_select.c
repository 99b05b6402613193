/* Backend selection by name. Compiled once per kind of executable: without QASR_HAVE_CUDA for
 * builds with the CPU backend only; with it where the CUDA backend exists, either linked in (the
 * emulated one) or, with QASR_CUDA_MODULE, as libqasr_cuda.so next to the executable, loaded
 * only when a CUDA device is there or asked for (CPU runs then never map cuBLAS). */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "cpu_gemm_bf16.h"
#include "util.h"

#ifdef QASR_CUDA_MODULE
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

static struct {
    pthread_once_t once;
    void *handle;
    char error[PATH_MAX + 256];
    int (*create)(backend_ref_t *, int, int);
    int (*device_count)(void);
    int (*broadcast)(const backend_ref_t *, int);
} cuda = { .once = PTHREAD_ONCE_INIT };

static void cuda_load(void)
{
    char exe[PATH_MAX], path[PATH_MAX + 32];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(cuda.error, sizeof cuda.error, "cannot locate this executable to find libqasr_cuda.so");
        return;
    }
    exe[n] = 0;
    snprintf(path, sizeof path, "%s/libqasr_cuda.so", dirname(exe));
    /* RTLD_NOW: a symbol the module needs and this executable lacks fails here, not mid-run */
    cuda.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!cuda.handle) {
        snprintf(cuda.error, sizeof cuda.error, "cannot load the CUDA backend (%s): keep libqasr_cuda.so next to the "
                 "qasr executables, or use --backend cpu", dlerror());
        return;
    }
    *(void **)&cuda.create = dlsym(cuda.handle, "backend_cuda_create");
    *(void **)&cuda.device_count = dlsym(cuda.handle, "backend_cuda_device_count");
    *(void **)&cuda.broadcast = dlsym(cuda.handle, "backend_cuda_broadcast_weights");
    if (!cuda.create || !cuda.device_count || !cuda.broadcast) {
        snprintf(cuda.error, sizeof cuda.error, "%s is not a qasr CUDA backend module of this version", path);
        dlclose(cuda.handle);
        cuda.handle = NULL;
    }
}

/* 0 when the module is loaded, else -1 + qasr_fail saying why. */
static int cuda_module(void)
{
    pthread_once(&cuda.once, cuda_load);
    return cuda.handle ? 0 : qasr_fail("%s", cuda.error);
}

static int backend_cuda_create(backend_ref_t *out, int device, int n_mels)
{
    return cuda_module() ? -1 : cuda.create(out, device, n_mels);
}

/* Without the NVIDIA driver there is no device: answered without loading the module. */
static int backend_cuda_device_count(void)
{
    void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!driver) return 0;
    dlclose(driver);
    if (cuda_module() == 0) return cuda.device_count();
    fprintf(stderr, "qasr: warning: %s\n", qasr_last_error()); /* a GPU may go unused: say so */
    return 0;
}

static int backend_cuda_broadcast_weights(const backend_ref_t *bk, int n)
{
    return cuda_module() ? -1 : cuda.broadcast(bk, n);
}
#elif defined(QASR_HAVE_CUDA)
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
