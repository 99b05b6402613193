/* Race detector of the CUDA emulation, in the spirit of compute-sanitizer racecheck.
 *
 * Kernel code is compiled with clang's -fsanitize=thread instrumentation only (no TSan runtime is
 * linked): every load and store calls __tsan_readN / __tsan_writeN, defined here. While a block
 * runs with the detector on, each access outside the fiber's own stack is checked against a
 * shadow of the recent accesses to the same bytes, under GPU ordering rules:
 *
 * - two threads of one block are ordered by a __syncthreads (any form) between the accesses, and
 *   two lanes of one warp also by a warp collective that the warp completed between them (any
 *   *_sync intrinsic, __syncwarp): a block and a per-warp barrier counter, uniform over the block
 *   or warp, give each access its interval;
 * - threads of different blocks of one launch are not ordered, except through a release: a
 *   thread's __threadfence() followed by an atomic on an address, then an atomic on that address
 *   by a thread of a later block (the "last block" reduction). The acquiring thread sees the
 *   releasing block's accesses up to the fence at once, its block after the next __syncthreads;
 * - different launches are ordered (the shadow is cleared when a launch ends).
 *
 * A write and an access by another thread, unordered, not both atomic, is a race: reported once
 * per pair of source lines with kernel, block, both threads and both file:line, and the launch
 * fails with a sticky cudaErrorLaunchFailure like the emulator's other kernel errors.
 *
 * Shadow: per 8-byte granule, four cells (thread, block, intervals, bytes, read/write/atomic,
 * caller address), as in ThreadSanitizer; older cells are replaced when all four are in use, so a
 * race whose first access was evicted can be missed. Shared memory (the static __shared__ section
 * and the launch's dynamic buffer) has flat shadows whose cells belong to one block (the next
 * block reuses the addresses); global memory has a page table that lives for the launch. */
#include "racecheck.h"
#include "trace.h"

#include <link.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

extern "C" {
extern unsigned char __start_cuemu_shared[] __attribute__((weak));
extern unsigned char __stop_cuemu_shared[] __attribute__((weak));
}

namespace cuemu {
namespace detail {

std::atomic<const rc_thread *> rc_cur{nullptr};

namespace {

/* Set by __tsan_init, which every instrumented translation unit calls from a constructor that
 * may run before this file's dynamic initialisers: a plain zero-initialised global. */
bool instrumented;

enum : uint8_t { F_WRITE = 1, F_ATOMIC = 2 };

struct cell {
    uint32_t blk;      /* linear block index + 1 in the launch; 0: empty */
    uint16_t tid;      /* linear thread index in the block */
    uint8_t mask;      /* bytes of the granule */
    uint8_t flags;     /* F_WRITE, F_ATOMIC */
    uint32_t bep, wep; /* block and warp barrier intervals */
    uintptr_t pc;      /* return address of the hook: the access */
};

struct granule {
    cell c[4];
};

/* Global memory: 512 application bytes per shadow page. */
constexpr unsigned PAGE_SHIFT = 9;
constexpr unsigned PAGE_GRANULES = 1u << (PAGE_SHIFT - 3);
struct page {
    granule g[PAGE_GRANULES];
};

struct page_table {
    std::unordered_map<uintptr_t, page *> map;
    std::vector<page *> used, spare;
    struct slot {
        uintptr_t key;
        page *p;
    } cache[1024];

    granule *get(uintptr_t ga)
    {
        uintptr_t key = ga >> PAGE_SHIFT;
        slot &s = cache[key & 1023];
        if (!s.p || s.key != key) {
            page *&p = map[key];
            if (!p) {
                if (spare.empty()) {
                    p = (page *)calloc(1, sizeof(page));
                    if (!p) {
                        fprintf(stderr, "cuemu: race detector: out of memory\n");
                        abort();
                    }
                } else {
                    p = spare.back();
                    spare.pop_back();
                }
                used.push_back(p);
            }
            s = {key, p};
        }
        return &s.p->g[(ga >> 3) & (PAGE_GRANULES - 1)];
    }

    void clear()
    {
        for (page *p : used) {
            memset((void *)p, 0, sizeof *p);
            spare.push_back(p);
        }
        used.clear();
        map.clear();
        memset((void *)cache, 0, sizeof cache);
    }
};

/* Shared memory: one granule per 8 bytes of [base, base + size), the touched ones cleared when
 * the launch ends. */
struct flat {
    uintptr_t base = 0, size = 0, lo = 0;
    std::vector<granule> g;
    size_t dirty_lo = SIZE_MAX, dirty_hi = 0;

    void set(const void *p, size_t n)
    {
        base = (uintptr_t)p;
        size = p ? n : 0;
        lo = base & ~(uintptr_t)7;
        size_t need = size ? (base + size - lo + 7) / 8 : 0;
        if (g.size() < need) g.resize(need);
    }
    granule *get(uintptr_t ga)
    {
        size_t i = (ga - lo) >> 3;
        if (i >= g.size()) return nullptr;
        dirty_lo = std::min(dirty_lo, i);
        dirty_hi = std::max(dirty_hi, i + 1);
        return &g[i];
    }
    void clear()
    {
        if (dirty_lo < dirty_hi) memset((void *)&g[dirty_lo], 0, (dirty_hi - dirty_lo) * sizeof(granule));
        dirty_lo = SIZE_MAX;
        dirty_hi = 0;
    }
};

struct release {
    uint32_t blk, bep; /* accesses of block blk before interval bep, and the releasing thread's */
    uint16_t tid;
};

struct acquired {
    uint32_t rel_bep;
    uint16_t rel_tid, acq_tid;
    uint32_t acq_bep; /* the acquiring thread's interval: others see it after a __syncthreads */
};

struct race {
    uintptr_t addr;
    unsigned size;
    bool shared;
    uint16_t tid;
    uint8_t flags;
    uintptr_t pc;
    cell prev;
};

struct detector {
    bool env_read, enabled, abort_on_error;
    const kernel_info *info;
    dim3 grid, block;
    flat sstatic, sdynamic;
    page_table global;
    uint32_t blk, bep;
    std::vector<uint32_t> wep;   /* per warp */
    std::vector<uint32_t> fence; /* per thread: 1 + block interval of its last __threadfence, 0: none */
    std::unordered_map<uintptr_t, std::vector<release>> releases; /* by atomic address, per launch */
    std::unordered_map<uint32_t, acquired> acq;                   /* per block, by releasing block */
    std::vector<race> races;                                      /* this block's, to report */
    std::set<std::pair<uintptr_t, uintptr_t>> seen;               /* pairs of sites, per launch */
    std::set<std::string> printed;                                /* pairs of lines, per launch */
    bool block_racy;
    unsigned evict;
    std::unordered_map<uintptr_t, std::string> where_cache;
};

detector R;

const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- symbolisation of the access addresses (only when reporting) ---- */

struct object_lookup {
    uintptr_t pc;
    std::string name;
    uintptr_t bias;
    bool found;
};

int find_object(struct dl_phdr_info *info, size_t, void *data)
{
    object_lookup *o = (object_lookup *)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) &ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD) continue;
        uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
        if (o->pc - lo < ph.p_memsz) {
            o->name = info->dlpi_name ? info->dlpi_name : "";
            o->bias = info->dlpi_addr;
            o->found = true;
            return 1;
        }
    }
    return 0;
}

bool numeric(const char *s) { return *s && strspn(s, "0123456789") == strlen(s); }

/* Frames of code that only implements CUDA for the kernel: the emulation's headers and the CUDA
 * headers (bf16 operators ...). A report names the kernel line that called into them (wmma.h's
 * loads and stores are always inlined for that). */
bool helper_frame(const char *file)
{
    if (!strcmp(base_name(file), "cuemu.h") || !strcmp(base_name(file), "wmma.h")) return true;
#if defined(CUEMU_CUDA_INCLUDE_DIR)
    if (!strncmp(file, CUEMU_CUDA_INCLUDE_DIR "/", strlen(CUEMU_CUDA_INCLUDE_DIR) + 1)) return true;
#endif
    return false;
}

/* The innermost frame of `cmd`'s output (file:line[:column] lines, innermost inlined frame
 * first) outside helper_frame, or else the innermost, as "file:line". */
bool run_symbolizer(const std::string &cmd, std::string *out)
{
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return false;
    char line[4096];
    bool ok = false;
    std::string innermost;
    while (!ok && fgets(line, sizeof line, p)) {
        line[strcspn(line, "\r\n")] = 0;
        if (char *d = strstr(line, " (discriminator")) *d = 0; /* addr2line */
        char *c = strrchr(line, ':');
        if (!c || !numeric(c + 1)) continue;
        *c = 0;
        const char *lineno = c + 1;
        char *c2 = strrchr(line, ':');
        if (c2 && numeric(c2 + 1)) { /* file:line:column */
            *c2 = 0;
            lineno = c2 + 1;
        }
        if (!line[0] || line[0] == '?' || !strcmp(lineno, "0")) continue;
        std::string here = std::string(base_name(line)) + ":" + lineno;
        if (innermost.empty()) innermost = here;
        if (helper_frame(line)) continue;
        *out = here;
        ok = true;
    }
    pclose(p);
    if (!ok && !innermost.empty()) {
        *out = innermost;
        ok = true;
    }
    return ok;
}

std::string shell_quote(const std::string &s)
{
    std::string q = "'";
    for (char c : s) {
        if (c == '\'') q += "'\\''";
        else q += c;
    }
    return q + "'";
}

/* file:line of the access whose hook returned to pc (the call lies just before pc). */
const std::string &where(uintptr_t pc)
{
    auto it = R.where_cache.find(pc);
    if (it != R.where_cache.end()) return it->second;
    std::string &s = R.where_cache[pc];
    object_lookup o{pc - 1, "", 0, false};
    dl_iterate_phdr(find_object, &o);
    char buf[64];
    if (!o.found) {
        snprintf(buf, sizeof buf, "%#lx", (unsigned long)pc);
        return s = buf;
    }
    std::string path = o.name;
    if (path.empty()) { /* the executable: /proc/self/exe would name the symbolizer */
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = 0;
            path = exe;
        }
    }
    snprintf(buf, sizeof buf, "%#lx", (unsigned long)(o.pc - o.bias));
    const char *tools[] = {
#if defined(CUEMU_LLVM_SYMBOLIZER)
        CUEMU_LLVM_SYMBOLIZER,
#endif
        "llvm-symbolizer",
    };
    for (const char *tool : tools) {
        std::string cmd = shell_quote(tool) + " --obj=" + shell_quote(path) + " --functions=none " + buf + " 2>/dev/null";
        if (run_symbolizer(cmd, &s)) return s;
    }
    const char *a2l[] = {
#if defined(CUEMU_ADDR2LINE)
        CUEMU_ADDR2LINE,
#endif
        "addr2line",
    };
    for (const char *tool : a2l) {
        std::string cmd = shell_quote(tool) + " -i -e " + shell_quote(path) + " " + buf + " 2>/dev/null";
        if (run_symbolizer(cmd, &s)) return s;
    }
    return s = std::string(base_name(path.c_str())) + "+" + buf;
}

/* ---- reports ---- */

uint3 unlinear(uint64_t i, dim3 d)
{
    return make_uint3((unsigned)(i % d.x), (unsigned)(i / d.x % d.y), (unsigned)(i / ((uint64_t)d.x * d.y)));
}

const char *access_name(uint8_t flags)
{
    switch (flags & (F_WRITE | F_ATOMIC)) {
    case F_WRITE: return "write";
    case F_ATOMIC: return "atomic read";
    case F_WRITE | F_ATOMIC: return "atomic write";
    default: return "read";
    }
}

void print_race(const race &r)
{
    uint3 b = unlinear(R.blk - 1, R.grid), t = unlinear(r.tid, R.block), pt = unlinear(r.prev.tid, R.block);
    std::string here = where(r.pc), there = where(r.prev.pc);
    /* once per pair of source lines and kinds (unrolled code has several addresses per line) */
    std::string key = here < there ? here + access_name(r.flags) + there + access_name(r.prev.flags)
                                   : there + access_name(r.prev.flags) + here + access_name(r.flags);
    if (!R.printed.insert(key).second) return;
    char other[96] = "";
    const char *why;
    if (r.prev.blk != R.blk) {
        uint3 pb = unlinear(r.prev.blk - 1, R.grid);
        snprintf(other, sizeof other, " of block (%u,%u,%u)", pb.x, pb.y, pb.z);
        why = "different blocks, no __threadfence + atomic release between them";
    } else if (r.prev.tid / 32 == r.tid / 32) {
        why = "no __syncthreads or __syncwarp between them";
    } else {
        why = "no __syncthreads between them";
    }
    fprintf(stderr,
            "cuemu: kernel %s (launched at %s:%d), block (%u,%u,%u): data race on %s memory %#lx (%u bytes): "
            "thread (%u,%u,%u) %s at %s, thread (%u,%u,%u)%s %s at %s, %s%s\n",
            R.info->name, base_name(R.info->file), R.info->line, b.x, b.y, b.z, r.shared ? "shared" : "global",
            (unsigned long)r.addr, r.size, t.x, t.y, t.z, access_name(r.flags), here.c_str(), pt.x, pt.y, pt.z, other,
            access_name(r.prev.flags), there.c_str(), ((r.flags ^ r.prev.flags) & F_ATOMIC) ? "an atomic and a plain access, " : "",
            why);
}

/* ---- the check ---- */

bool knows(const cell &c, uint32_t tid)
{
    auto it = R.acq.find(c.blk);
    if (it == R.acq.end()) return false;
    const acquired &k = it->second;
    if (!(c.bep < k.rel_bep || (c.bep == k.rel_bep && c.tid == k.rel_tid))) return false;
    return tid == k.acq_tid || R.bep > k.acq_bep;
}

bool ordered(const cell &c, const rc_thread *t, uint32_t wep)
{
    if (c.blk == R.blk) return c.bep < R.bep || (c.tid / 32 == t->warp && c.wep < wep);
    return knows(c, t->tid);
}

/* New flags nf make a cell with old flags of redundant: every access that races with old races
 * with the new one too (a write covers a read, a plain access covers an atomic). */
bool covers(uint8_t nf, uint8_t of)
{
    return ((nf & F_WRITE) || !(of & F_WRITE)) && (!(nf & F_ATOMIC) || (of & F_ATOMIC));
}

void conflict(const cell &c, const rc_thread *t, uint8_t flags, uintptr_t pc, uintptr_t addr, unsigned size,
              bool shared)
{
    R.block_racy = true;
    uintptr_t a = std::min(pc, c.pc), b = std::max(pc, c.pc);
    if (!R.seen.insert({a, b}).second) return;
    race r{addr, size, shared, (uint16_t)t->tid, flags, pc, c};
    if (R.abort_on_error) {
        print_race(r);
        abort();
    }
    R.races.push_back(r);
}

void check(granule *g, bool shared, uint8_t mask, const rc_thread *t, uint8_t flags, uintptr_t pc, uintptr_t addr,
           unsigned size)
{
    const uint32_t blk = R.blk, bep = R.bep, wep = R.wep[t->warp];
    cell *mine_same = nullptr, *empty = nullptr, *dead = nullptr;
    bool redundant = false;
    for (cell &c : g->c) {
        if (!c.blk || (shared && c.blk != blk)) {
            if (!empty) empty = &c;
            continue;
        }
        if (c.blk == blk && c.tid == t->tid) {
            if (c.mask == mask) {
                if (covers(flags, c.flags)) mine_same = &c;
                else if (covers(c.flags, flags) && c.bep == bep && c.wep == wep) redundant = true;
            }
            continue;
        }
        if ((c.mask & mask) && ((c.flags | flags) & F_WRITE) && !(c.flags & flags & F_ATOMIC) && !ordered(c, t, wep))
            conflict(c, t, flags, pc, addr, size, shared);
        /* ordered before every later access of this block; for global memory, other blocks may
         * still race with it, so only a covering access replaces it */
        if (!dead && c.blk == blk && c.bep < bep && (shared || ((c.mask & ~mask) == 0 && covers(flags, c.flags))))
            dead = &c;
    }
    if (redundant && !mine_same) return; /* this thread's cell of the same interval says as much */
    cell *slot = mine_same ? mine_same : empty ? empty : dead ? dead : &g->c[R.evict++ & 3];
    *slot = cell{blk, (uint16_t)t->tid, mask, flags, bep, wep, pc};
}

granule *shadow_of(uintptr_t ga, flat *fl)
{
    return fl ? fl->get(ga) : R.global.get(ga);
}

__attribute__((noinline)) void record(const rc_thread *t, uintptr_t addr, unsigned size, uint8_t flags, uintptr_t pc)
{
    flat *fl = nullptr;
    if (addr - R.sdynamic.base < R.sdynamic.size) fl = &R.sdynamic;
    else if (addr - R.sstatic.base < R.sstatic.size) fl = &R.sstatic;
    uintptr_t p = addr, end = addr + size;
    while (p < end) {
        uintptr_t ga = p & ~(uintptr_t)7;
        unsigned off = (unsigned)(p & 7), k = (unsigned)std::min<uintptr_t>(end - p, 8 - off);
        uint8_t mask = (uint8_t)(((1u << k) - 1) << off);
        granule *g = shadow_of(ga, fl);
        if (g) check(g, fl != nullptr, mask, t, flags, pc, addr, size);
        p += k;
    }
}

/* The running GPU thread, if this access is made by it outside its own stack; else null. */
inline __attribute__((always_inline)) const rc_thread *gpu_thread(uintptr_t addr)
{
    const rc_thread *t = rc_cur.load(std::memory_order_relaxed);
    if (__builtin_expect(t == nullptr, 1)) return nullptr;
    /* another OS thread (runs host code while a grid runs here), or a local of the fiber */
    if ((uintptr_t)__builtin_frame_address(0) - t->stack_lo >= t->stack_size) return nullptr;
    if (addr - t->stack_lo < t->stack_size) return nullptr;
    return t;
}

inline __attribute__((always_inline)) void on_access(const void *p, unsigned size, uint8_t flags, void *pc)
{
    if (const rc_thread *t = gpu_thread((uintptr_t)p)) {
        /* the hooks also count the bytes of the performance trace (trace.cpp) */
        if (counting()) count_access((uintptr_t)p, size, flags & F_WRITE);
        if (R.enabled) record(t, (uintptr_t)p, size, flags, (uintptr_t)pc);
    }
}

} // namespace

bool rc_enabled()
{
    if (!R.env_read) {
        R.env_read = true;
        const char *e = getenv("CUEMU_RACECHECK");
        R.enabled = e && *e ? strcmp(e, "0") != 0 : instrumented;
        if (R.enabled && !instrumented) {
            fprintf(stderr, "cuemu: CUEMU_RACECHECK=%s, but no kernel code is instrumented for the race detector "
                            "(built with QASR_EMU_RACECHECK=OFF, or QASR_SANITIZE=ON): races are not checked\n", e);
            R.enabled = false;
        }
    }
    return R.enabled;
}

void rc_launch_begin(const kernel_info &info, dim3 grid, dim3 block, const void *smem, size_t smem_bytes,
                     bool abort_on_error)
{
    R.info = &info;
    R.grid = grid;
    R.block = block;
    R.abort_on_error = abort_on_error;
    R.sstatic.set(__start_cuemu_shared, (size_t)(__stop_cuemu_shared - __start_cuemu_shared));
    R.sdynamic.set(smem, smem_bytes);
    unsigned n = block.x * block.y * block.z;
    R.wep.assign((n + 31) / 32, 0);
    R.fence.assign(n, 0);
    R.releases.clear();
    R.seen.clear();
    R.printed.clear();
}

void rc_block_begin(uint64_t block_linear)
{
    R.blk = (uint32_t)block_linear + 1;
    R.bep = 0;
    std::fill(R.wep.begin(), R.wep.end(), 0);
    std::fill(R.fence.begin(), R.fence.end(), 0);
    R.acq.clear();
    R.races.clear();
    R.block_racy = false;
}

void rc_block_barrier() { R.bep++; }

void rc_warp_barrier(unsigned warp) { R.wep[warp]++; }

bool rc_block_end()
{
    for (const race &r : R.races) print_race(r);
    R.races.clear();
    return !R.block_racy;
}

void rc_launch_end()
{
    R.global.clear();
    R.sstatic.clear();
    R.sdynamic.clear();
    R.releases.clear();
    R.acq.clear();
    R.seen.clear();
    R.info = nullptr;
}

void rc_atomic(const void *addr, unsigned size, bool write)
{
    const rc_thread *t = gpu_thread((uintptr_t)addr);
    if (!t) return;
    if (counting()) {
        count_access((uintptr_t)addr, size, false);
        if (write) count_access((uintptr_t)addr, size, true);
    }
    if (!R.enabled) return;
    uintptr_t a = (uintptr_t)addr;
    record(t, a, size, F_ATOMIC | (write ? F_WRITE : 0), (uintptr_t)__builtin_return_address(0));
    if (a - R.sdynamic.base < R.sdynamic.size || a - R.sstatic.base < R.sstatic.size) return;
    /* acquire what earlier blocks released through this address, then release if fenced */
    std::vector<release> &rel = R.releases[a];
    for (const release &r : rel) {
        if (r.blk == R.blk) continue;
        auto it = R.acq.find(r.blk);
        if (it == R.acq.end() || r.bep > it->second.rel_bep)
            R.acq[r.blk] = acquired{r.bep, r.tid, (uint16_t)t->tid, R.bep};
    }
    if (uint32_t f = R.fence[t->tid]) {
        release mine{R.blk, f - 1, (uint16_t)t->tid};
        auto it = std::find_if(rel.begin(), rel.end(), [&](const release &r) { return r.blk == R.blk; });
        if (it == rel.end()) rel.push_back(mine);
        else if (mine.bep >= it->bep) *it = mine;
    }
}

void rc_fence()
{
    const rc_thread *t = rc_cur.load(std::memory_order_relaxed);
    if (!t || !R.enabled || (uintptr_t)__builtin_frame_address(0) - t->stack_lo >= t->stack_size) return;
    R.fence[t->tid] = R.bep + 1;
}

} // namespace detail
} // namespace cuemu

/* ---- the hooks clang's ThreadSanitizer instrumentation calls ---- */

using cuemu::detail::on_access;

extern "C" {
void __tsan_init() { cuemu::detail::instrumented = true; }

#define CUEMU_TSAN_HOOKS(n)                                                                                          \
    void __tsan_read##n(void *p) { on_access(p, n, 0, __builtin_return_address(0)); }                                \
    void __tsan_write##n(void *p) { on_access(p, n, cuemu::detail::F_WRITE, __builtin_return_address(0)); }          \
    void __tsan_unaligned_read##n(void *p) { on_access(p, n, 0, __builtin_return_address(0)); }                      \
    void __tsan_unaligned_write##n(void *p) { on_access(p, n, cuemu::detail::F_WRITE, __builtin_return_address(0)); } \
    void __tsan_volatile_read##n(void *p) { on_access(p, n, 0, __builtin_return_address(0)); }                       \
    void __tsan_volatile_write##n(void *p) { on_access(p, n, cuemu::detail::F_WRITE, __builtin_return_address(0)); }  \
    void __tsan_unaligned_volatile_read##n(void *p) { on_access(p, n, 0, __builtin_return_address(0)); }             \
    void __tsan_unaligned_volatile_write##n(void *p)                                                                 \
    {                                                                                                                \
        on_access(p, n, cuemu::detail::F_WRITE, __builtin_return_address(0));                                       \
    }
CUEMU_TSAN_HOOKS(1)
CUEMU_TSAN_HOOKS(2)
CUEMU_TSAN_HOOKS(4)
CUEMU_TSAN_HOOKS(8)
CUEMU_TSAN_HOOKS(16)
#undef CUEMU_TSAN_HOOKS

void __tsan_read_range(void *p, unsigned long n)
{
    if (n) on_access(p, (unsigned)n, 0, __builtin_return_address(0));
}
void __tsan_write_range(void *p, unsigned long n)
{
    if (n) on_access(p, (unsigned)n, cuemu::detail::F_WRITE, __builtin_return_address(0));
}
/* Not emitted with the flags cuda/CMakeLists.txt uses; defined so that other flags still link. */
void __tsan_func_entry(void *) {}
void __tsan_func_exit() {}
void __tsan_vptr_update(void **, void *) {}
void __tsan_vptr_read(void **) {}
}
