#include "dump.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int npy_write(const char *path, const char *descr, const void *data, int ndim, const int *shape)
{
    char dict[256], shp[64];
    size_t n = 1;
    if (ndim == 1) {
        snprintf(shp, sizeof shp, "(%d,)", shape[0]);
        n = (size_t)shape[0];
    } else {
        snprintf(shp, sizeof shp, "(%d, %d)", shape[0], shape[1]);
        n = (size_t)shape[0] * shape[1];
    }
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shp);
    /* magic(6) + version(2) + header length(2) + dict padded with spaces + '\n' to a multiple of 64 */
    int total = (10 + len + 1 + 63) / 64 * 64, pad = total - 10 - len - 1;
    FILE *f = fopen(path, "wb");
    if (!f) return qasr_fail("cannot write %s: %s", path, strerror(errno));
    unsigned char head[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                               (unsigned char)((total - 10) & 0xff), (unsigned char)((total - 10) >> 8) };
    fwrite(head, 1, 10, f);
    fwrite(dict, 1, len, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(data, 4, n, f);
    if (fclose(f) != 0) return qasr_fail("cannot write %s", path);
    return 0;
}

static void write_named(const char *dir, const char *name, const char *descr, const void *data, int ndim,
                        const int *shape)
{
    char file[256];
    snprintf(file, sizeof file, "%s.npy", name);
    char *path = path_join(dir, file);
    if (npy_write(path, descr, data, ndim, shape) != 0)
        qasr_warn("%s", qasr_last_error());
    free(path);
}

void dump_f32(const char *dir, const char *name, const float *x, int rows, int cols)
{
    int shape[2] = { rows, cols };
    if (rows < 0)
        write_named(dir, name, "<f4", x, 1, &cols);
    else
        write_named(dir, name, "<f4", x, 2, shape);
}

void dump_i32(const char *dir, const char *name, const int *x, int n)
{
    write_named(dir, name, "<i4", x, 1, &n);
}
