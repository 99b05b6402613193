/* Chunked string arena (see str_pool.h). Chunks never move, so returned pointers stay valid. */
#include "str_pool.h"

#include "util.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES (64 * 1024)

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk_t;

struct str_pool {
    chunk_t *head; /* the chunk being filled; older ones follow */
    size_t bytes;
};

str_pool_t *str_pool_new(void) { return xcalloc(1, sizeof(str_pool_t)); }

void str_pool_free(str_pool_t *p)
{
    if (!p) return;
    for (chunk_t *c = p->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(p);
}

static chunk_t *chunk_new(size_t cap)
{
    chunk_t *c = xmalloc(sizeof(chunk_t) + cap);
    c->next = NULL;
    c->used = 0;
    c->cap = cap;
    return c;
}

char *str_pool_add(str_pool_t *p, const char *s, size_t len)
{
    size_t need = len + 1;
    chunk_t *c = p->head;
    if (need > CHUNK_BYTES / 4) {
        /* A large string gets a chunk of its own behind the current one, so the
         * current chunk's free space is not abandoned. */
        c = chunk_new(need);
        if (p->head) {
            c->next = p->head->next;
            p->head->next = c;
        } else {
            p->head = c;
        }
        p->bytes += need;
    } else if (!c || c->cap - c->used < need) {
        c = chunk_new(CHUNK_BYTES);
        c->next = p->head;
        p->head = c;
        p->bytes += CHUNK_BYTES;
    }
    char *dst = c->data + c->used;
    memcpy(dst, s, len);
    dst[len] = '\0';
    c->used += need;
    return dst;
}

size_t str_pool_bytes(const str_pool_t *p) { return p->bytes; }
