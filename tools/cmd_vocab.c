/* cmd_vocab.c - `elmo vocab`: the vocabulary file of a corpus and the n_train_tokens of
 * options.json, in one streaming pass. */
#include <getopt.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "corpus.h"
#include "fileio.h"
#include "paths.h"
#include "wordcount.h"

static const char vocab_help[] =
    "usage: elmo vocab --input GLOB [--output vocab.txt] [--min-count N] [--max-size N] [--quiet]\n\n"
    "Counts the tokens of every line of every file matching GLOB (one tokenized sentence a\n"
    "line, tokens separated by white space, UTF-8, plain or .gz) and writes the vocabulary:\n"
    "<S>, </S>, <UNK>, then the tokens seen at least N times, most frequent first, ties in\n"
    "byte order. Prints the corpus's counts: n_train_tokens (tokens, without sentence\n"
    "markers) is what options.json needs, oov_rate the share of those tokens the vocabulary\n"
    "does not list. Memory grows with the number of distinct tokens, not with the corpus\n"
    "(a table of them per thread, while counting). All cores work (OMP_NUM_THREADS: fewer);\n"
    "the result is the same for any number of threads.\n\n"
    "  --input GLOB       corpus files (quote the glob: 'corpus/*.txt.gz')\n"
    "  --output FILE      vocabulary to write (default vocab.txt; replaced atomically)\n"
    "  --min-count N      keep tokens seen at least N times (default 1)\n"
    "  --max-size N       at most N lines, the three markers included (default: no limit)\n"
    "  --quiet            no progress lines\n";

int cmd_vocab(int argc, char **argv) {
    const char *input = NULL, *output = "vocab.txt";
    long min_count = 1, max_size = INT_MAX;
    int quiet = 0;
    static const struct option longopts[] = {
        {"input", required_argument, 0, 'i'},     {"output", required_argument, 0, 'o'},
        {"min-count", required_argument, 0, 'm'}, {"max-size", required_argument, 0, 'M'},
        {"quiet", no_argument, 0, 'q'},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case 'm': min_count = cli_int("--min-count", optarg, 1, 1L << 62); break;
        case 'M': max_size = cli_int("--max-size", optarg, 3, INT_MAX); break; /* vocabularies index with int */
        case 'q': quiet = 1; break;
        case 'h': fputs(vocab_help, stdout); return 0;
        default: fputs(vocab_help, stderr); return ELMO_EXIT_FAILURE;
        }
    }
    if (optind < argc) elmo_die("vocab: unexpected argument '%s'", argv[optind]);
    cli_require("--input", input, "vocab");
    if (paths_refuse_glob_overwrite("--output", output, input, "--input", "vocab") < 0) elmo_die_last();
    if (file_remove_stale_temporaries_beside(output) < 0) elmo_die_last();

    const double start = elmo_now();
    CorpusReader r;
    if (corpus_open(&r, input, quiet ? NULL : "vocab") < 0) elmo_die_last();
    /* a table per thread, merged in thread order */
    const int n_threads = omp_get_max_threads();
    WordCount *tables = xmalloc((size_t)n_threads * sizeof *tables);
    for (int t = 0; t < n_threads; t++) wordcount_init(&tables[t]);
    if (corpus_parse(&r, tables, 0, NULL, NULL, NULL) < 0) elmo_die_last();
    WordCount wc = tables[0];
    for (int t = 1; t < n_threads; t++) {
        wordcount_merge(&wc, &tables[t]);
        wordcount_free(&tables[t]);
    }
    free(tables);
    const uint64_t lines = r.n_lines, bytes = corpus_bytes_read(&r);
    corpus_close(&r);
    if (wc.total == 0) elmo_die("%s: no tokens (%llu lines, all empty)", input, (unsigned long long)lines);
    VocabStats vs;
    if (wordcount_write_vocab(&wc, output, (uint64_t)min_count, max_size, &vs) < 0) elmo_die_last();
    printf("lines: %llu\n", (unsigned long long)lines);
    printf("distinct_tokens: %zu\n", wc.n);
    printf("n_tokens_vocab: %ld\n", vs.size);
    printf("n_train_tokens: %llu\n", (unsigned long long)vs.n_train_tokens);
    printf("oov_rate: %.6f\n", vs.oov_rate);
    wordcount_free(&wc);
    if (!quiet) {
        const double secs = elmo_now() - start;
        fprintf(stderr, "vocab: wrote %ld tokens to %s in %.1f s (%.1f MB/s, peak RSS %.0f MB)\n", vs.size, output,
                secs, secs > 0 ? bytes / 1e6 / secs : 0.0, elmo_peak_rss() / 1e6);
    }
    return 0;
}
