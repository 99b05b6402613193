/* qasr_py_batch (qasr_py.h): batch_run configured by key/value pairs, so that the package needs
 * no copy of batch_opts_t's layout, with the caller's signal handlers kept. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "qasr_py.h"
#include "util.h"

static int set_option(batch_opts_t *o, const char *k, const char *v)
{
    /* strings: kept as given (the caller's, alive for the call) */
    const char **str = !strcmp(k, "manifest") ? &o->manifest
                     : !strcmp(k, "manifest_format") ? &o->manifest_format
                     : !strcmp(k, "model") ? &o->model
                     : !strcmp(k, "output") ? &o->output
                     : !strcmp(k, "format") ? &o->format
                     : !strcmp(k, "output_dir") ? &o->output_dir
                     : !strcmp(k, "backend") ? &o->qopt.backend
                     : !strcmp(k, "precision") ? &o->qopt.precision
                     : !strcmp(k, "language") ? &o->language
                     : !strcmp(k, "context") ? &o->context
                     : !strcmp(k, "shard") ? &o->shard
                     : !strcmp(k, "aligner") ? &o->aligner
                     : NULL;
    int *flag = !strcmp(k, "device") ? &o->qopt.device
              : !strcmp(k, "threads") ? &o->qopt.threads
              : !strcmp(k, "batch") ? &o->qopt.max_batch
              : !strcmp(k, "step_tokens") ? &o->qopt.step_tokens
              : !strcmp(k, "max_new_tokens") ? &o->max_new_tokens
              : !strcmp(k, "ignore_eos") ? &o->ignore_eos
              : !strcmp(k, "retry_errors") ? &o->retry_errors
              : !strcmp(k, "overwrite") ? &o->overwrite
              : !strcmp(k, "quiet") ? &o->quiet
              : !strcmp(k, "no_bucketing") ? &o->no_bucketing
              : !strcmp(k, "readers") ? &o->readers
              : !strcmp(k, "timestamps") ? &o->timestamps
              : !strcmp(k, "align_reference") ? &o->align_reference
              : NULL;
    double *num = !strcmp(k, "kv_gb") ? &o->qopt.kv_gb
                : !strcmp(k, "max_segment_seconds") ? &o->max_segment_seconds
                : !strcmp(k, "progress_interval") ? &o->progress_interval
                : !strcmp(k, "fsync_seconds") ? &o->fsync_seconds
                : NULL;
    if (str) *str = v;
    else if (flag) *flag = atoi(v);
    else if (num) *num = atof(v);
    else return qasr_fail("batch: unknown option '%s'", k);
    return 0;
}

int qasr_py_batch(const char *const *keys, const char *const *values, int n)
{
    batch_opts_t o;
    batch_opts_default(&o);
    for (int i = 0; i < n; i++)
        if (set_option(&o, keys[i], values[i]) != 0) return -1;
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGPIPE };
    struct sigaction saved[sizeof sigs / sizeof *sigs];
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], NULL, &saved[i]);
    const int code = batch_run(&o);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &saved[i], NULL);
    return code;
}
