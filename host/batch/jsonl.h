/* One line of JSON Lines, parsed strictly: the manifest, the results reader (resume, retry) and
 * qasr-merge read their lines through here, so they agree on what a malformed line is. */
#ifndef QASR_JSONL_H
#define QASR_JSONL_H

#include <stddef.h>

#include <cJSON.h>

/* The JSON value that is the whole of line[0..len) (surrounding white space allowed), or NULL:
 * not JSON, trailing text, or a string holding U+0000 (cJSON's C strings would silently end
 * there, so a path, id or text would be read cut short). Caller cJSON_Delete()s. */
cJSON *jsonl_parse(const char *line, size_t len);
/* The same, NULL also when the value is not an object. */
cJSON *jsonl_parse_object(const char *line, size_t len);

/* Whether the JSON text s[0..n) holds the escape \u0000 inside a string. */
int jsonl_has_nul_escape(const char *s, size_t n);

#endif
