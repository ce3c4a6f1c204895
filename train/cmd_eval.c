/* cmd_eval.c - `elmo eval`: perplexity on held-out data (docs/design.md section 6) through
 * heldout_evaluate (train/heldout.h): full softmax, T = 1, every shard once in order, LSTM
 * states carried, final partial batch dropped; perplexity = exp(mean of the batch losses). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "cli.h"
#include "train_commands.h"
#include "common.h"
#include "heldout.h"
#include "remap.h"
#include "memfit.h"

static const char eval_help[] =
    "usage: elmo eval (--save-dir DIR [--best] | --weights FILE --options FILE) --test-prefix GLOB --vocab FILE\n"
    "                 [--batch-size N] [--max-tokens N] [--threads N] [--quiet]\n\n"
    "Perplexity of a trained model on the shards matching GLOB, as bilm-tf's test: full\n"
    "softmax, one step at a time, every shard once in sorted order, LSTM states starting\n"
    "from zero and carried from batch to batch. Prints progress on stderr and on stdout\n"
    "`perplexity: <value>` (both directions), then `perplexity_forward: <value>` and\n"
    "`perplexity_backward: <value>`. A warning goes to stderr (even with --quiet) when one\n"
    "direction's perplexity is more than 3 times the other's.\n\n"
    "  --save-dir DIR      a training directory: DIR/options.json and its newest checkpoint\n"
    "  --best              with --save-dir: DIR/best.hdf5 instead of the newest checkpoint\n"
    "  --weights FILE      a checkpoint (or any weight file with softmax/W and softmax/b) ...\n"
    "  --options FILE      ... and its options\n"
    "  --test-prefix GLOB  held-out shards (also --test_prefix)\n"
    "  --vocab FILE        the training vocabulary (also --vocab_file)\n"
    "  --batch-size N      sentences streams per batch (default 256)\n"
    "  --max-tokens N      stop after the batch that reaches N positions per direction\n"
    "  --threads N         threads (default: all cores)\n"
    "  --quiet             only the results (and the warning)\n"
    "  --init-vocab FILE   the vocabulary the softmax was trained with, for a file that does not\n"
    "                      store it; the softmax's rows are matched to --vocab by token\n";

int cmd_eval(int argc, char **argv) {
    const char *save_dir = NULL, *weights = NULL, *options_path = NULL, *prefix = NULL, *vocab_path = NULL;
    const char *init_vocab = NULL;
    int batch_size = 256, threads = 0, quiet = 0, best = 0;
    long max_tokens = 0;
    enum { O_SAVE = 256, O_BEST, O_WEIGHTS, O_OPTIONS, O_PREFIX, O_VOCAB, O_BATCH, O_MAX_TOKENS, O_THREADS, O_QUIET,
           O_INIT_VOCAB };
    static const struct option longopts[] = {
        {"save-dir", required_argument, 0, O_SAVE},       {"save_dir", required_argument, 0, O_SAVE},
        {"best", no_argument, 0, O_BEST},                 {"weights", required_argument, 0, O_WEIGHTS},
        {"options", required_argument, 0, O_OPTIONS},     {"test-prefix", required_argument, 0, O_PREFIX},
        {"test_prefix", required_argument, 0, O_PREFIX},  {"vocab", required_argument, 0, O_VOCAB},
        {"vocab_file", required_argument, 0, O_VOCAB},    {"batch-size", required_argument, 0, O_BATCH},
        {"max-tokens", required_argument, 0, O_MAX_TOKENS}, {"threads", required_argument, 0, O_THREADS},
        {"quiet", no_argument, 0, O_QUIET},               {"init-vocab", required_argument, 0, O_INIT_VOCAB},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_SAVE: save_dir = optarg; break;
        case O_BEST: best = 1; break;
        case O_INIT_VOCAB: init_vocab = optarg; break;
        case O_WEIGHTS: weights = optarg; break;
        case O_OPTIONS: options_path = optarg; break;
        case O_PREFIX: prefix = optarg; break;
        case O_VOCAB: vocab_path = optarg; break;
        case O_BATCH: batch_size = (int)cli_int("--batch-size", optarg, 1, 1 << 20); break;
        case O_MAX_TOKENS: max_tokens = cli_int("--max-tokens", optarg, 1, 1L << 62); break;
        case O_THREADS: threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case O_QUIET: quiet = 1; break;
        case 'h': fputs(eval_help, stdout); return 0;
        default: fputs(eval_help, stderr); return ELMO_EXIT_FAILURE;
        }
    }
    if (optind < argc) elmo_die("eval: unexpected argument '%s'", argv[optind]);
    if (!save_dir == !weights) elmo_die("eval: give either --save-dir or --weights with --options");
    if (best && !save_dir) elmo_die("eval: --best needs --save-dir (it reads DIR/best.hdf5)");
    cli_require("--test-prefix", prefix, "eval");
    cli_require("--vocab", vocab_path, "eval");
    elmo_set_threads(threads);

    char options_buf[4096], weights_buf[4096];
    if (save_dir) {
        snprintf(options_buf, sizeof options_buf, "%s/options.json", save_dir);
        options_path = options_buf;
        if (best) {
            struct stat st;
            snprintf(weights_buf, sizeof weights_buf, "%s/best.hdf5", save_dir);
            if (stat(weights_buf, &st) != 0)
                elmo_die("%s: no such file: --best reads the best checkpoint that training keeps there", weights_buf);
        } else if (checkpoint_latest(save_dir, weights_buf, sizeof weights_buf, NULL) < 0) {
            elmo_die_last();
        }
        weights = weights_buf;
    }
    cli_require("--options", options_path, "eval");
    ElmoOptions opt;
    if (options_load(&opt, options_path) < 0) elmo_die_last();
    Vocab vocab;
    if (vocab_load(&vocab, vocab_path, VOCAB_NEED_BOS_EOS | VOCAB_NEED_UNK) < 0) elmo_die_last();
    long rows;
    if (checkpoint_softmax_rows(weights, &rows) < 0) elmo_die_last();
    if (rows == 0) elmo_die("%s: no softmax/W: perplexity needs a checkpoint with its softmax", weights);
    if (memfit_check(options_path, &opt, vocab.size, batch_size) < 0) elmo_die_last();
    BilmModel model;
    if (remap_load_model(&model, &opt, weights, &vocab, init_vocab) < 0) elmo_die_last();

    HeldoutResult r;
    if (heldout_evaluate(&model, &vocab, prefix, batch_size, max_tokens, !quiet, &r) < 0) elmo_die_last();
    if (!quiet)
        fprintf(stderr, "eval: %ld batches of %d tokens (%ld positions per direction) in %.1f s\n", r.batches,
                batch_size, r.tokens, r.seconds);
    printf("perplexity: %.6f\n", r.perplexity);
    printf("perplexity_forward: %.6f\n", r.perplexity_forward);
    printf("perplexity_backward: %.6f\n", r.perplexity_backward);
    char warning[512];
    if (heldout_imbalance(&r, warning, sizeof warning)) fprintf(stderr, "elmo: warning: %s\n", warning);
    model_free(&model);
    vocab_free(&vocab);
    options_free(&opt);
    return 0;
}
