/* Choosing a backend by name. The kinds this program has: the CPU (always), and CUDA, either
 * linked in (the emulated backend of qasr-emu and qasr-batch-emu, found through a weak symbol)
 * or as the module libqasr_cuda.so next to the executable, loaded only when a CUDA device is
 * there or asked for (CPU runs then never map cuBLAS). Compiled once for every executable. */
#ifndef QASR_BACKEND_SELECT_H
#define QASR_BACKEND_SELECT_H

#include "backend.h"

/* name "cpu", "cuda", or NULL for the default: cuda when a CUDA device can be used, else cpu.
 * -1 + qasr_fail() saying why (unknown name, no such device, a precision the backend lacks). */
int backend_create(backend_ref_t *out, const char *name, const backend_params_t *p);
/* 1 if s names a precision ("fp32", "bf16", "auto"), else 0 (command lines check it early). */
int backend_precision_known(const char *s);
const char *backend_default(void);
int backend_device_count(void); /* CUDA devices this program can use (0 without) */

#endif
