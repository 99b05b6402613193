/* A finished file's line in results.jsonl (and its subtitle file), its progress message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "join.h"
#include "run.h"
#include "subtitles.h"
#include "util.h"

void item_release(item_t *it)
{
    for (int i = 0; i < it->cap_seg; i++) qasr_result_free(&it->seg[i]);
    free(it->seg);
    free(it->bounds);
    free(it->warning);
    free(it->error);
    it->seg = NULL;
    it->bounds = NULL;
    it->warning = it->error = NULL;
    it->n_seg = it->n_in = it->n_done = it->cap_seg = 0;
}

static double seconds_at(int64_t sample) { return (double)sample / QASR_SAMPLE_RATE; }

/* "<path>: <what>" unless what names the file already (decode errors do). malloc'd. */
static char *naming_the_file(const char *path, const char *what)
{
    if (strstr(what, path)) return xstrdup(what);
    char *s = xmalloc(strlen(path) + strlen(what) + 3);
    sprintf(s, "%s: %s", path, what);
    return s;
}

void write_item(run_t *run, item_t *it, const char *error_in)
{
    const batch_opts_t *o = run->o;
    char *error = error_in ? naming_the_file(it->e->path, error_in) : NULL;
    for (int i = 0; i < it->n_seg && !error; i++)
        if (it->seg[i].error) {
            char msg[QASR_ERR_LEN];
            if (it->n_seg > 1)
                snprintf(msg, sizeof msg, "segment %d (%.1f-%.1f s): %s", i + 1, seconds_at(it->bounds[i]),
                         seconds_at(it->bounds[i + 1]), it->seg[i].error);
            else
                snprintf(msg, sizeof msg, "%s", it->seg[i].error);
            error = naming_the_file(it->e->path, msg);
        }
    const char **texts = xcalloc(MAX(1, it->n_seg), sizeof *texts), **langs = xcalloc(MAX(1, it->n_seg), sizeof *langs);
    result_segment_t *segs = xcalloc(MAX(1, it->n_seg), sizeof *segs);
    cue_t *cues = xcalloc(MAX(1, it->n_seg), sizeof *cues);
    int n_tokens = 0, truncated = 0;
    for (int i = 0; i < it->n_seg && !error; i++) {
        texts[i] = it->seg[i].text;
        langs[i] = it->seg[i].language;
        segs[i] = (result_segment_t){ seconds_at(it->bounds[i]), seconds_at(it->bounds[i + 1]), it->seg[i].text };
        cues[i] = (cue_t){ segs[i].start, segs[i].end, it->seg[i].text };
        n_tokens += it->seg[i].n_tokens;
        truncated |= it->seg[i].truncated;
    }
    char *text = error ? NULL : join_texts(texts, it->n_seg), *language = error ? NULL : join_languages(langs, it->n_seg);
    if (!error && o->format && !it->subtitle_path)
        error = naming_the_file(it->e->path, "its subtitle file name collides with other entries' even with entry "
                                "numbers: change the id");
    else if (!error && o->format && subtitles_write(it->subtitle_path, o->format, cues, it->n_seg) != 0)
        error = naming_the_file(it->e->path, qasr_last_error());
    const result_timing_t timings[] = {
        { "decode_audio", it->decode_seconds },
        { "transcribe", it->t_submit > 0 ? now_seconds() - it->t_submit : 0 },
    };
    const result_record_t rec = {
        .id = it->e->id, .path = it->e->path, .line = it->e->line, .text = text, .language = language,
        .duration = it->duration, .segments = segs, .n_segments = error ? 0 : it->n_seg,
        .n_tokens = n_tokens, .truncated = truncated, .error = error, .warning = error ? NULL : it->warning,
        .reference = it->e->text,
        .timings = timings, .n_timings = 2,
    };
    if (results_append(run->out, &rec) != 0) /* a full disk is not a per-file problem: a rerun resumes */
        qasr_die(BATCH_USAGE, "%s", qasr_last_error());
    char msg[QASR_ERR_LEN + 512] = "";
    pthread_mutex_lock(&run->mu);
    if (error) {
        run->failed++;
        snprintf(msg, sizeof msg, "qasr-batch: %s", error);
    } else if (truncated) {
        snprintf(msg, sizeof msg, "qasr-batch: %s: transcript cut at the token limit without an end token", it->e->path);
    } else if (it->warning) {
        snprintf(msg, sizeof msg, "qasr-batch: warning: %s", it->warning);
    }
    if (*msg) progress_message(run->progress, msg);
    run->done++;
    progress_add(run->progress, it->duration > 0 ? it->duration : 0, error != NULL);
    pthread_mutex_unlock(&run->mu);
    item_release(it);
    free(texts);
    free(langs);
    free(segs);
    free(cues);
    free(text);
    free(language);
    free(error);
}
