/* cmd_shard.c - `elmo shard`: a raw corpus as shuffled training shards and a held-out
 * part; and `elmo prepare`: the same pass also counting the vocabulary of the training
 * part (they share their options, hence one file). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "fileio.h"
#include "paths.h"
#include "shard.h"
#include "wordcount.h"

#define SHARD_USAGE                                                                                  \
    "--input GLOB --output-dir DIR --shards N\n"                                                     \
    "          [--heldout-fraction F | --heldout-lines K] [--seed S] [--gzip] [--force] [--quiet]"

#define SHARD_OPTIONS                                                                                \
    "  --input GLOB             corpus files, plain or .gz (quote the glob: 'raw/*.txt')\n"            \
    "  --output-dir DIR         where train/ and heldout/ go (created if needed)\n"                     \
    "  --shards N               number of training shards (memory holds one of them)\n"               \
    "  --heldout-fraction F     each sentence is held out with probability F (default 0)\n"           \
    "  --heldout-lines K        exactly K held-out sentences, chosen uniformly (K in memory)\n"        \
    "  --seed S                 seed of the assignment and the shuffles (default 1)\n"                 \
    "  --gzip                   write .txt.gz files (no time stamp: same seed, same bytes)\n"          \
    "  --force                  replace the shard set DIR already holds (refused otherwise); it\n"  \
    "                           stays until the new one is complete, then both switch in one step\n" \
    "  --quiet                  no progress lines\n"

static const char shard_help[] =
    "usage: elmo shard " SHARD_USAGE "\n\n"
    "Reads every line of the files matching GLOB once (one tokenized sentence a line, UTF-8,\n"
    "plain or .gz), normalises its white space (tokens joined by single spaces) and drops\n"
    "lines without a token. Each sentence is held out or dealt to a training shard (shards\n"
    "balanced to within one sentence), pseudo-randomly for the seed; every shard is shuffled.\n"
    "Writes DIR/train/shard-00000.txt ... for `elmo train --train-prefix 'DIR/train/*'` and\n"
    "DIR/heldout/heldout-00000.txt ... (corpus order; a new file every 64 MB or average shard,\n"
    "whichever is larger) for `elmo eval --test-prefix 'DIR/heldout/*'`. Memory holds one\n"
    "shard per thread (all cores work; OMP_NUM_THREADS: fewer); spill files in DIR hold the\n"
    "rest meanwhile. The same input and seed give the same files for any number of threads,\n"
    "byte for byte. DIR/train and DIR/heldout are links to the current set, which is\n"
    "replaced in one step once the new one is complete: a failed, interrupted or killed run\n"
    "leaves the earlier set (or none) as it was.\n\n" SHARD_OPTIONS;

static const char prepare_help[] =
    "usage: elmo prepare " SHARD_USAGE "\n"
    "          [--min-count N] [--max-size N]\n\n"
    "`elmo shard` and `elmo vocab` in one pass: writes the shards and the held-out part as\n"
    "`elmo shard` does and DIR/vocab.txt from the training sentences as `elmo vocab` does,\n"
    "then prints the options.json fragment {\"n_tokens_vocab\": V, \"n_train_tokens\": N}.\n\n" SHARD_OPTIONS
    "  --min-count N            vocabulary: tokens seen at least N times (default 1)\n"
    "  --max-size N             vocabulary: at most N lines, markers included (default: no limit)\n";

static double parse_fraction(const char *flag, const char *value) {
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end != '\0' || !(v >= 0 && v < 1))
        elmo_die("%s: expected a number in [0, 1), got '%s'", flag, value);
    return v;
}

/* Parses the options of shard (vocab_options = 0) or prepare (1); exits on errors. */
static void parse_options(int argc, char **argv, const char *command, const char *help, int vocab_options,
                          ShardOptions *o, long *min_count, long *max_size) {
    memset(o, 0, sizeof *o);
    o->seed = 1;
    *min_count = 1;
    *max_size = INT_MAX;
    int have_fraction = 0;
    enum { O_INPUT = 1, O_DIR, O_SHARDS, O_FRACTION, O_LINES, O_SEED, O_GZIP, O_FORCE, O_QUIET, O_MIN, O_MAX };
    static const struct option longopts[] = {
        {"input", required_argument, 0, O_INPUT},       {"output-dir", required_argument, 0, O_DIR},
        {"shards", required_argument, 0, O_SHARDS},     {"heldout-fraction", required_argument, 0, O_FRACTION},
        {"heldout-lines", required_argument, 0, O_LINES}, {"seed", required_argument, 0, O_SEED},
        {"gzip", no_argument, 0, O_GZIP},               {"force", no_argument, 0, O_FORCE},
        {"quiet", no_argument, 0, O_QUIET},             {"min-count", required_argument, 0, O_MIN},
        {"max-size", required_argument, 0, O_MAX},      {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if ((c == O_MIN || c == O_MAX) && !vocab_options) c = '?';
        switch (c) {
        case O_INPUT: o->input = optarg; break;
        case O_DIR: o->output_dir = optarg; break;
        case O_SHARDS: o->n_shards = (int)cli_int("--shards", optarg, 1, 99999); break; /* 5-digit names */
        case O_FRACTION: o->heldout_fraction = parse_fraction("--heldout-fraction", optarg); have_fraction = 1; break;
        case O_LINES: o->heldout_lines = cli_int("--heldout-lines", optarg, 1, 1L << 40); break;
        case O_SEED: o->seed = (uint64_t)cli_int("--seed", optarg, 0, 1L << 62); break;
        case O_GZIP: o->gzip = 1; break;
        case O_FORCE: o->force = 1; break;
        case O_QUIET: o->quiet = 1; break;
        case O_MIN: *min_count = cli_int("--min-count", optarg, 1, 1L << 62); break;
        case O_MAX: *max_size = cli_int("--max-size", optarg, 3, INT_MAX); break;
        case 'h': fputs(help, stdout); exit(0);
        default: fputs(help, stderr); exit(ELMO_EXIT_FAILURE);
        }
    }
    if (optind < argc) elmo_die("%s: unexpected argument '%s'", command, argv[optind]);
    cli_require("--input", o->input, command);
    cli_require("--output-dir", o->output_dir, command);
    if (!o->n_shards) cli_require("--shards", NULL, command);
    if (have_fraction && o->heldout_lines)
        elmo_die("%s: --heldout-fraction and --heldout-lines exclude each other", command);
    /* no input may lie where the results go (train/, heldout/, and prepare's vocab.txt) */
    const char *parts[] = {"train", "heldout", "vocab.txt"};
    for (int k = 0; k < (vocab_options ? 3 : 2); k++) {
        size_t n = strlen(o->output_dir) + 16;
        char *path = xmalloc(n);
        snprintf(path, n, "%s/%s", o->output_dir, parts[k]);
        const int rc = k < 2 ? paths_refuse_glob_inside(o->input, "--input", path, command)
                             : paths_refuse_glob_overwrite("--output-dir", path, o->input, "--input", command);
        free(path);
        if (rc < 0) elmo_die_last();
    }
}

static void print_stats(const ShardOptions *o, const ShardStats *st) {
    printf("lines: %llu\n", (unsigned long long)st->lines);
    printf("dropped_lines: %llu\n", (unsigned long long)st->dropped);
    printf("normalised_lines: %llu\n", (unsigned long long)st->normalised);
    printf("train_sentences: %llu\n", (unsigned long long)st->train_sentences);
    printf("train_shards: %d\n", o->n_shards);
    printf("heldout_sentences: %llu\n", (unsigned long long)st->heldout_sentences);
    printf("heldout_files: %d\n", st->heldout_files);
    printf("n_train_tokens: %llu\n", (unsigned long long)st->train_tokens);
}

/* Temporaries left in DIR, DIR/train and DIR/heldout by runs that ended early. */
static void remove_stale_temporaries(const char *dir) {
    const char *const sub[] = {"", "/train", "/heldout"};
    char path[8192];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", dir, sub[i]);
        if (file_remove_stale_temporaries(path) < 0) elmo_die_last();
    }
}

int cmd_shard(int argc, char **argv) {
    ShardOptions o;
    long min_count, max_size;
    parse_options(argc, argv, "shard", shard_help, 0, &o, &min_count, &max_size);
    remove_stale_temporaries(o.output_dir);
    const double start = elmo_now();
    ShardStats st;
    ShardSet set;
    if (shard_corpus(&o, NULL, &st, &set) < 0 || shardset_commit(&set) < 0) elmo_die_last();
    print_stats(&o, &st);
    if (!o.quiet)
        fprintf(stderr, "shard: wrote %d shards and %d held-out file(s) to %s in %.1f s (largest shard %.1f MB, "
                "peak RSS %.0f MB)\n", o.n_shards, st.heldout_files, o.output_dir, elmo_now() - start,
                st.largest_shard_bytes / 1e6, elmo_peak_rss() / 1e6);
    return 0;
}

int cmd_prepare(int argc, char **argv) {
    ShardOptions o;
    long min_count, max_size;
    parse_options(argc, argv, "prepare", prepare_help, 1, &o, &min_count, &max_size);
    remove_stale_temporaries(o.output_dir);
    const double start = elmo_now();
    WordCount wc;
    wordcount_init(&wc);
    ShardStats st;
    ShardSet set;
    if (shard_corpus(&o, &wc, &st, &set) < 0) elmo_die_last();
    /* the vocabulary joins the new set, and is switched to with it */
    size_t n = strlen(o.output_dir) + 16;
    char *vocab_path = xmalloc(n);
    snprintf(vocab_path, n, "%s/vocab.txt", o.output_dir);
    VocabStats vs;
    shardset_add(&set, set.vocab);
    if (wordcount_write_vocab(&wc, set.vocab, (uint64_t)min_count, max_size, &vs) < 0) {
        shardset_abort(&set);
        elmo_die_last();
    }
    if (shardset_commit(&set) < 0) elmo_die_last();
    print_stats(&o, &st);
    printf("distinct_tokens: %zu\n", wc.n);
    printf("n_tokens_vocab: %ld\n", vs.size);
    printf("oov_rate: %.6f\n", vs.oov_rate);
    printf("{\"n_tokens_vocab\": %ld, \"n_train_tokens\": %llu}\n", vs.size, (unsigned long long)vs.n_train_tokens);
    if (!o.quiet)
        fprintf(stderr, "prepare: wrote %d shards, %d held-out file(s) and %s in %.1f s (peak RSS %.0f MB)\n",
                o.n_shards, st.heldout_files, vocab_path, elmo_now() - start, elmo_peak_rss() / 1e6);
    free(vocab_path);
    wordcount_free(&wc);
    return 0;
}
