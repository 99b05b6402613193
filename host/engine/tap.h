/* Tensor dumps for comparing the engine with the reference implementation stage by stage.
 * A tap writes each named tensor as dir/<name>.npy (float32 or int32, C order). Used only
 * when --dump-dir is given; model code calls it at the stage boundaries named in MODEL.md. */
#ifndef QASR_TAP_H
#define QASR_TAP_H

#include "backend.h"

typedef struct tap tap_t;

/* NULL + qasr_fail() if dir cannot be created. */
tap_t *tap_open(const char *dir);
void tap_close(tap_t *t);

/* Backend activation x [rows][cols] -> <name>.npy. No-op when t is NULL. */
void tap_tensor(tap_t *t, backend_ref_t bk, const char *name, const void *x, int rows, int cols);
/* Host arrays. rows < 0 writes a 1-D array of cols elements. */
void tap_host_f32(tap_t *t, const char *name, const float *x, int rows, int cols);
void tap_host_i32(tap_t *t, const char *name, const int *x, int n);

/* Write a .npy file: descr "<f4" or "<i4", shape of ndim (1 or 2) dims. 0 or -1 + qasr_fail. */
int npy_write(const char *path, const char *descr, const void *data, int ndim, const int *shape);

#endif
