/* cmd_eval.c - `elmo eval`: perplexity on held-out data (docs/design.md section 6): full
 * softmax, T = 1, every shard once in order, LSTM states carried, final partial batch
 * dropped; perplexity = exp(mean of the batch losses). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "train_commands.h"
#include "common.h"
#include "dataset.h"
#include "trainer.h"

static const char eval_help[] =
    "usage: elmo eval (--save-dir DIR | --weights FILE --options FILE) --test-prefix GLOB --vocab FILE\n"
    "                 [--batch-size N] [--threads N] [--quiet]\n\n"
    "Perplexity of a trained model on the shards matching GLOB, as bilm-tf's test: full\n"
    "softmax, one step at a time, every shard once in sorted order, LSTM states carried from\n"
    "batch to batch. Prints progress and finally `perplexity: <value>`.\n\n"
    "  --save-dir DIR      a training directory: DIR/options.json and its newest checkpoint\n"
    "  --weights FILE      a checkpoint (or any weight file with softmax/W and softmax/b) ...\n"
    "  --options FILE      ... and its options\n"
    "  --test-prefix GLOB  held-out shards (also --test_prefix)\n"
    "  --vocab FILE        the training vocabulary (also --vocab_file)\n"
    "  --batch-size N      sentences streams per batch (default 256)\n"
    "  --threads N         threads (default: all cores)\n"
    "  --quiet             only the final line\n";

int cmd_eval(int argc, char **argv) {
    const char *save_dir = NULL, *weights = NULL, *options_path = NULL, *prefix = NULL, *vocab_path = NULL;
    int batch_size = 256, threads = 0, quiet = 0;
    enum { O_SAVE = 256, O_WEIGHTS, O_OPTIONS, O_PREFIX, O_VOCAB, O_BATCH, O_THREADS, O_QUIET };
    static const struct option longopts[] = {
        {"save-dir", required_argument, 0, O_SAVE},       {"save_dir", required_argument, 0, O_SAVE},
        {"weights", required_argument, 0, O_WEIGHTS},     {"options", required_argument, 0, O_OPTIONS},
        {"test-prefix", required_argument, 0, O_PREFIX},  {"test_prefix", required_argument, 0, O_PREFIX},
        {"vocab", required_argument, 0, O_VOCAB},         {"vocab_file", required_argument, 0, O_VOCAB},
        {"batch-size", required_argument, 0, O_BATCH},    {"threads", required_argument, 0, O_THREADS},
        {"quiet", no_argument, 0, O_QUIET},               {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_SAVE: save_dir = optarg; break;
        case O_WEIGHTS: weights = optarg; break;
        case O_OPTIONS: options_path = optarg; break;
        case O_PREFIX: prefix = optarg; break;
        case O_VOCAB: vocab_path = optarg; break;
        case O_BATCH: batch_size = (int)cli_int("--batch-size", optarg, 1, 1 << 20); break;
        case O_THREADS: threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case O_QUIET: quiet = 1; break;
        case 'h': fputs(eval_help, stdout); return 0;
        default: fputs(eval_help, stderr); return ELMO_EXIT_FAILURE;
        }
    }
    if (optind < argc) elmo_die("eval: unexpected argument '%s'", argv[optind]);
    if (!save_dir == !weights) elmo_die("eval: give either --save-dir or --weights with --options");
    cli_require("--test-prefix", prefix, "eval");
    cli_require("--vocab", vocab_path, "eval");
    elmo_set_threads(threads);

    char options_buf[4096], weights_buf[4096];
    if (save_dir) {
        snprintf(options_buf, sizeof options_buf, "%s/options.json", save_dir);
        options_path = options_buf;
        if (checkpoint_latest(save_dir, weights_buf, sizeof weights_buf, NULL) < 0) elmo_die_last();
        weights = weights_buf;
    }
    cli_require("--options", options_path, "eval");
    ElmoOptions opt;
    if (options_load(&opt, options_path, ELMO_FOR_PREDICTION) < 0) elmo_die_last();
    Vocab vocab;
    if (vocab_load(&vocab, vocab_path, VOCAB_NEED_BOS_EOS | VOCAB_NEED_UNK) < 0) elmo_die_last();
    long rows;
    if (checkpoint_softmax_rows(weights, &rows) < 0) elmo_die_last();
    if (rows == 0) elmo_die("%s: no softmax/W: perplexity needs a checkpoint with its softmax", weights);
    if (rows != vocab.size)
        elmo_die("%s: softmax/W has %ld rows but %s has %d tokens", weights, rows, vocab_path, vocab.size);
    BilmModel model;
    model_init_layout(&model, &opt, vocab.size);
    if (model_load(&model, weights) < 0) elmo_die_last();

    const int n_dirs = opt.bidirectional ? 2 : 1;
    LmReader *readers[2] = {NULL, NULL};
    for (int d = 0; d < n_dirs; d++)
        if (lm_reader_open(&readers[d], prefix, &vocab, opt.max_chars, d, LM_EVAL, 0, 0) < 0) elmo_die_last();
    Trainer evaluator;
    trainer_init(&evaluator, &model, batch_size, 1, TRAINER_EVAL, 0);
    LmBatch batches[2];
    const LmBatch *batch_ptrs[2] = {&batches[0], &batches[1]};
    for (int d = 0; d < n_dirs; d++) lm_batch_init(&batches[d], batch_size, 1, opt.max_chars);
    double loss_sum = 0, last_log = elmo_now();
    long n_batches = 0;
    for (;;) {
        int got = 1;
        for (int d = 0; d < n_dirs && got == 1; d++) got = lm_reader_next(readers[d], &batches[d]);
        if (got < 0) elmo_die_last();
        if (got == 0) break;
        loss_sum += trainer_eval_batch(&evaluator, batch_ptrs);
        n_batches++;
        if (!quiet && elmo_now() - last_log >= 5.0) {
            fprintf(stderr, "eval: batch %ld, perplexity so far %.3f\n", n_batches, exp(loss_sum / n_batches));
            last_log = elmo_now();
        }
    }
    if (n_batches == 0)
        elmo_die("eval: %s holds fewer than %d tokens: not one full batch (lower --batch-size)", prefix, batch_size);
    if (!quiet) fprintf(stderr, "eval: %ld batches of %d tokens\n", n_batches, batch_size);
    printf("perplexity: %.6f\n", exp(loss_sum / n_batches));
    for (int d = 0; d < n_dirs; d++) {
        lm_batch_free(&batches[d]);
        lm_reader_close(readers[d]);
    }
    trainer_free(&evaluator);
    model_free(&model);
    vocab_free(&vocab);
    options_free(&opt);
    return 0;
}
