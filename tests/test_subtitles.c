/* Subtitle writers: file naming (safe under the output directory) and the exact SRT/VTT/text. */
#include <stdlib.h>

#include "subtitles.h"
#include "test.h"
#include "util.h"

int main(void)
{
    char *dir = path_join(test_tmp_dir("subtitles"), "subs"); /* subtitles_write creates it */
    char *p;
    CHECK_STR_EQ(p = subtitles_path("/o", "a/b/c.wav", "srt"), "/o/a/b/c.srt");
    free(p);
    CHECK_STR_EQ(p = subtitles_path("/o", "/abs/x.flac", "vtt"), "/o/abs/x.vtt");
    free(p);
    CHECK_STR_EQ(p = subtitles_path("/o", "../../etc/passwd", "txt"), "/o/__/__/etc/passwd.txt");
    free(p);
    CHECK_STR_EQ(p = subtitles_path("/o", "./d.v2/utt", "srt"), "/o/d.v2/utt.srt");
    free(p);
    CHECK_STR_EQ(p = subtitles_path("/o", "..", "srt"), "/o/__.srt");
    free(p);
    CHECK_STR_EQ(p = subtitles_path("/o", "/", "srt"), "/o/_.srt");
    free(p);

    /* A manifest's names: distinct files for ids that map to one name. x/talk.wav and x/talk.flac
     * (two files of one folder) keep their extensions; "./y/a.wav" and "y//a.wav" are the same
     * name even so and get their entry numbers; the others are untouched. */
    const char *ids[] = { "x/talk.wav", "x/talk.flac", "x/other.wav", "./y/a.wav", "y//a.wav", "z" };
    const char *want[] = { "/o/x/talk.wav.srt", "/o/x/talk.flac.srt", "/o/x/other.srt",
                           "/o/y/a.wav.entry4.srt", "/o/y/a.wav.entry5.srt", "/o/z.srt" };
    char **names = subtitles_paths("/o", ids, 6, "srt");
    for (int i = 0; i < 6; i++) {
        CHECK_STR_EQ(names[i], want[i]);
        free(names[i]);
    }
    free(names);
    /* an id made to look like another's numbered name: no file for either rather than a shared one */
    const char *tricky[] = { "./q.wav", "q.wav", "q.wav.entry1.x" };
    names = subtitles_paths("/o", tricky, 3, "txt");
    CHECK(names[0] == NULL && names[2] == NULL);
    CHECK_STR_EQ(names[1], "/o/q.wav.entry2.txt");
    for (int i = 0; i < 3; i++) free(names[i]);
    free(names);

    const cue_t cues[] = { { 0.0, 61.5, "Hello there." }, { 61.5, 3725.0421, "Second part." } };
    const char *formats[] = { "srt", "vtt", "txt" };
    for (int i = 0; i < 3; i++) {
        char *one = subtitles_path(dir, "talks/one.wav", formats[i]);
        CHECK(subtitles_write(one, formats[i], cues, 2) == 0);
        free(one);
    }
    char *path = path_join(dir, "talks/one.srt");
    char *s = read_text_file(path, NULL);
    CHECK_STR_EQ(s, "1\n00:00:00,000 --> 00:01:01,500\nHello there.\n\n2\n00:01:01,500 --> 01:02:05,042\nSecond part.\n\n");
    free(s), free(path);
    path = path_join(dir, "talks/one.vtt");
    s = read_text_file(path, NULL);
    CHECK_STR_EQ(s, "WEBVTT\n\n00:00:00.000 --> 00:01:01.500\nHello there.\n\n00:01:01.500 --> 01:02:05.042\nSecond part.\n\n");
    free(s), free(path);
    path = path_join(dir, "talks/one.txt");
    s = read_text_file(path, NULL);
    CHECK_STR_EQ(s, "Hello there. Second part.\n");
    free(s), free(path);
    CHECK(subtitles_format_ok("srt") && !subtitles_format_ok("json") && !subtitles_format_ok(NULL));
    /* a file where a directory must go: a clear error naming the path */
    char *blocker = path_join(dir, "blocked");
    FILE *f = fopen(blocker, "w");
    fclose(f);
    char *blocked = path_join(dir, "blocked/x.srt");
    CHECK(subtitles_write(blocked, "srt", cues, 1) == -1);
    free(blocked);
    CHECK(strstr(qasr_last_error(), "blocked") != NULL);
    free(blocker);
    free(dir);
    return test_result("test_subtitles");
}
