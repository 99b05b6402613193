/* host/batch/results.c's writer, result_line: a record built from the input.
 * Input: 32 bytes of numbers (flags for the strings that are NULL, line, n_tokens, truncated,
 * duration and segment times as raw doubles, so NaN and infinities come up), then the strings
 * separated by NULs: id, path, text, language, error, warning, reference, then up to 4 segment
 * texts.
 * Properties: the line is one JSON object ending in its only newline, with no raw control
 * character; read back, its keys come in the documented order and each string is the record's
 * with invalid UTF-8 replaced (utf8_sanitize), or null; the numbers are the record's (times
 * rounded to milliseconds; to cJSON's precision; null where the value is not finite or not
 * given). */
#include "fuzz.h"

#include <float.h>
#include <math.h>

#include "jsonl.h"
#include "results.h"
#include "utf8.h"

static double take_double(const uint8_t **data, size_t *size)
{
    const uint64_t bits = (uint64_t)fuzz_u32(data, size) | (uint64_t)fuzz_u32(data, size) << 32;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static void check_string(const cJSON *j, const char *want)
{
    if (!want) {
        FUZZ_CHECK(cJSON_IsNull(j));
        return;
    }
    char *clean = utf8_sanitize(want, strlen(want), NULL);
    FUZZ_CHECK(cJSON_IsString(j) && strcmp(j->valuestring, clean) == 0);
    free(clean);
}

static void check_number(const cJSON *j, int given, double want)
{
    if (!given || !isfinite(want)) {
        FUZZ_CHECK(cJSON_IsNull(j));
        return;
    }
    /* cJSON prints 15 significant digits when they read back within its tolerance (a relative
     * DBL_EPSILON), 17 otherwise: exact for the millisecond times and durations of real runs,
     * within an ulp or so for numbers like 1e20. */
    FUZZ_CHECK(cJSON_IsNumber(j) && fabs(j->valuedouble - want) <= fabs(want) * 2 * DBL_EPSILON);
}

static double ms(double s) { return round(s * 1000.0) / 1000.0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint32_t null_flags = fuzz_u32(&data, &size);
    result_record_t rec = { 0 };
    rec.line = (int)fuzz_u32(&data, &size);
    rec.n_tokens = (int)fuzz_u32(&data, &size);
    const uint8_t misc = fuzz_u8(&data, &size);
    rec.truncated = misc & 1;
    rec.n_segments = misc >> 1 & 3;
    rec.duration = take_double(&data, &size);
    result_segment_t seg[4];
    for (int i = 0; i < rec.n_segments; i++) {
        seg[i].start = take_double(&data, &size);
        seg[i].end = seg[i].start + (double)fuzz_u8(&data, &size) / 7;
    }
    const result_timing_t timings[2] = { { "decode_audio", rec.duration / 3 }, { "transcribe", 0.0125 } };
    rec.timings = timings;
    rec.n_timings = misc >> 3 & 1 ? 2 : 0;

    fuzz_part_t part[11];
    for (int i = 0; i < 11; i++) part[i] = (fuzz_part_t){ "", 0 };
    fuzz_split(data, size, "\0", 1, part, 11);
    char *s[11];
    for (int i = 0; i < 11; i++) s[i] = fuzz_strndup(part[i].p, part[i].n);
    const char **fields[7] = { &rec.id, &rec.path, &rec.text, &rec.language, &rec.error, &rec.warning,
                               &rec.reference };
    for (int i = 0; i < 7; i++) *fields[i] = null_flags >> i & 1 ? NULL : s[i];
    for (int i = 0; i < rec.n_segments; i++) seg[i].text = null_flags >> (7 + i) & 1 ? NULL : s[7 + i];
    rec.segments = seg;

    size_t len;
    char *line = result_line(&rec, &len);
    FUZZ_CHECK(len == strlen(line) && len > 0 && line[len - 1] == '\n');
    for (size_t i = 0; i + 1 < len; i++) FUZZ_CHECK((unsigned char)line[i] >= 0x20);
    cJSON *j = jsonl_parse_object(line, len - 1);
    FUZZ_CHECK(j);

    static const char *const keys[] = { "id", "line", "path", "text", "language", "duration", "segments",
                                        "n_tokens", "truncated", "error", "warning", "reference", "timings" };
    const cJSON *k = j->child;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if ((!strcmp(keys[i], "warning") && !rec.warning) || (!strcmp(keys[i], "reference") && !rec.reference))
            continue;
        FUZZ_CHECK(k && strcmp(k->string, keys[i]) == 0);
        k = k->next;
    }
    FUZZ_CHECK(!k);

    check_string(cJSON_GetObjectItemCaseSensitive(j, "id"), rec.id);
    check_string(cJSON_GetObjectItemCaseSensitive(j, "path"), rec.path);
    check_string(cJSON_GetObjectItemCaseSensitive(j, "text"), rec.text);
    check_string(cJSON_GetObjectItemCaseSensitive(j, "language"), rec.language);
    check_string(cJSON_GetObjectItemCaseSensitive(j, "error"), rec.error);
    if (rec.warning) check_string(cJSON_GetObjectItemCaseSensitive(j, "warning"), rec.warning);
    if (rec.reference) check_string(cJSON_GetObjectItemCaseSensitive(j, "reference"), rec.reference);
    check_number(cJSON_GetObjectItemCaseSensitive(j, "line"), rec.line > 0, rec.line);
    check_number(cJSON_GetObjectItemCaseSensitive(j, "duration"), rec.duration >= 0, rec.duration);
    check_number(cJSON_GetObjectItemCaseSensitive(j, "n_tokens"), 1, rec.n_tokens);
    FUZZ_CHECK(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(j, "truncated")) &&
               !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "truncated")) == !rec.truncated);
    const cJSON *segs = cJSON_GetObjectItemCaseSensitive(j, "segments");
    FUZZ_CHECK(cJSON_IsArray(segs) && cJSON_GetArraySize(segs) == rec.n_segments);
    for (int i = 0; i < rec.n_segments; i++) {
        const cJSON *o = cJSON_GetArrayItem(segs, i);
        check_number(cJSON_GetObjectItemCaseSensitive(o, "start"), 1, ms(seg[i].start));
        check_number(cJSON_GetObjectItemCaseSensitive(o, "end"), 1, ms(seg[i].end));
        check_string(cJSON_GetObjectItemCaseSensitive(o, "text"), seg[i].text);
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "timings");
    FUZZ_CHECK(cJSON_IsObject(t) && cJSON_GetArraySize(t) == rec.n_timings);
    for (int i = 0; i < rec.n_timings; i++)
        check_number(cJSON_GetObjectItemCaseSensitive(t, timings[i].name), 1, ms(timings[i].seconds));

    cJSON_Delete(j);
    free(line);
    for (int i = 0; i < 11; i++) free(s[i]);
    return 0;
}
