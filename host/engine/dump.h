/* Tensor dumps for comparing the engine with the reference implementation stage by stage: each
 * named tensor becomes dir/<name>.npy (float32 or int32, C order). Used only with --dump-dir. */
#ifndef QASR_DUMP_H
#define QASR_DUMP_H

/* Write a .npy file: descr "<f4" or "<i4", shape of ndim (1 or 2) dims. 0 or -1 + qasr_fail. */
int npy_write(const char *path, const char *descr, const void *data, int ndim, const int *shape);

/* dir/<name>.npy from host arrays: x [rows][cols] (rows < 0: a 1-D array of cols), or n ints.
 * A file that cannot be written is a warning on stderr: the run goes on. */
void dump_f32(const char *dir, const char *name, const float *x, int rows, int cols);
void dump_i32(const char *dir, const char *name, const int *x, int n);

#endif
