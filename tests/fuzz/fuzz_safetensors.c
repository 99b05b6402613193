/* host/model/safetensors.c: the header of a .safetensors file and the shard index.
 * Input: a mode byte, then
 *   mode 0: one file, opened with st_open_file;
 *   mode 1: one file as dir/model.safetensors, opened with st_open_dir;
 *   mode 2: model.safetensors.index.json, then up to 3 shard files after FUZZ_SEP lines, written
 *           as model-0000K-of-00003.safetensors (K = 1, 2, 3), opened with st_open_dir.
 * Properties: a failure leaves a message; in an accepted checkpoint every tensor is found by its
 * name, its byte count is its element count times its dtype size, each dimension is counted,
 * its bytes can be read, and no two tensors of a file share a byte. */
#include "fuzz.h"

#include "safetensors.h"
#include "util.h"

static int by_data(const void *a, const void *b)
{
    const st_tensor_t *x = *(const st_tensor_t *const *)a, *y = *(const st_tensor_t *const *)b;
    const int f = strcmp(x->file, y->file);
    if (f) return f;
    const uint8_t *px = x->data, *py = y->data;
    return (px > py) - (px < py);
}

static void check_model(const st_model_t *m)
{
    const int n = st_count(m);
    FUZZ_CHECK(n >= 0);
    const st_tensor_t **sorted = malloc((size_t)(n ? n : 1) * sizeof *sorted);
    volatile unsigned sum = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor_t *t = st_get(m, i);
        FUZZ_CHECK(st_find(m, t->name) == t);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            numel *= t->shape[d]; /* no overflow: the reader bounded the product */
        }
        FUZZ_CHECK(numel == t->numel);
        FUZZ_CHECK((uint64_t)t->numel * dtype_size(t->dtype) == t->nbytes);
        FUZZ_CHECK((uintptr_t)t->data % dtype_size(t->dtype) == 0);
        for (size_t b = 0; b < t->nbytes; b++) sum += ((const uint8_t *)t->data)[b];
        sorted[i] = t;
    }
    if (n) qsort(sorted, (size_t)n, sizeof *sorted, by_data);
    for (int i = 0, prev = -1; i < n; i++) {
        const st_tensor_t *b = sorted[i];
        if (!b->nbytes) continue;
        if (prev >= 0 && strcmp(sorted[prev]->file, b->file) == 0)
            FUZZ_CHECK((const uint8_t *)sorted[prev]->data + sorted[prev]->nbytes <= (const uint8_t *)b->data);
        prev = i;
    }
    free(sorted);
    FUZZ_CHECK(!st_find(m, "no such tensor in any seed"));
    (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int mode = fuzz_u8(&data, &size) % 3;
    st_model_t *m = NULL;
    if (mode == 0) {
        char *path = fuzz_write("one.safetensors", data, size);
        m = st_open_file(path);
        free(path);
    } else if (mode == 1) {
        free(fuzz_write("model.safetensors", data, size));
        m = st_open_dir(fuzz_dir());
    } else {
        fuzz_part_t part[4];
        const size_t n = fuzz_split(data, size, FUZZ_SEP, strlen(FUZZ_SEP), part, 4);
        free(fuzz_write("model.safetensors.index.json", part[0].p, part[0].n));
        for (size_t k = 1; k < n; k++) {
            char name[64];
            snprintf(name, sizeof name, "model-%05zu-of-00003.safetensors", k);
            free(fuzz_write(name, part[k].p, part[k].n));
        }
        m = st_open_dir(fuzz_dir());
    }
    if (m) {
        check_model(m);
        st_close(m);
    } else {
        FUZZ_CHECK(qasr_last_error()[0]);
    }
    fuzz_clear();
    return 0;
}
