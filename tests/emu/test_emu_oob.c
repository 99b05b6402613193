/* Out-of-bounds writes in kernels are reported by AddressSanitizer with the kernel's source line
 * and, from the emulator's death callback, the GPU block and thread. Run as
 * `test_emu_oob global|static|dynamic`; it is expected to die, and ctest checks the report. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

cudaError_t emu_oob(int which, const float *x, float *y);

int main(int argc, char **argv)
{
    static const char *const names[] = {"global", "static", "dynamic"};
    int which = -1;
    for (int i = 0; i < 3; i++)
        if (argc == 2 && !strcmp(argv[1], names[i])) which = i;
    if (which < 0) {
        fprintf(stderr, "usage: test_emu_oob global|static|dynamic\n");
        return 2;
    }
    float *d_x, *d_y;
    if (cudaMalloc((void **)&d_x, 256 * sizeof(float)) || cudaMalloc((void **)&d_y, 256 * sizeof(float))) return 2;
    cudaMemset(d_x, 0, 256 * sizeof(float));
    if (emu_oob(which, d_x, d_y) != cudaSuccess) return 2;
    cudaDeviceSynchronize();
    printf("test_emu_oob %s: no error reported\n", names[which]);
    return 1;
}
