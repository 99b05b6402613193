/* The main of fuzz_replay_<name>: every file named, and every file in each directory named (in
 * name order; hidden files skipped), goes once through the harness's LLVMFuzzerTestOneInput.
 * A missing directory counts as empty (a harness may have no regressions yet); no input at all
 * is an error. A failed property or a sanitizer report aborts the run: the test fails. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap) buf = realloc(buf, cap *= 2);
    fclose(f);
    if (!buf) abort();
    /* An exact-size copy, so that ASan sees a read one past the input's end. */
    uint8_t *input = malloc(n ? n : 1);
    if (!input) abort();
    memcpy(input, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(input, n);
    free(input);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    int n_files = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) continue; /* no regressions yet */
        if (!S_ISDIR(st.st_mode)) {
            rc |= run_file(argv[i]);
            n_files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) continue;
        char **names = NULL;
        size_t n = 0;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            names = realloc(names, (n + 1) * sizeof *names);
            names[n++] = strdup(e->d_name);
        }
        closedir(d);
        if (n) qsort(names, n, sizeof *names, by_name);
        for (size_t k = 0; k < n; k++) {
            char *path = malloc(strlen(argv[i]) + strlen(names[k]) + 2);
            sprintf(path, "%s/%s", argv[i], names[k]);
            rc |= run_file(path);
            n_files++;
            free(path);
            free(names[k]);
        }
        free(names);
    }
    if (n_files == 0) {
        fprintf(stderr, "%s: no input files\n", argv[0]);
        return 1;
    }
    printf("%s: %d inputs\n", argv[0], n_files);
    return rc ? 1 : 0;
}
