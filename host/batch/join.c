#include "join.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "audio.h"
#include "utf8.h"
#include "util.h"

static int spaceless_script(uint32_t c)
{
    return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF00 && c <= 0xFFEF) ||
           (c >= 0x0E00 && c <= 0x0E7F) || (c >= 0x20000 && c <= 0x3FFFF);
}

char *join_texts(const char *const *texts, int n_texts)
{
    size_t cap = 1;
    for (int i = 0; i < n_texts; i++) cap += strlen(texts[i] ? texts[i] : "") + 1;
    char *out = xmalloc(cap);
    size_t n = 0;
    for (int i = 0; i < n_texts; i++) {
        const char *t = texts[i];
        if (!t || !*t) continue;
        if (n > 0 && !spaceless_script(utf8_last(out, n)) && !spaceless_script(utf8_first(t)) && out[n - 1] != ' ' &&
            t[0] != ' ')
            out[n++] = ' ';
        memcpy(out + n, t, strlen(t));
        n += strlen(t);
    }
    out[n] = '\0';
    return out;
}

char *join_languages(const char *const *languages, int n)
{
    size_t cap = 1;
    for (int i = 0; i < n; i++) cap += strlen(languages[i] ? languages[i] : "") + 1;
    char *out = xcalloc(cap, 1);
    const char *prev = "";
    for (int i = 0; i < n; i++) {
        const char *l = languages[i];
        if (!l || !*l || !strcmp(l, prev)) continue;
        if (*out) strcat(out, ",");
        strcat(out, l);
        prev = l;
    }
    return out;
}

char *join_first_error(const qasr_result_t *seg, const int64_t *bounds, int n_seg)
{
    for (int i = 0; i < n_seg; i++)
        if (seg[i].error) {
            char msg[QASR_ERR_LEN];
            if (n_seg > 1)
                snprintf(msg, sizeof msg, "segment %d (%.1f-%.1f s): %s", i + 1, (double)bounds[i] / QASR_SAMPLE_RATE,
                         (double)bounds[i + 1] / QASR_SAMPLE_RATE, seg[i].error);
            else
                snprintf(msg, sizeof msg, "%s", seg[i].error);
            return xstrdup(msg);
        }
    return NULL;
}
