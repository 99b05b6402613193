/* Open-addressing hash map, linear probing, power-of-two capacity (see id_map.h). */
#include "id_map.h"

#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *key; /* NULL: empty slot */
    uint32_t hash;   /* compared before the string */
    int value;
} slot_t;

struct id_map {
    slot_t *slots;
    size_t cap, count;
};

static uint32_t hash_str(const char *s)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

id_map_t *id_map_new(void)
{
    id_map_t *m = xcalloc(1, sizeof *m);
    m->cap = 64;
    m->slots = xcalloc(m->cap, sizeof(slot_t));
    return m;
}

void id_map_free(id_map_t *m)
{
    if (!m) return;
    free(m->slots);
    free(m);
}

/* The slot holding key, or the empty slot where it would go. */
static slot_t *probe(slot_t *slots, size_t cap, const char *key, uint32_t h)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        slot_t *s = &slots[i];
        if (!s->key || (s->hash == h && strcmp(s->key, key) == 0)) return s;
    }
}

static void grow(id_map_t *m)
{
    size_t cap = m->cap * 2;
    slot_t *slots = xcalloc(cap, sizeof(slot_t));
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) *probe(slots, cap, m->slots[i].key, m->slots[i].hash) = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
}

int *id_map_add(id_map_t *m, const char *key, int value)
{
    if ((m->count + 1) * 10 > m->cap * 7) grow(m);
    uint32_t h = hash_str(key);
    slot_t *s = probe(m->slots, m->cap, key, h);
    if (s->key) return &s->value;
    *s = (slot_t){ .key = key, .hash = h, .value = value };
    m->count++;
    return NULL;
}

int *id_map_find(const id_map_t *m, const char *key)
{
    slot_t *s = probe(m->slots, m->cap, key, hash_str(key));
    return s->key ? &s->value : NULL;
}

size_t id_map_count(const id_map_t *m) { return m->count; }
