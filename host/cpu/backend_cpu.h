/* The CPU backend (backend_cpu.c): the reference implementation of every op of backend.h and
 * what users without a GPU run. */
#ifndef QASR_BACKEND_CPU_H
#define QASR_BACKEND_CPU_H

#include "backend.h"

/* threads <= 0: all cores. -1 + qasr_fail() on error. */
int backend_cpu_create(backend_ref_t *out, int threads, int n_mels, precision_t precision);

/* For backend selection: precision "auto" is bf16 where the CPU runs it natively, else fp32. */
extern const backend_kind_t backend_cpu_kind;

#endif
