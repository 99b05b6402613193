/* The timings behind --precision auto (cpu_plan.h): each candidate kernel run on the model's own
 * shapes, at the row counts of each class, where the CPU has native bf16 (elsewhere there is
 * nothing to choose). */
#ifndef QASR_CPU_PLAN_MEASURE_H
#define QASR_CPU_PLAN_MEASURE_H

#include "cpu_plan.h"

/* Fill p->m[].t and p->conv_t; ctx is the backend's bf16_gemm_t (cpu_gemm_bf16.h). A
 * plan_measure_fn (cpu_plan_cache.h). */
void plan_measure(cpu_plan_t *p, void *ctx);

#endif
