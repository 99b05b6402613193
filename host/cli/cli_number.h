/* Numbers given as command options, checked whole: "--batch abc", "-t 2x", "--kv-gb -1" are
 * usage errors that name the option and the value, never a silent 0 or a default in disguise. */
#ifndef QASR_CLI_NUMBER_H
#define QASR_CLI_NUMBER_H

/* Upper bounds of the commands' numeric options: far past any real use, low enough that sizes
 * computed from them stay in range. */
#define MAX_TOKENS_OPTION 1000000
#define MAX_THREADS_OPTION 4096
#define MAX_BATCH_OPTION 65536
#define MAX_KV_GB_OPTION 1e6
#define MAX_STEP_TOKENS_OPTION (1 << 24)
#define MAX_DEVICE_OPTION 1023

/* text as a decimal integer in [lo, hi] into *out: 0; else -1 with "PROG: OPTION 'TEXT':
 * expected an integer from LO to HI" on stderr. */
int cli_int(const char *prog, const char *option, const char *text, long lo, long hi, int *out);

/* text as a finite number in [lo, hi] (lo_open: above lo, not at it) into *out: 0; else -1
 * with the message, as cli_int. */
int cli_double(const char *prog, const char *option, const char *text, double lo, int lo_open, double hi,
               double *out);

#endif
