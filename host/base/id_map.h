/* Hash map from an id (a NUL-terminated byte string) to an int: duplicate-id detection in the
 * manifest, done/failed lookups when resuming a results file. Open addressing, 16 bytes a slot,
 * at most 70% full. Keys are borrowed: the caller keeps them alive (a str_pool_t, usually)
 * for the map's lifetime. Lookups on a map nobody is modifying are safe from many threads. */
#ifndef QASR_ID_MAP_H
#define QASR_ID_MAP_H

#include <stddef.h>

typedef struct id_map id_map_t;

id_map_t *id_map_new(void);
void id_map_free(id_map_t *m);

/* Add key -> value and return NULL if key is absent; if present, leave the map unchanged and
 * return a pointer to the existing value (valid until the next add). */
int *id_map_add(id_map_t *m, const char *key, int value);

/* Pointer to key's value (writable, valid until the next add), or NULL if absent. */
int *id_map_find(const id_map_t *m, const char *key);

size_t id_map_count(const id_map_t *m);

#endif
