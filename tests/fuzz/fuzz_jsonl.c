/* host/batch/jsonl.c, the strict line parser of the manifest, the results reader and qasr-merge.
 * Properties: a value is returned only for text that is one JSON value without a \u0000
 * escape; printed and parsed again it is the same
 * value (numbers to cJSON's printing precision); jsonl_parse_object agrees; on any text
 * cJSON accepts, jsonl_has_nul_escape agrees with a scan that tracks strings. */
#include "fuzz.h"

#include <float.h>
#include <math.h>

#include "jsonl.h"

/* Same type, value, keys and order, child by child (cJSON_Compare looks keys up by name, which
 * duplicate keys defeat). */
static int same(const cJSON *a, const cJSON *b)
{
    if ((a->type & 0xFF) != (b->type & 0xFF)) return 0;
    if ((a->string == NULL) != (b->string == NULL) || (a->string && strcmp(a->string, b->string) != 0)) return 0;
    /* cJSON prints 15 significant digits when they read back within a relative DBL_EPSILON */
    if (cJSON_IsNumber(a)) return fabs(a->valuedouble - b->valuedouble) <= 2 * DBL_EPSILON * fabs(a->valuedouble);
    if (cJSON_IsString(a)) return strcmp(a->valuestring, b->valuestring) == 0;
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
        if (!same(x, y)) return 0;
    return !x && !y;
}

/* A number cJSON prints as null (it read 1e999 as infinity). */
static int has_nonfinite(const cJSON *j)
{
    if (cJSON_IsNumber(j) && !isfinite(j->valuedouble)) return 1;
    for (const cJSON *c = j->child; c; c = c->next)
        if (has_nonfinite(c)) return 1;
    return 0;
}

/* \u0000 inside a string, found by following the strings' quotes. */
static int reference_nul_escape(const char *s, size_t n)
{
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        if (!in_string) {
            in_string = s[i] == '"';
        } else if (s[i] == '"') {
            in_string = 0;
        } else if (s[i] == '\\' && i + 1 < n) {
            if (s[i + 1] == 'u' && n - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0) return 1;
            i++;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    cJSON *j = jsonl_parse(s, size);
    const int nul = jsonl_has_nul_escape(s, size);
    if (j) {
        FUZZ_CHECK(!nul);
        if (!has_nonfinite(j)) {
            char *text = cJSON_PrintUnformatted(j);
            FUZZ_CHECK(text);
            cJSON *again = jsonl_parse(text, strlen(text));
            FUZZ_CHECK(again && same(j, again));
            cJSON_Delete(again);
            free(text);
        }
    }
    cJSON *o = jsonl_parse_object(s, size);
    FUZZ_CHECK(!o == !(j && cJSON_IsObject(j)));
    cJSON_Delete(o);
    cJSON_Delete(j);

    /* Escapes only occur inside strings of valid JSON: there both scans must agree. */
    const char *end = NULL;
    cJSON *any = cJSON_ParseWithLengthOpts(s, size, &end, 0);
    if (any) FUZZ_CHECK(jsonl_has_nul_escape(s, (size_t)(end - s)) == reference_nul_escape(s, (size_t)(end - s)));
    cJSON_Delete(any);
    return 0;
}
