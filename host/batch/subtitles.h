/* Per-file transcript files for archive users: SubRip (.srt), WebVTT (.vtt) or plain text
 * (.txt), one per input, written under a directory at the input id's relative path with the
 * extension replaced (ids like "a/b/c.wav" give DIR/a/b/c.srt). A cue is one transcribed segment
 * (a whole short file, or a piece of a long one): the model gives no finer timestamps. */
#ifndef QASR_SUBTITLES_H
#define QASR_SUBTITLES_H

typedef struct {
    double start, end; /* seconds */
    const char *text;
} cue_t;

/* 1 if format is "srt", "vtt" or "txt". */
int subtitles_format_ok(const char *format);
/* Output path for id under dir (malloc'd): leading '/', "./" and ".." components made safe. */
char *subtitles_path(const char *dir, const char *id, const char *format);
/* Write the file atomically (temporary file + rename), creating directories. 0 or -1 +
 * qasr_fail() naming the path. */
int subtitles_write(const char *dir, const char *id, const char *format, const cue_t *cues, int n);

#endif
