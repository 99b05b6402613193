/* Fiber scheduler of the CUDA emulation: runs one grid on the calling OS thread, block after
 * block, each block's threads as cooperative fibers that switch only at __syncthreads and warp
 * intrinsics, and turns CUDA's "undefined behaviour" cases into errors with block, thread and
 * file:line (divergent barriers, mismatched call sites, reads of lanes that did not take part,
 * deadlock).
 *
 * Live fibers form a ring in the block's run order (forward, reversed or seeded shuffle). A
 * fiber that waits switches straight to the next ready fiber of the ring: one switch per thread
 * per barrier, no scheduler context in between. The last thread to arrive releases the others. */
#include "cuemu.h"
#include "racecheck.h"
#include "trace.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>
#if defined(CUEMU_UCONTEXT)
#include <ucontext.h>
#endif
#if defined(CUEMU_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

extern "C" {
uint3 threadIdx;
uint3 blockIdx;
dim3 blockDim;
dim3 gridDim;
const int warpSize = 32;
/* Bounds of the static __shared__ section, provided by the linker when any kernel has one. */
extern unsigned char __start_cuemu_shared[] __attribute__((weak));
extern unsigned char __stop_cuemu_shared[] __attribute__((weak));
}

#if !defined(CUEMU_UCONTEXT)
/* x86-64 SysV: save the callee-saved registers on the current stack, swap stack pointers,
 * restore. A new fiber's stack is pre-built so that the first `ret` enters fiber_entry. */
extern "C" void cuemu_switch_stack(void **save_sp, void *load_sp);
asm(R"(
    .text
    .globl cuemu_switch_stack
    .hidden cuemu_switch_stack
    .type cuemu_switch_stack, @function
cuemu_switch_stack:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuemu_switch_stack, .-cuemu_switch_stack
)");
#endif

namespace cuemu {
namespace detail {

unsigned char *dynamic_smem;

namespace {

enum fiber_state : unsigned char { READY, WAIT_BLOCK, WAIT_WARP, DONE };

struct fiber {
#if defined(CUEMU_UCONTEXT)
    ucontext_t uc;
#else
    void *sp;
#endif
    fiber *next, *prev;
    uint3 tid;
    unsigned warp, lane;
    fiber_state state;
    const void *stack_lo; /* usable stack, for the ASan fiber annotations */
    size_t stack_size;
    void *fake_stack;
    rc_thread rc; /* what the race detector knows of this thread */
};

struct warp_state {
    unsigned live, arrived;
    warp_kind kind;
    site where;
    uint32_t gen;
    /* Double-buffered by generation parity: fast lanes may already write the next exchange
     * while slow ones still read this one, but never two ahead (that needs every lane). */
    uint64_t value[2][32];
    uint32_t stamp[2][32]; /* generation + 1 of the last write, 0 = never */
};

struct stack_mem {
    unsigned char *base;
    size_t len;
};

/* 64 KiB usable per thread (256 KiB under ASan, whose frames are larger), a guard page below,
 * and up to 32 KiB of colouring: stack tops offset by i * 576 bytes so the hot frames of 1024
 * fibers do not all fall into the same cache sets. */
#if defined(CUEMU_ASAN)
constexpr size_t STACK_USABLE = 256 << 10;
#else
constexpr size_t STACK_USABLE = 64 << 10;
#endif
constexpr size_t STACK_COLOUR = 32 << 10;

struct scheduler {
    std::vector<stack_mem> stacks;
    std::vector<fiber> fibers;
    std::vector<warp_state> warps;
    std::vector<unsigned> order;
    fiber host;             /* the launcher's context */
    fiber *cur;
    fiber *head;            /* first live fiber in run order */
    unsigned live, exited;
    /* block barrier in progress */
    unsigned arrived;
    block_kind bkind;
    site bsite;
    int acc, result;

    const kernel_info *info;
    void (*body)(void *);
    void *args;
    bool failed;
    bool entering_from_host;
    int order_mode;         /* 0 forward, 1 reversed, 2 shuffled */
    uint64_t seed, launches;
    bool abort_on_error;
    bool racecheck; /* CUEMU_RACECHECK: the race detector runs (racecheck.cpp) */
};

scheduler S;

void init_env()
{
    static bool done;
    if (done) return;
    done = true;
    const char *o = getenv("CUEMU_ORDER");
    if (!o || !*o || !strcmp(o, "fwd") || !strcmp(o, "forward")) S.order_mode = 0;
    else if (!strcmp(o, "rev") || !strcmp(o, "reverse")) S.order_mode = 1;
    else if (!strcmp(o, "shuffle")) S.order_mode = 2;
    else {
        fprintf(stderr, "cuemu: CUEMU_ORDER=%s: expected fwd, rev or shuffle\n", o);
        exit(2);
    }
    const char *seed = getenv("CUEMU_SEED");
    S.seed = seed ? strtoull(seed, nullptr, 0) : 1;
    const char *ab = getenv("CUEMU_ABORT");
    S.abort_on_error = ab && *ab && strcmp(ab, "0");
    S.racecheck = rc_enabled();
}

uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Every report names the kernel, where it was launched, and the GPU block and thread. */
void print_context(FILE *f)
{
    const fiber *t = S.cur && S.cur != &S.host ? S.cur : nullptr;
    fprintf(f, "cuemu: kernel %s (launched at %s:%d), block (%u,%u,%u)", S.info->name, base_name(S.info->file),
            S.info->line, blockIdx.x, blockIdx.y, blockIdx.z);
    if (t) fprintf(f, ", thread (%u,%u,%u)", t->tid.x, t->tid.y, t->tid.z);
    fprintf(f, ": ");
}

#if defined(CUEMU_ASAN)
void asan_death_callback()
{
    if (S.info) {
        print_context(stderr);
        fprintf(stderr, "this GPU thread made the bad access reported above\n");
    }
}
#endif

void ctx_switch(fiber *from, fiber *to, bool from_dies)
{
    S.cur = to;
    if (to != &S.host) threadIdx = to->tid;
    rc_cur.store((S.racecheck || counting()) && to != &S.host ? &to->rc : nullptr, std::memory_order_relaxed);
#if defined(CUEMU_ASAN)
    __sanitizer_start_switch_fiber(from_dies ? nullptr : &from->fake_stack, to->stack_lo, to->stack_size);
#else
    (void)from_dies;
#endif
#if defined(CUEMU_UCONTEXT)
    swapcontext(&from->uc, &to->uc);
#else
    cuemu_switch_stack(&from->sp, to->sp);
#endif
#if defined(CUEMU_ASAN)
    __sanitizer_finish_switch_fiber(from->fake_stack, nullptr, nullptr);
#endif
}

[[noreturn]] void abandon_launch()
{
    S.failed = true;
    ctx_switch(S.cur, &S.host, true);
    abort(); /* the launcher never resumes an abandoned fiber */
}

[[noreturn]] __attribute__((format(printf, 1, 2))) void fail(const char *fmt, ...)
{
    print_context(stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (S.abort_on_error) abort();
    abandon_launch();
}

bool same_site(site a, site b)
{
    return a.line == b.line && a.column == b.column && (a.file == b.file || !strcmp(a.file, b.file));
}

const char *warp_kind_name(warp_kind k)
{
    switch (k) {
    case WARP_SHFL_IDX: return "__shfl_sync";
    case WARP_SHFL_UP: return "__shfl_up_sync";
    case WARP_SHFL_DOWN: return "__shfl_down_sync";
    case WARP_SHFL_XOR: return "__shfl_xor_sync";
    case WARP_BALLOT: return "__ballot_sync";
    case WARP_ANY: return "__any_sync";
    case WARP_ALL: return "__all_sync";
    case WARP_SYNC: return "__syncwarp";
    case WARP_WMMA: return "nvcuda::wmma";
    default: return "__reduce_*_sync";
    }
}

const char *block_kind_name(block_kind k)
{
    switch (k) {
    case BLOCK_COUNT: return "__syncthreads_count()";
    case BLOCK_AND: return "__syncthreads_and()";
    case BLOCK_OR: return "__syncthreads_or()";
    default: return "__syncthreads()";
    }
}

[[noreturn]] void deadlock()
{
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "deadlock, no thread can continue:");
    const char *sep = " ";
    if (S.arrived) {
        n += snprintf(msg + n, sizeof msg - n, " %u thread(s) wait at %s %s:%d", S.arrived, block_kind_name(S.bkind),
                      base_name(S.bsite.file), S.bsite.line);
        sep = ", ";
    }
    for (size_t w = 0; w < S.warps.size() && n < (int)sizeof msg - 128; w++) {
        const warp_state &ws = S.warps[w];
        if (!ws.arrived) continue;
        n += snprintf(msg + n, sizeof msg - n, "%s%u lane(s) of warp %zu wait at %s %s:%d", sep, ws.arrived, w,
                      warp_kind_name(ws.kind), base_name(ws.where.file), ws.where.line);
        sep = ", ";
    }
    fail("%s", msg);
}

/* Switch from a fiber that cannot continue to the next ready one in run order. */
void run_next(fiber *f, bool f_dies)
{
    fiber *n = f->next;
    for (unsigned i = 0; i < S.live && n->state != READY; i++) n = n->next;
    if (n->state != READY || n == f) deadlock();
    ctx_switch(f, n, f_dies);
}

void release_warp(warp_state &w, unsigned warp)
{
    w.arrived = 0;
    w.gen++;
    /* wmma calls converge the warp but, as in CUDA, order no memory between its lanes. */
    if (S.racecheck && w.kind != WARP_WMMA) rc_warp_barrier(warp);
    fiber *lanes = &S.fibers[(size_t)warp * 32];
    unsigned n = (unsigned)std::min<size_t>(32, S.fibers.size() - (size_t)warp * 32);
    for (unsigned i = 0; i < n; i++)
        if (lanes[i].state == WAIT_WARP) lanes[i].state = READY;
}

[[noreturn]] void fiber_exit()
{
    fiber *f = S.cur;
    if (S.arrived)
        fail("thread exited while %u thread(s) wait at %s %s:%d (divergent barrier)", S.arrived,
             block_kind_name(S.bkind), base_name(S.bsite.file), S.bsite.line);
    f->state = DONE;
    f->prev->next = f->next;
    f->next->prev = f->prev;
    if (S.head == f) S.head = f->next;
    S.live--;
    S.exited++;
    /* Exited lanes no longer hold up their warp (CUDA semantics since Volta); a lane that later
     * reads one of them gets an error at the read. */
    warp_state &w = S.warps[f->warp];
    w.live--;
    if (w.arrived && w.arrived == w.live) release_warp(w, f->warp);
    if (S.live == 0) ctx_switch(f, &S.host, true);
    else run_next(f, true);
    abort();
}

void fiber_entry()
{
#if defined(CUEMU_ASAN)
    const void *lo;
    size_t size;
    __sanitizer_finish_switch_fiber(nullptr, &lo, &size);
    if (S.entering_from_host) {
        S.host.stack_lo = lo;
        S.host.stack_size = size;
    }
#endif
    S.entering_from_host = false;
    S.body(S.args);
    fiber_exit();
}

size_t page_size()
{
    static const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

void map_stacks(size_t n)
{
    size_t page = page_size();
    while (S.stacks.size() < n) {
        size_t len = page + STACK_COLOUR + STACK_USABLE;
        void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED || mprotect(p, page, PROT_NONE)) {
            perror("cuemu: fiber stack");
            abort();
        }
        S.stacks.push_back({(unsigned char *)p, len});
    }
}

void prepare_fiber(fiber &f, unsigned i)
{
    size_t page = page_size();
    const stack_mem &s = S.stacks[i];
    unsigned char *top = s.base + s.len - (size_t)i * 576 % STACK_COLOUR;
    f.stack_lo = s.base + page;
    f.stack_size = (size_t)(top - (s.base + page));
    f.fake_stack = nullptr;
#if defined(CUEMU_UCONTEXT)
    getcontext(&f.uc);
    f.uc.uc_stack.ss_sp = s.base + page;
    f.uc.uc_stack.ss_size = f.stack_size;
    f.uc.uc_link = nullptr;
    makecontext(&f.uc, fiber_entry, 0);
#else
    /* Six callee-saved registers, then the return address fiber_entry, then a null "caller"
     * return address so that fiber_entry starts with the stack alignment of a normal call. */
    void **sp = (void **)top;
    *--sp = nullptr;
    *--sp = (void *)&fiber_entry;
    for (int r = 0; r < 6; r++) *--sp = nullptr;
    f.sp = sp;
#endif
}

void build_ring(unsigned n, uint64_t block_linear)
{
    S.order.resize(n);
    for (unsigned i = 0; i < n; i++) S.order[i] = S.order_mode == 1 ? n - 1 - i : i;
    if (S.order_mode == 2) {
        uint64_t x = S.seed ^ (S.launches * 0x9e3779b97f4a7c15ull) ^ (block_linear << 20);
        for (unsigned i = n - 1; i > 0; i--) std::swap(S.order[i], S.order[splitmix(&x) % (i + 1)]);
    }
    for (unsigned i = 0; i < n; i++) {
        fiber &f = S.fibers[S.order[i]];
        f.next = &S.fibers[S.order[(i + 1) % n]];
        f.prev = &S.fibers[S.order[(i + n - 1) % n]];
    }
    S.head = &S.fibers[S.order[0]];
}

/* The block at position `run_index` of the run order, whose linear index is `linear`. */
bool run_block(dim3 block, uint64_t run_index, uint64_t linear)
{
    unsigned n = block.x * block.y * block.z;
    for (unsigned i = 0; i < n; i++) {
        fiber &f = S.fibers[i];
        prepare_fiber(f, i);
        f.tid = make_uint3(i % block.x, i / block.x % block.y, i / (block.x * block.y));
        f.warp = i / 32;
        f.lane = i % 32;
        f.state = READY;
        f.rc = rc_thread{(uintptr_t)S.stacks[i].base, S.stacks[i].len, i, i / 32};
    }
    for (size_t w = 0; w < S.warps.size(); w++) {
        warp_state &ws = S.warps[w];
        memset(&ws, 0, sizeof ws);
        ws.live = (unsigned)std::min<size_t>(32, n - w * 32);
    }
    build_ring(n, run_index);
    S.live = n;
    S.exited = 0;
    S.arrived = 0;
    S.acc = 0;
    S.failed = false;
    S.entering_from_host = true;
    size_t shared_bytes = (uintptr_t)__stop_cuemu_shared - (uintptr_t)__start_cuemu_shared;
    if (shared_bytes) memset(__start_cuemu_shared, 0xff, shared_bytes);
    if (S.racecheck) rc_block_begin(linear);
    ctx_switch(&S.host, S.head, false);
    /* races fail the launch once the block has run, so that all its racing pairs are reported */
    bool race_free = !S.racecheck || rc_block_end();
    return !S.failed && race_free;
}

/* Blocks run in the same order mode as threads, so a block that reads what another block of
 * the same grid writes shows up in at least one order. Shuffle is an affine bijection
 * i -> (a*i + c) mod N with gcd(a, N) = 1: no permutation table for large grids. */
uint64_t block_at(uint64_t i, uint64_t n, uint64_t a, uint64_t c)
{
    if (S.order_mode == 1) return n - 1 - i;
    if (S.order_mode == 2) return (uint64_t)(((unsigned __int128)a * i + c) % n);
    return i;
}

uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

} // namespace

int block_barrier(block_kind kind, int pred, site where)
{
    fiber *f = S.cur;
    if (S.exited)
        fail("%s at %s:%d reached after %u thread(s) of the block exited (divergent barrier)", block_kind_name(kind),
             base_name(where.file), where.line, S.exited);
    if (S.arrived == 0) {
        S.bkind = kind;
        S.bsite = where;
    } else if (!same_site(where, S.bsite) || kind != S.bkind) {
        fail("%s at %s:%d while %u thread(s) wait at %s %s:%d (divergent barrier)", block_kind_name(kind),
             base_name(where.file), where.line, S.arrived, block_kind_name(S.bkind), base_name(S.bsite.file),
             S.bsite.line);
    }
    S.arrived++;
    if (kind == BLOCK_COUNT) S.acc += pred;
    else if (kind == BLOCK_AND) S.acc += !pred; /* number of false predicates */
    else if (kind == BLOCK_OR) S.acc += pred;
    if (S.arrived < S.live) {
        f->state = WAIT_BLOCK;
        run_next(f, false);
    } else {
        S.result = kind == BLOCK_AND ? S.acc == 0 : kind == BLOCK_OR ? S.acc != 0 : S.acc;
        S.arrived = 0;
        S.acc = 0;
        if (S.racecheck) rc_block_barrier();
        for (fiber &t : S.fibers)
            if (t.state == WAIT_BLOCK) t.state = READY;
        /* Resume in run order, so every phase runs the threads in the same order. */
        if (f != S.head) ctx_switch(f, S.head, false);
    }
    /* The next barrier cannot complete without this thread, so S.result is still ours. */
    return S.result;
}

/* A lane arrives at a warp collective with its value and waits for the rest of its warp;
 * returns the exchange's slot of w.value / w.stamp (valid until this lane's next collective).
 * *released: this lane arrived last, so it runs first after the exchange, before every other
 * lane of its warp. */
static unsigned warp_arrive(warp_kind kind, uint64_t value, site where, bool *released = nullptr)
{
    fiber *f = S.cur;
    warp_state &w = S.warps[f->warp];
    if (w.arrived == 0) {
        w.kind = kind;
        w.where = where;
    } else if (!same_site(where, w.where)) {
        fail("lane %u at %s %s:%d while %u lane(s) of its warp wait at %s %s:%d", f->lane, warp_kind_name(kind),
             base_name(where.file), where.line, w.arrived, warp_kind_name(w.kind), base_name(w.where.file),
             w.where.line);
    }
    uint32_t gen = w.gen;
    unsigned slot = gen & 1;
    w.value[slot][f->lane] = value;
    w.stamp[slot][f->lane] = gen + 1;
    bool last = ++w.arrived >= w.live;
    if (!last) {
        f->state = WAIT_WARP;
        run_next(f, false);
    } else {
        release_warp(w, f->warp);
    }
    if (released) *released = last;
    return slot;
}

uint64_t warp_collective(warp_kind kind, unsigned mask, uint64_t value, int arg, int width, site where)
{
    fiber *f = S.cur;
    if (mask != 0xffffffffu)
        fail("%s at %s:%d with mask 0x%08x: only the full mask is supported", warp_kind_name(kind),
             base_name(where.file), where.line, mask);
    if (width < 1 || width > 32 || (width & (width - 1)))
        fail("%s at %s:%d with width %d: must be a power of two in [1, 32]", warp_kind_name(kind),
             base_name(where.file), where.line, width);
    warp_state &w = S.warps[f->warp];
    uint32_t gen = w.gen;
    unsigned slot = warp_arrive(kind, value, where);
    const uint64_t *v = w.value[slot];
    const uint32_t *st = w.stamp[slot];
    int lane = (int)f->lane;
    if (kind <= WARP_SHFL_XOR) {
        /* PTX shfl.sync source-lane rules with c = ((32 - width) << 8) | clamp. */
        int seg = (32 - width) & 31, min_lane = lane & seg;
        int max_lane = kind == WARP_SHFL_UP ? min_lane : min_lane | (31 & ~seg);
        int src;
        bool ok;
        switch (kind) {
        case WARP_SHFL_UP: src = lane - arg; ok = src >= max_lane; break;
        case WARP_SHFL_DOWN: src = lane + arg; ok = src <= max_lane; break;
        case WARP_SHFL_XOR: src = lane ^ (arg & 31); ok = src <= max_lane; break;
        default: src = min_lane | (arg & 31 & ~seg); ok = src <= max_lane; break;
        }
        if (!ok) src = lane;
        if (st[src] != gen + 1)
            fail("lane %d reads lane %d at %s %s:%d, but that lane did not execute this intrinsic", lane, src,
                 warp_kind_name(kind), base_name(where.file), where.line);
        return v[src];
    }
    /* Votes and reductions combine the lanes that took part; exited lanes are left out. */
    uint64_t r = kind == WARP_ALL || kind == WARP_AND ? ~0ull : 0;
    bool first = true;
    for (int i = 0; i < 32; i++) {
        if (st[i] != gen + 1) continue;
        uint32_t x = (uint32_t)v[i];
        switch (kind) {
        case WARP_BALLOT: r |= (uint64_t)(x != 0) << i; break;
        case WARP_ANY: r |= x != 0; break;
        case WARP_ALL: r &= x != 0; break;
        case WARP_ADD: r = (uint32_t)(r + x); break;
        case WARP_AND: r &= x; break;
        case WARP_OR: r |= x; break;
        case WARP_XOR: r ^= x; break;
        case WARP_MIN_U: r = first || x < (uint32_t)r ? x : r; break;
        case WARP_MAX_U: r = first || x > (uint32_t)r ? x : r; break;
        case WARP_MIN_I: r = first || (int32_t)x < (int32_t)r ? x : r; break;
        case WARP_MAX_I: r = first || (int32_t)x > (int32_t)r ? x : r; break;
        default: break;
        }
        first = false;
    }
    return (uint32_t)r;
}

void wmma_fail(const char *op, const char *why, site where)
{
    fail("%s at %s:%d: %s", op, base_name(where.file), where.line, why);
}

/* The warp's 32 values of one exchange; every lane must take part (wmma has no partial warps). */
static const uint64_t *wmma_exchange(const char *op, uint64_t value, site where, bool *released = nullptr)
{
    warp_state &w = S.warps[S.cur->warp];
    uint32_t gen = w.gen;
    unsigned slot = warp_arrive(WARP_WMMA, value, where, released);
    for (int i = 0; i < 32; i++)
        if (w.stamp[slot][i] != gen + 1)
            fail("lane %u at %s %s:%d, but lane %d of its warp did not execute it (exited or absent)", S.cur->lane,
                 op, base_name(where.file), where.line, i);
    return w.value[slot];
}

int wmma_converge(const char *op, site where)
{
    wmma_exchange(op, 0, where);
    return (int)S.cur->lane;
}

/* The matrices of a warp's mma_sync in progress, assembled once by the lane that runs first. */
struct wmma_matrices {
    float A[256], B[256], C[256];
};
static std::vector<wmma_matrices> wmma_mats;

/* Each lane publishes where its fragments live (fiber stacks stay mapped while they wait); the
 * lane that completes the exchange runs first and copies a, b and c of all 32 lanes into the
 * warp's matrices before any other lane runs, so a lane may overwrite its fragments right after
 * (d is often another name for c). Each lane then computes its own 8 elements of d from them; the
 * warp's next mma_sync cannot refill them before every lane has arrived there. Products of bf16
 * are exact in float; the sum runs over k in order in fp32. This file is not
 * instrumented, so reading the other lanes' fragments is invisible to the race detector, like a
 * GPU's register exchange. */
void wmma_mma(float *d, const __nv_bfloat16 *a, const __nv_bfloat16 *b, const float *c, site where)
{
    static const char op[] = "nvcuda::wmma::mma_sync";
    struct frags {
        const __nv_bfloat16 *a, *b;
        const float *c;
    } mine{a, b, c};
    bool first;
    const uint64_t *v = wmma_exchange(op, (uint64_t)(uintptr_t)&mine, where, &first);
    if (wmma_mats.size() < S.warps.size()) wmma_mats.resize(S.warps.size());
    wmma_matrices &m = wmma_mats[S.cur->warp];
    float *A = m.A, *B = m.B, *C = m.C;
    if (first)
        for (int l = 0; l < 32; l++) {
            const frags *o = (const frags *)(uintptr_t)v[l];
            for (int i = 0; i < 8; i++) {
                A[wmma_pos(WMMA_A, l, i)] = __bfloat162float(o->a[i]);
                B[wmma_pos(WMMA_B, l, i)] = __bfloat162float(o->b[i]);
                C[wmma_pos(WMMA_ACC, l, i)] = o->c[i];
            }
        }
    int lane = (int)S.cur->lane;
    for (int i = 0; i < 8; i++) {
        int e = wmma_pos(WMMA_ACC, lane, i), row = e / 16, col = e % 16;
        float s = C[e];
        for (int k = 0; k < 16; k++) s += A[row * 16 + k] * B[k * 16 + col];
        d[i] = s;
    }
}

/* The caller (runtime.cpp) holds the runtime lock, so one grid runs at a time. */
bool run_grid(dim3 grid, dim3 block, size_t smem, const kernel_info &info, void (*body)(void *), void *args)
{
    init_env();
    unsigned n = block.x * block.y * block.z;
    map_stacks(n);
    S.fibers.resize(n);
    S.warps.resize((n + 31) / 32);
    S.info = &info;
    S.body = body;
    S.args = args;
    S.launches++;
#if defined(CUEMU_ASAN)
    static bool callback_set;
    if (!callback_set) {
        __sanitizer_set_death_callback(asan_death_callback);
        callback_set = true;
    }
#endif
    /* Exactly the requested size, so ASan reports the first byte past it; refilled per block.
     * 128-byte aligned, as a GPU's shared memory is at least (wmma pointers need 32). */
    void *dyn = nullptr;
    if (posix_memalign(&dyn, 128, smem)) dyn = nullptr;
    dynamic_smem = (unsigned char *)dyn;
    if (S.racecheck) rc_launch_begin(info, grid, block, dynamic_smem, smem, S.abort_on_error);
    if (counting()) count_smem(dynamic_smem, smem);
    blockDim = block;
    gridDim = grid;
    uint64_t nblocks = (uint64_t)grid.x * grid.y * grid.z;
    uint64_t x = S.seed ^ S.launches;
    uint64_t a = splitmix(&x) % nblocks + 1, c = splitmix(&x) % nblocks;
    while (gcd(a, nblocks) != 1) a++;
    bool ok = true;
    for (uint64_t i = 0; i < nblocks && ok; i++) {
        uint64_t b = block_at(i, nblocks, a, c);
        blockIdx = make_uint3((unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y),
                              (unsigned)(b / ((uint64_t)grid.x * grid.y)));
        memset(dynamic_smem, 0xff, smem);
        ok = run_block(block, i, b);
    }
    if (S.racecheck) rc_launch_end();
    free(dynamic_smem);
    dynamic_smem = nullptr;
    S.cur = nullptr;
#if defined(CUEMU_ASAN)
    /* Abandoned fibers leave their frames poisoned; reusing those stacks would trip ASan. */
    if (!ok)
        for (unsigned i = 0; i < n; i++) ASAN_UNPOISON_MEMORY_REGION(S.fibers[i].stack_lo, S.fibers[i].stack_size);
#endif
    S.info = nullptr;
    return ok;
}

} // namespace detail
} // namespace cuemu
