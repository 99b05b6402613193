/* qasr-batch: the command line of the batch pipeline (batch.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "batch.h"
#include "cli_number.h"
#include "shard.h"
#include "util.h"

static const char PROG[] = "qasr-batch"; /* in messages */

static void usage(FILE *f)
{
    fputs("usage: qasr-batch MANIFEST --model DIR [-o results.jsonl] [options]\n"
          "       qasr-batch MANIFEST --aligner DIR --align-reference [options]   (word times of known text)\n"
          "\n"
          "Transcribe every file of a manifest with a Qwen3-ASR checkpoint directory, writing one\n"
          "JSON line per entry as it completes. Rerunning the same command resumes: entries that\n"
          "already have a line are skipped.\n"
          "\n"
          "MANIFEST (or - for stdin), format detected:\n"
          "  TSV with a header row naming its columns: path (required), id, language, context,\n"
          "      text (reference transcript), duration (seconds); one entry per line\n"
          "  a list of paths, one per line, no header\n"
          "  NeMo JSONL: {\"audio_filepath\": ..., \"duration\": ..., \"text\": ..., \"lang\": ...}\n"
          "  Relative paths are relative to the manifest's directory; ids default to the path.\n"
          "\n"
          "output:\n"
          "  -o, --output FILE          results JSONL (default results.jsonl; - for stdout, no resume)\n"
          "      --retry-errors         also re-run entries whose earlier line has an error\n"
          "      --overwrite            start a new output file instead of resuming\n"
          "      --format srt|vtt|txt   also write one subtitle/text file per entry ...\n"
          "      --output-dir DIR       ... under DIR, at the entry id's path\n"
          "      --manifest-format F    auto (default), tsv, list or jsonl\n"
          "\n"
          "many nodes (README \"Many nodes: Slurm\"):\n"
          "      --shard K/N            transcribe only shard K of N (0 <= K < N) of the manifest,\n"
          "                             into FILE.K-of-N.EXT (results.0-of-4.jsonl); shards are\n"
          "                             balanced by duration and every task computes the same split.\n"
          "                             Default inside Slurm: K/N from SLURM_ARRAY_TASK_ID/_COUNT\n"
          "                             or SLURM_PROCID/SLURM_NTASKS; none: the whole manifest.\n"
          "                             qasr-merge checks and joins the shard files.\n"
          "\n"
          "decoding (as in qasr):\n"
          "  -m, --model DIR            checkpoint directory (required)\n"
          "  -l, --language NAME        force the language of entries that do not name one\n"
          "  -c, --context TEXT         context for entries that do not give one\n"
          "  -n, --max-new-tokens N     token limit per segment (default: 32 + 24 per second)\n"
          "      --ignore-eos           decode exactly --max-new-tokens tokens (benchmarks)\n"
          "      --tokens-per-second R  with --ignore-eos: decode exactly 4 + ceil(R x seconds) tokens\n"
          "                             per segment, a transcript's length (benchmarks, bench/predict_gpu.sh)\n"
          "      --full-batches         each step waits until a batch of pieces is decoded (or the\n"
          "                             files end): steps as if the readers always kept up\n"
          "                             (benchmarks: bench/predict_gpu.sh)\n"
          "  -t, --threads N            CPU threads (default: the CPUs this process may use:\n"
          "                             affinity mask, cgroup CPU quota)\n"
          "      --precision P          CPU matrix products: fp32 (the reference), bf16 (bf16\n"
          "                             inputs, fp32 sums; needs AVX512-BF16 or AMX) or auto\n"
          "                             (default: where the CPU has native bf16, each matrix\n"
          "                             shape and row count on whichever was measured faster\n"
          "                             on it, timings cached in ~/.cache/qasr; else fp32;\n"
          "                             -v prints the plan)\n"
          "  -b, --backend NAME         cpu or cuda (default: cuda when built with CUDA and a\n"
          "                             device is present, else cpu)\n"
          "      --device N             CUDA device index (default 0)\n"
          "      --no-cuda-graphs       launch each decode step kernel by kernel (default: CUDA\n"
          "                             graphs, captured once per batch size)\n"
          "      --sync-steps           read each decoder step's tokens before launching the\n"
          "                             next (default: CUDA launches it first, feeding it the\n"
          "                             tokens on the device)\n"
          "      --gpus LIST            several CUDA devices, e.g. 0,1,2,3 or all: one worker per\n"
          "                             device pulls files from one queue; the weights are read\n"
          "                             once and copied to the others over NCCL\n"
          "      --batch N              sequences decoded together (default: CPU 32; GPU as many as\n"
          "                             the KV cache holds at 30 s of audio each, 32..512)\n"
          "      --kv-gb X              KV cache size in GB (default: CPU a quarter of free RAM,\n"
          "                             1..16; GPU 80% of the free device memory)\n"
          "      --step-tokens N        rows per decoder step (default 2048)\n"
          "\n"
          "audio:\n"
          "      --audio-stream N       the Nth audio stream of files with several (0: the first;\n"
          "                             counted among audio streams only)\n"
          "      --audio-decoder D      auto (default: libsndfile, then FFmpeg for the files\n"
          "                             libsndfile cannot open), sndfile or ffmpeg (only that one)\n"
          "\n"
          "scheduling:\n"
          "      --max-segment-seconds S  split longer files at quiet points (default 300)\n"
          "      --readers N            audio decoding threads (default: CPU 2; GPU every usable\n"
          "                             CPU but one per device, 2..16 per device)\n"
          "      --no-bucketing         keep manifest order instead of longest files first\n"
          "      --static-batching      start a new batch only when the last one is done\n"
          "                             (continuous batching is the default)\n"
          "      --encoder-seconds S    audio encoded together per step (default 600)\n"
          "\n"
          "  -q, --quiet                no progress, no per-file messages\n"
          "  -v, --verbose              also the audio decoders' own messages (libmpg123's,\n"
          "                             FFmpeg's: qasr reports each file's problem itself)\n"
          "      --progress-interval S  seconds between progress lines when stderr is not a\n"
          "                             terminal (default 30)\n"
          "      --fsync-seconds S      sync the output at most every S seconds (default 10;\n"
          "                             0 every line, -1 never)\n"
          "word times (README \"Word timestamps and subtitles\"):\n"
          "      --aligner DIR          a Qwen3-ForcedAligner checkpoint: each transcript's words get\n"
          "                             start/end times (\"words\" in the line); \"segments\" and\n"
          "                             --format srt|vtt become subtitle cues cut from them; files\n"
          "                             are cut at 180 s at most (the aligner's limit)\n"
          "      --align-reference      align each entry's text column instead of transcribing\n"
          "                             (no --model): corpus alignment of known text\n"
          "      --timestamps word|none word times when --aligner is given (default word)\n"
          "\n"
          "  -h, --help                 this help\n"
          "\n"
          "exit status: 0 every entry transcribed; 1 some entries failed (their lines carry\n"
          "\"error\") or manifest lines were skipped; 2 bad invocation, unreadable manifest,\n"
          "duplicate ids or unusable output; 3 the model could not be loaded; 4 interrupted\n"
          "(SIGINT/SIGTERM; a second signal stops at once; rerun to resume); 5 devices failed\n"
          "and no device was left for some files (rerun to resume).\n",
          f);
    fprintf(f, "\naudio decoders in this build: %s\n", audio_decoders_describe());
}

enum { MAX_GPUS = 64 };
static int gpus[MAX_GPUS];

/* "all" or a comma-separated list of distinct device indices -> count (0 + *problem if bad). */
static int parse_gpus(const char *arg, int *out, const char **problem)
{
    static char msg[160];
    const int count = qasr_device_count();
    int n = 0;
    if (!strcmp(arg, "all")) {
        for (; n < count && n < MAX_GPUS; n++) out[n] = n;
        if (n == 0) *problem = "--gpus all: no CUDA device found";
        return n;
    }
    for (const char *p = arg; *p;) {
        char *end;
        const long d = strtol(p, &end, 10);
        if (end == p || d < 0 || (*end && *end != ',') || n == MAX_GPUS) {
            snprintf(msg, sizeof msg, "--gpus %s: expected device indices separated by commas, or all", arg);
            *problem = msg;
            return 0;
        }
        for (int i = 0; i < n; i++)
            if (out[i] == d) {
                snprintf(msg, sizeof msg, "--gpus %s: device %ld listed twice", arg, d);
                *problem = msg;
                return 0;
            }
        if (d >= count) {
            snprintf(msg, sizeof msg, "--gpus %s: CUDA device %ld does not exist (this machine has %d)", arg, d, count);
            *problem = msg;
            return 0;
        }
        out[n++] = (int)d;
        p = *end ? end + 1 : end;
    }
    if (n == 0) *problem = "--gpus: empty list";
    return n;
}

int main(int argc, char **argv)
{
    qasr_set_program_name("qasr-batch");
    batch_opts_t o;
    batch_opts_default(&o);
    enum {
        OPT_RETRY = 256, OPT_OVERWRITE, OPT_FORMAT, OPT_OUTDIR, OPT_MFORMAT, OPT_IGNORE_EOS, OPT_BATCH,
        OPT_KV, OPT_STEP, OPT_MAXSEG, OPT_READERS, OPT_NOBUCKET, OPT_STATIC, OPT_ENCSEC, OPT_PINT, OPT_FSYNC, OPT_DEVICE, OPT_GPUS,
        OPT_SHARD, OPT_PRECISION, OPT_ALIGNER, OPT_ALIGN_REF, OPT_TIMESTAMPS, OPT_STREAM, OPT_DECODER,
        OPT_TPS, OPT_FULL, OPT_NOGRAPHS, OPT_SYNCSTEPS,
    };
    static const struct option longopts[] = {
        { "output", required_argument, 0, 'o' },           { "retry-errors", no_argument, 0, OPT_RETRY },
        { "overwrite", no_argument, 0, OPT_OVERWRITE },    { "format", required_argument, 0, OPT_FORMAT },
        { "output-dir", required_argument, 0, OPT_OUTDIR }, { "manifest-format", required_argument, 0, OPT_MFORMAT },
        { "model", required_argument, 0, 'm' },            { "language", required_argument, 0, 'l' },
        { "context", required_argument, 0, 'c' },          { "max-new-tokens", required_argument, 0, 'n' },
        { "ignore-eos", no_argument, 0, OPT_IGNORE_EOS },  { "threads", required_argument, 0, 't' },
        { "tokens-per-second", required_argument, 0, OPT_TPS },
        { "full-batches", no_argument, 0, OPT_FULL },
        { "backend", required_argument, 0, 'b' },          { "batch", required_argument, 0, OPT_BATCH },
        { "precision", required_argument, 0, OPT_PRECISION },
        { "kv-gb", required_argument, 0, OPT_KV },         { "step-tokens", required_argument, 0, OPT_STEP },
        { "max-segment-seconds", required_argument, 0, OPT_MAXSEG },
        { "readers", required_argument, 0, OPT_READERS },  { "no-bucketing", no_argument, 0, OPT_NOBUCKET },
        { "static-batching", no_argument, 0, OPT_STATIC }, { "encoder-seconds", required_argument, 0, OPT_ENCSEC },
        { "quiet", no_argument, 0, 'q' },                  { "verbose", no_argument, 0, 'v' },
        { "progress-interval", required_argument, 0, OPT_PINT },
        { "fsync-seconds", required_argument, 0, OPT_FSYNC }, { "help", no_argument, 0, 'h' },
        { "device", required_argument, 0, OPT_DEVICE },    { "gpus", required_argument, 0, OPT_GPUS },
        { "no-cuda-graphs", no_argument, 0, OPT_NOGRAPHS },
        { "sync-steps", no_argument, 0, OPT_SYNCSTEPS },
        { "shard", required_argument, 0, OPT_SHARD },
        { "aligner", required_argument, 0, OPT_ALIGNER },  { "align-reference", no_argument, 0, OPT_ALIGN_REF },
        { "timestamps", required_argument, 0, OPT_TIMESTAMPS },
        { "audio-stream", required_argument, 0, OPT_STREAM }, { "audio-decoder", required_argument, 0, OPT_DECODER },
        { 0, 0, 0, 0 },
    };
    const char *gpus_arg = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "o:m:l:c:n:t:b:qvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o.output = optarg; break;
        case 'm': o.model = optarg; break;
        case 'l': o.language = optarg; break;
        case 'c': o.context = optarg; break;
        case 'n':
            if (cli_int(PROG, "--max-new-tokens", optarg, 1, MAX_TOKENS_OPTION, &o.max_new_tokens)) return BATCH_USAGE;
            break;
        case 't':
            if (cli_int(PROG, "--threads", optarg, 1, MAX_THREADS_OPTION, &o.qopt.threads)) return BATCH_USAGE;
            break;
        case 'b': o.qopt.backend = optarg; break;
        case OPT_PRECISION:
            if (!qasr_precision_known(optarg)) {
                fprintf(stderr, "qasr-batch: --precision '%s': expected fp32, bf16 or auto\n", optarg);
                return BATCH_USAGE;
            }
            o.qopt.precision = optarg;
            break;
        case 'q': o.quiet = 1; break;
        case 'v': audio_show_library_messages(1); break;
        case 'h': usage(stdout); return BATCH_OK;
        case OPT_RETRY: o.retry_errors = 1; break;
        case OPT_OVERWRITE: o.overwrite = 1; break;
        case OPT_FORMAT: o.format = optarg; break;
        case OPT_OUTDIR: o.output_dir = optarg; break;
        case OPT_MFORMAT: o.manifest_format = optarg; break;
        case OPT_IGNORE_EOS: o.ignore_eos = 1; break;
        case OPT_TPS:
            if (cli_double(PROG, "--tokens-per-second", optarg, 0, 1, 1000, &o.tokens_per_second)) return BATCH_USAGE;
            break;
        case OPT_FULL: o.full_batches = 1; break;
        case OPT_BATCH:
            if (cli_int(PROG, "--batch", optarg, 1, MAX_BATCH_OPTION, &o.qopt.max_batch)) return BATCH_USAGE;
            break;
        case OPT_KV:
            if (cli_double(PROG, "--kv-gb", optarg, 0, 1, MAX_KV_GB_OPTION, &o.qopt.kv_gb)) return BATCH_USAGE;
            break;
        case OPT_STEP:
            if (cli_int(PROG, "--step-tokens", optarg, 1, MAX_STEP_TOKENS_OPTION, &o.qopt.step_tokens))
                return BATCH_USAGE;
            break;
        case OPT_MAXSEG:
            if (cli_double(PROG, "--max-segment-seconds", optarg, 0, 0, 1e9, &o.max_segment_seconds))
                return BATCH_USAGE;
            break;
        case OPT_READERS:
            if (cli_int(PROG, "--readers", optarg, 1, 1024, &o.readers)) return BATCH_USAGE;
            break;
        case OPT_NOBUCKET: o.no_bucketing = 1; break;
        case OPT_STATIC: o.qopt.static_batching = 1; break;
        case OPT_ENCSEC:
            if (cli_double(PROG, "--encoder-seconds", optarg, 0, 1, 1e9, &o.qopt.encoder_seconds)) return BATCH_USAGE;
            break;
        case OPT_PINT:
            if (cli_double(PROG, "--progress-interval", optarg, 0, 1, 1e9, &o.progress_interval)) return BATCH_USAGE;
            break;
        case OPT_FSYNC:
            if (cli_double(PROG, "--fsync-seconds", optarg, -1, 0, 1e9, &o.fsync_seconds)) return BATCH_USAGE;
            break;
        case OPT_DEVICE:
            if (cli_int(PROG, "--device", optarg, 0, MAX_DEVICE_OPTION, &o.qopt.device)) return BATCH_USAGE;
            break;
        case OPT_NOGRAPHS: o.qopt.no_cuda_graphs = 1; break;
        case OPT_SYNCSTEPS: o.qopt.sync_steps = 1; break;
        case OPT_GPUS: gpus_arg = optarg; break;
        case OPT_SHARD: o.shard = optarg; break;
        case OPT_ALIGNER: o.aligner = optarg; break;
        case OPT_ALIGN_REF: o.align_reference = 1; break;
        case OPT_TIMESTAMPS:
            if (strcmp(optarg, "word") && strcmp(optarg, "none")) {
                fprintf(stderr, "qasr-batch: --timestamps '%s': expected word or none\n", optarg);
                return BATCH_USAGE;
            }
            o.timestamps = !strcmp(optarg, "word");
            break;
        case OPT_STREAM:
        case OPT_DECODER:
            if ((c == OPT_STREAM ? audio_set_stream(optarg) : audio_set_decoder(optarg)) != 0) {
                fprintf(stderr, "qasr-batch: --%s\n", qasr_last_error());
                return BATCH_USAGE;
            }
            break;
        default: usage(stderr); return BATCH_USAGE;
        }
    }
    if (o.quiet) audio_show_library_messages(0); /* -q wins over -v */
    const char *problem = NULL;
    if (optind != argc - 1)
        problem = optind >= argc ? "no manifest given" : "more than one manifest given";
    else if (!o.model && !o.align_reference)
        problem = "--model DIR is required (or --aligner DIR --align-reference)";
    else if (o.retry_errors && o.overwrite)
        problem = "--retry-errors and --overwrite exclude each other";
    else if (o.format && strcmp(o.format, "srt") && strcmp(o.format, "vtt") && strcmp(o.format, "txt"))
        problem = "--format takes srt, vtt or txt";
    else if (o.max_segment_seconds <= 6)
        problem = "--max-segment-seconds must be more than 6 (the cut is searched in the 5 s before it)";
    else if (o.ignore_eos && o.max_new_tokens <= 0 && !(o.tokens_per_second > 0))
        problem = "--ignore-eos needs --max-new-tokens N or --tokens-per-second R";
    else if (o.tokens_per_second != 0 && !(o.ignore_eos && o.tokens_per_second > 0 && o.tokens_per_second <= 1000))
        problem = "--tokens-per-second takes a rate in (0, 1000] and needs --ignore-eos";
    else if (o.fsync_seconds < 0 && o.fsync_seconds != -1)
        problem = "--fsync-seconds takes -1 (never), 0 (every line) or a number of seconds";
    else if (o.shard && shard_parse(o.shard, &(shard_t){ 0, 0 }) != 0)
        problem = qasr_last_error();
    if (!problem && gpus_arg) {
        if (o.qopt.backend && strcmp(o.qopt.backend, "cuda"))
            problem = "--gpus needs the cuda backend";
        else {
            o.n_gpus = parse_gpus(gpus_arg, gpus, &problem);
            o.gpus = gpus;
            o.qopt.backend = "cuda";
        }
    }
    if (problem) {
        fprintf(stderr, "qasr-batch: %s (see --help)\n", problem);
        return BATCH_USAGE;
    }
    o.manifest = argv[optind];
    return batch_run(&o);
}
