/* The race detector (cuda/emu/racecheck.cpp) reports every planted race of
 * tests/emu/racecheck_kernels.cu in whatever fiber order CUEMU_ORDER / CUEMU_SEED choose, with
 * the kernel, the block, the two threads and the file:line of both accesses (the lines marked
 * `race:` there), and fails the launch with a sticky cudaErrorLaunchFailure; the correct kernels
 * run without a report and give the right results. Registered only in builds with the detector
 * (QASR_EMU_RACECHECK), run with CUEMU_RACECHECK=1. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test.h"
#include "capture_stderr.h"
#include "racecheck_kernels.h"

#define N 1024

/* Line of racecheck_kernels.cu that carries the marker comment of `name` (see there). */
static int marker_line(const char *name)
{
    FILE *f = fopen(RACECHECK_KERNELS_CU, "r");
    if (!f) {
        perror(RACECHECK_KERNELS_CU);
        exit(1);
    }
    char want[96], line[512];
    snprintf(want, sizeof want, "race: %s */", name);
    int n = 0, found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        n++;
        if (strstr(line, want)) found = n;
    }
    fclose(f);
    if (!found) {
        fprintf(stderr, "no marker \"%s\" in %s\n", want, RACECHECK_KERNELS_CU);
        exit(1);
    }
    return found;
}

/* One report line:
 *   cuemu: kernel K (launched at F:L), block (x,y,z): data race on M memory 0x.. (N bytes):
 *   thread (x,y,z) KIND at F:L, thread (x,y,z)[ of block (x,y,z)] KIND at F:L, why */
typedef struct {
    char kernel[64], memory[8];
    unsigned block[3], other_block[3];
    int has_other_block;
    unsigned thread[2][3];
    char kind[2][16], file[2][64];
    int line[2];
} race_report;

static int parse_report(const char *s, race_report *r)
{
    memset(r, 0, sizeof *r);
    if (sscanf(s, "cuemu: kernel %63s (launched at", r->kernel) != 1) return 0;
    const char *p = strstr(s, "), block (");
    if (!p || sscanf(p, "), block (%u,%u,%u): data race on %7s memory", &r->block[0], &r->block[1], &r->block[2],
                     r->memory) != 4)
        return 0;
    p = strstr(p, " bytes): ");
    if (!p) return 0;
    p += strlen(" bytes): ");
    for (int k = 0; k < 2; k++) {
        unsigned *t = r->thread[k];
        if (sscanf(p, "thread (%u,%u,%u)", &t[0], &t[1], &t[2]) != 3) return 0;
        p = strchr(p, ')') + 1;
        if (k == 1 && !strncmp(p, " of block (", 11)) {
            r->has_other_block = 1;
            if (sscanf(p, " of block (%u,%u,%u)", &r->other_block[0], &r->other_block[1], &r->other_block[2]) != 3)
                return 0;
            p = strchr(p, ')') + 1;
        }
        const char *at = strstr(p, " at ");
        if (!at || *p != ' ' || at - p - 1 >= (long)sizeof r->kind[k]) return 0;
        memcpy(r->kind[k], p + 1, (size_t)(at - p - 1));
        at += 4;
        const char *colon = strchr(at, ':');
        if (!colon || colon - at >= (long)sizeof r->file[k]) return 0;
        memcpy(r->file[k], at, (size_t)(colon - at));
        r->line[k] = atoi(colon + 1);
        p = strstr(colon, ", ");
        if (!p) return 0;
        p += 2;
    }
    return 1;
}

static float *d_x, *d_y;
static unsigned *d_counters;
static float h_x[N], h_y[N];

static void setup(void)
{
    CHECK_INT_EQ(cudaMalloc((void **)&d_x, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_y, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMalloc((void **)&d_counters, 4 * sizeof(unsigned)), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(d_x, h_x, sizeof h_x, cudaMemcpyHostToDevice), cudaSuccess);
    CHECK_INT_EQ(cudaMemset(d_y, 0, N * sizeof(float)), cudaSuccess);
    CHECK_INT_EQ(cudaMemset(d_counters, 0, 4 * sizeof(unsigned)), cudaSuccess);
}

/* What a reported pair of threads must satisfy. */
typedef enum { SUM_255, DIFF_4, DIFF_1, OTHER_BLOCK_T0, ONE_IS_T0 } relation;

static int threads_fit(const race_report *r, relation rel)
{
    int a = (int)r->thread[0][0], b = (int)r->thread[1][0];
    if (r->thread[0][1] || r->thread[0][2] || r->thread[1][1] || r->thread[1][2]) return 0;
    switch (rel) {
    case SUM_255: return !r->has_other_block && a + b == 255;
    case DIFF_4: return !r->has_other_block && abs(a - b) == 4;
    case DIFF_1: return !r->has_other_block && abs(a - b) == 1;
    case OTHER_BLOCK_T0:
        return r->has_other_block && a == 0 && b == 0 && r->other_block[0] != r->block[0] && r->block[0] < 8 &&
               r->other_block[0] < 8;
    case ONE_IS_T0: return !r->has_other_block && a != b && (a == 0 || b == 0);
    }
    return 0;
}

/* The case must fail its launch with at least one race report, every report about `kernel`,
 * `memory`, the two marked lines (in either order) and threads that satisfy `rel`. */
static void expect_race(rc_case c, const char *name, const char *kernel, const char *memory, const char *mark1,
                        const char *mark2, relation rel)
{
    int line1 = marker_line(mark1), line2 = marker_line(mark2);
    setup();
    capture_begin();
    cudaError_t launched = emu_racecheck_case(c, d_x, d_y, d_counters);
    cudaError_t synced = cudaDeviceSynchronize();
    cudaError_t again = cudaGetLastError();
    const char *text = capture_end();
    CHECK_INT_EQ(launched, cudaSuccess);
    CHECK_INT_EQ(synced, cudaErrorLaunchFailure);
    CHECK_INT_EQ(again, cudaErrorLaunchFailure); /* sticky until cudaDeviceReset */
    int reports = 0;
    for (const char *s = text; (s = strstr(s, "cuemu: kernel ")) != NULL; s++) {
        const char *eol = strchr(s, '\n');
        if (!strstr(s, "data race") || (eol && strstr(s, "data race") > eol)) continue;
        race_report r;
        int ok = parse_report(s, &r);
        CHECK(ok);
        if (!ok) continue;
        reports++;
        CHECK_STR_EQ(r.kernel, kernel);
        CHECK_STR_EQ(r.memory, memory);
        CHECK_STR_EQ(r.file[0], "racecheck_kernels.cu");
        CHECK_STR_EQ(r.file[1], "racecheck_kernels.cu");
        int lines_ok = (r.line[0] == line1 && r.line[1] == line2) || (r.line[0] == line2 && r.line[1] == line1);
        CHECK(lines_ok);
        if (!lines_ok)
            fprintf(stderr, "%s: reported lines %d and %d, planted %d and %d\n", name, r.line[0], r.line[1], line1,
                    line2);
        CHECK(threads_fit(&r, rel));
        if (!r.has_other_block) CHECK(r.block[0] == 0 && r.block[1] == 0 && r.block[2] == 0);
    }
    CHECK(reports >= 1);
    printf("%-24s caught: %d report(s)\n", name, reports);
    CHECK_INT_EQ(cudaDeviceReset(), cudaSuccess);
}

static void expect_clean(rc_case c, const char *name)
{
    setup();
    capture_begin();
    cudaError_t launched = emu_racecheck_case(c, d_x, d_y, d_counters);
    cudaError_t synced = cudaDeviceSynchronize();
    const char *text = capture_end();
    CHECK_INT_EQ(launched, cudaSuccess);
    CHECK_INT_EQ(synced, cudaSuccess);
    CHECK(strstr(text, "data race") == NULL);
    unsigned counters[4];
    CHECK_INT_EQ(cudaMemcpy(h_y, d_y, sizeof h_y, cudaMemcpyDeviceToHost), cudaSuccess);
    CHECK_INT_EQ(cudaMemcpy(counters, d_counters, sizeof counters, cudaMemcpyDeviceToHost), cudaSuccess);
    int wrong = 0;
    float sum256 = 0.0f;
    for (int i = 0; i < 256; i++) sum256 += h_x[i];
    switch (c) {
    case RC_TILE:
        for (int t = 0; t < 256; t++) wrong += h_y[t] != h_x[255 - t];
        break;
    case RC_REDUCE:
        wrong += h_y[0] != sum256;
        break;
    case RC_WARP_REDUCE: {
        float s = 0.0f;
        for (int i = 0; i < 64; i++) s += h_x[i];
        wrong += h_y[0] != s;
        break;
    }
    case RC_WAR:
        for (int t = 0; t < 256; t++) wrong += h_y[t] != (t < 255 ? h_x[t + 1] : 0.0f);
        break;
    case RC_LAST_BLOCK: {
        float s = 0.0f;
        for (int i = 0; i < 512; i++) s += h_x[i];
        wrong += h_y[0] != s;
        wrong += counters[0] != 8;
        break;
    }
    case RC_ATOMICS:
        for (int b = 0; b < 4; b++) wrong += h_y[b] != 128.0f;
        wrong += counters[0] != 512 || counters[1] != 127;
        break;
    case RC_SHUFFLE:
        for (int b = 0; b < 2; b++) {
            float s = 0.0f;
            for (int i = 0; i < 128; i++) s += h_x[b * 128 + i];
            wrong += h_y[b] != s;
        }
        break;
    case RC_OWN_DATA:
        for (int i = 0; i < 256; i++) wrong += h_y[i] != 2.0f * h_x[i] + 1.0f;
        break;
    case RC_BLOCKS_REUSE:
        for (int i = 0; i < 512; i++) {
            int b = i / 64, t = i % 64;
            wrong += h_y[i] != h_x[b * 64 + (t + 1) % 64] + 2.0f * h_x[b * 64 + (t + 63) % 64];
        }
        break;
    case RC_LAUNCHES:
        for (int i = 0; i < 256; i++) wrong += h_y[i] != 2.0f * h_x[i];
        break;
    default:
        break;
    }
    CHECK_INT_EQ(wrong, 0);
    printf("%-24s clean, results right\n", name);
    CHECK_INT_EQ(cudaDeviceReset(), cudaSuccess);
}

int main(void)
{
    /* small integers: every sum is exact in any order */
    for (int i = 0; i < N; i++) h_x[i] = (float)(i % 7 + 1);

    expect_race(RC_TILE_NO_SYNC, "tile, no __syncthreads", "rc_tile_kernel", "shared", "tile write", "tile read",
                SUM_255);
    expect_race(RC_REDUCE_NO_SYNC, "reduction, one step", "rc_reduce_kernel", "shared", "reduce step", "reduce step",
                DIFF_4);
    expect_race(RC_WARP_REDUCE_NO_SYNC, "warp reduction", "rc_warp_reduce_kernel", "shared", "warp read",
                "warp write", DIFF_4);
    expect_race(RC_GLOBAL_BLOCKS, "blocks, one address", "rc_global_blocks_kernel", "global", "global write",
                "global write", OTHER_BLOCK_T0);
    expect_race(RC_WAR_NO_SYNC, "write after read", "rc_war_kernel", "shared", "war read", "war write", DIFF_1);
    expect_race(RC_LAST_BLOCK_NO_FENCE, "last block, no fence", "rc_last_block_kernel", "global", "partial write",
                "partial read", OTHER_BLOCK_T0);
    expect_race(RC_ATOMIC_PLAIN, "atomic and plain", "rc_atomic_plain_kernel", "global", "plain store", "atomic add",
                ONE_IS_T0);

    expect_clean(RC_TILE, "tile");
    expect_clean(RC_REDUCE, "reduction");
    expect_clean(RC_WARP_REDUCE, "warp reduction");
    expect_clean(RC_WAR, "write after read");
    expect_clean(RC_LAST_BLOCK, "last block, fenced");
    expect_clean(RC_ATOMICS, "atomics");
    expect_clean(RC_SHUFFLE, "shuffles");
    expect_clean(RC_OWN_DATA, "own data");
    expect_clean(RC_BLOCKS_REUSE, "blocks reuse shared");
    expect_clean(RC_LAUNCHES, "two launches");
    return test_result("test_emu_racecheck");
}
