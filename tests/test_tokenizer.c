/* Tokenizer tests: the real Qwen3-ASR vocabulary (ids from the spec and from vocab.json look-ups,
 * pre-token boundaries worked out by hand from the Qwen2 regex), a small synthetic tokenizer with
 * its own ids (merge order, added-token matching), and broken files. */
#include "engine.h"
#include "test.h"
#include "tokenizer.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <utf8proc.h>

static const char *tmp_root;

static const char *fixture_dir(void)
{
    const char *d = getenv("QASR_SHARED_FIXTURES");
    return d ? d : "fixtures";
}

/* GPT-2 bytes_to_unicode, written out here independently of the tokenizer: the byte-level
 * (vocab.json) spelling of n raw bytes. */
static char *byte_level(const char *raw, size_t n)
{
    char *out = xmalloc(2 * n + 1), *p = out;
    for (size_t i = 0; i < n; i++) {
        int b = (unsigned char)raw[i], c = b;
        if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
            c = 256;
            for (int k = 0; k < b; k++)
                if (!((k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF))) c++;
        }
        if (c < 0x80) {
            *p++ = (char)c;
        } else {
            *p++ = (char)(0xC0 | (c >> 6));
            *p++ = (char)(0x80 | (c & 0x3F));
        }
    }
    *p = '\0';
    return out;
}

/* Id of the vocab token spelling the raw bytes; -1 (and a failed check) if there is none. */
static int raw_id(const tokenizer_t *t, const char *raw)
{
    char *bl = byte_level(raw, strlen(raw));
    int id = tokenizer_token_id(t, bl);
    if (id < 0) fprintf(stderr, "no vocab token \"%s\"\n", bl);
    CHECK(id >= 0);
    free(bl);
    return id;
}

static void check_encode(const tokenizer_t *t, const char *text, const int *want, int n_want, int line)
{
    int *ids = NULL;
    int n = tokenizer_encode(t, text, &ids);
    int same = n == n_want;
    for (int i = 0; same && i < n; i++) same = ids[i] == want[i];
    CHECK(same);
    if (!same) {
        fprintf(stderr, "  line %d: encode(\"%s\") gave", line, text);
        for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, ", expected");
        for (int i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
}

#define CHECK_IDS(t, text, ...)                                                               \
    check_encode(t, text, (const int[]){ __VA_ARGS__ },                                       \
                 (int)(sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int)), __LINE__)

/* Expected tokens given as the raw text each one spells. */
static void check_pieces(const tokenizer_t *t, const char *text, const char *const *pieces, int n, int line)
{
    int want[64];
    QASR_ASSERT(n <= 64);
    for (int i = 0; i < n; i++) want[i] = raw_id(t, pieces[i]);
    check_encode(t, text, want, n, line);
}

#define CHECK_PIECES(t, text, ...)                                                            \
    check_pieces(t, text, (const char *const[]){ __VA_ARGS__ },                               \
                 (int)(sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *)), __LINE__)

static void check_decode(const tokenizer_t *t, const int *ids, int n, int skip, const char *want, int line)
{
    char *s = tokenizer_decode(t, ids, n, skip);
    if (!s || strcmp(s, want) != 0) fprintf(stderr, "  line %d: decode mismatch\n", line);
    CHECK_STR_EQ(s, want);
    free(s);
}

#define CHECK_DECODE(t, skip, want, ...)                                                      \
    check_decode(t, (const int[]){ __VA_ARGS__ },                                             \
                 (int)(sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int)), skip, want, __LINE__)

/* ---- real vocabulary ---- */

static void test_spec_ids(const tokenizer_t *t)
{
    CHECK_INT_EQ(tokenizer_n_ids(t), 151705);
    CHECK_INT_EQ(tokenizer_token_id(t, "<|im_start|>"), 151644);
    CHECK_INT_EQ(tokenizer_token_id(t, "<|im_end|>"), 151645);
    CHECK_INT_EQ(tokenizer_token_id(t, "<|endoftext|>"), 151643);
    CHECK_INT_EQ(tokenizer_token_id(t, "<|audio_pad|>"), 151676);
    CHECK_INT_EQ(tokenizer_token_id(t, "<asr_text>"), 151704);
    CHECK_INT_EQ(tokenizer_token_id(t, "<|audio_start|>"), 151669);
    CHECK_INT_EQ(tokenizer_token_id(t, "<|audio_end|>"), 151670);
    CHECK_INT_EQ(tokenizer_token_id(t, "<non_speech>"), 151675);
    CHECK_INT_EQ(tokenizer_token_id(t, "\xC4\xA0" "English"), 6364); /* "ĠEnglish" */
    CHECK_INT_EQ(tokenizer_token_id(t, "no such token"), -1);
    CHECK(tokenizer_is_special(t, 151643)); /* <|endoftext|> */
    CHECK(tokenizer_is_special(t, 151644)); /* <|im_start|> */
    CHECK(tokenizer_is_special(t, 151645)); /* <|im_end|> */
    CHECK(tokenizer_is_special(t, 151669)); /* <|audio_start|> */
    CHECK(tokenizer_is_special(t, 151670)); /* <|audio_end|> */
    CHECK(tokenizer_is_special(t, 151676)); /* <|audio_pad|> */
    CHECK(!tokenizer_is_special(t, 151704)); /* <asr_text> */
    CHECK(!tokenizer_is_special(t, 151675)); /* <non_speech> */
    /* The published tokenizer_config.json's additional_special_tokens names only 19 of the 48
     * tokens that added_tokens_decoder marks "special": true (and extra_special_tokens only
     * image/video/audio aliases): the flags come from added_tokens_decoder alone. */
    CHECK_INT_EQ(tokenizer_token_id(t, "<tts_text_eod>"), 151673);
    CHECK(tokenizer_is_special(t, 151673));
    CHECK_INT_EQ(tokenizer_token_id(t, "<blank27>"), 151703);
    CHECK(tokenizer_is_special(t, 151703));
    CHECK_INT_EQ(tokenizer_token_id(t, "<|image_pad|>"), 151655);
    CHECK(tokenizer_is_special(t, 151655));
    CHECK_INT_EQ(tokenizer_token_id(t, "<tool_call>"), 151657);
    CHECK(!tokenizer_is_special(t, 151657));
    CHECK(!tokenizer_is_special(t, 8948));
    CHECK(!tokenizer_is_special(t, -1));
    CHECK(!tokenizer_is_special(t, 151705));

    CHECK_IDS(t, "system", 8948);
    CHECK_IDS(t, "user", 872);
    CHECK_IDS(t, "assistant", 77091);
    CHECK_IDS(t, "\n", 198);
    CHECK_IDS(t, "language", 11528);
    CHECK_IDS(t, " English", 6364);
    CHECK_IDS(t, "language English", 11528, 6364);
    CHECK_IDS(t, "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|audio_start|><|audio_pad|>"
                 "<|audio_end|><|im_end|>\n<|im_start|>assistant\n",
              151644, 8948, 198, 151645, 198, 151644, 872, 198, 151669, 151676, 151670, 151645, 198,
              151644, 77091, 198);
    /* forced language (spec 7.4): "assistant\nlanguage English" is one BPE segment */
    CHECK_IDS(t, "<|im_start|>assistant\nlanguage English<asr_text>", 151644, 77091, 198, 11528, 6364,
              151704);
    int *ids;
    CHECK_INT_EQ(tokenizer_encode(t, "", &ids), 0);
    free(ids);
}

/* "  W x": if W is \s the run "  W " gives back its last space, so the tokens are "  ", W's own
 * tokens, " x"; otherwise " ", " W" (the ' ?[^\s..]+' alternative), " x". */
static void test_whitespace_class(const tokenizer_t *t)
{
    static const char *spaces[] = { "\v", "\f", "\xC2\x85", "\xC2\xA0", "\xE1\x9A\x80", "\xE2\x80\x80",
        "\xE2\x80\x81", "\xE2\x80\x82", "\xE2\x80\x83", "\xE2\x80\x84", "\xE2\x80\x85", "\xE2\x80\x86",
        "\xE2\x80\x87", "\xE2\x80\x88", "\xE2\x80\x89", "\xE2\x80\x8A", "\xE2\x80\xA8", "\xE2\x80\xA9",
        "\xE2\x80\xAF", "\xE2\x81\x9F", "\xE3\x80\x80" };
    for (size_t k = 0; k < sizeof spaces / sizeof *spaces; k++) {
        char text[32];
        int want[16], n = 0, *w_ids = NULL;
        snprintf(text, sizeof text, "  %s x", spaces[k]);
        want[n++] = raw_id(t, "  ");
        int n_w = tokenizer_encode(t, spaces[k], &w_ids);
        for (int i = 0; i < n_w && n < 15; i++) want[n++] = w_ids[i];
        want[n++] = raw_id(t, " x");
        free(w_ids);
        check_encode(t, text, want, n, __LINE__);
    }
    /* not \s for the regex (although Python's isspace() says so for 0x1C) */
    CHECK_PIECES(t, "  \xE2\x80\x8B x", " ", " \xE2\x80\x8B", " x"); /* U+200B zero width space */
    CHECK_PIECES(t, "  \xEF\xBB\xBF x", " ", " \xEF\xBB\xBF", " x"); /* U+FEFF */
    CHECK_PIECES(t, "  \x1C x", " ", " ", "\x1C", " x");
}

/* Each expectation: the regex alternatives that apply, then vocab look-ups of the pieces. */
static void test_pretokenizer(const tokenizer_t *t)
{
    /* \p{N} takes one digit at a time */
    CHECK_IDS(t, "2024", 17, 15, 17, 19);
    CHECK_PIECES(t, "x12", "x", "1", "2");
    CHECK_PIECES(t, "$100", "$", "1", "0", "0");
    /* contractions come first and ignore case; the apostrophe only starts one at its position */
    CHECK_PIECES(t, "I'm", "I", "'m");
    CHECK_PIECES(t, "you're", "you", "'re");
    CHECK_PIECES(t, "they've", "they", "'ve");
    CHECK_PIECES(t, "we'll", "we", "'ll");
    CHECK_PIECES(t, "she'd", "she", "'d");
    CHECK_PIECES(t, "DON'T", "DON", "'T");
    CHECK_PIECES(t, "IT'S", "IT", "'S");
    /* a contraction wins over [^\r\n\p{L}\p{N}]?\p{L}+, whose "'there" would give ' + there */
    CHECK_PIECES(t, "'there", "'t", "here");
    CHECK_PIECES(t, "'This", "'T", "his");
    CHECK_PIECES(t, "'star", "'s", "tar");
    CHECK_PIECES(t, "'day", "'d", "ay");
    CHECK_PIECES(t, "'More", "'M", "ore");
    CHECK_PIECES(t, "'very", "'ve", "ry");
    CHECK_PIECES(t, "'REAL", "'RE", "AL");
    CHECK_PIECES(t, "'Llama", "'L", "l", "ama"); /* pre-tokens 'Ll + ama */
    /* [^\r\n\p{L}\p{N}]?\p{L}+ : one leading non-letter joins the word, CR/LF does not */
    CHECK_PIECES(t, "Hello, world!", "Hello", ",", " world", "!");
    CHECK_PIECES(t, "tab\there", "tab", "\t", "here"); /* "\there" is one pre-token, two tokens */
    CHECK_PIECES(t, "a\nb", "a", "\n", "b");
    /* " ?[^\s\p{L}\p{N}]+[\r\n]*" keeps trailing newlines with punctuation */
    CHECK_PIECES(t, " ...\n", " ...\n");
    /* \s*[\r\n]+ then \s+(?!\S) then \s+ */
    CHECK_IDS(t, "\n\n", 271);
    CHECK_PIECES(t, "a\n\nb", "a", "\n\n", "b");
    CHECK_PIECES(t, " \n ", " \n", " ");
    CHECK_PIECES(t, "hello ", "hello", " ");
    CHECK_PIECES(t, "x   ", "x", "   ");
    CHECK_PIECES(t, "hello  world", "hello", " ", " world");
    CHECK_PIECES(t, "a   b", "a", "  ", " b");
    CHECK_PIECES(t, "  leading", " ", " leading");
    CHECK_PIECES(t, "a\xC2\xA0" "b", "a", "\xC2\xA0", "b"); /* NBSP + b is one pre-token, two tokens */
    test_whitespace_class(t);
    /* letters of any script */
    CHECK_PIECES(t, "你好世界", "你好", "世界");
    CHECK_PIECES(t, "今天天气很好。", "今天", "天气", "很好", "。");
    CHECK_PIECES(t, "こんにちは", "こんにちは");
    CHECK_PIECES(t, "Привет, мир!", "Пр", "ив", "ет", ",", " мир", "!");
    /* emoji are neither letters nor numbers: byte-level pieces */
    CHECK_PIECES(t, "😀", "😀");
    CHECK_PIECES(t, "👍🏽", "👍", "🏽");
    /* NFC first: e + combining acute encodes as the precomposed é */
    CHECK_PIECES(t, "e\xCC\x81", "é");
    /* added tokens split the text wherever they occur, even inside words */
    int asr = tokenizer_token_id(t, "<asr_text>");
    CHECK_IDS(t, "a<asr_text>b", raw_id(t, "a"), asr, raw_id(t, "b"));
    CHECK_IDS(t, "<asr_text><asr_text>", asr, asr);
    /* no match for a partial added token: pre-tokens "<asr" and "_text"; "<asr" is not in the
     * vocabulary and its BPE stops at < as r */
    CHECK(tokenizer_token_id(t, "<asr") < 0);
    CHECK_PIECES(t, "<asr_text", "<", "as", "r", "_text");

    int *ids = NULL;
    CHECK_INT_EQ(tokenizer_encode(t, "ok \xFF", &ids), -1);
    CHECK(strstr(qasr_last_error(), "UTF-8") != NULL);
    CHECK_INT_EQ(tokenizer_encode(t, "\xED\xA0\x80", &ids), -1); /* UTF-8 encoded surrogate */
}

static void test_round_trip(const tokenizer_t *t)
{
    static const char *corpus[] = {
        "The quick brown fox jumps over the lazy dog.",
        "I'm sure they'd've said it's FINE, don't you think?",
        "价格是 1,234.56 元，折扣 20%！",
        "東京は晴れ。カタカナとひらがな。",
        "한국어 문장입니다.",
        "Ελληνικά, русский, العربية, हिन्दी, ไทย",
        "emoji: 😀👍🏽 👨‍👩‍👧 🇫🇷",
        "e\xCC\x81te\xCC\x81 A\xCC\x8A",
        "  spaces   everywhere  \t\t tabs \n\n\n newlines \r\n crlf  ",
        "\xE3\x80\x80ideographic space\xE2\x80\xA8line separator\xC2\x85next line",
        "<|im_start|>system\ncontext: 交易 停滞<|im_end|>\n",
        "language English<asr_text>Hello there.<|im_end|>",
        "code: for (int i = 0; i < n; i++) { x[i] = y[i] * 2; }",
        "\x01\x02\x1F\x7F control bytes",
        "'s 's' ''s 'ſ ſ'S",
        "\uFEFFBOM and \u200B zero width",
    };
    for (size_t k = 0; k < sizeof corpus / sizeof *corpus; k++) {
        int *ids = NULL;
        int n = tokenizer_encode(t, corpus[k], &ids);
        CHECK(n > 0);
        char *back = tokenizer_decode(t, ids, n, 0);
        char *nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)corpus[k]);
        CHECK_STR_EQ(back, nfc);
        free(nfc);
        free(back);
        free(ids);
    }
    /* long input: one 100000-letter word and a long run of punctuation */
    size_t len = 100000;
    char *big = xmalloc(len + 1);
    for (int pass = 0; pass < 2; pass++) {
        memset(big, pass ? '!' : 'a', len);
        big[len] = '\0';
        int *ids = NULL;
        int n = tokenizer_encode(t, big, &ids);
        CHECK(n > 0 && n < (int)len / 2);
        char *back = tokenizer_decode(t, ids, n, 1);
        CHECK(back && strcmp(back, big) == 0);
        free(back);
        free(ids);
    }
    free(big);
}

static void test_decode(const tokenizer_t *t)
{
    CHECK_DECODE(t, 1, "system\n", 151644, 8948, 198, 151645);
    CHECK_DECODE(t, 0, "<|im_start|>system\n<|im_end|>", 151644, 8948, 198, 151645);
    /* <asr_text> is not special: kept */
    CHECK_DECODE(t, 1, "language English<asr_text>Hello", 11528, 6364, 151704, raw_id(t, "Hello"), 151645,
                 151643);
    CHECK_DECODE(t, 1, "", 151643, 151676, 151676);
    /* ids without an entry decode to nothing */
    CHECK_DECODE(t, 1, "ab", -1, raw_id(t, "a"), 151705, 1 << 30, raw_id(t, "b"));
    char *s = tokenizer_decode(t, NULL, 0, 1);
    CHECK_STR_EQ(s, "");
    free(s);
    /* invalid UTF-8: one U+FFFD per maximal invalid subpart (Python errors="replace") */
    int ff = raw_id(t, "\xFF"), f0 = raw_id(t, "\xF0"), x9f = raw_id(t, "\x9F"), x98 = raw_id(t, "\x98");
    int e0 = raw_id(t, "\xE0"), x80 = raw_id(t, "\x80"), ed = raw_id(t, "\xED"), xa0 = raw_id(t, "\xA0");
    int a = raw_id(t, "a");
    CHECK_DECODE(t, 1, "\xEF\xBF\xBD", ff);
    CHECK_DECODE(t, 1, "\xEF\xBF\xBD" "a", f0, x9f, x98, a);            /* truncated 4-byte sequence */
    CHECK_DECODE(t, 1, "\xEF\xBF\xBD\xEF\xBF\xBD" "a", e0, x80, a);     /* overlong: E0 needs A0..BF */
    CHECK_DECODE(t, 1, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", ed, xa0, x80); /* surrogate */
    CHECK_DECODE(t, 1, "a\xEF\xBF\xBD", a, x80);
    CHECK_DECODE(t, 1, "\xF0\x9F\x98\x80", f0, x9f, x98, x80);            /* split emoji rejoins */
}

/* The engine's default token limit (engine_auto_max_new) holds a transcript of the languages
 * whose text takes most tokens with this vocabulary, spoken fast: 17 characters a second, plus the
 * "language X<asr_text>" prefix and the end token. Hindi and Greek take about one token a
 * character (English a fifth); a limit of 32 + 12 per second cut them after 6 to 30 s. */
static size_t code_points(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void test_default_limit(const tokenizer_t *t)
{
    static const char *const texts[] = {
        /* Hindi */
        "\u092d\u093e\u0930\u0924 \u090f\u0915 \u0935\u093f\u0936\u093e\u0932 "
        "\u0926\u0947\u0936 \u0939\u0948",
        /* Greek */
        "\u0397 \u0395\u03bb\u03bb\u03ac\u03b4\u03b1 \u03b5\u03af\u03bd\u03b1\u03b9 "
        "\u03bc\u03b9\u03b1 \u03c7\u03ce\u03c1\u03b1",
        "India is a vast country where many languages are spoken",
    };
    static const char *const names[] = { "Hindi", "Greek", "English" };
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        int *ids = NULL;
        const int n = tokenizer_encode(t, texts[k], &ids);
        const size_t chars = code_points(texts[k]);
        CHECK(n > 0 && chars > 0);
        const double per_char = (double)n / (double)chars;
        if (k < 2) CHECK(per_char > 0.8); /* the premise: a token-heavy script */
        for (double sec = 2; sec <= 1200; sec *= 1.5) {
            const int needed = (int)ceil(17.0 * per_char * sec) + 8;
            if (needed > engine_auto_max_new(sec)) {
                fprintf(stderr, "  %s at 17 characters/s for %.0f s: %d tokens, limit %d\n", names[k], sec, needed,
                        engine_auto_max_new(sec));
                CHECK(0);
                break;
            }
        }
        free(ids);
    }
}

static void test_real(void)
{
    char *dir = path_join(fixture_dir(), "qwen3-asr-0.6b");
    double t0 = now_seconds();
    tokenizer_t *t = tokenizer_load(dir);
    double dt = now_seconds() - t0;
    free(dir);
    CHECK(t != NULL);
    if (!t) {
        fprintf(stderr, "tokenizer_load: %s\n", qasr_last_error());
        return;
    }
    printf("real vocabulary loaded in %.3f s\n", dt);
    test_spec_ids(t);
    test_pretokenizer(t);
    test_round_trip(t);
    test_decode(t);
    test_default_limit(t);
    tokenizer_free(t);
}

/* ---- synthetic tokenizer: bytes at ids 10..265, merges and added tokens at other ids ---- */

static const char *synth_merges = "#version: 0.2\nh e\nl l\ne l\nhe ll\nhell o\n\xC4\xA0 w\n";
static const char *synth_config =
    "{\"added_tokens_decoder\": {"
    "\"400\": {\"content\": \"<s>\", \"special\": true},"
    "\"401\": {\"content\": \"<s>x\", \"special\": false},"
    "\"402\": {\"content\": \"<|end|>\", \"special\": true}}}";

/* vocab.json for the synthetic tokenizer without byte skip_byte (-1: none), plus extra entries. */
static char *synth_vocab(int skip_byte, const char *extra)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    fputc('{', f);
    for (int b = 0; b < 256; b++) {
        if (b == skip_byte) continue;
        char raw = (char)b;
        char *bl = byte_level(&raw, 1);
        if (b == '"' || b == '\\') fprintf(f, "\"\\%c\"", b);
        else fprintf(f, "\"%s\"", bl);
        fprintf(f, ": %d, ", 10 + b);
        free(bl);
    }
    fputs("\"he\": 300, \"ll\": 301, \"el\": 302, \"hell\": 303, \"hello\": 304, \"\xC4\xA0w\": 305", f);
    fputs(extra, f);
    fputc('}', f);
    fclose(f);
    return out;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *path = path_join(dir, name);
    test_write_file(path, text, strlen(text));
    free(path);
}

/* Writes a tokenizer directory (NULL text = file left out) and returns its path. */
static char *write_synth(const char *name, const char *vocab, const char *merges, const char *config)
{
    char *dir = path_join(tmp_root, name);
    test_mkdir_p(dir);
    const char *names[3] = { "vocab.json", "merges.txt", "tokenizer_config.json" };
    const char *texts[3] = { vocab, merges, config };
    for (int k = 0; k < 3; k++) {
        char *path = path_join(dir, names[k]);
        remove(path);
        free(path);
        if (texts[k]) write_text(dir, names[k], texts[k]);
    }
    return dir;
}

static void test_synthetic(void)
{
    char *vocab = synth_vocab(-1, "");
    char *dir = write_synth("good", vocab, synth_merges, synth_config);
    tokenizer_t *t = tokenizer_load(dir);
    free(dir);
    free(vocab);
    CHECK(t != NULL);
    if (!t) {
        fprintf(stderr, "synthetic tokenizer_load: %s\n", qasr_last_error());
        return;
    }
    int h = 10 + 'h', e = 10 + 'e', l = 10 + 'l', o = 10 + 'o', x = 10 + 'x';
    CHECK_INT_EQ(tokenizer_n_ids(t), 403);
    CHECK_INT_EQ(tokenizer_token_id(t, "<|end|>"), 402);
    CHECK(tokenizer_is_special(t, 400) && !tokenizer_is_special(t, 401) && !tokenizer_is_special(t, 304));
    CHECK_IDS(t, "hello", 304);
    CHECK_IDS(t, "hellohello", 304, 304);
    /* "l l" (rank 1) merges before "e l" (rank 2) although "e l" is further left */
    CHECK_IDS(t, "ell", e, 301);
    CHECK_IDS(t, "helo", 300, l, o);
    CHECK_IDS(t, " wo", 305, o);
    CHECK_IDS(t, "hex", 300, x);
    /* added tokens: leftmost, then longest */
    CHECK_IDS(t, "<s>xhello<s>", 401, 304, 400);
    CHECK_IDS(t, "h<s>", h, 400);
    CHECK_IDS(t, "<s<s>x", 10 + '<', 10 + 's', 401);
    CHECK_DECODE(t, 1, "hello", 400, 304, 402);
    CHECK_DECODE(t, 0, "<s>hello<|end|>", 400, 304, 402);
    CHECK_DECODE(t, 1, "<s>x ", 401, 10 + ' ');
    CHECK_DECODE(t, 1, "h", 10 + 'h', 306, 399); /* unused ids inside the range */
    tokenizer_free(t);
}

static void expect_load_error(const char *name, const char *vocab, const char *merges, const char *config,
                              const char *want1, const char *want2)
{
    char *dir = write_synth(name, vocab, merges, config);
    tokenizer_t *t = tokenizer_load(dir);
    const char *msg = qasr_last_error();
    int ok = !t && strstr(msg, want1) && (!want2 || strstr(msg, want2));
    if (!ok) fprintf(stderr, "  case %s: loaded=%d, message \"%s\"\n", name, t != NULL, msg);
    CHECK(ok);
    tokenizer_free(t);
    free(dir);
}

static void test_bad_files(void)
{
    char *good = synth_vocab(-1, "");
    char *no_a = synth_vocab('A', "");
    char *frac = synth_vocab(-1, ", \"zz\": 1.5");
    char *str = synth_vocab(-1, ", \"zz\": \"7\"");
    char *neg = synth_vocab(-1, ", \"zz\": -3");
    char *dup_id = synth_vocab(-1, ", \"zz\": 301");
    char *dup_tok = synth_vocab(-1, ", \"he\": 306");
    char *merges_3 = xmalloc(strlen(synth_merges) + 64);

    expect_load_error("no_vocab", NULL, synth_merges, synth_config, "vocab.json", NULL);
    expect_load_error("no_merges", good, NULL, synth_config, "merges.txt", NULL);
    expect_load_error("no_config", good, synth_merges, NULL, "tokenizer_config.json", NULL);
    expect_load_error("vocab_not_json", "{\"a\": 1,", synth_merges, synth_config, "vocab.json", "invalid JSON");
    expect_load_error("vocab_array", "[1, 2]", synth_merges, synth_config, "vocab.json", "object");
    expect_load_error("vocab_fraction", frac, synth_merges, synth_config, "vocab.json", "\"zz\"");
    expect_load_error("vocab_string_id", str, synth_merges, synth_config, "vocab.json", "\"zz\"");
    expect_load_error("vocab_negative_id", neg, synth_merges, synth_config, "vocab.json", "\"zz\"");
    expect_load_error("vocab_duplicate_id", dup_id, synth_merges, synth_config, "vocab.json", "301");
    expect_load_error("vocab_duplicate_token", dup_tok, synth_merges, synth_config, "vocab.json", "\"he\"");
    expect_load_error("vocab_missing_byte", no_a, synth_merges, synth_config, "vocab.json", "0x41");

    sprintf(merges_3, "%sa b c\n", synth_merges);
    expect_load_error("merges_three_parts", good, merges_3, synth_config, "merges.txt:8", NULL);
    sprintf(merges_3, "%sab\n", synth_merges);
    expect_load_error("merges_one_part", good, merges_3, synth_config, "merges.txt:8", NULL);
    sprintf(merges_3, "%sh  e\n", synth_merges);
    expect_load_error("merges_two_spaces", good, merges_3, synth_config, "merges.txt:8", NULL);
    sprintf(merges_3, "%shel lo\n", synth_merges);
    expect_load_error("merges_unknown_token", good, merges_3, synth_config, "merges.txt:8", "first token");
    sprintf(merges_3, "%sx y\n", synth_merges);
    expect_load_error("merges_unknown_result", good, merges_3, synth_config, "merges.txt:8", "merged token");

    /* A NUL inside a merges token: refused as not text (the lookup, which compares all bytes,
     * used to match "h\0aev" against "h" up to the NUL and read past its end). */
    static const char nul_line[] = "h\0aev e\n";
    const size_t n_merges = strlen(synth_merges);
    memcpy(merges_3, synth_merges, n_merges);
    memcpy(merges_3 + n_merges, nul_line, sizeof nul_line - 1);
    char *nul_dir = write_synth("merges_nul", good, NULL, synth_config);
    char *nul_path = path_join(nul_dir, "merges.txt");
    test_write_file(nul_path, merges_3, n_merges + sizeof nul_line - 1);
    tokenizer_t *nul_t = tokenizer_load(nul_dir);
    CHECK(!nul_t && strstr(qasr_last_error(), "merges.txt: a NUL byte at offset"));
    tokenizer_free(nul_t);
    free(nul_path);
    free(nul_dir);

    expect_load_error("config_not_json", good, synth_merges, "{", "tokenizer_config.json", "invalid JSON");
    expect_load_error("config_decoder_not_object", good, synth_merges, "{\"added_tokens_decoder\": 3}",
                      "tokenizer_config.json", "added_tokens_decoder");
    expect_load_error("added_id_not_integer", good, synth_merges,
                      "{\"added_tokens_decoder\": {\"x1\": {\"content\": \"<a>\", \"special\": true}}}",
                      "tokenizer_config.json", "x1");
    expect_load_error("added_no_content", good, synth_merges,
                      "{\"added_tokens_decoder\": {\"400\": {\"special\": true}}}", "tokenizer_config.json",
                      "content");
    expect_load_error("added_special_not_bool", good, synth_merges,
                      "{\"added_tokens_decoder\": {\"400\": {\"content\": \"<a>\", \"special\": 1}}}",
                      "tokenizer_config.json", "special");
    expect_load_error("added_lstrip", good, synth_merges,
                      "{\"added_tokens_decoder\": {\"400\": {\"content\": \"<a>\", \"lstrip\": true}}}",
                      "tokenizer_config.json", "lstrip");
    expect_load_error("added_id_clash", good, synth_merges,
                      "{\"added_tokens_decoder\": {\"301\": {\"content\": \"<a>\", \"special\": true}}}",
                      "tokenizer_config.json", "301");
    expect_load_error("added_content_not_utf8", good, synth_merges,
                      "{\"added_tokens_decoder\": {\"400\": {\"content\": \"<\xC3>\", \"special\": true}}}",
                      "tokenizer_config.json", "not UTF-8 text");
    expect_load_error("added_content_clash", good, synth_merges,
                      "{\"added_tokens_decoder\": {\"400\": {\"content\": \"hello\", \"special\": true}}}",
                      "tokenizer_config.json", "hello");

    free(merges_3);
    free(dup_tok);
    free(dup_id);
    free(neg);
    free(str);
    free(frac);
    free(no_a);
    free(good);
}

int main(void)
{
    tmp_root = test_tmp_dir("tokenizer");
    test_real();
    test_synthetic();
    test_bad_files();
    return test_result("test_tokenizer");
}
