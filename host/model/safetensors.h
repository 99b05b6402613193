/* Safetensors checkpoint reader: mmap, header validation, lookup by tensor name.
 *
 * A checkpoint directory holds either one `model.safetensors` or shards listed by
 * `model.safetensors.index.json` ("weight_map": tensor name -> shard file). Each file is
 * mmap'd read-only; tensors point straight into the mapping (no copy).
 * Header checks: 8-byte length within the file, JSON object, every tensor with a known dtype,
 * a shape of non-negative dims, data_offsets [begin, end] with begin <= end, inside the data
 * section, and end - begin == numel * dtype size; no two tensors overlap, and each tensor's data
 * is aligned to its dtype size (so `data` may be read through a pointer to the element type).
 * A tensor named in the index but absent from its shard, or present in two shards, is an error.
 * Error messages name the file and tensor. */
#ifndef QASR_SAFETENSORS_H
#define QASR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_F64, DTYPE_I64, DTYPE_I32, DTYPE_I16,
               DTYPE_I8, DTYPE_U8, DTYPE_BOOL } dtype_t;

#define ST_MAX_DIMS 8

typedef struct {
    const char *name;          /* tensor name as in the header */
    const char *file;          /* path of the shard holding it */
    dtype_t dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;          /* inside the read-only mapping */
    size_t nbytes;
} st_tensor_t;

typedef struct st_model st_model_t;

/* Open model.safetensors.index.json if present, else model.safetensors, in dir.
 * NULL + qasr_fail() message on any error. */
st_model_t *st_open_dir(const char *dir);
/* Open one .safetensors file. */
st_model_t *st_open_file(const char *path);
void st_close(st_model_t *m);

/* NULL if absent (not an error by itself: callers decide whether the tensor is optional). */
const st_tensor_t *st_find(const st_model_t *m, const char *name);
int st_count(const st_model_t *m);
/* Done reading t: drop its pages from this process (the page cache keeps them; a later read
 * faults them in again), so that a load never holds the file and the weights at once. */
void st_release(const st_tensor_t *t);
/* The same for bytes [p, p + n) of a mapping (whole pages inside it only). */
void st_release_bytes(const void *p, size_t n);
const st_tensor_t *st_get(const st_model_t *m, int i);

size_t dtype_size(dtype_t t);
const char *dtype_name(dtype_t t);

#endif
