/* qasr-merge: the command line of the shard merge (merge.c). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "merge.h"
#include "util.h"

static void usage(FILE *f)
{
    fputs("usage: qasr-merge MANIFEST SHARD.jsonl... -o merged.jsonl [--manifest-format F]\n"
          "\n"
          "Check that the outputs of qasr-batch --shard K/N (results.K-of-N.jsonl) hold every entry\n"
          "of MANIFEST exactly once, and write them as one JSONL file in manifest order (atomically:\n"
          "through merged.jsonl.tmp and a rename). MANIFEST is read as qasr-batch reads it.\n"
          "\n"
          "  -o, --output FILE          the merged JSONL (required; - for stdout)\n"
          "      --manifest-format F    auto (default), tsv, list or jsonl\n"
          "  -h, --help                 this help\n"
          "\n"
          "An id found twice keeps its success line over an error line, else the first line read;\n"
          "ids not in the manifest are dropped; an incomplete last line (a killed run) is ignored.\n"
          "Each case is reported on stderr with the failed and missing ids (the first 20 of each).\n"
          "\n"
          "exit status: 0 every entry exactly once, no errors; 1 complete, but some entries have\n"
          "error lines or the inputs had duplicates, ids not in the manifest or unreadable lines;\n"
          "2 bad invocation, unreadable manifest or input, or the output cannot be written;\n"
          "5 incomplete: some entries have no line (the merged file is still written; rerun the\n"
          "shards that own them, which resume, and merge again).\n",
          f);
}

int main(int argc, char **argv)
{
    qasr_set_program_name("qasr-merge");
    merge_opts_t o = { .manifest_format = "auto" };
    enum { OPT_MFORMAT = 256 };
    static const struct option longopts[] = {
        { "output", required_argument, 0, 'o' },
        { "manifest-format", required_argument, 0, OPT_MFORMAT },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': o.output = optarg; break;
        case OPT_MFORMAT: o.manifest_format = optarg; break;
        case 'h': usage(stdout); return MERGE_OK;
        default: usage(stderr); return MERGE_USAGE;
        }
    }
    const char *problem = NULL;
    if (optind >= argc)
        problem = "no manifest given";
    else if (optind + 1 >= argc)
        problem = "no shard files given";
    else if (!o.output)
        problem = "-o FILE is required";
    if (problem) {
        fprintf(stderr, "qasr-merge: %s (see --help)\n", problem);
        return MERGE_USAGE;
    }
    o.manifest = argv[optind];
    o.inputs = (const char *const *)argv + optind + 1;
    o.n_inputs = argc - optind - 1;
    return merge_run(&o);
}
