/* stderr captured around a launch, so an emulator test can check the report it prints. */
#ifndef QASR_TEST_CAPTURE_STDERR_H
#define QASR_TEST_CAPTURE_STDERR_H

#include <stdio.h>
#include <unistd.h>

static FILE *capture_file;
static int saved_stderr;

/* Redirect stderr to a temporary file. */
static inline void capture_begin(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    saved_stderr = dup(2);
    dup2(fileno(capture_file), 2);
}

/* Restore stderr, echo what was captured there and return it (the first 64 KiB; valid until
 * the next call). */
static inline const char *capture_end(void)
{
    static char text[1 << 16];
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    size_t n = (size_t)ftell(capture_file);
    if (n >= sizeof text) n = sizeof text - 1;
    rewind(capture_file);
    n = fread(text, 1, n, capture_file);
    text[n] = 0;
    fclose(capture_file);
    fputs(text, stderr);
    return text;
}

#endif
