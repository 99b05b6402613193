/* Numbers given as command options (contract in cli_number.h). */
#include "cli_number.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int cli_int(const char *prog, const char *option, const char *text, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    const long v = strtol(text, &end, 10);
    const int whole = !isspace((unsigned char)*text) && end != text && !*end && !errno; /* strtol skips spaces */
    if (whole && v >= lo && v <= hi && v >= INT_MIN && v <= INT_MAX) {
        *out = (int)v;
        return 0;
    }
    fprintf(stderr, "%s: %s '%s': expected an integer from %ld to %ld\n", prog, option, text, lo, hi);
    return -1;
}

int cli_double(const char *prog, const char *option, const char *text, double lo, int lo_open, double hi,
               double *out)
{
    char *end;
    errno = 0;
    const double v = strtod(text, &end);
    const int whole = !isspace((unsigned char)*text) && end != text && !*end && !errno;
    if (whole && isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi) {
        *out = v;
        return 0;
    }
    fprintf(stderr, "%s: %s '%s': expected a number %s %.15g%s%.15g\n", prog, option, text, lo_open ? "above" : "from",
            lo, lo_open ? " up to " : " to ", hi);
    return -1;
}
