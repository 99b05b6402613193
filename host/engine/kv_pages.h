/* Host side of the paged KV cache: a pool of fixed-size pages and, per sequence, a block
 * table (logical page j of the sequence -> physical page). The backend holds the storage
 * (backend.h, kv_geom_t); this file only hands out page numbers. */
#ifndef QASR_KV_PAGES_H
#define QASR_KV_PAGES_H

typedef struct {
    int n_pages, page_size;
    int *free_pages; /* stack of free physical pages */
    int n_free;
} kv_pool_t;

typedef struct {
    int *pages;      /* block table */
    int n_pages, cap;
} kv_seq_t;

void kv_pool_init(kv_pool_t *p, int n_pages, int page_size);
void kv_pool_free(kv_pool_t *p);

/* Pages needed to hold n tokens. */
static inline int kv_pages_for(const kv_pool_t *p, int n_tokens)
{
    return (n_tokens + p->page_size - 1) / p->page_size;
}

/* Make s able to hold n_tokens, taking pages from the pool. All or nothing: returns -1 and
 * leaves s unchanged if the pool has too few free pages. */
int kv_seq_reserve(kv_pool_t *p, kv_seq_t *s, int n_tokens);
/* Return all of s's pages to the pool. */
void kv_seq_release(kv_pool_t *p, kv_seq_t *s);

/* Cache slot of position pos of sequence s: physical page * page_size + offset. */
static inline int kv_slot(const kv_pool_t *p, const kv_seq_t *s, int pos)
{
    return s->pages[pos / p->page_size] * p->page_size + pos % p->page_size;
}

#endif
