#include "kv_pages.h"

#include <stdlib.h>

#include "util.h"

void kv_pool_init(kv_pool_t *p, int n_pages, int page_size)
{
    QASR_ASSERT(n_pages > 0 && page_size > 0);
    p->n_pages = n_pages;
    p->page_size = page_size;
    p->free_pages = xmalloc(n_pages * sizeof(int));
    /* pushed in reverse so that page 0 is handed out first */
    for (int i = 0; i < n_pages; i++) p->free_pages[i] = n_pages - 1 - i;
    p->n_free = n_pages;
}

void kv_pool_free(kv_pool_t *p)
{
    free(p->free_pages);
    p->free_pages = NULL;
    p->n_pages = p->n_free = 0;
}

int kv_seq_reserve(kv_pool_t *p, kv_seq_t *s, int n_tokens)
{
    const int need = kv_pages_for(p, n_tokens) - s->n_pages;
    if (need <= 0) return 0;
    if (need > p->n_free) return -1;
    if (s->n_pages + need > s->cap) {
        s->cap = s->n_pages + need;
        s->pages = xrealloc(s->pages, s->cap * sizeof(int));
    }
    for (int i = 0; i < need; i++) s->pages[s->n_pages++] = p->free_pages[--p->n_free];
    return 0;
}

void kv_seq_release(kv_pool_t *p, kv_seq_t *s)
{
    for (int i = s->n_pages - 1; i >= 0; i--) {
        QASR_ASSERT(p->n_free < p->n_pages);
        p->free_pages[p->n_free++] = s->pages[i];
    }
    free(s->pages);
    s->pages = NULL;
    s->n_pages = s->cap = 0;
}
