/* Safetensors reader: one read-only mmap per file, header checked with cJSON, tensors found by
 * name through an open-addressing hash table (the 1.7B checkpoint has ~700 tensors). */
#include "safetensors.h"

#include "util.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Same bound as the reference (Rust) implementation: a header holds names and shapes only. */
#define ST_MAX_HEADER 100000000u
/* Largest integer a JSON number (a double) holds exactly. */
#define JSON_MAX_EXACT 9007199254740992.0

typedef struct {
    char *path;
    void *map;
    size_t size;
} st_file_t;

struct st_model {
    st_file_t *files;
    int n_files;
    st_tensor_t *tensors;
    int n_tensors, cap_tensors;
    int *slots;     /* [n_slots] tensor index or -1; n_slots is a power of two */
    size_t n_slots;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [DTYPE_F32] = { "F32", 4 }, [DTYPE_F16] = { "F16", 2 }, [DTYPE_BF16] = { "BF16", 2 },
    [DTYPE_F64] = { "F64", 8 }, [DTYPE_I64] = { "I64", 8 }, [DTYPE_I32] = { "I32", 4 },
    [DTYPE_I16] = { "I16", 2 }, [DTYPE_I8] = { "I8", 1 },   [DTYPE_U8] = { "U8", 1 },
    [DTYPE_BOOL] = { "BOOL", 1 },
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

size_t dtype_size(dtype_t t)
{
    QASR_ASSERT((int)t >= 0 && (int)t < N_DTYPES);
    return dtypes[t].size;
}

const char *dtype_name(dtype_t t)
{
    QASR_ASSERT((int)t >= 0 && (int)t < N_DTYPES);
    return dtypes[t].name;
}

static int tensor_fail(const char *path, const char *name, const char *fmt, ...) QASR_PRINTF(3, 4);
static int tensor_fail(const char *path, const char *name, const char *fmt, ...)
{
    char msg[QASR_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qasr_fail("%s: tensor '%s': %s", path, name, msg);
}

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return -1;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= JSON_MAX_EXACT) || v != (double)(uint64_t)v) return -1;
    *out = (uint64_t)v;
    return 0;
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int map_file(st_file_t *f, const char *path)
{
    size_t size;
    const int fd = open_regular_file(path, "a safetensors file", &size);
    if (fd < 0) return -1;
    if (size < 8) {
        close(fd);
        return qasr_fail("%s: file is %zu bytes, too short for a safetensors file (needs an "
                         "8-byte header length)", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (map == MAP_FAILED) return qasr_fail("%s: mmap failed: %s", path, strerror(err));
    f->path = xstrdup(path);
    f->map = map;
    f->size = size;
    return 0;
}

/* Validate one header entry and append it to m. data: start of the file's data section. */
static int add_tensor(st_model_t *m, const st_file_t *f, const cJSON *item, const uint8_t *data,
                      uint64_t data_size)
{
    const char *path = f->path, *name = item->string;
    if (!cJSON_IsObject(item)) return tensor_fail(path, name, "entry is not a JSON object");
    const cJSON *jdtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *jshape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *joffs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");

    st_tensor_t t = { .file = path };
    if (!cJSON_IsString(jdtype))
        return tensor_fail(path, name, "\"dtype\" missing or not a string");
    int d = 0;
    while (d < N_DTYPES && strcmp(dtypes[d].name, jdtype->valuestring) != 0) d++;
    if (d == N_DTYPES)
        return tensor_fail(path, name, "unsupported dtype \"%s\"", jdtype->valuestring);
    t.dtype = (dtype_t)d;
    size_t esize = dtypes[d].size;

    if (!cJSON_IsArray(jshape)) return tensor_fail(path, name, "\"shape\" missing or not a list");
    t.ndim = cJSON_GetArraySize(jshape);
    if (t.ndim > ST_MAX_DIMS)
        return tensor_fail(path, name, "%d dimensions, at most %d supported", t.ndim, ST_MAX_DIMS);
    uint64_t numel = 1;
    for (int i = 0; i < t.ndim; i++) {
        uint64_t dim;
        if (json_uint(cJSON_GetArrayItem(jshape, i), &dim) != 0)
            return tensor_fail(path, name, "shape[%d] is not an integer in [0, 2^53]", i);
        if (dim != 0 && numel > (uint64_t)INT64_MAX / dim)
            return tensor_fail(path, name, "element count overflows");
        numel *= dim;
        t.shape[i] = (int64_t)dim;
    }
    t.numel = (int64_t)numel;

    uint64_t begin, end;
    if (!cJSON_IsArray(joffs) || cJSON_GetArraySize(joffs) != 2 ||
        json_uint(cJSON_GetArrayItem(joffs, 0), &begin) != 0 ||
        json_uint(cJSON_GetArrayItem(joffs, 1), &end) != 0)
        return tensor_fail(path, name,
                           "\"data_offsets\" is not a list of two integers in [0, 2^53]");
    if (end < begin)
        return tensor_fail(path, name, "data_offsets [%llu, %llu] end before begin",
                           (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return tensor_fail(path, name, "data_offsets [%llu, %llu] run past the %llu-byte data "
                           "section (file truncated?)", (unsigned long long)begin,
                           (unsigned long long)end, (unsigned long long)data_size);
    /* Division first: numel * esize may overflow for a hostile shape. */
    if (numel > (end - begin) / esize || numel * esize != end - begin)
        return tensor_fail(path, name, "data_offsets span %llu bytes, but the shape needs "
                           "%llu elements x %zu bytes (%s)", (unsigned long long)(end - begin),
                           (unsigned long long)numel, esize, dtypes[d].name);
    t.data = data + begin;
    t.nbytes = (size_t)(end - begin);
    /* Guarantees that callers may read data through a pointer to the element type. */
    if ((uintptr_t)t.data % esize != 0)
        return tensor_fail(path, name, "data at file offset %llu is not aligned to its %zu-byte "
                           "dtype", (unsigned long long)((const uint8_t *)t.data -
                                                         (const uint8_t *)f->map), esize);

    if (m->n_tensors == m->cap_tensors) {
        m->cap_tensors = m->cap_tensors ? 2 * m->cap_tensors : 64;
        m->tensors = xrealloc(m->tensors, (size_t)m->cap_tensors * sizeof *m->tensors);
    }
    t.name = xstrdup(name);
    m->tensors[m->n_tensors++] = t;
    return 0;
}

static int cmp_data(const void *a, const void *b)
{
    const st_tensor_t *x = *(const st_tensor_t *const *)a, *y = *(const st_tensor_t *const *)b;
    const uint8_t *px = x->data, *py = y->data;
    return (px > py) - (px < py);
}

/* Tensors m->tensors[first..] all come from f; two of them sharing bytes means a corrupt header. */
static int check_overlap(const st_model_t *m, int first, const char *path)
{
    int n = m->n_tensors - first, rc = 0;
    const st_tensor_t **sorted = xmalloc((size_t)n * sizeof *sorted);
    for (int i = 0; i < n; i++) sorted[i] = &m->tensors[first + i];
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_data);
    const st_tensor_t *prev = NULL;
    for (int i = 0; i < n && rc == 0; i++) {
        const st_tensor_t *t = sorted[i];
        if (t->nbytes == 0) continue;
        if (prev && (const uint8_t *)prev->data + prev->nbytes > (const uint8_t *)t->data)
            rc = tensor_fail(path, t->name, "data overlaps tensor '%s'", prev->name);
        prev = t;
    }
    free(sorted);
    return rc;
}

/* The n-byte JSON header after the length prefix, as a cJSON object; NULL + message otherwise. */
static cJSON *parse_header_json(const st_file_t *f, uint64_t n)
{
    /* cJSON wants a NUL-terminated string; the mapping has none after the header. */
    char *text = xmalloc(n + 1);
    memcpy(text, (const uint8_t *)f->map + 8, n);
    text[n] = '\0';
    const char *end = text;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    int ok = 0;
    if (!root) {
        qasr_fail("%s: header is not valid JSON (error near byte %td of the header)", f->path,
                  end - text);
    } else {
        /* Writers pad the header with spaces to an 8-byte boundary; anything else is garbage. */
        while (end < text + n && *end && strchr(" \t\r\n", *end)) end++;
        if (end != text + n)
            qasr_fail("%s: unexpected bytes after the JSON header at byte %td", f->path,
                      end - text);
        else if (!cJSON_IsObject(root))
            qasr_fail("%s: header is not a JSON object", f->path);
        else
            ok = 1;
    }
    if (!ok) {
        cJSON_Delete(root);
        root = NULL;
    }
    free(text);
    return root;
}

static int parse_header(st_model_t *m, const st_file_t *f)
{
    const uint8_t *bytes = f->map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | bytes[i];
    if (n == 0) return qasr_fail("%s: header length is 0", f->path);
    if (n > f->size - 8)
        return qasr_fail("%s: header length %llu runs past the end of the %zu-byte file",
                         f->path, (unsigned long long)n, f->size);
    if (n > ST_MAX_HEADER)
        return qasr_fail("%s: header length %llu is over the %u-byte limit", f->path,
                         (unsigned long long)n, ST_MAX_HEADER);
    cJSON *root = parse_header_json(f, n);
    if (!root) return -1;

    int first = m->n_tensors, rc = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") != 0)
            rc = add_tensor(m, f, item, bytes + 8 + n, f->size - 8 - n);
        else if (!cJSON_IsObject(item))
            rc = qasr_fail("%s: __metadata__ is not an object", f->path);
        if (rc != 0) break;
    }
    if (rc == 0) rc = check_overlap(m, first, f->path);
    cJSON_Delete(root);
    return rc;
}

static int load_file(st_model_t *m, const char *path)
{
    st_file_t f;
    if (map_file(&f, path) != 0) return -1;
    m->files = xrealloc(m->files, (size_t)(m->n_files + 1) * sizeof *m->files);
    m->files[m->n_files++] = f;
    return parse_header(m, &m->files[m->n_files - 1]);
}

static int build_index(st_model_t *m)
{
    m->n_slots = 16;
    while (m->n_slots < 2 * (size_t)m->n_tensors) m->n_slots *= 2;
    m->slots = xmalloc(m->n_slots * sizeof *m->slots);
    memset(m->slots, 0xff, m->n_slots * sizeof *m->slots); /* all -1 */
    for (int i = 0; i < m->n_tensors; i++) {
        const st_tensor_t *t = &m->tensors[i];
        size_t s = hash_name(t->name) & (m->n_slots - 1);
        for (; m->slots[s] >= 0; s = (s + 1) & (m->n_slots - 1)) {
            const st_tensor_t *o = &m->tensors[m->slots[s]];
            if (strcmp(o->name, t->name) != 0) continue;
            if (o->file == t->file)
                return tensor_fail(t->file, t->name, "listed twice in the header");
            return qasr_fail("tensor '%s' is in two shards: %s and %s", t->name, o->file, t->file);
        }
        m->slots[s] = i;
    }
    return 0;
}

st_model_t *st_open_file(const char *path)
{
    st_model_t *m = xcalloc(1, sizeof *m);
    if (load_file(m, path) != 0 || build_index(m) != 0) {
        st_close(m);
        return NULL;
    }
    return m;
}

static int has_file(const st_model_t *m, const char *path)
{
    for (int i = 0; i < m->n_files; i++)
        if (strcmp(m->files[i].path, path) == 0) return 1;
    return 0;
}

/* Open every shard named in the index once, then check each tensor is where the index says. */
static int load_shards(st_model_t *m, const char *dir, const char *index_path, const cJSON *map)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e) || !e->valuestring[0])
            return qasr_fail("%s: weight_map entry for tensor '%s' is not a file name", index_path,
                             e->string);
        /* shards are files of the model directory, as in the published index */
        if (strchr(e->valuestring, '/') || !strcmp(e->valuestring, "..") || !strcmp(e->valuestring, "."))
            return qasr_fail("%s: weight_map puts tensor '%s' in \"%s\", which is not a file of the model "
                             "directory", index_path, e->string, e->valuestring);
        char *shard = path_join(dir, e->valuestring);
        int rc = has_file(m, shard) ? 0 : load_file(m, shard);
        free(shard);
        if (rc != 0) return qasr_fail_prefix("%s: shard of tensor '%s'", index_path, e->string);
    }
    if (build_index(m) != 0) return qasr_fail_prefix("%s", index_path);
    cJSON_ArrayForEach(e, map) {
        char *shard = path_join(dir, e->valuestring);
        const st_tensor_t *t = st_find(m, e->string);
        int rc = 0;
        if (!t)
            rc = qasr_fail("%s: maps tensor '%s' to %s, but that shard has no such tensor",
                           index_path, e->string, shard);
        else if (strcmp(t->file, shard) != 0)
            rc = qasr_fail("%s: maps tensor '%s' to %s, but it is in %s", index_path, e->string,
                           shard, t->file);
        free(shard);
        if (rc != 0) return -1;
    }
    return 0;
}

static st_model_t *open_sharded(const char *dir, const char *index_path)
{
    char *text = read_text_file(index_path, NULL);
    if (!text) return NULL;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    st_model_t *m = NULL;
    if (!cJSON_IsObject(root)) {
        qasr_fail("%s: not a valid JSON object", index_path);
    } else if (!cJSON_IsObject(map)) {
        qasr_fail("%s: no \"weight_map\" object", index_path);
    } else {
        m = xcalloc(1, sizeof *m);
        if (load_shards(m, dir, index_path, map) != 0) {
            st_close(m);
            m = NULL;
        }
    }
    cJSON_Delete(root);
    return m;
}

st_model_t *st_open_dir(const char *dir)
{
    static const char index_name[] = "model.safetensors.index.json";
    static const char single_name[] = "model.safetensors";
    char *index_path = path_join(dir, index_name), *single_path = path_join(dir, single_name);
    struct stat st;
    st_model_t *m = NULL;
    if (stat(index_path, &st) == 0)
        m = open_sharded(dir, index_path);
    else if (stat(single_path, &st) == 0)
        m = st_open_file(single_path);
    else
        qasr_fail("%s: no checkpoint: looked for %s and %s", dir, index_name, single_name);
    free(index_path);
    free(single_path);
    return m;
}

void st_close(st_model_t *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_tensors; i++) free((char *)m->tensors[i].name);
    for (int i = 0; i < m->n_files; i++) {
        munmap(m->files[i].map, m->files[i].size);
        free(m->files[i].path);
    }
    free(m->tensors);
    free(m->files);
    free(m->slots);
    free(m);
}

const st_tensor_t *st_find(const st_model_t *m, const char *name)
{
    for (size_t s = hash_name(name) & (m->n_slots - 1); m->slots[s] >= 0;
         s = (s + 1) & (m->n_slots - 1)) {
        const st_tensor_t *t = &m->tensors[m->slots[s]];
        if (strcmp(t->name, name) == 0) return t;
    }
    return NULL;
}

int st_count(const st_model_t *m) { return m->n_tensors; }

const st_tensor_t *st_get(const st_model_t *m, int i)
{
    QASR_ASSERT(i >= 0 && i < m->n_tensors);
    return &m->tensors[i];
}

void st_release_bytes(const void *p, size_t n)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p;
    const uintptr_t lo = (a + page - 1) / page * page, hi = (a + n) / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED); /* whole pages inside only */
}

void st_release(const st_tensor_t *t) { st_release_bytes(t->data, t->nbytes); }
