/* Performance trace of the CUDA emulation (trace.cpp): CUEMU_TRACE=path appends one line per
 * operation the host submits (kernel launch, cuBLAS and cuFFT call, copy, memset, synchronisation,
 * event), which bench/gpu_model.py turns into a predicted time on a named GPU. CUEMU_DRYRUN=1
 * records the same operations without running kernels or library math (see trace.cpp).
 * Internal to cuda/emu. */
#ifndef QASR_CUEMU_TRACE_H
#define QASR_CUEMU_TRACE_H

#include "cuemu.h"

#include <stdint.h>

namespace cuemu {
namespace detail {

bool trace_on();
/* CUEMU_DRYRUN=1: kernels, library math and copies into device memory do not run. */
bool dryrun();

/* A stream as the trace names it: 0 for a legacy stream, then 1, 2 ... in order of first use. */
int trace_stream(const void *stream, bool legacy);

/* graph: the capture an operation is recorded into (1, 2 ... in order of cudaStreamBeginCapture),
 * 0 when it is submitted to run. */

/* A launch at submission; returns its id (0 when not tracing). Takes the declared cost. */
uint64_t trace_launch(const kernel_info &info, dim3 grid, dim3 block, size_t smem, int device, int stream,
                      int graph);
/* The pending declared cost is dropped (a launch rejected before it was traced). */
void trace_drop_cost();
/* A library call: op names it, flops and the bytes of its operands. */
void trace_library(int device, int stream, const char *op, double flops, double bytes_read, double bytes_written,
                   const char *shape, int graph);
/* kind: h2d, d2h, d2d, h2h, memset; blocking: the host waits for it; pinned: its host memory is
 * page-locked (cudaMallocHost), so the copy runs at the link's DMA rate without staging. */
void trace_copy(int device, int stream, const char *kind, double bytes, bool blocking, bool pinned, int graph);
/* cudaGraphLaunch of an instance of capture `graph` (its nodes run then, in capture order). */
void trace_graph_launch(int device, int stream, int graph, size_t nodes);
/* The host waits: for a stream (its id), the whole device (stream -1), or an event. */
void trace_sync(int device, int stream, const char *what);
void trace_event(int device, int stream, const char *what, const void *event);

/* runtime.cpp: enqueue() of a cuBLAS / cuFFT call, traced; in a dry run fn does not run. */
cudaError_t enqueue_library(cudaStream_t stream, const char *op, double flops, double bytes_read,
                            double bytes_written, const char *shape, std::function<cudaError_t()> fn);

/* runtime.cpp: the cudaMalloc / cudaMallocHost allocation holding address a, as [lo, hi). */
bool memory_extent(uintptr_t a, uintptr_t *lo, uintptr_t *hi);

/* Global-memory bytes of the running launch, counted by the instrumentation hooks while
 * counting() (set when tracing a launch that executes). */
bool counting();
void count_begin();
void count_access(uintptr_t addr, unsigned size, bool write);
/* scheduler.cpp: the launch's dynamic shared memory (not global memory). */
void count_smem(const void *p, size_t n);
void count_end(uint64_t launch_id);

} // namespace detail
} // namespace cuemu

#endif
