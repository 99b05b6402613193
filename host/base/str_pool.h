/* A string arena: copies of many small strings with one allocation per 64 KiB, stable
 * addresses, and a single free. The manifest and the results index keep their ids and paths here,
 * so a million entries cost their bytes plus a NUL each, not a malloc header each. */
#ifndef QASR_STR_POOL_H
#define QASR_STR_POOL_H

#include <stddef.h>

typedef struct str_pool str_pool_t;

str_pool_t *str_pool_new(void);
void str_pool_free(str_pool_t *p);

/* Copy len bytes of s plus a terminating NUL into the pool. The copy lives until str_pool_free. */
char *str_pool_add(str_pool_t *p, const char *s, size_t len);

/* Bytes allocated by the pool so far (for memory accounting). */
size_t str_pool_bytes(const str_pool_t *p);

#endif
