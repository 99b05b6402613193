#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "utf8.h"
#include "util.h"

struct progress {
    long total_files, files, failed;
    double total_audio, audio, t0, last_draw, interval, align;
    int quiet, tty, drawn;
};

progress_t *progress_new(long total_files, double total_audio, int quiet, double interval)
{
    progress_t *p = xcalloc(1, sizeof *p);
    p->total_files = total_files;
    p->total_audio = total_audio;
    p->quiet = quiet;
    p->tty = isatty(STDERR_FILENO);
    p->interval = p->tty ? 0.25 : interval;
    p->t0 = p->last_draw = now_seconds();
    return p;
}

static void format_duration(char *buf, size_t n, double s)
{
    if (s < 0 || s > 1e8)
        snprintf(buf, n, "?");
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)s % 3600 / 60);
}

static void draw(progress_t *p, int final)
{
    const double now = now_seconds(), elapsed = now - p->t0;
    const double rate = elapsed > 0 ? p->audio / elapsed : 0;
    char eta[32], took[32], align[48] = "";
    format_duration(eta, sizeof eta, rate > 0 && p->total_audio > 0 ? (p->total_audio - p->audio) / rate : -1);
    format_duration(took, sizeof took, elapsed);
    if (p->align > 0) {
        char t[32];
        format_duration(t, sizeof t, p->align);
        snprintf(align, sizeof align, ", aligner %s", t);
    }
    char line[300];
    snprintf(line, sizeof line, "%ld/%ld files (%ld failed), %.2f/%.2f h audio, %.1f s/s%s, %s %s",
                       p->files, p->total_files, p->failed, p->audio / 3600, p->total_audio / 3600, rate, align,
                       final ? "took" : "ETA", final ? took : eta);
    if (p->tty && !final) {
        const int width = 24, done = p->total_audio > 0 ? (int)(width * p->audio / p->total_audio) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %s\033[K", bar, line);
    } else {
        fprintf(stderr, "%s%s\n", p->tty && p->drawn ? "\r\033[K" : "", line);
    }
    p->drawn = p->tty && !final;
    fflush(stderr);
    p->last_draw = now;
}

void progress_tick(progress_t *p)
{
    if (!p->quiet && now_seconds() - p->last_draw >= p->interval) draw(p, 0);
}

void progress_align(progress_t *p, double seconds) { p->align += seconds; }

void progress_add(progress_t *p, double audio_seconds, int failed)
{
    p->files++;
    p->failed += failed != 0;
    p->audio += audio_seconds;
    progress_tick(p);
}

void progress_message(progress_t *p, const char *msg)
{
    if (p->quiet) return;
    char *safe = utf8_printable(msg); /* file names are bytes: no escape sequence reaches the terminal */
    fprintf(stderr, "%s%s\n", p->tty && p->drawn ? "\r\033[K" : "", safe);
    free(safe);
    p->drawn = 0;
}

void progress_finish(progress_t *p, const char *status)
{
    if (!p->quiet) {
        draw(p, 1);
        if (status) fprintf(stderr, "%s\n", status);
    }
    free(p);
}
