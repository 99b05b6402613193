/* host/model/tokenizer.c: loading vocab.json, merges.txt and tokenizer_config.json, then
 * encoding and decoding with what was loaded.
 * Input: a mode byte, then vocab.json, merges.txt, tokenizer_config.json and a text, separated
 * by FUZZ_SEP lines. Mode bit 0 puts the 256 byte-level tokens (ids 0-255) in front of the
 * vocabulary: the file is then `{"!":0, ... ,"Ń":255` followed by the input's vocab part (e.g.
 * `,"ab":256}`), so that inputs reach merges.txt and the encoder, which need every byte.
 * Properties: a failure leaves a message; an accepted tokenizer encodes any valid UTF-8 text
 * (and refuses invalid text) into ids it knows, decodes any ids to valid UTF-8, and, when it has
 * no added tokens, decodes the ids of a text to the text's NFC form. */
#include "fuzz.h"

#include <cJSON.h>
#include <utf8proc.h>

#include "tokenizer.h"
#include "utf8.h"
#include "util.h"

/* `{"<byte-level char of byte 0>":0,...` for the 256 bytes (GPT-2 bytes_to_unicode). */
static char byte_vocab[256 * 16];

static void make_byte_vocab(void)
{
    char *o = byte_vocab;
    *o++ = '{';
    for (int b = 0, extra = 0; b < 256; b++) {
        const int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        const uint32_t c = printable ? (uint32_t)b : 256u + (uint32_t)extra++;
        if (b) *o++ = ',';
        *o++ = '"';
        if (c == '"' || c == '\\') *o++ = '\\';
        o += utf8_encode(c, o);
        o += sprintf(o, "\":%d", b);
    }
    *o = '\0';
}

/* No added tokens: the config has no "added_tokens_decoder" or an empty one. */
static int no_added_tokens(const char *config, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(config, n);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens_decoder");
    const int none = !added || !added->child;
    cJSON_Delete(j);
    return none;
}

static void check_text(const tokenizer_t *t, const char *text, int roundtrip)
{
    int *ids;
    const int n = tokenizer_encode(t, text, &ids);
    if (!utf8_valid(text, strlen(text))) {
        FUZZ_CHECK(n == -1 && !ids && qasr_last_error()[0]);
        return;
    }
    FUZZ_CHECK(n >= 0 && ids);
    for (int i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < tokenizer_n_ids(t));
    for (int skip = 0; skip < 2; skip++) {
        char *back = tokenizer_decode(t, ids, n, skip);
        FUZZ_CHECK(utf8_valid(back, strlen(back)));
        if (roundtrip && !skip) {
            utf8proc_uint8_t *nfc = NULL;
            utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)strlen(text), &nfc,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            FUZZ_CHECK(k >= 0 && strcmp(back, (const char *)nfc) == 0);
            free(nfc);
        }
        free(back);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!byte_vocab[0]) make_byte_vocab();
    const int mode = fuzz_u8(&data, &size);
    fuzz_part_t part[4] = { { "", 0 }, { "", 0 }, { "", 0 }, { "", 0 } };
    fuzz_split(data, size, FUZZ_SEP, strlen(FUZZ_SEP), part, 4);

    const size_t prefix = mode & 1 ? strlen(byte_vocab) : 0;
    char *vocab = malloc(prefix + part[0].n + 1);
    memcpy(vocab, byte_vocab, prefix);
    memcpy(vocab + prefix, part[0].p, part[0].n);
    free(fuzz_write("vocab.json", vocab, prefix + part[0].n));
    free(vocab);
    free(fuzz_write("merges.txt", part[1].p, part[1].n));
    free(fuzz_write("tokenizer_config.json", part[2].p, part[2].n));

    tokenizer_t *t = tokenizer_load(fuzz_dir());
    if (!t) {
        FUZZ_CHECK(qasr_last_error()[0]);
    } else {
        const int n_ids = tokenizer_n_ids(t);
        FUZZ_CHECK(n_ids >= 256);
        char *text = fuzz_strndup(part[3].p, part[3].n);
        check_text(t, text, no_added_tokens(part[2].p, part[2].n));
        free(text);
        /* Any ids, known or not, decode to valid UTF-8. */
        int ids[64];
        const int n = (int)(part[3].n / 4 < 64 ? part[3].n / 4 : 64);
        for (int i = 0; i < n; i++) {
            uint32_t v;
            memcpy(&v, part[3].p + 4 * i, 4);
            ids[i] = (int)(v % (uint32_t)(n_ids + 8)) - 4;
        }
        for (int skip = 0; skip < 2; skip++) {
            char *s = tokenizer_decode(t, ids, n, skip);
            FUZZ_CHECK(utf8_valid(s, strlen(s)));
            free(s);
        }
        tokenizer_free(t);
    }
    fuzz_clear();
    return 0;
}
