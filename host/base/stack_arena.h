/* The scratch memory of both backends: a stack allocator over blocks that the backend supplies
 * (host memory on the CPU, device memory on a GPU). Allocations are released in reverse order
 * through marks. A pass that outgrows the base block spills into blocks of its own; the next
 * full release (mark 0) regrows the base block to the peak seen, so once the first passes have
 * found the peak (warm-up) a pass fits in one block and allocates nothing. */
#ifndef QASR_STACK_ARENA_H
#define QASR_STACK_ARENA_H

#include <stddef.h>

typedef struct {
    /* A block of at least `bytes`, or NULL + qasr_fail() naming the memory and the size. */
    void *(*block_alloc)(void *ctx, size_t bytes);
    void (*block_free)(void *ctx, void *p);
    void *ctx;
    size_t align;   /* every allocation starts at a multiple of this (a power of two) */
    size_t granule; /* the regrown base block is peak + 1/8, rounded up to a multiple of this */
    char *base;
    size_t cap, used, peak;
    struct stack_spill { void *p; size_t bytes; } *spills;
    int n_spills, cap_spills;
} stack_arena_t;

void stack_arena_init(stack_arena_t *a, void *(*block_alloc)(void *ctx, size_t bytes),
                      void (*block_free)(void *ctx, void *p), void *ctx, size_t align, size_t granule);
/* NULL + qasr_fail() (block_alloc's message) when no block can be had. */
void *stack_arena_alloc(stack_arena_t *a, size_t bytes);
/* Bytes held now: release(mark) frees everything allocated after it. */
size_t stack_arena_mark(const stack_arena_t *a);
/* mark 0 also regrows the base block to the peak; if that fails, the arena carries on without
 * a base block (every pass spills) and -1 + qasr_fail() says so; else 0. */
int stack_arena_release(stack_arena_t *a, size_t mark);
void stack_arena_destroy(stack_arena_t *a);

#endif
