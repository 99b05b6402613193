/* Backend selection by name. Compiled once per kind of executable: without QASR_HAVE_CUDA for
 * builds with the CPU backend only, with it where the CUDA backend (real or emulated) is linked. */
#include <string.h>

#include "backend.h"
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

int backend_create(backend_ref_t *out, const char *name, int device, int threads, int n_mels)
{
    if (!name) name = backend_default();
    if (!strcmp(name, "cpu")) return backend_cpu_create(out, threads, n_mels);
#ifdef QASR_HAVE_CUDA
    if (!strcmp(name, "cuda")) return backend_cuda_create(out, device, n_mels);
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
