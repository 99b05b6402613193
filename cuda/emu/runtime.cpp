/* CUDA runtime API shim of the emulation, on the real cuda_runtime_api.h prototypes: devices,
 * memory with an allocation registry, streams and events with deferred execution, stream
 * capture into graphs, errors.
 *
 * Execution model (details in README.md): kernels, async copies, memsets and library calls are
 * queued on their stream and run in order only when the host waits (stream/event/device
 * synchronize, a blocking cudaMemcpy, a query) or when another stream's queued work depends on
 * them (cudaStreamWaitEvent, the legacy default stream's implicit barriers). Host code that
 * forgets to wait reads stale 0xFF memory here, as it would race on a GPU. CUEMU_SYNC=eager runs
 * everything at submission instead, for debugging; CUEMU_SYNC=random lets streams run ahead in
 * seeded random interleavings (progress_randomly), so unordered work meets in either order.
 *
 * A shim must be at least as strict as the real runtime: wrong memcpy kinds, copies that overrun
 * an allocation, frees of unknown pointers and bad launch configurations are rejected (with the
 * reason on stderr), and a kernel failure is sticky until cudaDeviceReset. */
#include "cuemu.h"
#include "trace.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

using cuemu::detail::enum_value;
using cuemu::detail::kernel_info;
using work_fn = std::function<cudaError_t()>;
struct capture_s;

/* One queued operation: first the (stream, position) pairs it waits for, then the work. A
 * collective (NCCL) runs only when the host or another stream waits for it: its ranks must all
 * have issued it first. */
struct op_s {
    std::vector<std::pair<std::shared_ptr<CUstream_st>, uint64_t>> deps;
    work_fn run;
    bool collective;
};

struct CUstream_st {
    int device;
    uint64_t serial; /* creation order, so that CUEMU_SYNC=random visits streams reproducibly */
    unsigned pace;   /* CUEMU_SYNC=random: how often the stream runs ahead (0 never ... 3 always) */
    bool legacy, blocking;
    std::deque<op_s> queue;
    uint64_t enqueued, done; /* positions: op i is done when done >= i */
    std::shared_ptr<capture_s> cap;
    std::vector<size_t> tail; /* capture nodes the stream's next captured op depends on */
};

struct CUevent_st {
    int device;
    unsigned flags;
    std::shared_ptr<CUstream_st> stream; /* stream and position of the last record; null: never */
    uint64_t seq, gen;
    double ms; /* host time when the last record ran */
    std::shared_ptr<capture_s> cap; /* recorded during a capture: its nodes instead of a position */
    std::vector<size_t> cap_nodes;
};

struct node_s {
    std::vector<size_t> deps;
    work_fn run;
};
struct CUgraph_st {
    int device, trace_id; /* trace_id: the capture's number in the trace (G lines) */
    long kernels;         /* kernel nodes: launches each time the graph is launched (CUEMU_FAIL) */
    std::vector<node_s> nodes; /* creation order is a topological order */
};
struct CUgraphExec_st {
    int device, trace_id;
    long kernels;
    std::shared_ptr<std::vector<work_fn>> ops;
};

struct capture_s {
    std::unique_ptr<CUgraph_st> graph;
    CUstream_st *origin;
    cudaStreamCaptureMode mode;
    std::thread::id thread;
    bool active, invalidated;
    std::vector<CUstream_st *> members;
};

/* The trace's number of the capture s records into, 0 when s is not capturing (trace.h). */
static int trace_graph(const CUstream_st &s) { return s.cap ? s.cap->graph->trace_id : 0; }

namespace {
using namespace cuemu::detail;

struct device_s {
    std::shared_ptr<CUstream_st> legacy;
    cudaError_t sticky;
    size_t used, budget;
    std::map<const void *, int> max_dynamic_smem;
    std::vector<bool> peer;
    long launches, fail_at_launch; /* kernel launches so far; CUEMU_FAIL's (0: never) */
    long graph_launches;
};

struct alloc_s {
    size_t size;
    int device;
    bool pinned, mapped; /* mapped: a dry run's lazy mapping (munmap) */
};

constexpr size_t DEFAULT_SMEM = 48 << 10;
constexpr int SMEM_OPTIN = 232448; /* sm_90: 227 KiB per block with the opt-in */

std::recursive_mutex mu;
bool initialised, eager, random_progress; /* CUEMU_SYNC=eager, CUEMU_SYNC=random */
uint64_t rng_state, streams_created;      /* random_progress's generator (CUEMU_SEED) */
long ran_ahead;                           /* operations progress_randomly ran (CUEMU_STATS) */
std::vector<device_s> devices;
std::map<CUstream_st *, std::shared_ptr<CUstream_st>> streams;
std::map<CUevent_st *, std::shared_ptr<CUevent_st>> events;
std::map<CUgraph_st *, std::unique_ptr<CUgraph_st>> graphs;
std::map<CUgraphExec_st *, std::unique_ptr<CUgraphExec_st>> execs;
std::vector<std::shared_ptr<capture_s>> captures;
long captures_ended, capture_fail_at; /* CUEMU_CAPTURE_FAIL's (0: never) */
std::map<uintptr_t, alloc_s> allocs;
thread_local int cur_dev;
thread_local cudaError_t last_error;

uint64_t next_random()
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

std::shared_ptr<CUstream_st> new_stream(int device, bool legacy, bool blocking)
{
    auto s = std::make_shared<CUstream_st>();
    s->device = device;
    s->serial = streams_created++;
    s->pace = random_progress ? (unsigned)(next_random() % 4) : 0;
    s->legacy = legacy;
    s->blocking = blocking;
    s->enqueued = s->done = 0;
    return s;
}

long env_long(const char *name, long def, long lo, long hi)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > hi) {
        fprintf(stderr, "cuemu: %s=%s: expected an integer in [%ld, %ld]\n", name, v, lo, hi);
        exit(2);
    }
    return x;
}

void init()
{
    if (initialised) return;
    initialised = true;
    long n = env_long("CUEMU_DEVICES", 1, 1, 64);
    long mb = env_long("CUEMU_DEVICE_MEM_MB", 4096, 1, 1 << 24);
    const char *sync = getenv("CUEMU_SYNC");
    if (sync && *sync && strcmp(sync, "eager") && strcmp(sync, "deferred") && strcmp(sync, "random")) {
        fprintf(stderr, "cuemu: CUEMU_SYNC=%s: expected deferred, eager or random\n", sync);
        exit(2);
    }
    eager = sync && !strcmp(sync, "eager");
    random_progress = sync && !strcmp(sync, "random");
    const char *seed = getenv("CUEMU_SEED");
    rng_state = seed ? strtoull(seed, nullptr, 0) : 1;
    /* CUEMU_CAPTURE_FAIL=N: the Nth capture ends invalidated, as one that met a call CUDA forbids
     * while capturing, for tests of what the caller does then */
    capture_fail_at = env_long("CUEMU_CAPTURE_FAIL", 0, 0, LONG_MAX);
    devices.resize((size_t)n);
    for (long d = 0; d < n; d++) {
        devices[d].legacy = new_stream((int)d, true, true);
        devices[d].budget = (size_t)mb << 20;
        devices[d].peer.assign((size_t)n, false);
    }
    /* CUEMU_STATS=1: kernel (and graph) launches per device on stderr at exit (to aim CUEMU_FAIL) */
    if (const char *st = getenv("CUEMU_STATS"); st && *st == '1')
        atexit([] {
            for (size_t d = 0; d < devices.size(); d++)
                fprintf(stderr, "cuemu: device %zu: %ld kernel launches, %ld graph launches\n", d, devices[d].launches,
                        devices[d].graph_launches);
            if (random_progress) fprintf(stderr, "cuemu: %ld operations run ahead (CUEMU_SYNC=random)\n", ran_ahead);
        });
    /* CUEMU_FAIL=DEV:N[,DEV:N...]: the Nth kernel launch on device DEV fails with a sticky
     * cudaErrorLaunchFailure (a lost or faulting GPU), for tests of what survives it. */
    if (const char *f = getenv("CUEMU_FAIL"); f && *f) {
        for (const char *p = f; *p;) {
            long dev, at;
            int used = 0;
            if (sscanf(p, "%ld:%ld%n", &dev, &at, &used) != 2 || dev < 0 || dev >= n || at < 1 ||
                (p[used] && p[used] != ',')) {
                fprintf(stderr, "cuemu: CUEMU_FAIL=%s: expected DEVICE:LAUNCH[,DEVICE:LAUNCH...] (device < %ld, "
                        "launch >= 1)\n", f, n);
                exit(2);
            }
            devices[dev].fail_at_launch = at;
            p += used + (p[used] == ',');
        }
    }
}

/* Every entry point holds the runtime lock (so host threads take turns, and one kernel runs at a
 * time) and initialises the emulation on first use. */
struct entry {
    std::lock_guard<std::recursive_mutex> lock{mu};
    entry() { init(); }
};

cudaError_t record(cudaError_t e)
{
    if (e != cudaSuccess && e != cudaErrorNotReady) last_error = e;
    return e;
}

__attribute__((format(printf, 3, 4))) cudaError_t reject(cudaError_t e, const char *api, const char *fmt, ...)
{
    fprintf(stderr, "cuemu: %s: ", api);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (%s)\n", cudaGetErrorName(e));
    return record(e);
}

bool valid_device(int d) { return d >= 0 && d < (int)devices.size(); }

/* ---- deferred execution ---- */

std::vector<std::shared_ptr<CUstream_st>> device_streams(int d)
{
    std::vector<std::shared_ptr<CUstream_st>> v{devices[d].legacy};
    for (auto &s : streams)
        if (s.second->device == d) v.push_back(s.second);
    return v;
}

void drop_queued(int d)
{
    for (auto &s : device_streams(d)) {
        s->queue.clear();
        s->done = s->enqueued;
    }
}

/* A kernel fault poisons the device: queued work is dropped and every call fails until reset. */
void poison(int d, cudaError_t e)
{
    devices[d].sticky = e;
    drop_queued(d);
}

cudaError_t run_to(const std::shared_ptr<CUstream_st> &s, uint64_t pos)
{
    while (s->done < pos) {
        op_s op = std::move(s->queue.front());
        s->queue.pop_front();
        cudaError_t e = cudaSuccess;
        for (auto &d : op.deps)
            if ((e = run_to(d.first, d.second))) break;
        if (!e && op.run) e = op.run();
        s->done++;
        if (e) {
            poison(s->device, e);
            return e;
        }
    }
    return devices[s->device].sticky;
}

cudaError_t run_device(int d)
{
    for (auto &s : device_streams(d))
        if (cudaError_t e = run_to(s, s->enqueued)) return e;
    return devices[d].sticky;
}

/* CUEMU_SYNC=random, after each submission: each stream of the device may run some of the
 * operations at the front of its queue that are ready (their dependencies done; never a
 * collective), as often as its pace says: never (it runs when waited for, as deferred), after one
 * submission in 8, in 2, or every one; then a random number of them. Paces are drawn per stream
 * from CUEMU_SEED, so seeds give qualitatively different interleavings: a lazy stream overtaken by
 * a busy one, or the reverse. Deferred execution alone always runs a stream as late as possible,
 * which shows a read before the write it needs (read-after-write across streams) but not a write
 * that overtakes a read still queued on another stream (write-after-read): this shows both as
 * wrong results in some seeds. */
cudaError_t progress_randomly(int d)
{
    static const uint64_t one_in[4] = {0, 8, 2, 1};
    auto v = device_streams(d);
    std::sort(v.begin(), v.end(), [](const auto &a, const auto &b) { return a->serial < b->serial; });
    for (auto &t : v) {
        if (!t->pace || next_random() % one_in[t->pace]) continue;
        for (uint64_t n = next_random() % (t->enqueued - t->done + 1); n && !t->queue.empty(); n--) {
            const op_s &op = t->queue.front();
            bool ready = !op.collective;
            for (auto &dep : op.deps) ready = ready && dep.first->done >= dep.second;
            if (!ready) break;
            ran_ahead++;
            if (cudaError_t e = run_to(t, t->done + 1)) return e;
        }
    }
    return cudaSuccess;
}

cudaError_t add_node(CUstream_st *s, work_fn fn)
{
    capture_s &c = *s->cap;
    if (c.invalidated) return cudaErrorStreamCaptureInvalidated;
    c.graph->nodes.push_back({s->tail, std::move(fn)});
    s->tail = {c.graph->nodes.size() - 1};
    return cudaSuccess;
}

void invalidate(capture_s &c, const char *api, const char *why)
{
    if (!c.invalidated)
        fprintf(stderr, "cuemu: %s: %s; the capture begun on stream %p is invalidated\n", api, why, (void *)c.origin);
    c.invalidated = true;
}

/* Queue fn on s (or record it into s's capture). The legacy default stream waits for all work
 * already queued on the device's blocking streams, and they wait for it: CUDA's implicit
 * synchronisation, which non-blocking streams escape. */
cudaError_t submit(const std::shared_ptr<CUstream_st> &s, work_fn fn, const char *api,
                   std::vector<std::pair<std::shared_ptr<CUstream_st>, uint64_t>> deps = {}, bool collective = false)
{
    if (s->cap) return add_node(s.get(), std::move(fn));
    auto others = device_streams(s->device);
    if (s->legacy) {
        for (auto &t : others) {
            if (t->cap && t->blocking) {
                invalidate(*t->cap, api, "work on the legacy default stream would wait for a capturing stream");
                return record(cudaErrorStreamCaptureImplicit);
            }
            if (!t->legacy && t->blocking && t->enqueued > t->done) deps.push_back({t, t->enqueued});
        }
    } else if (s->blocking) {
        auto &l = devices[s->device].legacy;
        if (l->enqueued > l->done) deps.push_back({l, l->enqueued});
    }
    s->queue.push_back({std::move(deps), std::move(fn), collective});
    s->enqueued++;
    if (eager) return run_to(s, s->enqueued);
    return random_progress ? progress_randomly(s->device) : cudaSuccess;
}

/* Calls that may synchronise implicitly are not allowed while a capture is active in this
 * thread (unless it is relaxed), or in any thread for a global-mode capture. */
cudaError_t capture_guard(const char *api)
{
    for (auto &c : captures) {
        bool mine = c->thread == std::this_thread::get_id();
        if (c->invalidated || !((mine && c->mode != cudaStreamCaptureModeRelaxed) ||
                                (!mine && c->mode == cudaStreamCaptureModeGlobal)))
            continue;
        invalidate(*c, api, "not permitted while a stream capture is active");
        return record(cudaErrorStreamCaptureUnsupported);
    }
    return cudaSuccess;
}

std::shared_ptr<CUstream_st> resolve(cudaStream_t s, const char *api, cudaError_t *err)
{
    *err = cudaSuccess;
    if (s == nullptr || s == cudaStreamLegacy) return devices[cur_dev].legacy;
    if (s == cudaStreamPerThread) {
        *err = reject(cudaErrorNotSupported, api, "cudaStreamPerThread is not emulated");
        return nullptr;
    }
    auto it = streams.find(s);
    if (it == streams.end()) {
        *err = reject(cudaErrorInvalidResourceHandle, api, "stream %p does not exist", (void *)s);
        return nullptr;
    }
    return it->second;
}

std::shared_ptr<CUevent_st> find_event(cudaEvent_t e)
{
    auto it = events.find(e);
    return it == events.end() ? nullptr : it->second;
}

double now_ms()
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/* ---- allocation registry ---- */

const std::pair<const uintptr_t, alloc_s> *find_alloc(const void *p)
{
    auto it = allocs.upper_bound((uintptr_t)p);
    if (it == allocs.begin()) return nullptr;
    --it;
    return (uintptr_t)p < it->first + it->second.size ? &*it : nullptr;
}

/* One side of a copy: device memory must lie inside one cudaMalloc allocation; host memory must
 * not be device memory, and must stay inside its allocation if it came from cudaMallocHost. */
cudaError_t check_side(const char *api, const char *side, const void *p, size_t n, bool device, int *dev)
{
    auto *a = find_alloc(p);
    if (device && (!a || a->second.pinned))
        return reject(cudaErrorInvalidValue, api, "%s %p is not device memory (cudaMalloc)", side, p);
    if (!device && a && !a->second.pinned)
        return reject(cudaErrorInvalidValue, api, "%s %p is device memory, but the copy kind says host", side, p);
    if (a && (uintptr_t)p + n > a->first + a->second.size)
        return reject(cudaErrorInvalidValue, api, "%s: %zu bytes at offset %zu overrun the %zu-byte allocation", side, n,
                      (size_t)((uintptr_t)p - a->first), a->second.size);
    if (dev) *dev = a && !a->second.pinned ? a->second.device : -1;
    return cudaSuccess;
}

bool is_device(const void *p)
{
    auto *a = find_alloc(p);
    return a && !a->second.pinned;
}
bool is_pageable(const void *p) { return !find_alloc(p); }

/* Resolves cudaMemcpyDefault and checks both sides; dst_n/src_n are the byte extents. */
cudaError_t check_copy(const char *api, void *dst, size_t dst_n, const void *src, size_t src_n, int *kind)
{
    if (*kind == cudaMemcpyDefault) *kind = (is_device(src) ? 2 : 0) + (is_device(dst) ? 1 : 0);
    if (*kind < cudaMemcpyHostToHost || *kind > cudaMemcpyDeviceToDevice)
        return reject(cudaErrorInvalidMemcpyDirection, api, "copy kind %d", *kind);
    if (!dst_n && !src_n) return cudaSuccess;
    if (!dst || !src) return reject(cudaErrorInvalidValue, api, "null pointer");
    bool dst_dev = *kind == cudaMemcpyHostToDevice || *kind == cudaMemcpyDeviceToDevice;
    bool src_dev = *kind == cudaMemcpyDeviceToHost || *kind == cudaMemcpyDeviceToDevice;
    if (cudaError_t e = check_side(api, "destination", dst, dst_n, dst_dev, nullptr)) return e;
    return check_side(api, "source", src, src_n, src_dev, nullptr);
}

/* Pageable host sources are read at the call, as the real runtime stages them; pinned ones are
 * read when the copy runs, so host writes before the stream reaches it race as on a GPU. */
std::function<const void *()> source_of(const void *src, size_t n, bool snapshot)
{
    if (!snapshot) return [src] { return src; };
    auto copy = std::make_shared<std::vector<unsigned char>>((const unsigned char *)src, (const unsigned char *)src + n);
    return [copy] { return (const void *)copy->data(); };
}

work_fn copy_2d(void *dst, size_t dpitch, std::function<const void *()> src, size_t spitch, size_t width, size_t height)
{
    return [=] {
        const unsigned char *s = (const unsigned char *)src();
        for (size_t r = 0; r < height; r++) memcpy((unsigned char *)dst + r * dpitch, s + r * spitch, width);
        return cudaSuccess;
    };
}

/* cudaMemcpy2D(Async) core; the plain copies are the one-row case. Every copy is queued on its
 * stream; the blocking ones then wait for it, except device-to-device copies, which are
 * asynchronous even through cudaMemcpy (as documented). */
cudaError_t memcpy_2d(const char *api, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                      size_t height, int kind, cudaStream_t stream, bool blocking)
{
    entry lock;
    if (blocking)
        if (cudaError_t e = capture_guard(api)) return e;
    if (cudaError_t e = devices[cur_dev].sticky) return record(e);
    if (width > dpitch || width > spitch) return reject(cudaErrorInvalidPitchValue, api, "width %zu exceeds a pitch", width);
    size_t dst_n = height ? dpitch * (height - 1) + width : 0, src_n = height ? spitch * (height - 1) + width : 0;
    if (cudaError_t e = check_copy(api, dst, dst_n, src, src_n, &kind)) return e;
    if (!width || !height) return cudaSuccess;
    cudaError_t err;
    auto s = resolve(stream, api, &err);
    if (!s) return err;
    bool pageable = (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyHostToHost) && is_pageable(src);
    if (s->cap && (pageable || ((kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost) && is_pageable(dst)))) {
        invalidate(*s->cap, api, "a captured copy must use pinned (cudaMallocHost) host memory");
        return record(cudaErrorStreamCaptureUnsupported);
    }
    static const char *kinds[] = {"h2h", "h2d", "d2h", "d2d"};
    /* page-locked: every host side of the copy is cudaMallocHost memory (the DMA needs no staging) */
    const bool pinned = kind != cudaMemcpyDeviceToDevice &&
                        (kind == cudaMemcpyHostToDevice || !is_pageable(dst)) &&
                        (kind == cudaMemcpyDeviceToHost || !is_pageable(src));
    trace_copy(cur_dev, trace_stream(s.get(), s->legacy), kind >= 0 && kind < 4 ? kinds[kind] : "copy",
               (double)width * height, blocking && kind != cudaMemcpyDeviceToDevice, pinned, trace_graph(*s));
    /* a dry run reads back (zeros) but writes nothing into device memory */
    work_fn fn = dryrun() && kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyHostToHost
                     ? nullptr
                     : copy_2d(dst, dpitch, source_of(src, src_n, pageable && !blocking), spitch, width, height);
    if (cudaError_t e = submit(s, std::move(fn), api)) return record(e);
    if (!blocking || kind == cudaMemcpyDeviceToDevice) return cudaSuccess;
    return record(run_to(s, s->enqueued));
}

cudaError_t memset_on(const char *api, void *p, int value, size_t n, cudaStream_t stream)
{
    entry lock;
    if (cudaError_t e = devices[cur_dev].sticky) return record(e);
    if (!n) return cudaSuccess;
    if (cudaError_t e = check_side(api, "destination", p, n, true, nullptr)) return e;
    cudaError_t err;
    auto s = resolve(stream, api, &err);
    if (!s) return err;
    trace_copy(cur_dev, trace_stream(s.get(), s->legacy), "memset", (double)n, false, false, trace_graph(*s));
    if (dryrun()) return record(submit(s, nullptr, api));
    return record(submit(s, [=] { memset(p, value, n); return cudaSuccess; }, api));
}

const char *err_text(cudaError_t e, bool text)
{
    switch (e) {
#define E(code, str)                                                                               \
    case code: return text ? str : #code;
    E(cudaSuccess, "no error")
    E(cudaErrorInvalidValue, "invalid argument")
    E(cudaErrorMemoryAllocation, "out of memory")
    E(cudaErrorInitializationError, "initialization error")
    E(cudaErrorInvalidConfiguration, "invalid configuration argument")
    E(cudaErrorInvalidPitchValue, "invalid pitch argument")
    E(cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy")
    E(cudaErrorInvalidDevice, "invalid device ordinal")
    E(cudaErrorInvalidResourceHandle, "invalid resource handle")
    E(cudaErrorIllegalState, "the operation cannot be performed in the present state")
    E(cudaErrorNotReady, "device not ready")
    E(cudaErrorIllegalAddress, "an illegal memory access was encountered")
    E(cudaErrorMisalignedAddress, "misaligned address")
    E(cudaErrorLaunchFailure, "unspecified launch failure")
    E(cudaErrorPeerAccessAlreadyEnabled, "peer access is already enabled")
    E(cudaErrorPeerAccessNotEnabled, "peer access has not been enabled")
    E(cudaErrorNotSupported, "operation not supported")
    E(cudaErrorStreamCaptureUnsupported, "operation not permitted when stream is capturing")
    E(cudaErrorStreamCaptureInvalidated, "operation failed due to a previous error during capture")
    E(cudaErrorStreamCaptureUnmatched, "capture was not ended in the same stream as it began")
    E(cudaErrorStreamCaptureUnjoined, "capturing stream has unjoined work")
    E(cudaErrorStreamCaptureIsolation, "dependency created on uncaptured work in another stream")
    E(cudaErrorStreamCaptureImplicit, "operation would make the legacy stream depend on a capturing blocking stream")
    E(cudaErrorStreamCaptureWrongThread, "attempt to terminate a thread-local capture sequence from another thread")
#undef E
    default: return text ? "unrecognized error code" : "cudaErrorUnknown";
    }
}

} // namespace

/* ---- entry points for cuemu.h and the library shims ---- */

namespace cuemu {
namespace detail {

void launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, const kernel_info &info,
            std::shared_ptr<void> args, void (*body)(void *))
{
    entry lock;
    struct drop_cost { /* a rejected launch's CUEMU_COST must not go to the next one */
        ~drop_cost() { trace_drop_cost(); }
    } drop;
    char api[256];
    snprintf(api, sizeof api, "launch of %s at %s:%d", info.name, info.file, info.line);
    device_s &d = devices[cur_dev];
    if (d.sticky) {
        record(d.sticky);
        return;
    }
    uint64_t threads = (uint64_t)block.x * block.y * block.z;
    if (!block.x || !block.y || !block.z || block.x > 1024 || block.y > 1024 || block.z > 64 || threads > 1024) {
        reject(cudaErrorInvalidConfiguration, api, "block (%u,%u,%u)", block.x, block.y, block.z);
        return;
    }
    if (!grid.x || !grid.y || !grid.z || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        reject(cudaErrorInvalidConfiguration, api, "grid (%u,%u,%u)", grid.x, grid.y, grid.z);
        return;
    }
    if (smem > DEFAULT_SMEM) {
        auto it = d.max_dynamic_smem.find(info.func);
        int allowed = it == d.max_dynamic_smem.end() ? (int)DEFAULT_SMEM : it->second;
        if (smem > (size_t)allowed) {
            reject(cudaErrorInvalidValue, api,
                   "%zu bytes of dynamic shared memory, above the %d allowed (raise it with "
                   "cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes))",
                   smem, allowed);
            return;
        }
    }
    cudaError_t err;
    auto s = resolve(stream, api, &err);
    if (!s) return;
    if (s->device != cur_dev) {
        reject(cudaErrorInvalidResourceHandle, api, "stream belongs to device %d, current device is %d", s->device,
               cur_dev);
        return;
    }
    kernel_info k = info;
    if (s->cap) { /* captured: counted as launched (CUEMU_FAIL, CUEMU_STATS) each time its graph is */
        s->cap->graph->kernels++;
    } else if (++d.launches == d.fail_at_launch) { /* CUEMU_FAIL: this device dies here, as a GPU can */
        const long at = d.launches;
        record(submit(s, [=] {
            fprintf(stderr, "cuemu: device %d fails at its launch %ld (%s), as CUEMU_FAIL asks\n", s->device, at,
                    k.name);
            return cudaErrorLaunchFailure;
        }, api));
        return;
    }
    const uint64_t id = trace_launch(info, grid, block, smem, cur_dev, trace_stream(s.get(), s->legacy), trace_graph(*s));
    if (dryrun()) {
        record(submit(s, nullptr, api));
        return;
    }
    record(submit(s, [=] {
        count_begin();
        bool ok = run_grid(grid, block, smem, k, body, args.get());
        count_end(id);
        return ok ? cudaSuccess : cudaErrorLaunchFailure;
    }, api));
}

cudaError_t enqueue_on(cudaStream_t stream, int device, std::function<cudaError_t()> fn, uint64_t *pos)
{
    entry lock;
    if (!valid_device(device)) return reject(cudaErrorInvalidDevice, "collective", "device %d", device);
    if (cudaError_t e = devices[device].sticky) return record(e);
    if (stream == nullptr || stream == cudaStreamLegacy) stream = devices[device].legacy.get();
    cudaError_t err;
    auto s = resolve(stream, "collective", &err);
    if (!s) return err;
    if (s->device != device)
        return reject(cudaErrorInvalidResourceHandle, "collective", "stream belongs to device %d, the communicator to %d",
                      s->device, device);
    if (s->cap) return reject(cudaErrorStreamCaptureUnsupported, "collective", "collectives in a captured stream are not emulated");
    *pos = s->enqueued;
    return record(submit(s, std::move(fn), "collective", {}, true));
}

cudaError_t run_stream_to(cudaStream_t stream, int device, uint64_t pos)
{
    entry lock;
    if (stream == nullptr || stream == cudaStreamLegacy) return run_to(devices[device].legacy, pos);
    auto it = streams.find(stream);
    if (it == streams.end())
        return reject(cudaErrorInvalidResourceHandle, "collective", "stream %p does not exist", (void *)stream);
    return run_to(it->second, pos);
}

cudaError_t enqueue(cudaStream_t stream, std::function<cudaError_t()> fn)
{
    entry lock;
    if (cudaError_t e = devices[cur_dev].sticky) return record(e);
    cudaError_t err;
    auto s = resolve(stream, "library call", &err);
    if (!s) return err;
    if (s->device != cur_dev)
        return reject(cudaErrorInvalidResourceHandle, "library call", "stream belongs to device %d, current device is %d",
                      s->device, cur_dev);
    return record(submit(s, std::move(fn), "library call"));
}

bool memory_extent(uintptr_t a, uintptr_t *lo, uintptr_t *hi)
{
    auto *al = find_alloc((const void *)a);
    if (!al) return false;
    *lo = al->first;
    *hi = al->first + al->second.size;
    return true;
}

cudaError_t enqueue_library(cudaStream_t stream, const char *op, double flops, double rd, double wr, const char *shape,
                            std::function<cudaError_t()> fn)
{
    entry lock;
    if (cudaError_t e = devices[cur_dev].sticky) return record(e);
    cudaError_t err;
    auto s = resolve(stream, "library call", &err);
    if (!s) return err;
    if (s->device == cur_dev)
        trace_library(cur_dev, trace_stream(s.get(), s->legacy), op, flops, rd, wr, shape, trace_graph(*s));
    return enqueue(stream, dryrun() ? nullptr : std::move(fn));
}

bool device_range(const void *p, size_t bytes, const char *what)
{
    entry lock;
    auto *a = find_alloc(p);
    if (!a || a->second.pinned) {
        fprintf(stderr, "cuemu: %s: %p is not device memory (illegal address)\n", what, p);
        return false;
    }
    if ((uintptr_t)p + bytes > a->first + a->second.size) {
        fprintf(stderr, "cuemu: %s: %zu bytes at offset %zu overrun the %zu-byte allocation (illegal address)\n", what,
                bytes, (size_t)((uintptr_t)p - a->first), a->second.size);
        return false;
    }
    return true;
}

bool is_device_memory(const void *p)
{
    entry lock;
    return is_device(p);
}

int current_device()
{
    return cur_dev;
}

cudaError_t reject_call(cudaError_t e, const char *api, const char *why)
{
    entry lock;
    return reject(e, api, "%s", why);
}

} // namespace detail
} // namespace cuemu

/* ---- errors ---- */

cudaError_t cudaGetLastError(void)
{
    entry lock;
    cudaError_t e = last_error;
    last_error = devices[cur_dev].sticky;
    return e ? e : devices[cur_dev].sticky;
}

cudaError_t cudaPeekAtLastError(void)
{
    entry lock;
    return last_error ? last_error : devices[cur_dev].sticky;
}

const char *cudaGetErrorName(cudaError_t e) { return err_text(e, false); }
const char *cudaGetErrorString(cudaError_t e) { return err_text(e, true); }

/* ---- devices ---- */

cudaError_t cudaGetDeviceCount(int *count)
{
    entry lock;
    if (!count) return record(cudaErrorInvalidValue);
    *count = (int)devices.size();
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    entry lock;
    if (!valid_device(device)) return reject(cudaErrorInvalidDevice, "cudaSetDevice", "device %d", device);
    cur_dev = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    if (!device) return record(cudaErrorInvalidValue);
    *device = cur_dev;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device)
{
    entry lock;
    if (!p) return record(cudaErrorInvalidValue);
    if (!valid_device(device)) return reject(cudaErrorInvalidDevice, "cudaGetDeviceProperties", "device %d", device);
    /* An H100-like device: what kernels and launch checks assume (sm_90 limits). */
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cuemu emulated GPU %d (sm_90 limits)", device);
    p->totalGlobalMem = devices[device].budget;
    p->sharedMemPerBlock = DEFAULT_SMEM;
    p->sharedMemPerBlockOptin = SMEM_OPTIN;
    p->sharedMemPerMultiprocessor = 233472;
    p->regsPerBlock = 65536;
    p->regsPerMultiprocessor = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 132;
    p->maxThreadsPerMultiProcessor = 2048;
    p->maxBlocksPerMultiProcessor = 32;
    p->l2CacheSize = 50 << 20;
    p->memoryBusWidth = 5120;
    p->memPitch = SIZE_MAX;
    p->textureAlignment = 512;
    p->unifiedAddressing = 1;
    p->concurrentKernels = 1;
    p->asyncEngineCount = 2;
    p->canMapHostMemory = 1;
    p->pciBusID = device;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device)
{
    cudaDeviceProp p;
    if (cudaError_t e = cudaGetDeviceProperties(&p, device)) return e;
    if (!value) return record(cudaErrorInvalidValue);
    switch (enum_value(attr)) {
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)p.sharedMemPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)p.sharedMemPerBlockOptin; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = (int)p.sharedMemPerMultiprocessor; break;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrWarpSize: *value = p.warpSize; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = p.maxThreadsPerMultiProcessor; break;
    case cudaDevAttrL2CacheSize: *value = p.l2CacheSize; break;
    default:
        entry lock;
        return reject(cudaErrorNotSupported, "cudaDeviceGetAttribute", "attribute %d is not emulated", enum_value(attr));
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    entry lock;
    if (cudaError_t e = capture_guard("cudaDeviceSynchronize")) return e;
    return record(run_device(cur_dev));
}

/* Like the real call: everything of the current device is destroyed, including the sticky
 * error, allocations, streams and events; host pointers to that memory become dangling. */
cudaError_t cudaDeviceReset(void)
{
    entry lock;
    int d = cur_dev;
    drop_queued(d);
    for (auto it = allocs.begin(); it != allocs.end();) {
        if (!it->second.pinned && it->second.device == d) {
            free((void *)it->first);
            it = allocs.erase(it);
        } else {
            ++it;
        }
    }
    for (auto it = streams.begin(); it != streams.end();) it = it->second->device == d ? streams.erase(it) : std::next(it);
    for (auto it = events.begin(); it != events.end();) it = it->second->device == d ? events.erase(it) : std::next(it);
    for (auto it = captures.begin(); it != captures.end();)
        it = (*it)->graph->device == d ? captures.erase(it) : std::next(it);
    device_s &dev = devices[d];
    dev.legacy = new_stream(d, true, true);
    dev.sticky = cudaSuccess;
    dev.used = 0;
    dev.max_dynamic_smem.clear();
    dev.peer.assign(devices.size(), false);
    last_error = cudaSuccess;
    return cudaSuccess;
}

cudaError_t cudaDeviceCanAccessPeer(int *can, int device, int peer)
{
    entry lock;
    if (!can) return record(cudaErrorInvalidValue);
    if (!valid_device(device) || !valid_device(peer))
        return reject(cudaErrorInvalidDevice, "cudaDeviceCanAccessPeer", "device %d, peer %d", device, peer);
    *can = device != peer;
    return cudaSuccess;
}

cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned int flags)
{
    entry lock;
    if (flags) return reject(cudaErrorInvalidValue, "cudaDeviceEnablePeerAccess", "flags must be 0");
    if (!valid_device(peer) || peer == cur_dev)
        return reject(cudaErrorInvalidDevice, "cudaDeviceEnablePeerAccess", "peer %d from device %d", peer, cur_dev);
    if (devices[cur_dev].peer[peer]) return record(cudaErrorPeerAccessAlreadyEnabled);
    devices[cur_dev].peer[peer] = true;
    return cudaSuccess;
}

cudaError_t cudaDeviceDisablePeerAccess(int peer)
{
    entry lock;
    if (!valid_device(peer) || peer == cur_dev)
        return reject(cudaErrorInvalidDevice, "cudaDeviceDisablePeerAccess", "peer %d from device %d", peer, cur_dev);
    if (!devices[cur_dev].peer[peer]) return record(cudaErrorPeerAccessNotEnabled);
    devices[cur_dev].peer[peer] = false;
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value)
{
    entry lock;
    if (!func) return reject(cudaErrorInvalidDeviceFunction, "cudaFuncSetAttribute", "null function");
    int a = enum_value(attr);
    if (a == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || value > SMEM_OPTIN)
            return reject(cudaErrorInvalidValue, "cudaFuncSetAttribute", "MaxDynamicSharedMemorySize %d outside [0, %d]",
                          value, SMEM_OPTIN);
        devices[cur_dev].max_dynamic_smem[func] = value;
        return cudaSuccess;
    }
    if (a == cudaFuncAttributePreferredSharedMemoryCarveout) {
        if (value < -1 || value > 100)
            return reject(cudaErrorInvalidValue, "cudaFuncSetAttribute", "carveout %d outside [-1, 100]", value);
        return cudaSuccess;
    }
    return reject(cudaErrorNotSupported, "cudaFuncSetAttribute", "attribute %d is not emulated", a);
}

cudaError_t cudaRuntimeGetVersion(int *v)
{
    if (!v) return record(cudaErrorInvalidValue);
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v)
{
    if (!v) return record(cudaErrorInvalidValue);
    *v = CUDART_VERSION;
    return cudaSuccess;
}

/* ---- memory ---- */

cudaError_t cudaMalloc(void **p, size_t size)
{
    entry lock;
    if (cudaError_t e = capture_guard("cudaMalloc")) return e;
    device_s &d = devices[cur_dev];
    if (d.sticky) return record(d.sticky);
    if (!p) return record(cudaErrorInvalidValue);
    *p = nullptr;
    if (!size) return cudaSuccess;
    if (size > d.budget - d.used)
        return reject(cudaErrorMemoryAllocation, "cudaMalloc",
                      "%zu bytes requested, %zu of the emulated %zu MiB free (CUEMU_DEVICE_MEM_MB)", size,
                      d.budget - d.used, d.budget >> 20);
    void *m;
    const bool mapped = dryrun();
    if (mapped) { /* untouched, so a real model's memory costs nothing: it reads as zeros */
        m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return reject(cudaErrorMemoryAllocation, "cudaMalloc", "mmap failed");
    } else {
        if (posix_memalign(&m, 256, size))
            return reject(cudaErrorMemoryAllocation, "cudaMalloc", "host allocation failed");
        /* Exact size, so ASan sees the first byte past the end; 0xFF because device memory is not zeroed. */
        memset(m, 0xff, size);
    }
    allocs[(uintptr_t)m] = {size, cur_dev, false, mapped};
    d.used += size;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    entry lock;
    if (cudaError_t e = capture_guard("cudaFree")) return e;
    if (!p) return cudaSuccess;
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end() || it->second.pinned)
        return reject(cudaErrorInvalidValue, "cudaFree", "%p was not returned by cudaMalloc%s", p,
                      it != allocs.end() ? " but by cudaMallocHost" : find_alloc(p) ? " (it points inside an allocation)" : "");
    /* cudaFree waits for the device, so queued work still using the memory completes first. */
    int d = it->second.device;
    trace_sync(d, -1, "cudaFree");
    if (cudaError_t e = run_device(d)) return record(e);
    devices[d].used -= it->second.size;
    if (it->second.mapped) munmap(p, it->second.size);
    else free(p);
    allocs.erase(it);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t size)
{
    entry lock;
    if (cudaError_t e = capture_guard("cudaMallocHost")) return e;
    if (!p) return record(cudaErrorInvalidValue);
    *p = nullptr;
    if (!size) return cudaSuccess;
    void *m;
    if (posix_memalign(&m, 256, size)) return reject(cudaErrorMemoryAllocation, "cudaMallocHost", "%zu bytes", size);
    memset(m, 0xff, size);
    allocs[(uintptr_t)m] = {size, cur_dev, true, false};
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p)
{
    entry lock;
    if (cudaError_t e = capture_guard("cudaFreeHost")) return e;
    if (!p) return cudaSuccess;
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end() || !it->second.pinned)
        return reject(cudaErrorInvalidValue, "cudaFreeHost", "%p was not returned by cudaMallocHost", p);
    /* any device's queued work may still read it; a fault of another device is that device's
     * context's error, not this call's */
    for (size_t d = 0; d < devices.size(); d++)
        if (cudaError_t e = run_device((int)d); e && (int)d == cur_dev) return record(e);
    free(p);
    allocs.erase(it);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
    entry lock;
    if (!free_bytes || !total) return record(cudaErrorInvalidValue);
    *total = devices[cur_dev].budget;
    *free_bytes = devices[cur_dev].budget - devices[cur_dev].used;
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
    return memcpy_2d("cudaMemcpy", dst, n, src, n, n, 1, enum_value(kind), nullptr, true);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t stream)
{
    return memcpy_2d("cudaMemcpyAsync", dst, n, src, n, n, 1, enum_value(kind), stream, false);
}

cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind)
{
    return memcpy_2d("cudaMemcpy2D", dst, dpitch, src, spitch, width, height, enum_value(kind), nullptr, true);
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream)
{
    return memcpy_2d("cudaMemcpy2DAsync", dst, dpitch, src, spitch, width, height, enum_value(kind), stream, false);
}

cudaError_t cudaMemset(void *p, int value, size_t n)
{
    return memset_on("cudaMemset", p, value, n, nullptr);
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t n, cudaStream_t stream)
{
    return memset_on("cudaMemsetAsync", p, value, n, stream);
}

/* __constant__ variables are host globals here, so the symbol is its own address. */
cudaError_t cudaMemcpyToSymbol(const void *symbol, const void *src, size_t count, size_t offset, cudaMemcpyKind kind)
{
    int k = enum_value(kind);
    if (k != cudaMemcpyHostToDevice && k != cudaMemcpyDeviceToDevice)
        return cuemu::detail::reject_call(cudaErrorInvalidMemcpyDirection, "cudaMemcpyToSymbol",
                                          "kind must be host-to-device or device-to-device");
    entry lock;
    if (cudaError_t e = capture_guard("cudaMemcpyToSymbol")) return e;
    if (cudaError_t e = devices[cur_dev].sticky) return record(e);
    if (k == cudaMemcpyDeviceToDevice)
        if (cudaError_t e = check_side("cudaMemcpyToSymbol", "source", src, count, true, nullptr)) return e;
    work_fn fn = copy_2d((char *)symbol + offset, count, source_of(src, count, k == cudaMemcpyHostToDevice), count,
                         count, 1);
    auto &l = devices[cur_dev].legacy;
    if (cudaError_t e = submit(l, std::move(fn), "cudaMemcpyToSymbol")) return record(e);
    return record(run_to(l, l->enqueued));
}

/* Both pointers must be device memory of the devices the arguments name. */
static cudaError_t check_peer(const char *api, void *dst, int dst_dev, const void *src, int src_dev, size_t n)
{
    if (!valid_device(dst_dev) || !valid_device(src_dev))
        return reject(cudaErrorInvalidDevice, api, "devices %d <- %d", dst_dev, src_dev);
    if (cudaError_t e = devices[cur_dev].sticky) return record(e);
    if (!n) return cudaSuccess;
    int dd, sd;
    if (cudaError_t e = check_side(api, "destination", dst, n, true, &dd)) return e;
    if (cudaError_t e = check_side(api, "source", src, n, true, &sd)) return e;
    if (dd != dst_dev || sd != src_dev)
        return reject(cudaErrorInvalidValue, api, "pointers are on devices %d <- %d, arguments say %d <- %d", dd, sd,
                      dst_dev, src_dev);
    return cudaSuccess;
}

cudaError_t cudaMemcpyPeerAsync(void *dst, int dst_dev, const void *src, int src_dev, size_t n, cudaStream_t stream)
{
    entry lock;
    if (cudaError_t e = check_peer("cudaMemcpyPeerAsync", dst, dst_dev, src, src_dev, n)) return e;
    if (!n) return cudaSuccess;
    cudaError_t err;
    auto s = resolve(stream, "cudaMemcpyPeerAsync", &err);
    if (!s) return err;
    return record(submit(s, [=] { memcpy(dst, src, n); return cudaSuccess; }, "cudaMemcpyPeerAsync"));
}

/* Serialised with all work of the current, source and destination devices, as the real call is. */
cudaError_t cudaMemcpyPeer(void *dst, int dst_dev, const void *src, int src_dev, size_t n)
{
    entry lock;
    if (cudaError_t e = capture_guard("cudaMemcpyPeer")) return e;
    if (cudaError_t e = check_peer("cudaMemcpyPeer", dst, dst_dev, src, src_dev, n)) return e;
    for (int d : {cur_dev, src_dev, dst_dev})
        if (cudaError_t e = run_device(d)) return record(e);
    memcpy(dst, src, n);
    return cudaSuccess;
}

/* ---- streams ---- */

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags)
{
    entry lock;
    if (!s || (flags & ~cudaStreamNonBlocking)) return record(cudaErrorInvalidValue);
    if (cudaError_t e = devices[cur_dev].sticky) return record(e);
    auto st = new_stream(cur_dev, false, !(flags & cudaStreamNonBlocking));
    streams[st.get()] = st;
    *s = st.get();
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
    return cudaStreamCreateWithFlags(s, cudaStreamDefault);
}

/* Queued work still runs, as the real runtime completes it after the handle is gone. */
cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    entry lock;
    auto it = streams.find(stream);
    if (it == streams.end())
        return reject(cudaErrorInvalidResourceHandle, "cudaStreamDestroy", "stream %p does not exist", (void *)stream);
    auto s = it->second;
    if (s->cap) {
        invalidate(*s->cap, "cudaStreamDestroy", "a capturing stream was destroyed");
        return record(cudaErrorStreamCaptureUnsupported);
    }
    cudaError_t e = run_to(s, s->enqueued);
    streams.erase(it);
    return record(e);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    entry lock;
    cudaError_t err;
    auto s = resolve(stream, "cudaStreamSynchronize", &err);
    if (!s) return err;
    if (s->cap) {
        invalidate(*s->cap, "cudaStreamSynchronize", "synchronising a capturing stream");
        return record(cudaErrorStreamCaptureUnsupported);
    }
    if (cudaError_t e = capture_guard("cudaStreamSynchronize")) return e;
    trace_sync(s->device, trace_stream(s.get(), s->legacy), "cudaStreamSynchronize");
    return record(run_to(s, s->enqueued));
}

/* Unfinished work is reported once as not ready and then completed, so polling loops end. */
cudaError_t cudaStreamQuery(cudaStream_t stream)
{
    entry lock;
    cudaError_t err;
    auto s = resolve(stream, "cudaStreamQuery", &err);
    if (!s) return err;
    if (s->cap) {
        invalidate(*s->cap, "cudaStreamQuery", "querying a capturing stream");
        return record(cudaErrorStreamCaptureUnsupported);
    }
    if (cudaError_t e = capture_guard("cudaStreamQuery")) return e;
    trace_sync(s->device, trace_stream(s.get(), s->legacy), "cudaStreamQuery");
    if (s->done == s->enqueued) return record(devices[s->device].sticky);
    if (cudaError_t e = run_to(s, s->enqueued)) return record(e);
    return cudaErrorNotReady;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags)
{
    entry lock;
    const char *api = "cudaStreamWaitEvent";
    cudaError_t err;
    auto s = resolve(stream, api, &err);
    if (!s) return err;
    auto ev = find_event(event);
    if (!ev) return reject(cudaErrorInvalidResourceHandle, api, "event %p does not exist", (void *)event);
    if (flags) return reject(cudaErrorInvalidValue, api, "flags must be 0");
    if (ev->cap) {
        /* An event recorded during a capture forks the capture into this stream, or joins it. */
        capture_s &c = *ev->cap;
        if (!c.active) return reject(cudaErrorStreamCaptureIsolation, api, "the event was recorded in an ended capture");
        if (s->cap && s->cap != ev->cap) return reject(cudaErrorStreamCaptureIsolation, api, "two different captures");
        if (s->legacy) return reject(cudaErrorStreamCaptureImplicit, api, "the legacy stream cannot join a capture");
        if (!s->cap) {
            s->cap = ev->cap;
            c.members.push_back(s.get());
            s->tail.clear();
        }
        for (size_t n : ev->cap_nodes)
            if (std::find(s->tail.begin(), s->tail.end(), n) == s->tail.end()) s->tail.push_back(n);
        return cudaSuccess;
    }
    if (s->cap) {
        invalidate(*s->cap, api, "a capturing stream waits for an event recorded outside the capture");
        return record(cudaErrorStreamCaptureIsolation);
    }
    trace_event(s->device, trace_stream(s.get(), s->legacy), "wait", ev.get());
    if (!ev->stream) return cudaSuccess;
    return record(submit(s, nullptr, api, {{ev->stream, ev->seq}}));
}

/* ---- events ---- */

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags)
{
    entry lock;
    if (!e || (flags & ~(cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess)))
        return record(cudaErrorInvalidValue);
    if (flags & cudaEventInterprocess) return reject(cudaErrorNotSupported, "cudaEventCreate", "interprocess events");
    auto ev = std::make_shared<CUevent_st>();
    ev->device = cur_dev;
    ev->flags = flags;
    ev->seq = ev->gen = 0;
    ev->ms = 0;
    events[ev.get()] = ev;
    *e = ev.get();
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *e)
{
    return cudaEventCreateWithFlags(e, cudaEventDefault);
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    entry lock;
    if (!events.erase(e))
        return reject(cudaErrorInvalidResourceHandle, "cudaEventDestroy", "event %p does not exist", (void *)e);
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
    entry lock;
    const char *api = "cudaEventRecord";
    cudaError_t err;
    auto s = resolve(stream, api, &err);
    if (!s) return err;
    auto ev = find_event(event);
    if (!ev) return reject(cudaErrorInvalidResourceHandle, api, "event %p does not exist", (void *)event);
    if (ev->device != s->device)
        return reject(cudaErrorInvalidResourceHandle, api, "event of device %d, stream of device %d", ev->device,
                      s->device);
    if (cudaError_t e = devices[s->device].sticky) return record(e);
    if (s->cap) {
        if (s->cap->invalidated) return record(cudaErrorStreamCaptureInvalidated);
        ev->cap = s->cap;
        ev->cap_nodes = s->tail;
        ev->stream = nullptr;
        return cudaSuccess;
    }
    ev->cap = nullptr;
    trace_event(s->device, trace_stream(s.get(), s->legacy), "record", ev.get());
    uint64_t gen = ++ev->gen;
    ev->stream = s;
    ev->seq = s->enqueued + 1;
    cudaError_t e = submit(s, [ev, gen] {
        if (ev->gen == gen) ev->ms = now_ms();
        return cudaSuccess;
    }, api);
    if (s->enqueued < ev->seq) ev->stream = nullptr; /* not queued */
    return record(e);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
    entry lock;
    auto ev = find_event(event);
    if (!ev) return reject(cudaErrorInvalidResourceHandle, "cudaEventSynchronize", "event %p does not exist", (void *)event);
    if (ev->cap) return reject(cudaErrorStreamCaptureUnsupported, "cudaEventSynchronize", "the event was recorded in a capture");
    if (cudaError_t e = capture_guard("cudaEventSynchronize")) return e;
    trace_event(ev->device, -1, "sync", ev.get());
    if (!ev->stream) return cudaSuccess;
    return record(run_to(ev->stream, ev->seq));
}

cudaError_t cudaEventQuery(cudaEvent_t event)
{
    entry lock;
    auto ev = find_event(event);
    if (!ev) return reject(cudaErrorInvalidResourceHandle, "cudaEventQuery", "event %p does not exist", (void *)event);
    if (ev->cap) return reject(cudaErrorStreamCaptureUnsupported, "cudaEventQuery", "the event was recorded in a capture");
    if (cudaError_t e = capture_guard("cudaEventQuery")) return e;
    trace_event(ev->device, -1, "sync", ev.get());
    if (!ev->stream || ev->stream->done >= ev->seq) return record(devices[ev->device].sticky);
    if (cudaError_t e = run_to(ev->stream, ev->seq)) return record(e);
    return cudaErrorNotReady;
}

/* Measures the emulator, not a GPU. */
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    entry lock;
    const char *api = "cudaEventElapsedTime";
    auto a = find_event(start), b = find_event(end);
    if (!ms || !a || !b) return reject(cudaErrorInvalidResourceHandle, api, "missing event");
    if (a->device != b->device) return reject(cudaErrorInvalidResourceHandle, api, "events of two devices");
    if ((a->flags | b->flags) & cudaEventDisableTiming)
        return reject(cudaErrorInvalidResourceHandle, api, "event created with cudaEventDisableTiming");
    if (!a->stream || !b->stream) return reject(cudaErrorInvalidResourceHandle, api, "event never recorded");
    if (a->stream->done < a->seq || b->stream->done < b->seq) return cudaErrorNotReady;
    *ms = (float)(b->ms - a->ms);
    return cudaSuccess;
}

/* ---- stream capture and graphs ---- */

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode)
{
    entry lock;
    const char *api = "cudaStreamBeginCapture";
    cudaError_t err;
    auto s = resolve(stream, api, &err);
    if (!s) return err;
    if (s->legacy) return reject(cudaErrorStreamCaptureUnsupported, api, "the legacy default stream cannot be captured");
    if (s->cap) return reject(cudaErrorIllegalState, api, "the stream is already capturing");
    int m = enum_value(mode);
    if (m != cudaStreamCaptureModeGlobal && m != cudaStreamCaptureModeThreadLocal && m != cudaStreamCaptureModeRelaxed)
        return record(cudaErrorInvalidValue);
    auto c = std::make_shared<capture_s>();
    c->graph = std::make_unique<CUgraph_st>();
    c->graph->device = s->device;
    static int captures_begun = 0;
    c->graph->trace_id = ++captures_begun;
    c->origin = s.get();
    c->mode = mode;
    c->thread = std::this_thread::get_id();
    c->active = true;
    c->invalidated = false;
    c->members = {s.get()};
    s->cap = c;
    s->tail.clear();
    captures.push_back(c);
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    entry lock;
    const char *api = "cudaStreamEndCapture";
    cudaError_t err;
    auto s = resolve(stream, api, &err);
    if (!s) return err;
    if (!graph) return record(cudaErrorInvalidValue);
    *graph = nullptr;
    if (!s->cap) return reject(cudaErrorIllegalState, api, "the stream is not capturing");
    auto c = s->cap;
    if (c->origin != s.get()) return reject(cudaErrorStreamCaptureUnmatched, api, "the capture began on another stream");
    if (c->mode != cudaStreamCaptureModeRelaxed && c->thread != std::this_thread::get_id())
        return reject(cudaErrorStreamCaptureWrongThread, api, "ended by another thread");
    /* Every captured node must lead to the origin stream's tail: forked streams rejoined. */
    std::vector<bool> joined(c->graph->nodes.size(), false);
    std::vector<size_t> todo = s->tail;
    while (!todo.empty()) {
        size_t n = todo.back();
        todo.pop_back();
        if (joined[n]) continue;
        joined[n] = true;
        for (size_t d : c->graph->nodes[n].deps) todo.push_back(d);
    }
    for (CUstream_st *m : c->members) {
        m->cap = nullptr;
        m->tail.clear();
    }
    c->active = false;
    captures.erase(std::find(captures.begin(), captures.end(), c));
    if (c->invalidated || ++captures_ended == capture_fail_at) return record(cudaErrorStreamCaptureInvalidated);
    if (std::find(joined.begin(), joined.end(), false) != joined.end())
        return reject(cudaErrorStreamCaptureUnjoined, api, "a forked stream was not joined back into the origin stream");
    CUgraph_st *g = c->graph.get();
    graphs[g] = std::move(c->graph);
    *graph = g;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus *status)
{
    entry lock;
    cudaError_t err;
    auto s = resolve(stream, "cudaStreamIsCapturing", &err);
    if (!s) return err;
    if (!status) return record(cudaErrorInvalidValue);
    *status = !s->cap ? cudaStreamCaptureStatusNone
              : s->cap->invalidated ? cudaStreamCaptureStatusInvalidated
                                    : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    entry lock;
    auto it = graphs.find(graph);
    if (!exec || it == graphs.end()) return reject(cudaErrorInvalidValue, "cudaGraphInstantiate", "no such graph");
    if (flags) return reject(cudaErrorNotSupported, "cudaGraphInstantiate", "flags %llu are not emulated", flags);
    auto x = std::make_unique<CUgraphExec_st>();
    x->device = it->second->device;
    x->trace_id = it->second->trace_id;
    x->kernels = it->second->kernels;
    x->ops = std::make_shared<std::vector<work_fn>>();
    for (auto &n : it->second->nodes) x->ops->push_back(n.run);
    *exec = x.get();
    execs[x.get()] = std::move(x);
    return cudaSuccess;
}

/* Replays the captured work in capture order (a topological order of the graph), reading
 * pinned host buffers and kernel arguments as they are at replay time. */
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
    entry lock;
    const char *api = "cudaGraphLaunch";
    auto it = execs.find(exec);
    if (it == execs.end()) return reject(cudaErrorInvalidResourceHandle, api, "no such executable graph");
    cudaError_t err;
    auto s = resolve(stream, api, &err);
    if (!s) return err;
    if (s->device != it->second->device)
        return reject(cudaErrorInvalidValue, api, "graph of device %d launched on device %d", it->second->device,
                      s->device);
    if (cudaError_t e = devices[s->device].sticky) return record(e);
    device_s &d = devices[s->device];
    d.graph_launches++;
    trace_graph_launch(s->device, trace_stream(s.get(), s->legacy), it->second->trace_id, it->second->ops->size());
    const long first = d.launches + 1;
    d.launches += it->second->kernels;
    if (d.fail_at_launch >= first && d.fail_at_launch <= d.launches) { /* CUEMU_FAIL: a kernel of the graph */
        const long at = d.fail_at_launch;
        const int dev = s->device;
        return record(submit(s, [=] {
            fprintf(stderr, "cuemu: device %d fails at its launch %ld (in a graph), as CUEMU_FAIL asks\n", dev, at);
            return cudaErrorLaunchFailure;
        }, api));
    }
    auto ops = it->second->ops;
    return record(submit(s, [ops] {
        for (auto &op : *ops) /* a dry run's kernels and copies into device memory have none */
            if (cudaError_t e = op ? op() : cudaSuccess) return e;
        return cudaSuccess;
    }, api));
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    entry lock;
    if (!execs.erase(exec)) return reject(cudaErrorInvalidValue, "cudaGraphExecDestroy", "no such executable graph");
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    entry lock;
    if (!graphs.erase(graph)) return reject(cudaErrorInvalidValue, "cudaGraphDestroy", "no such graph");
    return cudaSuccess;
}
