/* Backend selection by name (see backend_select.h). */
#include "backend_select.h"

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend_cpu.h"
#include "util.h"

/* The CUDA backend when it is linked into this executable (cuda/backend_cuda.cu): a weak
 * reference, so executables without it link too and see NULL. */
extern const backend_kind_t backend_cuda_kind __attribute__((weak));

static struct {
    pthread_once_t once;
    const backend_kind_t *kind;
    char error[PATH_MAX + 256];
} cuda = { .once = PTHREAD_ONCE_INIT };

/* libqasr_cuda.so from this executable's directory. RTLD_NOW: a symbol the module needs and this
 * executable lacks fails here, not mid-run. */
static void cuda_load(void)
{
    if (&backend_cuda_kind) {
        cuda.kind = &backend_cuda_kind;
        return;
    }
    char exe[PATH_MAX], path[PATH_MAX + 32];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(cuda.error, sizeof cuda.error, "cannot locate this executable to find libqasr_cuda.so");
        return;
    }
    exe[n] = 0;
    snprintf(path, sizeof path, "%s/libqasr_cuda.so", dirname(exe));
    if (access(path, F_OK) != 0) {
        snprintf(cuda.error, sizeof cuda.error, "this build of qasr has no CUDA backend (%s does not exist: "
                 "build with the CUDA toolkit, or use --backend cpu)", path);
        return;
    }
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(cuda.error, sizeof cuda.error, "cannot load the CUDA backend (%s): keep libqasr_cuda.so next to the "
                 "qasr executables, or use --backend cpu", dlerror());
        return;
    }
    const backend_kind_t *k = dlsym(handle, "backend_cuda_kind");
    if (!k || !k->create || !k->device_count || strcmp(k->name, "cuda") != 0) {
        snprintf(cuda.error, sizeof cuda.error, "%s is not a qasr CUDA backend module of this version", path);
        dlclose(handle);
        return;
    }
    cuda.kind = k;
}

/* The CUDA kind, or NULL + qasr_fail() saying why there is none. */
static const backend_kind_t *cuda_kind(void)
{
    pthread_once(&cuda.once, cuda_load);
    if (!cuda.kind) qasr_fail("%s", cuda.error);
    return cuda.kind;
}

static char unused_why[QASR_ERR_LEN];
static void warn_unused(void) { qasr_warn("%s", unused_why); }

/* Without the NVIDIA driver there is no device: answered without loading the module. */
int backend_device_count(void)
{
    if (!&backend_cuda_kind) {
        void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
        if (!driver) return 0;
        dlclose(driver);
    }
    const backend_kind_t *k = cuda_kind();
    if (k) return k->device_count();
    static pthread_once_t warned = PTHREAD_ONCE_INIT; /* a GPU may go unused: say so, once */
    snprintf(unused_why, sizeof unused_why, "%s", qasr_last_error());
    pthread_once(&warned, warn_unused);
    return 0;
}

const char *backend_default(void) { return backend_device_count() > 0 ? "cuda" : "cpu"; }

int backend_precision_known(const char *s)
{
    return !strcmp(s, "fp32") || !strcmp(s, "bf16") || !strcmp(s, "auto");
}

int backend_create(backend_ref_t *out, const char *name, const backend_params_t *p)
{
    if (!name) name = backend_default();
    if (p->precision && !backend_precision_known(p->precision))
        return qasr_fail("--precision '%s': expected fp32, bf16 or auto", p->precision);
    const backend_kind_t *k = NULL;
    if (!strcmp(name, "cpu"))
        k = &backend_cpu_kind;
    else if (!strcmp(name, "cuda"))
        k = cuda_kind();
    else
        return qasr_fail("unknown backend '%s' (expected cpu or cuda)", name);
    return k ? k->create(out, p) : -1;
}
