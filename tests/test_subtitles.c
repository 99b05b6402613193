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

    const cue_t cues[] = { { 0.0, 61.5, "Hello there." }, { 61.5, 3725.0421, "Second part." } };
    CHECK(subtitles_write(dir, "talks/one.wav", "srt", cues, 2) == 0);
    CHECK(subtitles_write(dir, "talks/one.wav", "vtt", cues, 2) == 0);
    CHECK(subtitles_write(dir, "talks/one.wav", "txt", cues, 2) == 0);
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
    CHECK(subtitles_write(dir, "blocked/x.wav", "srt", cues, 1) == -1);
    CHECK(strstr(qasr_last_error(), "blocked") != NULL);
    free(blocker);
    free(dir);
    return test_result("test_subtitles");
}
