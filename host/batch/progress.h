/* Progress of a long run on stderr: files done/total (and failed), audio hours done/total,
 * throughput in seconds of audio per second, ETA, and with an aligner its time so far. On a terminal a live line redrawn a few times
 * a second; otherwise a plain line every `interval` seconds (logs, Slurm). */
#ifndef QASR_PROGRESS_H
#define QASR_PROGRESS_H

typedef struct progress progress_t;

/* total_audio: seconds of audio to do (0 if unknown). quiet: print nothing. */
progress_t *progress_new(long total_files, double total_audio, int quiet, double interval);
/* Record one finished file and maybe redraw. */
void progress_add(progress_t *p, double audio_seconds, int failed);
/* Add time the aligner spent (its steps, on any device). */
void progress_align(progress_t *p, double seconds);
/* Redraw if due (call regularly even when nothing finishes). */
void progress_tick(progress_t *p);
/* Print one message line (a per-file warning) without mangling the live progress line. */
void progress_message(progress_t *p, const char *msg);
/* Final line, then free. */
void progress_finish(progress_t *p, const char *status);

#endif
