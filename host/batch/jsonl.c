#include "jsonl.h"

#include <ctype.h>
#include <string.h>

/* Escapes occur only inside strings in valid JSON, and "\\" consumes its second backslash, so a
 * left-to-right scan that skips each escaped character finds exactly the \u0000 escapes. */
int jsonl_has_nul_escape(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0) return 1;
        i++; /* the escaped character */
    }
    return 0;
}

cJSON *jsonl_parse(const char *line, size_t len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    while (j && end < line + len && isspace((unsigned char)*end)) end++;
    if (j && (end != line + len || jsonl_has_nul_escape(line, len))) {
        cJSON_Delete(j);
        j = NULL;
    }
    return j;
}

cJSON *jsonl_parse_object(const char *line, size_t len)
{
    cJSON *j = jsonl_parse(line, len);
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        j = NULL;
    }
    return j;
}
