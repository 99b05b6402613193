/* How the CUDA backend fails, and hands tokens from step to step, on the emulation, each case in
 * a child process (forked before any CUDA call, so each sets up its own emulated device):
 *  - alloc: with a 512 MiB device, allocations that do not fit come back as NULL with the sizes
 *    (weights, the KV cache, activations), and an op whose work space does not fit does nothing
 *    and says so through op_failed (as does an argmax over more rows than a step may have); the
 *    backend then still works;
 *  - kept: argmax ids kept on the device feed the next embed (ids < 0) and come out of fetch_ids
 *    oldest first; fetch_ids(NULL) forgets them;
 *  - fault: a kernel launch that fails (CUEMU_FAIL) is the device's fault, for good: `fault` says
 *    why, later ops do nothing, download and argmax give zeros, backend_check reports it, and
 *    the process goes on and frees the backend;
 *  - shape, page: a launcher's violated shape assumption (a head size, a page size that is not a
 *    power of two) aborts the process with an internal-error message naming it: an assertion,
 *    never reported as a device fault. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "util.h"
#include "../test.h"

extern const backend_kind_t backend_cuda_kind; /* cuda/backend_cuda.cu */

static backend_ref_t make(void)
{
    backend_ref_t bk = { 0 };
    const backend_params_t p = { .device = 0, .threads = 1, .n_mels = 128, .precision = "bf16" };
    CHECK_INT_EQ(backend_cuda_kind.create(&bk, &p), 0);
    return bk;
}

static int case_alloc(void)
{
    setenv("CUEMU_DEVICE_MEM_MB", "512", 1);
    backend_ref_t bk = make();
    const backend_ops_t *o = bk.ops;
    CHECK(o->weight_alloc(bk.be, (size_t)300 << 20, WEIGHT_MATRIX, DTYPE_BF16) == NULL); /* 629 MB */
    CHECK(strstr(qasr_last_error(), "device 0: out of memory for the model weights (629.1 MB more needed") != NULL);
    const kv_geom_t g = { 28, 4096, 16, 8, 128 };
    CHECK(o->kv_alloc(bk.be, &g) == NULL);
    CHECK(strstr(qasr_last_error(), "device 0: out of memory for the KV cache (") && strstr(qasr_last_error(), "lower --kv-gb"));
    CHECK(o->buf_alloc(bk.be, (size_t)300 << 20) == NULL && strstr(qasr_last_error(), "out of memory for activations"));
    /* the device filled with buffers but for less than 1 MiB: argmax's work space over 2^20 rows
     * (8 MiB) does not fit, so the op does nothing and op_failed says why, once; the conv stem,
     * which takes no work space, still runs */
    enum { FILL = 128, ROWS = 1 << 20 };
    void *logits = o->buf_alloc(bk.be, ROWS + 64), *in = o->buf_alloc(bk.be, 128 * 100), *out = o->buf_alloc(bk.be, 480 * 64 * 50);
    weight_t *w = o->weight_alloc(bk.be, 480 * 9, WEIGHT_PARAM, DTYPE_BF16);
    weight_t *b = o->weight_alloc(bk.be, 480, WEIGHT_PARAM, DTYPE_BF16);
    void *fill[FILL];
    int n_fill = 0;
    while (n_fill < FILL / 2 && (fill[n_fill] = o->buf_alloc(bk.be, (size_t)8 << 20))) n_fill++;
    while (n_fill < FILL && (fill[n_fill] = o->buf_alloc(bk.be, (size_t)1 << 20))) n_fill++;
    CHECK(logits && in && out && w && b && n_fill > 0 && n_fill < FILL);
    int *ids = xmalloc((ROWS + 1) * sizeof *ids);
    if (logits && in && out && w && b) {
        CHECK_INT_EQ(o->op_failed(bk.be), 0);
        o->conv3x3s2_gelu(bk.be, out, in, w, b, 1, 480, 1, 128, 100);
        o->sync(bk.be);
        CHECK_INT_EQ(o->op_failed(bk.be), 0);
        o->argmax(bk.be, ids, logits, ROWS, 1);
        CHECK_INT_EQ(o->op_failed(bk.be), -1);
        CHECK(strstr(qasr_last_error(), "argmax: device 0: out of memory for scratch") != NULL);
        CHECK_INT_EQ(o->op_failed(bk.be), 0);
        CHECK(o->fault(bk.be) == NULL); /* out of memory is not a lost device */
        o->argmax(bk.be, ids, logits, ROWS + 1, 1); /* one row more than a step may have */
        CHECK_INT_EQ(o->op_failed(bk.be), -1);
        CHECK(strstr(qasr_last_error(), "argmax: 1048577 rows in one step, at most 1048576") != NULL);
        CHECK(o->fault(bk.be) == NULL);
        /* and the backend still works: the same op on fewer rows, once memory is freed */
        for (int i = 0; i < n_fill; i++) o->buf_free(bk.be, fill[i]);
        n_fill = 0;
        o->argmax(bk.be, ids, logits, 1024, 1);
        CHECK_INT_EQ(o->op_failed(bk.be), 0);
        CHECK_INT_EQ(backend_check(&bk), 0);
    }
    free(ids);
    for (int i = 0; i < n_fill; i++) o->buf_free(bk.be, fill[i]);
    o->scratch_release(bk.be, 0);
    if (logits) o->buf_free(bk.be, logits);
    if (in) o->buf_free(bk.be, in);
    if (out) o->buf_free(bk.be, out);
    o->destroy(bk.be);
    return test_result("test_backend_errors alloc");
}

static int case_fault(void)
{
    setenv("CUEMU_FAIL", "0:3", 1); /* the third kernel launch on device 0 fails, for good */
    backend_ref_t bk = make();
    const backend_ops_t *o = bk.ops;
    const size_t n = 4096;
    float *h = xmalloc(n * sizeof *h), *got = xmalloc(n * sizeof *got);
    for (size_t i = 0; i < n; i++) h[i] = 0.5f;
    weight_t *w = o->weight_alloc(bk.be, n, WEIGHT_PARAM, DTYPE_F32);
    o->weight_upload(bk.be, w, 0, h, DTYPE_F32, n);
    void *x = o->buf_alloc(bk.be, n);
    o->add_pos_emb(bk.be, x, w, 1, 1, (int)n); /* launch 1 */
    o->gelu(bk.be, x, n);                      /* launch 2 */
    o->sync(bk.be);
    CHECK(o->fault(bk.be) == NULL);
    CHECK_INT_EQ(backend_check(&bk), 0);
    o->gelu(bk.be, x, n); /* launch 3: fails */
    o->sync(bk.be);
    const char *why = o->fault(bk.be);
    CHECK(why && strstr(why, "device 0 failed: ") && strstr(why, "unspecified launch failure"));
    CHECK_INT_EQ(backend_check(&bk), -1);
    CHECK(why && !strcmp(qasr_last_error(), why));
    /* from now on: ops return at once, results are zeros, allocations say why */
    o->gelu(bk.be, x, n);
    for (size_t i = 0; i < n; i++) got[i] = 1.0f;
    o->download(bk.be, got, x, n);
    int zeros = 1;
    for (size_t i = 0; i < n; i++) zeros &= got[i] == 0.0f;
    CHECK(zeros);
    int ids[2] = { 7, 7 };
    o->argmax(bk.be, ids, x, 2, 16);
    CHECK(ids[0] == 0 && ids[1] == 0);
    o->argmax(bk.be, NULL, x, 2, 16);
    ids[0] = ids[1] = 7;
    o->fetch_ids(bk.be, ids, 2);
    CHECK(ids[0] == 0 && ids[1] == 0);
    CHECK(o->buf_alloc(bk.be, 16) == NULL && strstr(qasr_last_error(), "device 0 failed"));
    o->buf_free(bk.be, x);
    o->destroy(bk.be); /* frees without asking the failed device anything */
    free(h), free(got);
    return test_result("test_backend_errors fault");
}

/* Rows of the table are one-hot: row r's largest logit is at best(r), so each step's ids are known. */
static int best(int r) { return (3 * r + 1) % 8; }

static int case_kept(void)
{
    backend_ref_t bk = make();
    const backend_ops_t *o = bk.ops;
    enum { V = 8 };
    float h[V * V] = { 0 };
    for (int r = 0; r < V; r++) h[r * V + best(r)] = 1.0f;
    weight_t *table = o->weight_alloc(bk.be, V * V, WEIGHT_TABLE, DTYPE_F32);
    o->weight_upload(bk.be, table, 0, h, DTYPE_F32, V * V);
    void *x = o->buf_alloc(bk.be, 3 * V);
    /* step 1: rows 2 and 5, ids kept */
    const int ids1[2] = { 2, 5 };
    o->embed(bk.be, x, table, o->ints(bk.be, ids1, 2), 2, V);
    o->argmax(bk.be, NULL, x, 2, V);
    o->scratch_release(bk.be, 0);
    /* step 2: the two kept ids (in reverse) and row 4, kept */
    const int ids2[3] = { -2, -1, 4 };
    o->embed(bk.be, x, table, o->ints(bk.be, ids2, 3), 3, V);
    o->argmax(bk.be, NULL, x, 3, V);
    o->scratch_release(bk.be, 0);
    int got1[2] = { -1, -1 }, got2[3] = { -1, -1, -1 };
    o->fetch_ids(bk.be, got1, 2);
    o->fetch_ids(bk.be, got2, 3);
    CHECK(got1[0] == best(2) && got1[1] == best(5));
    CHECK(got2[0] == best(best(5)) && got2[1] == best(best(2)) && got2[2] == best(4));
    /* forgotten: a kept step not fetched; then a step with host ids as before */
    o->argmax(bk.be, NULL, x, 3, V);
    o->fetch_ids(bk.be, NULL, 0);
    o->argmax(bk.be, got2, x, 1, V);
    CHECK(got2[0] == best(best(5)));
    CHECK_INT_EQ(backend_check(&bk), 0);
    o->buf_free(bk.be, x);
    o->destroy(bk.be);
    return test_result("test_backend_errors kept");
}

/* Paged attention over one row of head_dim Dh in pages of `page` tokens: aborts on a shape the
 * kernels do not take. */
static int paged_shape(int Dh, int page)
{
    backend_ref_t bk = make();
    const backend_ops_t *o = bk.ops;
    const int ctx = 1, tables = 0;
    const paged_attn_t p = { .n_rows = 1, .n_heads = 2, .n_kv_heads = 1, .head_dim = Dh, .q_stride = 4 * Dh,
                             .scale = 1.0f, .ctx_len = o->ints(bk.be, &ctx, 1),
                             .row_seq = o->ints(bk.be, &tables, 1), .block_tables = o->ints(bk.be, &tables, 1),
                             .max_blocks = 1, .max_ctx = 1 };
    const kv_geom_t g = { 1, 1, page, 1, Dh };
    kv_cache_t *kv = o->kv_alloc(bk.be, &g);
    void *q = o->scratch(bk.be, 4 * Dh), *out = o->scratch(bk.be, 2 * Dh);
    o->paged_attention(bk.be, out, q, kv, 0, &p); /* aborts */
    fprintf(stderr, "test_backend_errors shape: still running, fault: %s\n", o->fault(bk.be) ? o->fault(bk.be) : "none");
    return 0;
}

static int case_shape(void) { return paged_shape(12 /* not a multiple of 8 */, 16); }
static int case_page(void) { return paged_shape(16, 12 /* not a power of two */); }

/* Runs one case in a child; its exit status and stderr. */
static int child(int (*fn)(void), char *err, size_t cap)
{
    int fd[2];
    if (pipe(fd) != 0) return -1;
    fflush(NULL);
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], STDERR_FILENO);
        close(fd[0]);
        _exit(fn());
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t k;
    while (n + 1 < cap && (k = read(fd[0], err + n, cap - 1 - n)) > 0) n += (size_t)k;
    err[n] = '\0';
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

int main(void)
{
    static char err[1 << 16];
    int st = child(case_alloc, err, sizeof err);
    fputs(err, stderr);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = child(case_fault, err, sizeof err);
    fputs(err, stderr);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = child(case_kept, err, sizeof err);
    fputs(err, stderr);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = child(case_shape, err, sizeof err);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK(strstr(err, "qasr: internal error: launcher shape assumption") != NULL && strstr(err, "Dh % 8 == 0") != NULL);
    CHECK(strstr(err, "still running") == NULL && strstr(err, "device 0 failed") == NULL);
    if (test_failures) fprintf(stderr, "shape case printed:\n%s\n", err);
    const int before = test_failures;
    st = child(case_page, err, sizeof err);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK(strstr(err, "launcher shape assumption 'page_size >= 1 && (page_size & (page_size - 1)) == 0'") != NULL);
    CHECK(strstr(err, "still running") == NULL && strstr(err, "device 0 failed") == NULL);
    if (test_failures > before) fprintf(stderr, "page case printed:\n%s\n", err);
    return test_result("test_backend_errors");
}
