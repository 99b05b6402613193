/* KV page pool: reservation is all-or-nothing, pages are never handed out twice, released
 * pages are reused, and slots map positions through the block table. */
#include "kv_pages.h"
#include "test.h"

int main(void)
{
    kv_pool_t pool;
    kv_pool_init(&pool, 10, 16);
    kv_seq_t a = { 0 }, b = { 0 }, c = { 0 };
    CHECK_INT_EQ(kv_pages_for(&pool, 0), 0);
    CHECK_INT_EQ(kv_pages_for(&pool, 16), 1);
    CHECK_INT_EQ(kv_pages_for(&pool, 17), 2);

    CHECK_INT_EQ(kv_seq_reserve(&pool, &a, 40), 0); /* 3 pages */
    CHECK_INT_EQ(a.n_pages, 3);
    CHECK_INT_EQ(kv_seq_reserve(&pool, &a, 48), 0); /* still 3 */
    CHECK_INT_EQ(a.n_pages, 3);
    CHECK_INT_EQ(kv_seq_reserve(&pool, &b, 16 * 6), 0);
    CHECK_INT_EQ(pool.n_free, 1);
    CHECK_INT_EQ(kv_seq_reserve(&pool, &c, 33), -1); /* needs 3, 1 free: nothing taken */
    CHECK_INT_EQ(c.n_pages, 0);
    CHECK_INT_EQ(pool.n_free, 1);

    int seen[10] = { 0 };
    for (int i = 0; i < a.n_pages; i++) seen[a.pages[i]]++;
    for (int i = 0; i < b.n_pages; i++) seen[b.pages[i]]++;
    int dup = 0;
    for (int i = 0; i < 10; i++) dup |= seen[i] > 1;
    CHECK(!dup);

    /* slot = physical page * page size + offset, through the block table */
    CHECK_INT_EQ(kv_slot(&pool, &b, 0), b.pages[0] * 16);
    CHECK_INT_EQ(kv_slot(&pool, &b, 17), b.pages[1] * 16 + 1);
    CHECK_INT_EQ(kv_slot(&pool, &b, 95), b.pages[5] * 16 + 15);

    kv_seq_release(&pool, &a);
    CHECK_INT_EQ(pool.n_free, 4);
    CHECK_INT_EQ(a.n_pages, 0);
    CHECK_INT_EQ(kv_seq_reserve(&pool, &c, 60), 0); /* 4 pages: a's three + the free one */
    CHECK_INT_EQ(pool.n_free, 0);
    kv_seq_release(&pool, &b);
    kv_seq_release(&pool, &c);
    CHECK_INT_EQ(pool.n_free, 10);
    kv_pool_free(&pool);
    return test_result("test_kv_pages");
}
