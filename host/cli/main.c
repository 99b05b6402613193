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
#include "qasr.h"
#include "util.h"

/* Exit codes: documented in --help and README. */
enum { EXIT_OK = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2, EXIT_MODEL = 3 };

static void usage(FILE *f)
{
    fputs("usage: qasr --model DIR [options] AUDIO...   (AUDIO '-': standard input)\n"
          "\n"
          "Transcribe audio files with a Qwen3-ASR checkpoint directory as published\n"
          "(config.json, *.safetensors, vocab.json, merges.txt, tokenizer_config.json).\n"
          "Any format libsndfile reads (WAV, FLAC, Ogg, MP3, AIFF ...) and, when built with\n"
          "FFmpeg, any it reads (M4A/AAC, MP4, MKV, WebM, WMA ...); any rate and channel\n"
          "count. All files are decoded together as one batch.\n"
          "\n"
          "options:\n"
          "  -m, --model DIR          checkpoint directory (required)\n"
          "  -l, --language NAME      force the language (e.g. English); default: detect\n"
          "  -c, --context TEXT       background text (names, terms) to bias recognition\n"
          "  -n, --max-new-tokens N   token limit per file (default: 32 + 12 per second of audio)\n"
          "      --ignore-eos         decode exactly --max-new-tokens tokens (benchmarks, tests)\n"
          "  -t, --threads N          CPU threads (default: the CPUs this process may use:\n"
          "                           affinity mask, cgroup CPU quota)\n"
          "      --precision P        CPU matrix products: fp32 (the reference), bf16 (bf16\n"
          "                           inputs, fp32 sums; needs AVX512-BF16 or AMX) or auto\n"
          "                           (default: bf16 where the CPU has it, else fp32)\n"
          "  -b, --backend NAME       cpu or cuda (default: cuda when built with CUDA and a\n"
          "                           device is present, else cpu)\n"
          "      --device N           CUDA device index (default 0)\n"
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
          "                           raw, token_ids, n_tokens, truncated, audio_seconds, error\n"
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

static void print_json(const char *path, const qasr_result_t *r)
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
        cJSON_AddNullToObject(o, "error");
    }
    char *s = cJSON_PrintUnformatted(o);
    puts(s);
    free(s);
    cJSON_Delete(o);
}

int main(int argc, char **argv)
{
    qasr_options_t opt;
    qasr_options_default(&opt);
    const char *model = NULL, *language = NULL, *context = NULL;
    int max_new = 0, ignore_eos = 0, json = 0, list_languages = 0;
    enum { OPT_IGNORE_EOS = 256, OPT_BATCH, OPT_KV_GB, OPT_STEP, OPT_DUMP, OPT_LIST, OPT_DEVICE, OPT_PRECISION, OPT_STREAM, OPT_DECODER };
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
        { "audio-stream", required_argument, 0, OPT_STREAM }, { "audio-decoder", required_argument, 0, OPT_DECODER },
        { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "m:l:c:n:t:b:jvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'l': language = optarg; break;
        case 'c': context = optarg; break;
        case 'n': max_new = atoi(optarg); break;
        case 't': opt.threads = atoi(optarg); break;
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
        case OPT_BATCH: opt.max_batch = atoi(optarg); break;
        case OPT_KV_GB: opt.kv_gb = atof(optarg); break;
        case OPT_STEP: opt.step_tokens = atoi(optarg); break;
        case OPT_DUMP: opt.dump_dir = optarg; break;
        case OPT_LIST: list_languages = 1; break;
        case OPT_DEVICE: opt.device = atoi(optarg); break;
        case OPT_STREAM: {
            char *end;
            const long k = strtol(optarg, &end, 10);
            if (end == optarg || *end || k < 0 || k > 1000) {
                fprintf(stderr, "qasr: --audio-stream '%s': expected a stream number, 0 for the first\n", optarg);
                return EXIT_USAGE;
            }
            audio_set_stream((int)k);
            break;
        }
        case OPT_DECODER:
            if (audio_set_decoder(optarg) != 0) {
                fprintf(stderr, "qasr: --%s\n", qasr_last_error());
                return EXIT_USAGE;
            }
            break;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (!model) {
        fputs("qasr: --model DIR is required\n", stderr);
        usage(stderr);
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
    if (ignore_eos && max_new <= 0) {
        fputs("qasr: --ignore-eos needs --max-new-tokens N\n", stderr);
        return EXIT_USAGE;
    }

    qasr_t *q = qasr_load(model, &opt);
    if (!q) qasr_die(EXIT_MODEL, "%s", qasr_last_error());
    if (opt.verbose) fprintf(stderr, "qasr: audio decoders: %s\n", audio_decoders_describe());
    if (opt.verbose)
        fprintf(stderr, "qasr: model loaded in %.2f s (%s)\n", qasr_load_seconds(q), qasr_backend_describe(q));
    if (list_languages) {
        for (int i = 0; i < qasr_n_languages(q); i++) puts(qasr_language(q, i));
        qasr_free(q);
        return EXIT_OK;
    }

    const int n_files = argc - optind;
    char **paths = argv + optind;
    qasr_input_t *in = xcalloc(n_files, sizeof *in);
    qasr_result_t *res = xcalloc(n_files, sizeof *res);
    int n_in = 0, failed = 0;
    char **load_error = xcalloc(n_files, sizeof *load_error);
    for (int i = 0; i < n_files; i++) {
        float *x;
        int64_t n;
        char *warning = NULL;
        if ((!strcmp(paths[i], "-") ? load_stdin(&x, &n, &warning) : audio_load(paths[i], &x, &n, &warning)) != 0) {
            load_error[i] = xstrdup(qasr_last_error());
            continue;
        }
        if (warning) fprintf(stderr, "qasr: warning: %s\n", warning);
        free(warning);
        in[n_in++] = (qasr_input_t){ .samples = x, .n_samples = n, .context = context, .language = language,
                                     .max_new_tokens = max_new, .ignore_eos = ignore_eos };
    }
    const double t0 = now_seconds();
    qasr_transcribe(q, in, n_in, res);
    const double elapsed = now_seconds() - t0;

    double audio_total = 0;
    for (int i = 0, k = 0; i < n_files; i++) {
        qasr_result_t fake = { .error = load_error[i] }, *r = load_error[i] ? &fake : &res[k++];
        audio_total += r->audio_seconds;
        if (r->error) {
            failed++;
            fprintf(stderr, "qasr: %s: %s\n", paths[i], r->error);
        }
        if (json)
            print_json(paths[i], r);
        else if (!r->error && n_files > 1)
            printf("%s: %s\n", paths[i], r->text);
        else if (!r->error)
            printf("%s\n", r->text);
        if (r->truncated)
            fprintf(stderr, "qasr: %s: transcript cut at the %d-token limit without an end token "
                    "(raise --max-new-tokens)\n", paths[i], r->n_tokens);
    }
    if (opt.verbose) {
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

    for (int i = 0; i < n_in; i++) {
        free((float *)in[i].samples);
        qasr_result_free(&res[i]);
    }
    for (int i = 0; i < n_files; i++) free(load_error[i]);
    free(load_error);
    free(in);
    free(res);
    qasr_free(q);
    return failed ? EXIT_SOME_FAILED : EXIT_OK;
}
