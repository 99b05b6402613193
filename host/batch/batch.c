/* A qasr-batch run (batch.h): the manifest, this shard's entries still to do, ordered by
 * duration, the model instances, the signals, the workers (workers.c), the summary. */
#include "batch.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpus.h"
#include "run.h"
#include "shard.h"
#include "subtitles.h"
#include "utf8.h"
#include "util.h"

static volatile sig_atomic_t interrupted;

int batch_interrupted(void) { return interrupted; }

/* SIGINT, SIGTERM, SIGHUP and SIGUSR1 (Slurm's --signal before a time limit), from the start of
 * the run: the files in progress are finished and written, then the run exits 4, also when the
 * signal came while the manifest, the durations or the model were still loading. */
static void on_signal(int sig)
{
    static const char msg[] = "\nqasr-batch: interrupted: finishing the files in progress, if any "
                              "(signal again to stop at once; rerun to resume)\n";
    if (interrupted) _exit(BATCH_INTERRUPTED); /* lines already written are complete */
    interrupted = 1;
    ssize_t rc = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)rc;
    (void)sig;
}

void batch_opts_default(batch_opts_t *o)
{
    memset(o, 0, sizeof *o);
    qasr_options_default(&o->qopt);
    o->manifest_format = "auto";
    o->output = "results.jsonl";
    /* 300 s: the official code decodes up to 1200 s per pass, but a pass that long needs
     * ~31k positions of KV cache per sequence, which starves the batch, and long passes are where
     * repetition loops and quality loss are reported. Five minutes keeps cuts rare (they land in
     * the quietest 100 ms of the preceding 5 s) while a sequence needs at most ~7.5k positions. */
    o->max_segment_seconds = 300;
    o->readers = 0; /* default_readers() */
    o->timestamps = 1;
    o->progress_interval = 30;
    o->fsync_seconds = 10;
}

static int by_duration_desc(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if ((x->duration < 0) != (y->duration < 0)) return x->duration < 0 ? 1 : -1; /* unknown last */
    if (x->duration != y->duration) return x->duration > y->duration ? -1 : 1;
    return x->e->line - y->e->line;
}

/* This shard's entries still to do, with durations; NULL-free. Sets *n. */
static item_t *plan_items(const manifest_t *m, const shard_plan_t *sp, results_t *out, const batch_opts_t *o,
                          size_t *n, size_t *prior_failed)
{
    item_t *items = xcalloc(MAX(1, m->n_entries), sizeof *items);
    *n = *prior_failed = 0;
    for (size_t i = 0; i < m->n_entries; i++) {
        if (!shard_plan_has(sp, i)) continue;
        const result_status_t st = results_status(out, m->entries[i].id);
        *prior_failed += st == RESULT_FAILED;
        if (st == RESULT_NEW) items[(*n)++] = (item_t){ .e = &m->entries[i], .duration = m->entries[i].duration };
    }
    size_t unknown = 0;
    for (size_t i = 0; i < *n; i++) unknown += items[i].duration < 0;
    if (unknown) { /* headers only: cheap even for many files */
        const char **paths = xmalloc(unknown * sizeof *paths);
        double *sec = xmalloc(unknown * sizeof *sec);
        size_t k = 0;
        for (size_t i = 0; i < *n; i++)
            if (items[i].duration < 0) paths[k++] = items[i].e->path;
        if (!o->quiet && unknown > 1000) fprintf(stderr, "qasr-batch: reading the durations of %zu files\n", unknown);
        reader_probe_durations(paths, (int)unknown, MAX(2, o->readers), sec, batch_interrupted);
        k = 0;
        for (size_t i = 0; i < *n; i++)
            if (items[i].duration < 0) items[i].duration = sec[k++];
        free(paths);
        free(sec);
    }
    if (!o->no_bucketing) qsort(items, *n, sizeof *items, by_duration_desc);
    return items;
}

/* Each item's subtitle file, chosen over the whole manifest so that no two entries (of any shard)
 * share one. */
static void name_subtitles(const manifest_t *m, const batch_opts_t *o, item_t *items, size_t n)
{
    const char **ids = xmalloc(MAX(1, m->n_entries) * sizeof *ids);
    for (size_t i = 0; i < m->n_entries; i++) ids[i] = m->entries[i].id;
    char **paths = subtitles_paths(o->output_dir, ids, m->n_entries, o->format);
    for (size_t i = 0; i < n; i++) {
        const size_t k = (size_t)(items[i].e - m->entries);
        items[i].subtitle_path = paths[k];
        paths[k] = NULL;
    }
    for (size_t i = 0; i < m->n_entries; i++) free(paths[i]);
    free(paths);
    free(ids);
}

/* The aligner instances, one per device of the models (with --align-reference they are the
 * models). Each reads the checkpoint itself: it is small and the page cache serves the rest. */
static int load_aligners(const batch_opts_t *o, qasr_t ***aligners, int n)
{
    *aligners = xcalloc(n, sizeof **aligners);
    for (int i = 0; i < n; i++) {
        qasr_options_t qo = o->qopt;
        if (o->n_gpus > 0) qo.device = o->gpus[i];
        if (!((*aligners)[i] = qasr_load_aligner(o->aligner, &qo))) {
            if (o->n_gpus > 1) qasr_fail_prefix("device %d", o->gpus[i]);
            return -1;
        }
    }
    return 0;
}

/* The model instances: one per --gpus device (NCCL-copied weights), else one. */
static int load_models(const batch_opts_t *o, qasr_t ***models, int *n)
{
    *n = MAX(1, o->n_gpus);
    if (o->align_reference) return load_aligners(o, models, *n);
    *models = xcalloc(*n, sizeof **models);
    qasr_options_t qo = o->qopt;
    qo.verbose = !o->quiet; /* how the weights reached the devices */
    if (o->n_gpus > 1) return qasr_load_devices(o->model, &qo, o->gpus, o->n_gpus, *models);
    qo.verbose = o->qopt.verbose;
    if (o->n_gpus == 1) qo.device = o->gpus[0];
    return ((*models)[0] = qasr_load(o->model, &qo)) ? 0 : -1;
}

static void catch_signals(void)
{
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    const int stop[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1 };
    for (size_t i = 0; i < sizeof stop / sizeof *stop; i++) sigaction(stop[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout becomes a write error with a message */
}

/* Word times: a usage error, or 0 with the run's options adjusted into *eff (pieces of at most
 * 180 s, the official wrapper's cut for alignment, aligner spec 9). */
static int check_alignment(const batch_opts_t *o, batch_opts_t *eff)
{
    *eff = *o;
    if (o->align_reference && !o->aligner) {
        fputs("qasr-batch: --align-reference needs --aligner DIR\n", stderr);
        return BATCH_USAGE;
    }
    if (o->align_reference && o->model) {
        fputs("qasr-batch: --align-reference aligns the manifest's text column: --model is not used; give one or "
              "the other\n", stderr);
        return BATCH_USAGE;
    }
    if (o->align_reference && !o->timestamps) {
        fputs("qasr-batch: --align-reference makes word times: --timestamps none contradicts it\n", stderr);
        return BATCH_USAGE;
    }
    if (!o->model && !o->align_reference) {
        fputs("qasr-batch: --model DIR is required (or --aligner DIR --align-reference)\n", stderr);
        return BATCH_USAGE;
    }
    if (!o->timestamps) eff->aligner = NULL;
    if (eff->aligner) eff->max_segment_seconds = MIN(eff->max_segment_seconds, ALIGN_MAX_SECONDS);
    return 0;
}

int batch_run(const batch_opts_t *o_in)
{
    interrupted = 0; /* a library caller (python/) may run again after an interrupted run */
    batch_opts_t eff;
    const int usage = check_alignment(o_in, &eff);
    if (usage) return usage;
    const batch_opts_t *o = &eff;
    catch_signals();
    manifest_format_t mf;
    if (manifest_format_parse(o->manifest_format, &mf) != 0) {
        fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
        return BATCH_USAGE;
    }
    if (!strcmp(o->output, "-") && (o->retry_errors || o->overwrite)) {
        fputs("qasr-batch: --retry-errors and --overwrite need an output file (-o FILE), not stdout\n", stderr);
        return BATCH_USAGE;
    }
    if (o->format && !o->output_dir) {
        fputs("qasr-batch: --format needs --output-dir DIR\n", stderr);
        return BATCH_USAGE;
    }
    manifest_t *m = manifest_load(o->manifest, mf);
    if (!m && interrupted) { /* the read was interrupted (EINTR), not wrong */
        fputs("qasr-batch: interrupted while reading the manifest: nothing written; rerun to start\n", stderr);
        return BATCH_INTERRUPTED;
    }
    if (!m) {
        fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
        return BATCH_USAGE;
    }
    for (size_t i = 0; i < m->n_problems; i++) {
        char *safe = utf8_printable(m->problems[i].message); /* cells are the manifest's bytes */
        fprintf(stderr, "qasr-batch: skipped %s\n", safe);
        free(safe);
    }
    shard_plan_t *sp = shard_plan_new(o->shard, m); /* this task's entries: all unless sharded */
    char *output = sp ? shard_output_path(o->output, sp->shard) : NULL, shard_msg[512];
    if (sp && sp->shard.n && !o->quiet) {
        shard_plan_describe(sp, shard_msg, sizeof shard_msg);
        fprintf(stderr, "qasr-batch: %s -> %s\n", shard_msg, output);
    }
    const results_mode_t mode = o->overwrite ? RESULTS_OVERWRITE : o->retry_errors ? RESULTS_RETRY_ERRORS : RESULTS_RESUME;
    results_t *out = sp ? results_open(output, mode, o->fsync_seconds) : NULL;
    if (!out) {
        fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
        shard_plan_free(sp);
        free(output);
        manifest_free(m);
        return BATCH_USAGE;
    }
    size_t n_notes;
    const char *const *notes = results_notes(out, &n_notes);
    for (size_t i = 0; i < n_notes; i++) fprintf(stderr, "qasr-batch: %s\n", notes[i]);

    size_t n, prior_failed;
    item_t *items = plan_items(m, sp, out, o, &n, &prior_failed);
    if (o->format) name_subtitles(m, o, items, n);
    const size_t prior_done = sp->n_mine - n - prior_failed;
    if (!o->quiet && (prior_done || prior_failed))
        fprintf(stderr, "qasr-batch: resuming %s: %zu done, %zu failed earlier%s, %zu to do\n", output,
                prior_done, prior_failed, prior_failed ? " (--retry-errors re-runs them)" : "", n);

    int code = (prior_failed || m->n_problems) ? BATCH_SOME_FAILED : BATCH_OK;
    run_t run = { .o = o, .out = out, .items = items };
    qasr_t **models = NULL, **aligners = NULL;
    int n_models = 0;
    run.aligned = o->aligner != NULL;
    if (n > 0 && !interrupted) {
        if (load_models(o, &models, &n_models) != 0 ||
            (o->aligner && !o->align_reference && load_aligners(o, &aligners, n_models) != 0)) {
            fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
            code = BATCH_MODEL;
        }
        run.n_workers = n_models;
        if (code != BATCH_MODEL && !eff.readers)
            eff.readers = reader_default_threads(qasr_on_device(models[0]), cpus_usable().usable, n_models);
        if (code != BATCH_MODEL && !o->quiet)
            fprintf(stderr, "qasr-batch: %s loaded in %.2f s (%s); %d sequences per batch, %d audio readers\n",
                    o->align_reference ? "aligner" : "model", qasr_load_seconds(models[0]),
                    qasr_backend_describe(models[0]), qasr_max_batch(models[0]), o->readers);
        if (code != BATCH_MODEL && o->qopt.verbose && qasr_backend_plan(models[0]))
            fprintf(stderr, "qasr-batch: %s\n", qasr_backend_plan(models[0]));
        if (code != BATCH_MODEL && aligners && !o->quiet)
            fprintf(stderr, "qasr-batch: aligner loaded in %.2f s; files are cut at %.0f s for it\n",
                    qasr_load_seconds(aligners[0]), o->max_segment_seconds);
    } else if (!o->quiet) {
        fprintf(stderr, "qasr-batch: nothing to do: every entry%s of %s has a line in %s\n",
                sp->shard.n ? " of this shard" : "", o->manifest, output);
    }
    if (interrupted && code != BATCH_MODEL) { /* before any file started */
        fputs("qasr-batch: interrupted before transcribing: nothing written; rerun to start\n", stderr);
        code = BATCH_INTERRUPTED;
    } else if (n > 0 && code != BATCH_MODEL) {
        double total = 0;
        const char **paths = xmalloc(MAX(1, n) * sizeof *paths);
        for (size_t i = 0; i < n; i++) {
            paths[i] = items[i].e->path;
            total += items[i].duration > 0 ? items[i].duration : 0;
        }
        run.progress = progress_new((long)n, total, o->quiet, o->progress_interval);
        const long lost = run_workers(&run, models, aligners, o->n_gpus ? o->gpus : NULL, n, paths);
        const int stopped = run.stopping;
        char status[256], left[96] = "";
        if (lost) snprintf(left, sizeof left, ", %ld left undone by failed devices", lost);
        snprintf(status, sizeof status, "qasr-batch: %s: %ld %s, %ld failed%s%s", stopped ? "interrupted" : "done",
                 run.done - run.failed, o->align_reference ? "aligned" : "transcribed", run.failed, left, stopped || lost ? "; rerun the same command to resume" : "");
        progress_finish(run.progress, status);
        if (run.aligned && !o->quiet) { /* the aligner's share of the work */
            double t = 0, audio = 0;
            for (int i = 0; i < n_models; i++) {
                t += run.align_stats[i].encoder_seconds + run.align_stats[i].mel_seconds +
                     run.align_stats[i].prefill_seconds + run.align_stats[i].decode_seconds;
                audio += run.align_stats[i].audio_seconds;
            }
            fprintf(stderr, "qasr-batch: word times: %.1f s of audio aligned in %.1f s of aligner time\n", audio, t);
        }
        free(paths);
        code = stopped ? BATCH_INTERRUPTED
             : lost    ? BATCH_DEVICE_FAILED
             : (run.failed || prior_failed || m->n_problems) ? BATCH_SOME_FAILED : BATCH_OK;
    }
    for (int i = 0; i < n_models; i++)
        if (!run.workers || !run.workers[i].dead) {
            qasr_free(models[i]);
            if (aligners) qasr_free(aligners[i]);
        }
    free(models);
    free(aligners);
    free(run.workers);
    free(run.align_stats);
    for (size_t i = 0; i < n; i++) free(items[i].subtitle_path);
    free(items);
    if (results_close(out) != 0) {
        fprintf(stderr, "qasr-batch: %s\n", qasr_last_error());
        if (code == BATCH_OK) code = BATCH_SOME_FAILED;
    }
    shard_plan_free(sp);
    free(output);
    manifest_free(m);
    return code;
}
