/* qasr: transcribe a few audio files with a Qwen3-ASR checkpoint (all files of one call are
 * decoded together as one batch). For manifests and long runs use qasr-batch. */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio.h"
#include "batch.h" /* ALIGN_MAX_SECONDS */
#include "cli_number.h"
#include "join.h"
#include "qasr.h"
#include "segment.h"
#include "utf8.h"
#include "util.h"

static const char PROG[] = "qasr"; /* in messages */

/* Exit codes: documented in --help and README. */
enum { EXIT_OK = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2, EXIT_MODEL = 3 };

static void usage(FILE *f)
{
    fputs("usage: qasr --model DIR [options] AUDIO...   (AUDIO '-': standard input)\n"
          "       qasr --aligner DIR --text TEXT [options] AUDIO   (forced alignment of known text)\n"
          "\n"
          "Transcribe audio files with a Qwen3-ASR checkpoint directory as published\n"
          "(config.json, *.safetensors, vocab.json, merges.txt, tokenizer_config.json).\n"
          "Any format libsndfile reads (WAV, FLAC, Ogg, MP3, AIFF ...) and, when built with\n"
          "FFmpeg, any it reads (M4A/AAC, MP4, MKV, WebM, WMA ...); any rate and channel\n"
          "count. All files are decoded together as one batch; files longer than\n"
          "--max-segment-seconds are cut at quiet points and their pieces joined, as\n"
          "qasr-batch does.\n"
          "\n"
          "options:\n"
          "  -m, --model DIR          checkpoint directory (required, unless --text is given)\n"
          "      --aligner DIR        a Qwen3-ForcedAligner checkpoint: word start/end times for\n"
          "                           each transcript (or for --text)\n"
          "      --text TEXT          the transcript of the one AUDIO, to align instead of\n"
          "                           transcribing (needs --aligner; --language picks the word\n"
          "                           splitter: Chinese/Japanese/Korean rules, else spaces)\n"
          "      --timestamps word|none  word times when an aligner is given (default word)\n"
          "  -l, --language NAME      force the language (e.g. English); default: detect\n"
          "  -c, --context TEXT       background text (names, terms) to bias recognition\n"
          "  -n, --max-new-tokens N   token limit per file or piece (default: 32 + 24 per\n"
          "                           second of audio)\n"
          "      --max-segment-seconds S  cut longer files at the quietest 100 ms of the 5 s\n"
          "                           before each limit (default 300; with --aligner at most\n"
          "                           180, its limit; 0: never, as with --dump-dir and --text)\n"
          "      --ignore-eos         decode exactly --max-new-tokens tokens (benchmarks, tests)\n"
          "  -t, --threads N          CPU threads (default: the CPUs this process may use:\n"
          "                           affinity mask, cgroup CPU quota)\n"
          "      --precision P        CPU matrix products: fp32 (the reference), bf16 (bf16\n"
          "                           inputs, fp32 sums; needs AVX512-BF16 or AMX) or auto\n"
          "                           (default: where the CPU has native bf16, each matrix\n"
          "                           shape and row count on whichever was measured faster\n"
          "                           on it, timings cached in ~/.cache/qasr; else fp32;\n"
          "                           -v prints the plan)\n"
          "  -b, --backend NAME       cpu or cuda (default: cuda when built with CUDA and a\n"
          "                           device is present, else cpu)\n"
          "      --device N           CUDA device index (default 0)\n"
          "      --no-cuda-graphs     launch each decode step kernel by kernel (default: CUDA\n"
          "                           graphs, captured once per batch size)\n"
          "      --sync-steps         read each decoder step's tokens before launching the\n"
          "                           next (default: CUDA launches it first, feeding it the\n"
          "                           tokens on the device)\n"
          "      --batch N            sequences decoded together (default 32)\n"
          "      --kv-gb X            KV cache size in GB (default: CPU a quarter of free RAM,\n"
          "                           1..16; GPU 80% of the free device memory)\n"
          "      --step-tokens N      rows per decoder step; longer prompts are prefilled in\n"
          "                           chunks (default 2048)\n"
          "      --audio-stream N     the Nth audio stream of files with several (0: the first;\n"
          "                           counted among audio streams only)\n"
          "      --audio-decoder D    auto (default: libsndfile, then FFmpeg for the files\n"
          "                           libsndfile cannot open), sndfile or ffmpeg (only that one)\n"
          "  -j, --json               one JSON object per file and line: path, text, language,\n"
          "                           raw, token_ids, n_tokens, truncated, audio_seconds, error;\n"
          "                           with word times also words: [{word, start, end}] (seconds)\n"
          "      --dump-dir DIR       write each stage's tensors as .npy (one file only)\n"
          "      --list-languages     print the languages the model supports and exit\n"
          "  -v, --verbose            timings on stderr, stage by stage (on a GPU each stage\n"
          "                           then ends with a sync: a little slower), and the audio\n"
          "                           decoders' own messages (libmpg123's, FFmpeg's)\n"
          "  -h, --help               this help\n"
          "\n"
          "exit status: 0 all files transcribed, 1 some files failed (each is reported),\n"
          "2 usage error, 3 the model could not be loaded.\n",
          f);
    fprintf(f, "\naudio decoders in this build: %s\n", audio_decoders_describe());
}

/* Audio from standard input ("-"): copied to an unlinked-on-return temporary file first, so that
 * every format decodes as from a file (libsndfile and FFmpeg's MP4 demuxer seek; a pipe cannot). The decoder's messages
 * name "stdin", not the temporary file. */
static int load_stdin(float **x, int64_t *n, char **warning)
{
    const char *dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *tmp = path_join(dir, "qasr-stdin-XXXXXX");
    const int fd = mkstemp(tmp);
    if (fd < 0) {
        qasr_fail("stdin: cannot make a temporary file in %s (set TMPDIR): %s", dir, strerror(errno));
        free(tmp);
        return -1;
    }
    char buf[1 << 16];
    ssize_t got = 0;
    int rc = 0;
    while (rc == 0 && (got = read(0, buf, sizeof buf)) != 0) {
        if (got < 0 && errno == EINTR) continue;
        for (ssize_t off = 0, w; rc == 0 && got > 0 && off < got; off += w)
            if ((w = write(fd, buf + off, (size_t)(got - off))) < 0)
                rc = qasr_fail("stdin: writing the temporary copy %s: %s", tmp, strerror(errno));
        if (got < 0) rc = qasr_fail("stdin: %s", strerror(errno));
    }
    close(fd);
    if (rc == 0 && audio_load(tmp, x, n, warning) != 0) { /* its message, naming stdin */
        char *msg = xstrdup(qasr_last_error());
        const char *rest = strncmp(msg, tmp, strlen(tmp)) ? msg : msg + strlen(tmp);
        qasr_fail("stdin%s", rest);
        free(msg);
        rc = -1;
    }
    unlink(tmp);
    free(tmp);
    return rc;
}

/* Word times as JSON: [{word, start, end}] in seconds (ms exact to 3 decimals). */
static cJSON *words_json(const qasr_result_t *r)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < r->n_words; i++) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddStringToObject(w, "word", r->words[i].word);
        cJSON_AddNumberToObject(w, "start", r->words[i].start_ms / 1000.0);
        cJSON_AddNumberToObject(w, "end", r->words[i].end_ms / 1000.0);
        cJSON_AddItemToArray(a, w);
    }
    return a;
}

/* words: -1 no aligner (no field), 0 aligned, 1 not aligned (words_error says why) */
static void print_json(const char *path, const qasr_result_t *r, int words, const char *words_error)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", path);
    if (r->error) {
        cJSON_AddNullToObject(o, "text");
        cJSON_AddStringToObject(o, "error", r->error);
    } else {
        cJSON_AddStringToObject(o, "text", r->text);
        cJSON_AddStringToObject(o, "language", r->language);
        cJSON_AddStringToObject(o, "raw", r->raw);
        cJSON_AddItemToObject(o, "token_ids", cJSON_CreateIntArray(r->token_ids, r->n_tokens));
        cJSON_AddNumberToObject(o, "n_tokens", r->n_tokens);
        cJSON_AddBoolToObject(o, "truncated", r->truncated);
        cJSON_AddNumberToObject(o, "audio_seconds", r->audio_seconds);
        if (words == 0) cJSON_AddItemToObject(o, "words", words_json(r));
        if (words == 1) {
            cJSON_AddNullToObject(o, "words");
            cJSON_AddStringToObject(o, "words_error", words_error);
        }
        cJSON_AddNullToObject(o, "error");
    }
    char *s = cJSON_PrintUnformatted(o);
    puts(s);
    free(s);
    cJSON_Delete(o);
}

/* Word times for the n transcripts in res (their audio in in): the aligner's words moved into
 * res. A transcript that cannot be aligned keeps its text, with the reason in words_error[k];
 * with given (--text), that is the file's error instead. Empty transcripts get no words. */
static void align(qasr_t *al, const qasr_input_t *in, qasr_result_t *res, int n, char **words_error, int given)
{
    qasr_input_t *ain = xcalloc(MAX(1, n), sizeof *ain);
    qasr_result_t *ares = xcalloc(MAX(1, n), sizeof *ares);
    int *of = xcalloc(MAX(1, n), sizeof *of), m = 0;
    for (int k = 0; k < n; k++) {
        if (res[k].error || !res[k].text[0]) continue;
        ain[m] = (qasr_input_t){ .samples = in[k].samples, .n_samples = in[k].n_samples,
                                 .language = res[k].language[0] ? res[k].language : NULL,
                                 .align_text = res[k].text };
        of[m++] = k;
    }
    qasr_transcribe(al, ain, m, ares);
    for (int j = 0; j < m; j++) {
        qasr_result_t *r = &res[of[j]];
        if (ares[j].error && given) r->error = xstrdup(ares[j].error);
        else if (ares[j].error) words_error[of[j]] = xstrdup(ares[j].error);
        else {
            r->words = ares[j].words, r->n_words = ares[j].n_words;
            ares[j].words = NULL, ares[j].n_words = 0;
        }
        qasr_result_free(&ares[j]);
    }
    free(of);
    free(ares);
    free(ain);
}

/* A file and its pieces: in[first .. first + n_seg) of the batch, piece k its samples
 * bounds[k]..bounds[k + 1] (the last short one padded to 0.5 s, as qasr-batch pads it). */
typedef struct {
    float *x;
    int64_t *bounds;
    int first, n_seg;
    int n_cut; /* pieces cut at their token limit */
    const float **piece;
    int64_t *piece_len;
    float (*pad)[SEGMENT_MIN_SAMPLES];
    char *load_error;
} file_t;

static void cut_file(file_t *f, int64_t n, int64_t max_len)
{
    f->n_seg = segment_plan(f->x, n, max_len, &f->bounds);
    f->piece = xmalloc(sizeof *f->piece * (size_t)f->n_seg);
    f->piece_len = xmalloc(sizeof *f->piece_len * (size_t)f->n_seg);
    f->pad = xmalloc(sizeof *f->pad * (size_t)f->n_seg);
    for (int k = 0; k < f->n_seg; k++)
        f->piece[k] = segment_padded(f->x + f->bounds[k], f->bounds[k + 1] - f->bounds[k], k, f->pad[k],
                                     &f->piece_len[k]);
}

static void file_free(file_t *f)
{
    free(f->x);
    free(f->bounds);
    free(f->piece);
    free(f->piece_len);
    free(f->pad);
}

/* The first piece's reason for having no word times, with the piece named when there are
 * several (as join_first_error names a failed piece); NULL if none. Malloc'd. */
static char *join_words_error(char **werr, const int64_t *bounds, int n_seg)
{
    qasr_result_t *as_errors = xcalloc(n_seg, sizeof *as_errors);
    for (int k = 0; k < n_seg; k++) as_errors[k].error = werr[k];
    char *e = join_first_error(as_errors, bounds, n_seg);
    free(as_errors);
    return e;
}

int main(int argc, char **argv)
{
    qasr_options_t opt;
    qasr_options_default(&opt);
    const char *model = NULL, *language = NULL, *context = NULL, *aligner = NULL, *text = NULL;
    int timestamps = 1;
    double max_segment = 300; /* seconds, as qasr-batch */
    int max_new = 0, ignore_eos = 0, json = 0, list_languages = 0;
    enum { OPT_IGNORE_EOS = 256, OPT_BATCH, OPT_KV_GB, OPT_STEP, OPT_DUMP, OPT_LIST, OPT_DEVICE, OPT_PRECISION,
           OPT_ALIGNER, OPT_TEXT, OPT_TIMESTAMPS, OPT_STREAM, OPT_DECODER, OPT_MAXSEG, OPT_NOGRAPHS, OPT_SYNCSTEPS };
    static const struct option longopts[] = {
        { "model", required_argument, 0, 'm' },          { "language", required_argument, 0, 'l' },
        { "context", required_argument, 0, 'c' },        { "max-new-tokens", required_argument, 0, 'n' },
        { "ignore-eos", no_argument, 0, OPT_IGNORE_EOS }, { "threads", required_argument, 0, 't' },
        { "backend", required_argument, 0, 'b' },        { "batch", required_argument, 0, OPT_BATCH },
        { "kv-gb", required_argument, 0, OPT_KV_GB },    { "step-tokens", required_argument, 0, OPT_STEP },
        { "json", no_argument, 0, 'j' },
        { "dump-dir", required_argument, 0, OPT_DUMP },  { "list-languages", no_argument, 0, OPT_LIST },
        { "verbose", no_argument, 0, 'v' },              { "help", no_argument, 0, 'h' },
        { "device", required_argument, 0, OPT_DEVICE },  { "precision", required_argument, 0, OPT_PRECISION },
        { "aligner", required_argument, 0, OPT_ALIGNER }, { "text", required_argument, 0, OPT_TEXT },
        { "timestamps", required_argument, 0, OPT_TIMESTAMPS },
        { "audio-stream", required_argument, 0, OPT_STREAM }, { "audio-decoder", required_argument, 0, OPT_DECODER },
        { "max-segment-seconds", required_argument, 0, OPT_MAXSEG },
        { "no-cuda-graphs", no_argument, 0, OPT_NOGRAPHS },
        { "sync-steps", no_argument, 0, OPT_SYNCSTEPS },
        { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "m:l:c:n:t:b:jvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'l': language = optarg; break;
        case 'c': context = optarg; break;
        case 'n':
            if (cli_int(PROG, "--max-new-tokens", optarg, 1, MAX_TOKENS_OPTION, &max_new)) return EXIT_USAGE;
            break;
        case 't':
            if (cli_int(PROG, "--threads", optarg, 1, MAX_THREADS_OPTION, &opt.threads)) return EXIT_USAGE;
            break;
        case 'b': opt.backend = optarg; break;
        case OPT_PRECISION:
            if (!qasr_precision_known(optarg)) {
                fprintf(stderr, "qasr: --precision '%s': expected fp32, bf16 or auto\n", optarg);
                return EXIT_USAGE;
            }
            opt.precision = optarg;
            break;
        case 'j': json = 1; break;
        case 'v': opt.verbose = opt.profile = 1, audio_show_library_messages(1); break;
        case 'h': usage(stdout); return EXIT_OK;
        case OPT_IGNORE_EOS: ignore_eos = 1; break;
        case OPT_BATCH:
            if (cli_int(PROG, "--batch", optarg, 1, MAX_BATCH_OPTION, &opt.max_batch)) return EXIT_USAGE;
            break;
        case OPT_KV_GB:
            if (cli_double(PROG, "--kv-gb", optarg, 0, 1, MAX_KV_GB_OPTION, &opt.kv_gb)) return EXIT_USAGE;
            break;
        case OPT_STEP:
            if (cli_int(PROG, "--step-tokens", optarg, 1, MAX_STEP_TOKENS_OPTION, &opt.step_tokens)) return EXIT_USAGE;
            break;
        case OPT_DUMP: opt.dump_dir = optarg; break;
        case OPT_LIST: list_languages = 1; break;
        case OPT_DEVICE:
            if (cli_int(PROG, "--device", optarg, 0, MAX_DEVICE_OPTION, &opt.device)) return EXIT_USAGE;
            break;
        case OPT_NOGRAPHS: opt.no_cuda_graphs = 1; break;
        case OPT_SYNCSTEPS: opt.sync_steps = 1; break;
        case OPT_ALIGNER: aligner = optarg; break;
        case OPT_TEXT: text = optarg; break;
        case OPT_MAXSEG:
            if (cli_double(PROG, "--max-segment-seconds", optarg, 0, 0, 1e9, &max_segment)) return EXIT_USAGE;
            break;
        case OPT_TIMESTAMPS:
            if (strcmp(optarg, "word") && strcmp(optarg, "none")) {
                fprintf(stderr, "qasr: --timestamps '%s': expected word or none\n", optarg);
                return EXIT_USAGE;
            }
            timestamps = !strcmp(optarg, "word");
            break;
        case OPT_STREAM:
        case OPT_DECODER:
            if ((c == OPT_STREAM ? audio_set_stream(optarg) : audio_set_decoder(optarg)) != 0) {
                fprintf(stderr, "qasr: --%s\n", qasr_last_error());
                return EXIT_USAGE;
            }
            break;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (text && (!aligner || !timestamps)) {
        fputs("qasr: --text aligns known text: it needs --aligner DIR (and word timestamps)\n", stderr);
        return EXIT_USAGE;
    }
    if (text && model) {
        fputs("qasr: --text gives the transcript, so --model is not used: give one or the other\n", stderr);
        return EXIT_USAGE;
    }
    if (text && argc - optind != 1) {
        fputs("qasr: --text is the transcript of exactly one AUDIO\n", stderr);
        return EXIT_USAGE;
    }
    if (!model && !text) {
        fputs("qasr: --model DIR is required\n", stderr);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (list_languages && !model) {
        fputs("qasr: --list-languages needs --model DIR\n", stderr);
        return EXIT_USAGE;
    }
    if (!list_languages && optind >= argc) {
        fputs("qasr: no audio files given\n", stderr);
        usage(stderr);
        return EXIT_USAGE;
    }
    for (int i = optind, dash = 0; i < argc; i++)
        if (!strcmp(argv[i], "-") && dash++) {
            fputs("qasr: '-' (standard input) given twice: it can be read once\n", stderr);
            return EXIT_USAGE;
        }
    if (max_segment != 0 && !(max_segment > 6)) {
        fputs("qasr: --max-segment-seconds must be more than 6 (the cut is searched in the 5 s before it), or 0\n",
              stderr);
        return EXIT_USAGE;
    }
    if (ignore_eos && max_new <= 0) {
        fputs("qasr: --ignore-eos needs --max-new-tokens N\n", stderr);
        return EXIT_USAGE;
    }

    qasr_t *q = NULL, *al = NULL;
    if (opt.verbose) fprintf(stderr, "qasr: audio decoders: %s\n", audio_decoders_describe());
    if (model && !(q = qasr_load(model, &opt))) qasr_die(EXIT_MODEL, "%s", qasr_last_error());
    if (q && opt.verbose) {
        fprintf(stderr, "qasr: model loaded in %.2f s (%s); %d sequences per batch\n", qasr_load_seconds(q),
                qasr_backend_describe(q), qasr_max_batch(q));
        if (qasr_backend_plan(q)) fprintf(stderr, "qasr: %s\n", qasr_backend_plan(q));
    }
    qasr_options_t aopt = opt;
    if (model) aopt.dump_dir = NULL; /* --dump-dir: the transcription's stages, or the alignment's with --text */
    if (aligner && timestamps && !(al = qasr_load_aligner(aligner, &aopt))) {
        qasr_free(q);
        qasr_die(EXIT_MODEL, "%s", qasr_last_error());
    }
    if (al && opt.verbose)
        fprintf(stderr, "qasr: aligner loaded in %.2f s (%s)\n", qasr_load_seconds(al), qasr_backend_describe(al));
    if (list_languages) {
        for (int i = 0; i < qasr_n_languages(q); i++) puts(qasr_language(q, i));
        qasr_free(q);
        return EXIT_OK;
    }

    const int n_files = argc - optind;
    char **paths = argv + optind;
    /* where a file is cut: never for a known text or a tensor dump (one pass each) */
    if (al && max_segment > ALIGN_MAX_SECONDS) max_segment = ALIGN_MAX_SECONDS;
    const int64_t max_len = text || opt.dump_dir ? 0 : (int64_t)(max_segment * QASR_SAMPLE_RATE);
    file_t *files = xcalloc(n_files, sizeof *files);
    qasr_input_t *in = NULL; /* the pieces of all files, in order */
    int n_in = 0, failed = 0;
    for (int i = 0; i < n_files; i++) {
        file_t *f = &files[i];
        int64_t n;
        char *warning = NULL;
        if ((!strcmp(paths[i], "-") ? load_stdin(&f->x, &n, &warning) : audio_load(paths[i], &f->x, &n, &warning)) != 0) {
            f->load_error = xstrdup(qasr_last_error());
            continue;
        }
        if (warning) fprintf(stderr, "qasr: warning: %s\n", warning);
        free(warning);
        cut_file(f, n, max_len);
        f->first = n_in;
        in = xrealloc(in, sizeof *in * (size_t)(n_in + f->n_seg));
        for (int k = 0; k < f->n_seg; k++)
            in[n_in++] = (qasr_input_t){ .samples = f->piece[k], .n_samples = f->piece_len[k], .context = context,
                                         .language = language, .max_new_tokens = max_new, .ignore_eos = ignore_eos };
    }
    qasr_result_t *res = xcalloc(MAX(1, n_in), sizeof *res);
    const double t0 = now_seconds();
    if (q) {
        qasr_transcribe(q, in, n_in, res);
    } else { /* --text: the transcript is given */
        for (int k = 0; k < n_in; k++)
            res[k] = (qasr_result_t){ .text = xstrdup(text), .language = xstrdup(language ? language : ""),
                                      .raw = xstrdup(""), .token_ids = xmalloc(sizeof(int)),
                                      .audio_seconds = (double)in[k].n_samples / QASR_SAMPLE_RATE };
    }
    const double t_align = now_seconds();
    char **words_error = xcalloc(MAX(1, n_in), sizeof *words_error);
    if (al) align(al, in, res, n_in, words_error, text != NULL);
    const double elapsed = now_seconds() - t0;

    double audio_total = 0;
    for (int i = 0; i < n_files; i++) {
        file_t *f = &files[i];
        qasr_result_t joined = { .error = f->load_error }, *r = &joined;
        char *werr = NULL;
        if (!f->load_error) {
            for (int k = 0; k < f->n_seg; k++) f->n_cut += res[f->first + k].truncated;
            joined = join_results(res + f->first, f->bounds, f->n_seg);
            werr = join_words_error(words_error + f->first, f->bounds, f->n_seg);
        }
        audio_total += r->audio_seconds;
        if (r->error) {
            failed++;
            /* most errors name the file already; control characters escaped for the terminal */
            const size_t np = strlen(paths[i]);
            const int named = !strncmp(r->error, paths[i], np) && r->error[np] == ':';
            char *msg = utf8_printable(r->error), *path = utf8_printable(paths[i]);
            fprintf(stderr, "qasr: %s%s%s\n", named ? "" : path, named ? "" : ": ", msg);
            free(msg);
            free(path);
        }
        if (werr) fprintf(stderr, "qasr: %s: no word times: %s\n", paths[i], werr);
        if (json)
            print_json(paths[i], r, !al || r->error ? -1 : werr ? 1 : 0, werr);
        else if (!r->error && n_files > 1)
            printf("%s: %s\n", paths[i], r->text);
        else if (!r->error)
            printf("%s\n", r->text);
        if (!json && al && !r->error && !werr)
            for (int w = 0; w < r->n_words; w++)
                printf("%8.3f %8.3f  %s\n", r->words[w].start_ms / 1000.0, r->words[w].end_ms / 1000.0,
                       r->words[w].word);
        if (r->truncated && f->n_seg > 1)
            fprintf(stderr, "qasr: %s: %d of its %d pieces cut at their token limit without an end token "
                    "(raise --max-new-tokens)\n", paths[i], f->n_cut, f->n_seg);
        else if (r->truncated)
            fprintf(stderr, "qasr: %s: transcript cut at the %d-token limit without an end token "
                    "(raise --max-new-tokens)\n", paths[i], r->n_tokens);
        qasr_result_free(&joined); /* frees the load error too */
        free(werr);
    }
    if (opt.verbose && al) {
        qasr_stats_t st;
        qasr_last_stats(al, &st);
        fprintf(stderr, "qasr: aligner %.2f s for %.1f s of audio (%ld prompt tokens)\n", elapsed - (t_align - t0),
                st.audio_seconds, st.prefill_tokens);
    }
    if (opt.verbose && q) {
        qasr_stats_t st;
        qasr_last_stats(q, &st);
        fprintf(stderr, "qasr: %d files, %.1f s of audio in %.2f s (%.2fx real time)\n", n_files,
                audio_total, elapsed, elapsed > 0 ? audio_total / elapsed : 0.0);
        fprintf(stderr, "qasr: mel %.2f s, encoder %.2f s, prefill %.2f s (%ld tokens), decode "
                "%.2f s (%ld tokens), %ld decoder steps\n", st.mel_seconds, st.encoder_seconds,
                st.prefill_seconds, st.prefill_tokens, st.decode_seconds, st.decode_tokens,
                st.decoder_steps);
        if (st.device_allocs >= 0)
            fprintf(stderr, "qasr: %ld device memory allocations during the run\n", st.device_allocs);
        fprintf(stderr, "qasr: stages (ms, GFLOP/s):");
        for (int i = 0; i < QASR_N_STAGES; i++) {
            const double sec = st.stage[i].seconds, rate = sec > 0 ? st.stage[i].gflop / sec : 0.0;
            fprintf(stderr, "%s %s %.0f", i ? "," : "", qasr_stage_name(i), sec * 1e3);
            if (st.stage[i].gflop > 0) fprintf(stderr, " (%.0f)", rate);
        }
        fputc('\n', stderr);
    }

    for (int i = 0; i < n_files; i++) file_free(&files[i]);
    for (int i = 0; i < n_in; i++) free(words_error[i]);
    free(words_error);
    free(files);
    free(in);
    free(res);
    qasr_free(q);
    qasr_free(al);
    return failed ? EXIT_SOME_FAILED : EXIT_OK;
}
