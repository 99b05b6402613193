/* Per-file transcript files for archive users: SubRip (.srt), WebVTT (.vtt) or plain text
 * (.txt), one per input, written under a directory at the input id's relative path with the
 * extension replaced (ids like "a/b/c.wav" give DIR/a/b/c.srt). Ids whose files would be the same
 * keep their extension (a/talk.wav and a/talk.flac give DIR/a/talk.wav.srt and DIR/a/talk.flac.srt);
 * ids that still collide (ids equal after "./" and "//" are dropped) add their manifest entry
 * number (DIR/a/talk.wav.entry7.srt). A cue is one transcribed segment (a whole short file, or a
 * piece of a long one), or with an aligner one cut from word times (cues.h). */
#ifndef QASR_SUBTITLES_H
#define QASR_SUBTITLES_H

#include <stddef.h>

typedef struct {
    double start, end; /* seconds */
    const char *text;
} cue_t;

/* 1 if format is "srt", "vtt" or "txt". */
int subtitles_format_ok(const char *format);
/* Output path for id under dir (malloc'd): leading '/', "./" and ".." components made safe. */
char *subtitles_path(const char *dir, const char *id, const char *format);
/* The paths of ids[0..n-1], the entries of a whole manifest in order (shards writing into one
 * directory then agree), with the collisions resolved as above: malloc'd array of malloc'd paths,
 * NULL where an id still collides (after entry numbers, only an id built to look like another's
 * numbered name can). */
char **subtitles_paths(const char *dir, const char *const *ids, size_t n, const char *format);
/* Write the file at path atomically (temporary file + rename), creating directories. 0 or -1 +
 * qasr_fail() naming the path. */
int subtitles_write(const char *path, const char *format, const cue_t *cues, int n);

#endif
