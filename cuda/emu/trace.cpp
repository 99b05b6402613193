/* Performance trace of the CUDA emulation: CUEMU_TRACE=path appends one tab-separated line per
 * operation, in the order the host submits them (the order a GPU's queues receive them), which
 * bench/gpu_model.py turns into a predicted time. Lines (first field the kind):
 *
 *   K id dev stream name grid block smem decl_rd decl_wr decl_flops graph decl_tc_flops
 *                                     kernel launch; decl_*: its CUEMU_COST declaration, -1 when
 *                                     it has none (decl_tc_flops: tensor-core flops of a
 *                                     CUEMU_COST_TC declaration, else 0); graph: 0, or the capture
 *                                     it is recorded into (it runs, and its M line comes, each time
 *                                     a graph of that capture is launched: a G line)
 *   M id rd wr                        bytes of global memory the launch read and wrote, counted
 *                                     by the instrumentation hooks when it ran (not in a dry run)
 *   L dev stream op flops rd wr shape graph
 *                                     cuBLAS / cuFFT call (graph as for K)
 *   C dev stream kind bytes blocking pinned graph
 *                                     copy (h2d d2h d2d h2h) or memset; pinned: the host side is
 *                                     page-locked (cudaMallocHost) memory, 0 for d2d and memset
 *   G dev stream graph nodes          cudaGraphLaunch of capture `graph` (numbered 1, 2 ... as the
 *                                     captures begin): one host call that runs its K, L and C
 *                                     lines again, in capture order, on this stream
 *   S dev stream what                 the host waits (stream -1: the device)
 *   E dev stream what event           event record / stream waits for an event
 *
 * Bytes are unique bytes: a byte read by many threads of a launch counts once, as a GPU's caches
 * make it one DRAM read at best, and a launch's reads and writes are counted apart (an in-place
 * update counts both). This is the DRAM traffic of a launch whose footprint does not fit or stay
 * in L2 between launches; repeated reads that miss the cache are not seen (see bench/ROOFLINE.md).
 *
 * CUEMU_DRYRUN=1: launches and library calls are traced but do not run, copies into device
 * memory do not run, and device memory is mapped lazily and reads as zero, so a whole run at real
 * model size costs only its host work (the host must not depend on computed values: token ids
 * read back are then 0). */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace cuemu {
namespace detail {

namespace {

struct cost {
    double rd, wr, flops, tc_flops;
    bool set;
};

struct tracer {
    bool env_read, dry;
    FILE *f;
    uint64_t launches;
    std::map<const void *, int> streams, events;
    std::mutex mu;
};

tracer T;
thread_local cost pending;

void read_env()
{
    if (T.env_read) return;
    T.env_read = true;
    const char *d = getenv("CUEMU_DRYRUN");
    T.dry = d && *d && strcmp(d, "0");
    const char *p = getenv("CUEMU_TRACE");
    if (p && *p) {
        T.f = fopen(p, "a");
        if (!T.f) {
            fprintf(stderr, "cuemu: CUEMU_TRACE=%s: cannot open it\n", p);
            exit(2);
        }
        setvbuf(T.f, nullptr, _IOFBF, 1 << 20);
        atexit([] { fflush(T.f); });
    }
}

/* ---- unique-byte counting: a read and a write bitmap per 4 KiB page of touched memory ---- */

constexpr unsigned PG = 12;
struct bits {
    uint64_t rd[(1u << PG) / 64], wr[(1u << PG) / 64];
};

struct counter {
    bool active;
    uintptr_t smem_lo, smem_n, static_lo, static_n;
    std::unordered_map<uintptr_t, bits *> pages;
    uintptr_t last_key = ~(uintptr_t)0;
    bits *last = nullptr;
};

counter N;

bits *page_of(uintptr_t key)
{
    if (key == N.last_key) return N.last;
    bits *&b = N.pages[key];
    if (!b) b = (bits *)calloc(1, sizeof(bits));
    N.last_key = key;
    return N.last = b;
}

void set_bits(uint64_t *w, unsigned lo, unsigned n)
{
    while (n) {
        unsigned i = lo / 64, o = lo % 64, k = n < 64 - o ? n : 64 - o;
        w[i] |= (k == 64 ? ~0ull : ((1ull << k) - 1)) << o;
        lo += k;
        n -= k;
    }
}

} // namespace

extern "C" unsigned char __start_cuemu_shared[] __attribute__((weak));
extern "C" unsigned char __stop_cuemu_shared[] __attribute__((weak));

bool trace_on()
{
    read_env();
    return T.f != nullptr;
}

bool dryrun()
{
    read_env();
    return T.dry;
}

void note_cost(double rd, double wr, double flops, double tc_flops) { pending = {rd, wr, flops, tc_flops, true}; }

void trace_drop_cost() { pending.set = false; }

int trace_stream(const void *stream, bool legacy)
{
    if (legacy) return 0;
    std::lock_guard<std::mutex> l(T.mu);
    auto it = T.streams.find(stream);
    if (it != T.streams.end()) return it->second;
    int id = (int)T.streams.size() + 1;
    T.streams[stream] = id;
    return id;
}

uint64_t trace_launch(const kernel_info &info, dim3 grid, dim3 block, size_t smem, int device, int stream,
                      int graph)
{
    cost c = pending;
    pending.set = false;
    if (!trace_on()) return 0;
    std::lock_guard<std::mutex> l(T.mu);
    uint64_t id = ++T.launches;
    if (!c.set) c = {-1, -1, -1, 0, false};
    fprintf(T.f, "K\t%llu\t%d\t%d\t%s\t%u,%u,%u\t%u,%u,%u\t%zu\t%.0f\t%.0f\t%.0f\t%d\t%.0f\n", (unsigned long long)id,
            device, stream, info.name, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem, c.rd, c.wr, c.flops,
            graph, c.tc_flops);
    return id;
}

void trace_library(int device, int stream, const char *op, double flops, double rd, double wr, const char *shape,
                   int graph)
{
    if (!trace_on()) return;
    std::lock_guard<std::mutex> l(T.mu);
    fprintf(T.f, "L\t%d\t%d\t%s\t%.0f\t%.0f\t%.0f\t%s\t%d\n", device, stream, op, flops, rd, wr, shape, graph);
}

void trace_copy(int device, int stream, const char *kind, double bytes, bool blocking, bool pinned, int graph)
{
    if (!trace_on()) return;
    std::lock_guard<std::mutex> l(T.mu);
    fprintf(T.f, "C\t%d\t%d\t%s\t%.0f\t%d\t%d\t%d\n", device, stream, kind, bytes, blocking ? 1 : 0, pinned ? 1 : 0,
            graph);
}

void trace_graph_launch(int device, int stream, int graph, size_t nodes)
{
    if (!trace_on()) return;
    std::lock_guard<std::mutex> l(T.mu);
    fprintf(T.f, "G\t%d\t%d\t%d\t%zu\n", device, stream, graph, nodes);
}

void trace_sync(int device, int stream, const char *what)
{
    if (!trace_on()) return;
    std::lock_guard<std::mutex> l(T.mu);
    fprintf(T.f, "S\t%d\t%d\t%s\n", device, stream, what);
}

void trace_event(int device, int stream, const char *what, const void *event)
{
    if (!trace_on()) return;
    std::lock_guard<std::mutex> l(T.mu);
    auto it = T.events.find(event);
    int id = it != T.events.end() ? it->second : (T.events[event] = (int)T.events.size() + 1);
    fprintf(T.f, "E\t%d\t%d\t%s\t%d\n", device, stream, what, id);
}

bool counting() { return N.active; }

void count_begin()
{
    if (!trace_on() || dryrun()) return;
    N.active = true;
    N.smem_n = 0;
    N.static_lo = (uintptr_t)__start_cuemu_shared;
    N.static_n = (uintptr_t)(__stop_cuemu_shared - __start_cuemu_shared);
}

void count_smem(const void *p, size_t n)
{
    N.smem_lo = (uintptr_t)p;
    N.smem_n = n;
}

void count_access(uintptr_t a, unsigned size, bool write)
{
    if (a - N.smem_lo < N.smem_n || a - N.static_lo < N.static_n) return; /* shared memory */
    while (size) {
        uintptr_t key = a >> PG;
        unsigned off = (unsigned)(a & ((1u << PG) - 1)), k = size < (1u << PG) - off ? size : (1u << PG) - off;
        bits *b = page_of(key);
        set_bits(write ? b->wr : b->rd, off, k);
        a += k;
        size -= k;
    }
}

void count_end(uint64_t id)
{
    if (!N.active) return;
    N.active = false;
    /* only bytes of allocations (device and pinned memory) are global memory: the hooks also see
     * the launch's bound arguments on the host heap, which a GPU passes in constant memory */
    double rd = 0, wr = 0;
    for (auto &p : N.pages) {
        const uintptr_t base = p.first << PG;
        uintptr_t lo = 0, hi = 0;
        for (unsigned i = 0; i < (1u << PG); i++) {
            const uintptr_t a = base + i;
            const unsigned r = (p.second->rd[i / 64] >> (i % 64)) & 1, w = (p.second->wr[i / 64] >> (i % 64)) & 1;
            if (!(r | w)) continue;
            if ((a < lo || a >= hi) && !memory_extent(a, &lo, &hi)) {
                lo = hi = 0;
                continue;
            }
            rd += r;
            wr += w;
        }
        free(p.second);
    }
    N.pages.clear();
    N.last_key = ~(uintptr_t)0;
    N.last = nullptr;
    if (!trace_on()) return;
    std::lock_guard<std::mutex> l(T.mu);
    fprintf(T.f, "M\t%llu\t%.0f\t%.0f\n", (unsigned long long)id, rd, wr);
}

} // namespace detail
} // namespace cuemu
