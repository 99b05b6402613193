/* Stack allocator over backend blocks (see stack_arena.h). */
#include "stack_arena.h"

#include <stdlib.h>

#include "util.h"

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

void stack_arena_init(stack_arena_t *a, void *(*block_alloc)(void *, size_t), void (*block_free)(void *, void *),
                      void *ctx, size_t align, size_t granule)
{
    *a = (stack_arena_t){ .block_alloc = block_alloc, .block_free = block_free, .ctx = ctx, .align = align,
                          .granule = granule };
}

size_t stack_arena_mark(const stack_arena_t *a)
{
    size_t top = a->used;
    for (int i = 0; i < a->n_spills; i++) top += a->spills[i].bytes;
    return top;
}

void *stack_arena_alloc(stack_arena_t *a, size_t bytes)
{
    bytes = round_up(bytes ? bytes : 1, a->align);
    void *p;
    if (a->n_spills == 0 && a->used + bytes <= a->cap) {
        p = a->base + a->used;
        a->used += bytes;
    } else {
        if (!(p = a->block_alloc(a->ctx, bytes))) return NULL;
        if (a->n_spills == a->cap_spills) {
            a->cap_spills = a->cap_spills ? 2 * a->cap_spills : 16;
            a->spills = xrealloc(a->spills, a->cap_spills * sizeof *a->spills);
        }
        a->spills[a->n_spills++] = (struct stack_spill){ p, bytes };
    }
    a->peak = MAX(a->peak, stack_arena_mark(a));
    return p;
}

int stack_arena_release(stack_arena_t *a, size_t mark)
{
    size_t top = stack_arena_mark(a);
    while (a->n_spills > 0 && top - a->spills[a->n_spills - 1].bytes >= mark) {
        top -= a->spills[a->n_spills - 1].bytes;
        a->block_free(a->ctx, a->spills[--a->n_spills].p);
    }
    if (a->n_spills == 0 && mark < a->used) a->used = mark;
    if (mark == 0 && a->peak > a->cap) { /* warm-up: grow to the peak so later passes fit */
        if (a->base) a->block_free(a->ctx, a->base);
        a->cap = round_up(a->peak + a->peak / 8, a->granule);
        if (!(a->base = a->block_alloc(a->ctx, a->cap))) {
            a->cap = 0;
            return qasr_fail_prefix("scratch memory of %zu bytes", round_up(a->peak + a->peak / 8, a->granule));
        }
    }
    return 0;
}

void stack_arena_destroy(stack_arena_t *a)
{
    while (a->n_spills > 0) a->block_free(a->ctx, a->spills[--a->n_spills].p);
    if (a->base) a->block_free(a->ctx, a->base);
    free(a->spills);
    *a = (stack_arena_t){ 0 };
}
