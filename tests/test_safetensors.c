/* Safetensors reader: files written here (single, sharded, many tensors) read back exactly, and
 * every kind of malformed file or index fails with a message naming the file (and tensor). */
#include "safetensors.h"
#include "util.h"

#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static const char *tmp_root;

/* tmp_root/name, malloc'd; creates tmp_root/sub when name is "sub/file". */
static char *tmp_path(const char *name)
{
    char *p = path_join(tmp_root, name);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    test_mkdir_p(p);
    *slash = '/';
    return p;
}

/* 8-byte little-endian length `len`, then the bytes of header and data. */
static void write_raw(const char *path, uint64_t len, const char *header, const void *data,
                      size_t n)
{
    size_t nh = strlen(header);
    uint8_t *buf = xmalloc(8 + nh + n);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(len >> (8 * i));
    memcpy(buf + 8, header, nh);
    if (n) memcpy(buf + 8 + nh, data, n);
    test_write_file(path, buf, 8 + nh + n);
    free(buf);
}

/* A well-formed file as writers make it: header padded with spaces to a multiple of 8.
 * Returns the path (malloc'd). */
static char *write_st(const char *name, const char *header, const void *data, size_t n)
{
    size_t nh = strlen(header), padded = (nh + 7) / 8 * 8;
    char *h = xmalloc(padded + 1);
    memcpy(h, header, nh);
    memset(h + nh, ' ', padded - nh);
    h[padded] = '\0';
    char *path = tmp_path(name);
    write_raw(path, padded, h, data, n);
    free(h);
    return path;
}

static int contains(const char *s, const char *part) { return part == NULL || strstr(s, part); }

/* Opening must fail (st_open_file if is_dir is 0, else st_open_dir) with every given part in the
 * message. */
static void expect_fail(const char *label, const char *path, int is_dir, const char *part1,
                        const char *part2, const char *part3)
{
    st_model_t *m = is_dir ? st_open_dir(path) : st_open_file(path);
    CHECK(m == NULL);
    st_close(m);
    const char *err = qasr_last_error();
    if (!contains(err, path) || !contains(err, part1) || !contains(err, part2) ||
        !contains(err, part3)) {
        fprintf(stderr, "%s: message \"%s\" lacks one of \"%s\" \"%s\" \"%s\" \"%s\"\n", label,
                err, path, part1 ? part1 : "", part2 ? part2 : "", part3 ? part3 : "");
        CHECK(0);
    }
}

/* The reference file: 40 data bytes holding a F32 [2,3], a BF16 [4], an I64 scalar, an empty U8. */
static const char good_header[] =
    "{\"__metadata__\": {\"format\": \"pt\"},"
    " \"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]},"
    " \"b\": {\"dtype\": \"BF16\", \"shape\": [4], \"data_offsets\": [24, 32]},"
    " \"c\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [32, 40]},"
    " \"e\": {\"dtype\": \"U8\", \"shape\": [0, 5], \"data_offsets\": [40, 40]}}";

static void good_data(uint8_t out[40])
{
    float a[6] = { 0.5f, -1.0f, 2.25f, 3.0f, 1e-3f, -7.5f };
    uint16_t b[4] = { 0x3f80, 0x4000, 0x4040, 0xc080 }; /* bf16 1, 2, 3, -4 */
    int64_t c = -7;
    memcpy(out, a, 24);
    memcpy(out + 24, b, 8);
    memcpy(out + 32, &c, 8);
}

static void check_good(const st_model_t *m, const char *path)
{
    CHECK_INT_EQ(st_count(m), 4);
    CHECK_STR_EQ(st_get(m, 0)->name, "a");
    CHECK_STR_EQ(st_get(m, 3)->name, "e");

    const st_tensor_t *a = st_find(m, "a");
    CHECK(a != NULL);
    if (a) {
        CHECK_STR_EQ(a->file, path);
        CHECK_INT_EQ(a->dtype, DTYPE_F32);
        CHECK_INT_EQ(a->ndim, 2);
        CHECK_INT_EQ(a->shape[0], 2);
        CHECK_INT_EQ(a->shape[1], 3);
        CHECK_INT_EQ(a->numel, 6);
        CHECK_INT_EQ(a->nbytes, 24);
        const float *v = a->data;
        CHECK(v[0] == 0.5f && v[2] == 2.25f && v[4] == 1e-3f && v[5] == -7.5f);
    }
    const st_tensor_t *b = st_find(m, "b");
    CHECK(b != NULL);
    if (b) {
        CHECK_INT_EQ(b->dtype, DTYPE_BF16);
        CHECK_INT_EQ(b->ndim, 1);
        CHECK_INT_EQ(b->numel, 4);
        CHECK_INT_EQ(b->nbytes, 8);
        const uint16_t *v = b->data;
        CHECK(bf16_to_f32(v[0]) == 1.0f && bf16_to_f32(v[1]) == 2.0f &&
              bf16_to_f32(v[2]) == 3.0f && bf16_to_f32(v[3]) == -4.0f);
    }
    const st_tensor_t *c = st_find(m, "c");
    CHECK(c != NULL);
    if (c) {
        CHECK_INT_EQ(c->dtype, DTYPE_I64);
        CHECK_INT_EQ(c->ndim, 0);
        CHECK_INT_EQ(c->numel, 1);
        CHECK_INT_EQ(*(const int64_t *)c->data, -7);
    }
    const st_tensor_t *e = st_find(m, "e");
    CHECK(e != NULL);
    if (e) {
        CHECK_INT_EQ(e->dtype, DTYPE_U8);
        CHECK_INT_EQ(e->numel, 0);
        CHECK_INT_EQ(e->nbytes, 0);
    }
    CHECK(st_find(m, "__metadata__") == NULL);
    CHECK(st_find(m, "A") == NULL);
    CHECK(st_find(m, "") == NULL);
}

static void test_single_file(void)
{
    uint8_t data[40];
    good_data(data);
    char *path = write_st("single/model.safetensors", good_header, data, sizeof data);
    st_model_t *m = st_open_file(path);
    CHECK(m != NULL);
    if (m) check_good(m, path);
    st_close(m);

    char *dir = path_join(tmp_root, "single");
    m = st_open_dir(dir);
    CHECK(m != NULL);
    if (m) check_good(m, path);
    st_close(m);
    free(dir);
    free(path);
}

static void test_dtypes(void)
{
    static const struct {
        const char *name;
        dtype_t dtype;
        size_t size;
    } all[] = { { "F32", DTYPE_F32, 4 }, { "F16", DTYPE_F16, 2 }, { "BF16", DTYPE_BF16, 2 },
                { "F64", DTYPE_F64, 8 }, { "I64", DTYPE_I64, 8 }, { "I32", DTYPE_I32, 4 },
                { "I16", DTYPE_I16, 2 }, { "I8", DTYPE_I8, 1 },   { "U8", DTYPE_U8, 1 },
                { "BOOL", DTYPE_BOOL, 1 } };
    /* One [3] tensor per dtype, each at an 8-byte aligned offset. */
    char header[2048] = "{";
    size_t off = 0;
    for (int i = 0; i < 10; i++) {
        size_t n = 3 * all[i].size;
        snprintf(header + strlen(header), sizeof header - strlen(header),
                 "%s\"t_%s\": {\"dtype\": \"%s\", \"shape\": [3], \"data_offsets\": [%zu, %zu]}",
                 i ? ", " : "", all[i].name, all[i].name, off, off + n);
        off += (n + 7) / 8 * 8;
    }
    strcat(header, "}");
    uint8_t data[256] = { 0 };
    char *path = write_st("dtypes.safetensors", header, data, off);
    st_model_t *m = st_open_file(path);
    CHECK(m != NULL);
    for (int i = 0; m && i < 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "t_%s", all[i].name);
        const st_tensor_t *t = st_find(m, name);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK_INT_EQ(t->dtype, all[i].dtype);
        CHECK_INT_EQ(t->nbytes, 3 * all[i].size);
        CHECK_INT_EQ(dtype_size(all[i].dtype), all[i].size);
        CHECK_STR_EQ(dtype_name(all[i].dtype), all[i].name);
    }
    st_close(m);
    free(path);
}

/* More tensors than the 1.7B checkpoint, with names like its own, all found by name. */
static void test_many_tensors(void)
{
    enum { N = 1500 };
    size_t cap = (size_t)N * 128;
    char *header = xmalloc(cap);
    size_t len = (size_t)snprintf(header, cap, "{");
    float *data = xmalloc(N * sizeof *data);
    for (int i = 0; i < N; i++) {
        len += (size_t)snprintf(header + len, cap - len,
                                "%s\"thinker.model.layers.%d.mlp.up_proj.weight\": {\"dtype\": "
                                "\"F32\", \"shape\": [1], \"data_offsets\": [%d, %d]}",
                                i ? ", " : "", i, 4 * i, 4 * i + 4);
        data[i] = (float)i;
    }
    snprintf(header + len, cap - len, "}");
    char *path = write_st("many.safetensors", header, data, N * sizeof *data);
    st_model_t *m = st_open_file(path);
    CHECK(m != NULL);
    if (m) {
        CHECK_INT_EQ(st_count(m), N);
        int wrong = 0;
        for (int i = 0; i < N; i++) {
            char name[96];
            snprintf(name, sizeof name, "thinker.model.layers.%d.mlp.up_proj.weight", i);
            const st_tensor_t *t = st_find(m, name);
            wrong += !t || *(const float *)t->data != (float)i || t != st_get(m, i);
        }
        CHECK_INT_EQ(wrong, 0);
        CHECK(st_find(m, "thinker.model.layers.1500.mlp.up_proj.weight") == NULL);
    }
    st_close(m);
    free(path);
    free(data);
    free(header);
}

static const char shard1_header[] =
    "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
    " \"z\": {\"dtype\": \"BF16\", \"shape\": [2, 2], \"data_offsets\": [8, 16]}}";
static const char shard2_header[] =
    "{\"y\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";

typedef struct {
    char *dir, *index, *s1, *s2;
} sharded_t;

/* tmp_root/name holding s1.safetensors (x, z), s2.safetensors (y) and an index with the given
 * weight_map. */
static sharded_t write_sharded(const char *name, const char *weight_map)
{
    float d1[4] = { 1.5f, -2.0f, 0, 0 }, d2[1] = { 42.0f };
    uint16_t z[4] = { 0x3f80, 0x4000, 0x4040, 0x4080 }; /* bf16 1, 2, 3, 4 */
    memcpy(&d1[2], z, sizeof z);
    char rel[256];
    snprintf(rel, sizeof rel, "%s/s1.safetensors", name);
    char *s1 = write_st(rel, shard1_header, d1, sizeof d1);
    snprintf(rel, sizeof rel, "%s/s2.safetensors", name);
    char *s2 = write_st(rel, shard2_header, d2, sizeof d2);
    char index[1024];
    snprintf(index, sizeof index, "{\"metadata\": {\"total_size\": 20}, \"weight_map\": %s}",
             weight_map);
    snprintf(rel, sizeof rel, "%s/model.safetensors.index.json", name);
    char *index_path = tmp_path(rel);
    test_write_file(index_path, index, strlen(index));
    return (sharded_t){ path_join(tmp_root, name), index_path, s1, s2 };
}

static void sharded_free(sharded_t *c)
{
    free(c->dir);
    free(c->index);
    free(c->s1);
    free(c->s2);
}

static void test_sharded(void)
{
    sharded_t c = write_sharded("sharded", "{\"x\": \"s1.safetensors\", \"y\": \"s2.safetensors\","
                                           " \"z\": \"s1.safetensors\"}");
    st_model_t *m = st_open_dir(c.dir);
    CHECK(m != NULL);
    if (m) {
        CHECK_INT_EQ(st_count(m), 3);
        const st_tensor_t *x = st_find(m, "x"), *y = st_find(m, "y"), *z = st_find(m, "z");
        CHECK(x && y && z);
        if (x && y && z) {
            CHECK_STR_EQ(x->file, c.s1);
            CHECK_STR_EQ(y->file, c.s2);
            CHECK_STR_EQ(z->file, c.s1);
            CHECK(((const float *)x->data)[1] == -2.0f);
            CHECK(((const float *)y->data)[0] == 42.0f);
            CHECK_INT_EQ(z->shape[1], 2);
            CHECK(bf16_to_f32(((const uint16_t *)z->data)[3]) == 4.0f);
        }
    }
    st_close(m);
    sharded_free(&c);
}

static void test_bad_files(void)
{
    static const struct {
        const char *label, *header, *part1, *part2;
        size_t data_len;
    } cases[] = {
        { "not JSON", "this is not json", "not valid JSON", NULL, 0 },
        { "not an object", "[1, 2, 3]", "not a JSON object", NULL, 0 },
        { "trailing bytes", "{} x", "after the JSON header", NULL, 0 },
        { "unknown dtype", "{\"w.weight\": {\"dtype\": \"F8_E4M3\", \"shape\": [2], "
          "\"data_offsets\": [0, 2]}}", "'w.weight'", "F8_E4M3", 8 },
        { "dtype not a string", "{\"w.weight\": {\"dtype\": 4, \"shape\": [2], "
          "\"data_offsets\": [0, 8]}}", "'w.weight'", "dtype", 8 },
        { "offsets past end", "{\"w.weight\": {\"dtype\": \"F32\", \"shape\": [16], "
          "\"data_offsets\": [0, 64]}}", "'w.weight'", "past", 24 },
        { "end before begin", "{\"w.weight\": {\"dtype\": \"F32\", \"shape\": [2], "
          "\"data_offsets\": [16, 8]}}", "'w.weight'", "before", 24 },
        { "size mismatch", "{\"w.weight\": {\"dtype\": \"F32\", \"shape\": [2, 3], "
          "\"data_offsets\": [0, 20]}}", "'w.weight'", "span 20 bytes", 24 },
        { "negative dim", "{\"w.weight\": {\"dtype\": \"F32\", \"shape\": [-1, 3], "
          "\"data_offsets\": [0, 12]}}", "'w.weight'", "shape[0]", 24 },
        { "fractional dim", "{\"w.weight\": {\"dtype\": \"F32\", \"shape\": [3, 2.5], "
          "\"data_offsets\": [0, 12]}}", "'w.weight'", "shape[1]", 24 },
        { "string dim", "{\"w.weight\": {\"dtype\": \"F32\", \"shape\": [\"3\"], "
          "\"data_offsets\": [0, 12]}}", "'w.weight'", "shape[0]", 24 },
        { "too many dims", "{\"w.weight\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], "
          "\"data_offsets\": [0, 1]}}", "'w.weight'", "dimensions", 8 },
        { "numel overflow", "{\"w.weight\": {\"dtype\": \"BF16\", \"shape\": "
          "[4294967296, 4294967296, 4294967296], \"data_offsets\": [0, 8]}}", "'w.weight'",
          "overflow", 8 },
        { "numel x dtype overflow", "{\"w.weight\": {\"dtype\": \"F64\", \"shape\": "
          "[1125899906842624, 4096], \"data_offsets\": [0, 0]}}", "'w.weight'", "span 0 bytes", 8 },
        { "dim beyond 2^53", "{\"w.weight\": {\"dtype\": \"U8\", \"shape\": "
          "[1e300], \"data_offsets\": [0, 0]}}", "'w.weight'", "shape[0]", 8 },
        { "shape missing", "{\"w.weight\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}",
          "'w.weight'", "shape", 8 },
        { "offsets missing", "{\"w.weight\": {\"dtype\": \"F32\", \"shape\": [2]}}", "'w.weight'",
          "data_offsets", 8 },
        { "one offset", "{\"w.weight\": {\"dtype\": \"F32\", \"shape\": [2], "
          "\"data_offsets\": [0]}}", "'w.weight'", "data_offsets", 8 },
        { "entry not an object", "{\"w.weight\": 5}", "'w.weight'", "not a JSON object", 0 },
        { "metadata not an object", "{\"__metadata__\": 5}", "__metadata__", NULL, 0 },
        { "overlap", "{\"p\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
          " \"q\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}", "'q'",
          "overlaps tensor 'p'", 24 },
        { "duplicate name", "{\"p\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
          " \"p\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", "'p'",
          "twice", 16 },
        { "misaligned", "{\"h\": {\"dtype\": \"BF16\", \"shape\": [1], \"data_offsets\": [0, 2]},"
          " \"f\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [2, 6]}}", "'f'",
          "aligned", 8 },
    };
    uint8_t data[24] = { 0 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "bad/case%zu.safetensors", i);
        char *path = write_st(name, cases[i].header, data, cases[i].data_len);
        expect_fail(cases[i].label, path, 0, cases[i].part1, cases[i].part2, NULL);
        free(path);
    }

    char *path = tmp_path("bad/raw.safetensors");
    test_write_file(path, "", 0);
    expect_fail("empty file", path, 0, "0 bytes", NULL, NULL);
    test_write_file(path, "\x10\0\0\0\0", 5);
    expect_fail("shorter than the length", path, 0, "5 bytes", NULL, NULL);
    write_raw(path, 1000, "{}      ", NULL, 0);
    expect_fail("header length past EOF", path, 0, "header length 1000", NULL, NULL);
    write_raw(path, UINT64_MAX, "{}      ", NULL, 0);
    expect_fail("header length 2^64-1", path, 0, "header length", NULL, NULL);
    write_raw(path, 0, "{}      ", NULL, 0);
    expect_fail("zero-length header", path, 0, "header length is 0", NULL, NULL);
    write_raw(path, 200000000, "{}      ", NULL, 0);
    CHECK(truncate(path, 8 + 200000000) == 0); /* sparse: the length fits, the limit does not */
    expect_fail("header over the limit", path, 0, "limit", NULL, NULL);
    test_write_file(path, "\x08\0\0\0\0\0\0\0{}\0     ", 16);
    expect_fail("NUL inside the header", path, 0, "after the JSON header", NULL, NULL);
    free(path);

    /* A good file cut short inside the data section. */
    uint8_t good[40];
    good_data(good);
    path = write_st("bad/truncated.safetensors", good_header, good, sizeof good);
    CHECK(truncate(path, 8 + (off_t)((strlen(good_header) + 7) / 8 * 8) + 36) == 0);
    expect_fail("truncated data", path, 0, "'c'", "past", NULL);
    free(path);

    path = path_join(tmp_root, "bad/no_such_file.safetensors");
    expect_fail("missing file", path, 0, "No such file", NULL, NULL);
    free(path);
}

static void test_bad_dirs(void)
{
    char *dir = path_join(tmp_root, "empty_dir");
    test_mkdir_p(dir);
    expect_fail("no checkpoint", dir, 1, "model.safetensors.index.json", "model.safetensors", NULL);
    free(dir);

    sharded_t c = write_sharded("missing_shard", "{\"x\": \"s1.safetensors\", "
                                                 "\"y\": \"gone.safetensors\"}");
    expect_fail("missing shard", c.dir, 1, c.index, "missing_shard/gone.safetensors", "'y'");
    sharded_free(&c);

    c = write_sharded("missing_tensor", "{\"x\": \"s1.safetensors\", \"q\": \"s1.safetensors\","
                                        " \"y\": \"s2.safetensors\"}");
    expect_fail("tensor missing from its shard", c.dir, 1, c.index, c.s1, "'q'");
    sharded_free(&c);

    c = write_sharded("wrong_shard", "{\"x\": \"s2.safetensors\", \"z\": \"s1.safetensors\"}");
    expect_fail("tensor in another shard", c.dir, 1, c.s1, c.s2, "'x'");
    sharded_free(&c);

    /* s2 rewritten to hold x as well as y; x is also in s1. */
    float d[9] = { 0 };
    c = write_sharded("duplicate", "{\"x\": \"s1.safetensors\", \"y\": \"s2.safetensors\"}");
    free(write_st("duplicate/s2.safetensors",
                  "{\"y\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                  " \"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                  d, 12));
    expect_fail("tensor in two shards", c.dir, 1, c.s1, c.s2, "'x'");
    sharded_free(&c);

    /* A malformed shard: the message names the index, the shard and the tensor. */
    c = write_sharded("bad_shard", "{\"x\": \"s1.safetensors\", \"y\": \"s2.safetensors\"}");
    free(write_st("bad_shard/s2.safetensors", "{\"y\": {\"dtype\": \"F32\", \"shape\": [9], "
                  "\"data_offsets\": [0, 36]}}", d, 12));
    expect_fail("malformed shard", c.dir, 1, c.index, c.s2, "'y'");

    test_write_file(c.index, "{\"weight_map\": ", 15);
    expect_fail("index not JSON", c.dir, 1, c.index, NULL, NULL);
    test_write_file(c.index, "{\"metadata\": {}}", 16);
    expect_fail("index without weight_map", c.dir, 1, c.index, "weight_map", NULL);
    test_write_file(c.index, "{\"weight_map\": {\"x\": 3}}", 24);
    expect_fail("weight_map value not a string", c.dir, 1, c.index, "'x'", NULL);
    sharded_free(&c);
}

int main(void)
{
    tmp_root = test_tmp_dir("safetensors");
    test_single_file();
    test_dtypes();
    test_many_tensors();
    test_sharded();
    test_bad_files();
    test_bad_dirs();
    return test_result("test_safetensors");
}
