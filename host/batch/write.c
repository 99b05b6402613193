/* A finished file's line in results.jsonl (and its subtitle file), its progress message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "cues.h"
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
    free(it->words_error);
    it->seg = NULL;
    it->bounds = NULL;
    it->warning = it->error = it->words_error = NULL;
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
    char *seg_error = error ? NULL : join_first_error(it->seg, it->bounds, it->n_seg);
    if (seg_error) error = naming_the_file(it->e->path, seg_error);
    free(seg_error);
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
    /* word times: the segments become subtitle cues cut from them */
    int n_words = 0, n_cues = it->n_seg;
    qasr_word_t *words = run->aligned && !error ? cues_file_words(it->seg, it->bounds, it->n_seg, &n_words) : NULL;
    cue_t *word_cues = NULL;
    if (words && !it->words_error) {
        n_cues = cues_from_words(text, words, n_words, &word_cues);
        segs = xrealloc(segs, sizeof *segs * (size_t)MAX(1, n_cues));
        for (int c = 0; c < n_cues; c++) segs[c] = (result_segment_t){ word_cues[c].start, word_cues[c].end, word_cues[c].text };
    }
    if (!error && o->format && !it->subtitle_path)
        error = naming_the_file(it->e->path, "its subtitle file name collides with other entries' even with entry "
                                "numbers: change the id");
    else if (!error && o->format &&
             subtitles_write(it->subtitle_path, o->format, word_cues ? word_cues : cues, n_cues) != 0)
        error = naming_the_file(it->e->path, qasr_last_error());
    const result_timing_t timings[] = {
        { "decode_audio", it->decode_seconds },
        { "transcribe", it->t_submit > 0 ? now_seconds() - it->t_submit : 0 },
        { "align", it->align_seconds },
    };
    const result_record_t rec = {
        .id = it->e->id, .path = it->e->path, .line = it->e->line, .text = text, .language = language,
        .duration = it->duration, .segments = segs, .n_segments = error ? 0 : n_cues,
        .n_tokens = n_tokens, .truncated = truncated, .error = error, .warning = error ? NULL : it->warning,
        .reference = it->e->text,
        .has_words = words != NULL, .words = words, .n_words = n_words, .words_error = it->words_error,
        .timings = timings, .n_timings = run->aligned ? 3 : 2,
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
    } else if (words && it->words_error) {
        snprintf(msg, sizeof msg, "qasr-batch: %s: no word times (transcript kept): %s", it->e->path, it->words_error);
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
    cues_free(word_cues, word_cues ? n_cues : 0);
    free(words);
    free(text);
    free(language);
    free(error);
}
