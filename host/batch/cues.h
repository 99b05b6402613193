/* Subtitle cues cut from word times (qasr-batch --aligner): where a transcript with word start
 * and end times is cut into cues, and how a cue's text is wrapped. The rules, from the Netflix
 * Timed Text Style Guide (general requirements: at most 42 characters per line and 2 lines per
 * event, at most 7 s and at least 5/6 s on screen) and the BBC Subtitle Guidelines (break at the
 * end of a sentence and at natural pauses):
 *   - a cue ends after a word followed by sentence punctuation (. ! ? ... and their CJK forms)
 *     or by a pause of at least CUE_PAUSE_MS before the next word;
 *   - a cue never grows past 2 x 42 characters or 7 s: the next word starts a new cue;
 *   - a cue is shown from its first word's start to its last word's end, at least 5/6 s when
 *     the next cue leaves room, and never into the next cue; where a piece's last words were
 *     placed past its end, over the next piece's words (the aligner does not clamp), they are
 *     shown at the next word's start, so that cues stay in time order;
 *   - its text is the transcript's own (capitals and punctuation kept) from its first word to the
 *     next cue's first word; over 42 characters it is wrapped into two lines at the space, or
 *     the place between two CJK characters, nearest the middle that leaves both lines within 42
 *     characters (without such places, at the middle character); a word that would leave no
 *     such break starts the next cue, so only a cue of one word has a longer line.
 * Characters are code points. */
#ifndef QASR_CUES_H
#define QASR_CUES_H

#include "qasr.h"
#include "subtitles.h"

#define CUE_LINE_CHARS 42
#define CUE_LINES 2
#define CUE_MAX_MS 7000
#define CUE_MIN_MS 833
#define CUE_PAUSE_MS 500

/* The words of a file's n_seg pieces (piece i spans samples bounds[i]..bounds[i + 1] at 16 kHz,
 * its words in seg[i]), their times moved from the piece's start to the file's, rounded to ms.
 * The word strings are borrowed; the array is malloc'd. */
qasr_word_t *cues_file_words(const qasr_result_t *seg, const int64_t *bounds, int n_seg, int *n);

/* The cues of text from its n words (times in ms from the start of the file) into *cues
 * (malloc'd, each text malloc'd: free with cues_free); returns how many. Words the text does
 * not contain in order (align_word_spans) are shown as themselves, joined by spaces. */
int cues_from_words(const char *text, const qasr_word_t *words, int n, cue_t **cues);
void cues_free(cue_t *cues, int n);

#endif
