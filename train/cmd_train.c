/* cmd_train.c - `elmo train`: pretrain or fine-tune the biLM (docs/design.md sections 3-7). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "cli.h"
#include "train_commands.h"
#include "common.h"
#include "dataset.h"
#include "trainer.h"

static const char train_help[] =
    "usage: elmo train --options FILE --train-prefix GLOB --vocab FILE --save-dir DIR\n"
    "                  [--init-from FILE] [--seed N] [--no-shuffle] [--threads N]\n"
    "                  [--checkpoint-every N] [--log-every SECONDS] [--max-batches N]\n"
    "                  [--n-epochs N] [--n-train-tokens N]\n"
    "       elmo train --restart DIR [--threads N] [--max-batches N] ...\n\n"
    "Trains the biLM of the options file (bilm-tf training options, e.g. configs/small.json)\n"
    "on the shards matching GLOB (one tokenized sentence a line, plain or .gz), for\n"
    "n_epochs * floor(n_train_tokens / (batch_size * unroll_steps)) batches. Writes\n"
    "DIR/options.json and checkpoints DIR/model.ckpt-<step>.hdf5 (the released weight layout\n"
    "plus softmax and training state; the newest 2 are kept).\n\n"
    "  --options FILE          training options (n_characters 261; 262 is accepted)\n"
    "  --train-prefix GLOB     training shards (also --train_prefix)\n"
    "  --vocab FILE            vocabulary with <S>, </S>, <UNK> (also --vocab_file)\n"
    "  --save-dir DIR          where checkpoints go (also --save_dir)\n"
    "  --init-from FILE        start from the weights of FILE (a checkpoint or a released\n"
    "                          weight file; its softmax when present and of the same size),\n"
    "                          with fresh optimiser state: fine-tuning\n"
    "  --restart DIR           resume the newest checkpoint of DIR exactly where it stopped\n"
    "  --seed N                seed of initialisation, data order, samples, dropout (default 1)\n"
    "  --no-shuffle            shards in sorted-name order, sentences in file order\n"
    "  --threads N             threads (default: all cores)\n"
    "  --checkpoint-every N    batches between checkpoints (default 1250)\n"
    "  --log-every SECONDS     seconds between progress lines (default 10)\n"
    "  --max-batches N         stop after N batches in this run (with a checkpoint)\n"
    "  --n-epochs N            override the options' n_epochs\n"
    "  --n-train-tokens N      override the options' n_train_tokens (what `elmo vocab` counts)\n"
    "n_tokens_vocab is always the vocabulary's size (as bilm-tf's train_elmo.py sets it);\n"
    "the options saved in DIR carry the values used.\n";

typedef struct {
    const char *options, *save_dir, *init_from, *restart;
    TrainingArgs args;
    int threads, checkpoint_every, max_batches;
    long n_epochs, n_train_tokens; /* overrides, 0 = as in the options */
    double log_every;
    int have_prefix, have_vocab, have_seed, have_shuffle;
} TrainCommand;

static void parse_args(TrainCommand *c, int argc, char **argv) {
    enum { O_OPTIONS = 256, O_PREFIX, O_VOCAB, O_SAVE, O_INIT, O_RESTART, O_SEED, O_NO_SHUFFLE, O_THREADS, O_CKPT,
           O_LOG, O_MAX, O_EPOCHS, O_TOKENS };
    static const struct option longopts[] = {
        {"options", required_argument, 0, O_OPTIONS},    {"train-prefix", required_argument, 0, O_PREFIX},
        {"train_prefix", required_argument, 0, O_PREFIX}, {"vocab", required_argument, 0, O_VOCAB},
        {"vocab_file", required_argument, 0, O_VOCAB},    {"vocab-file", required_argument, 0, O_VOCAB},
        {"save-dir", required_argument, 0, O_SAVE},       {"save_dir", required_argument, 0, O_SAVE},
        {"init-from", required_argument, 0, O_INIT},      {"restart", required_argument, 0, O_RESTART},
        {"seed", required_argument, 0, O_SEED},           {"no-shuffle", no_argument, 0, O_NO_SHUFFLE},
        {"threads", required_argument, 0, O_THREADS},     {"checkpoint-every", required_argument, 0, O_CKPT},
        {"log-every", required_argument, 0, O_LOG},       {"max-batches", required_argument, 0, O_MAX},
        {"n-epochs", required_argument, 0, O_EPOCHS},     {"n-train-tokens", required_argument, 0, O_TOKENS},
        {"help", no_argument, 0, 'h'},                    {0, 0, 0, 0}};
    memset(c, 0, sizeof *c);
    c->args.seed = 1;
    c->args.shuffle = 1;
    c->checkpoint_every = 1250;
    c->log_every = 10;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case O_OPTIONS: c->options = optarg; break;
        case O_PREFIX:
            snprintf(c->args.train_prefix, sizeof c->args.train_prefix, "%s", optarg);
            c->have_prefix = 1;
            break;
        case O_VOCAB:
            snprintf(c->args.vocab, sizeof c->args.vocab, "%s", optarg);
            c->have_vocab = 1;
            break;
        case O_SAVE: c->save_dir = optarg; break;
        case O_INIT: c->init_from = optarg; break;
        case O_RESTART: c->restart = optarg; break;
        case O_SEED: c->args.seed = (uint64_t)cli_int("--seed", optarg, 0, 1L << 62); c->have_seed = 1; break;
        case O_NO_SHUFFLE: c->args.shuffle = 0; c->have_shuffle = 1; break;
        case O_THREADS: c->threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case O_CKPT: c->checkpoint_every = (int)cli_int("--checkpoint-every", optarg, 1, 1 << 30); break;
        case O_LOG: c->log_every = (double)cli_int("--log-every", optarg, 0, 1 << 20); break;
        case O_MAX: c->max_batches = (int)cli_int("--max-batches", optarg, 1, 1 << 30); break;
        case O_EPOCHS: c->n_epochs = cli_int("--n-epochs", optarg, 1, 1L << 30); break;
        case O_TOKENS: c->n_train_tokens = cli_int("--n-train-tokens", optarg, 1, 1L << 50); break;
        case 'h': fputs(train_help, stdout); exit(0);
        default: fputs(train_help, stderr); exit(ELMO_EXIT_FAILURE);
        }
    }
    if (optind < argc) elmo_die("train: unexpected argument '%s'", argv[optind]);
    if (c->restart) {
        if (c->options || c->init_from || c->save_dir)
            elmo_die("train: --restart DIR takes its options and save directory from DIR; drop --options, "
                     "--save-dir and --init-from");
        c->save_dir = c->restart;
        return;
    }
    cli_require("--options", c->options, "train");
    cli_require("--train-prefix", c->have_prefix ? c->args.train_prefix : NULL, "train");
    cli_require("--vocab", c->have_vocab ? c->args.vocab : NULL, "train");
    cli_require("--save-dir", c->save_dir, "train");
}

static void make_dir(const char *dir) {
    if (mkdir(dir, 0777) < 0 && errno != EEXIST) elmo_die("%s: cannot create directory: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) elmo_die("%s: not a directory", dir);
}

static void format_duration(char *buf, size_t size, double seconds) {
    long s = (long)(seconds + 0.5);
    snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

int cmd_train(int argc, char **argv) {
    TrainCommand c;
    parse_args(&c, argc, argv);
    elmo_set_threads(c.threads);

    char options_path[4096], checkpoint[4096];
    long restart_step = 0;
    if (c.restart) {
        if (checkpoint_latest(c.restart, checkpoint, sizeof checkpoint, &restart_step) < 0) elmo_die_last();
        TrainingArgs saved;
        if (checkpoint_read_args(checkpoint, &saved) < 0) elmo_die_last();
        if (!c.have_prefix) snprintf(c.args.train_prefix, sizeof c.args.train_prefix, "%s", saved.train_prefix);
        if (!c.have_vocab) snprintf(c.args.vocab, sizeof c.args.vocab, "%s", saved.vocab);
        if (!c.have_seed) c.args.seed = saved.seed;
        if (!c.have_shuffle) c.args.shuffle = saved.shuffle;
        snprintf(options_path, sizeof options_path, "%s/options.json", c.restart);
    } else {
        snprintf(options_path, sizeof options_path, "%s", c.options);
    }

    ElmoOptions opt;
    if (options_load(&opt, options_path, ELMO_FOR_TRAINING) < 0) elmo_die_last();
    if (opt.n_characters == 262 && !c.restart)
        elmo_note("%s: n_characters is 262 (a file for prediction); training uses the 261-row char_embed as "
                  "bilm-tf does",
                  options_path);
    Vocab vocab;
    if (vocab_load(&vocab, c.args.vocab, VOCAB_NEED_BOS_EOS | VOCAB_NEED_UNK) < 0) elmo_die_last();
    if (opt.n_tokens_vocab && opt.n_tokens_vocab != vocab.size)
        elmo_note("%s: n_tokens_vocab %ld replaced by the size of %s (%d)", options_path, opt.n_tokens_vocab,
                  c.args.vocab, vocab.size);
    if (options_set_integer(&opt, "n_tokens_vocab", vocab.size, options_path, ELMO_FOR_TRAINING) < 0 ||
        (c.n_epochs && options_set_integer(&opt, "n_epochs", c.n_epochs, options_path, ELMO_FOR_TRAINING) < 0) ||
        (c.n_train_tokens &&
         options_set_integer(&opt, "n_train_tokens", c.n_train_tokens, options_path, ELMO_FOR_TRAINING) < 0))
        elmo_die_last();
    if (opt.sample_softmax && opt.n_negative_samples > vocab.size)
        elmo_die("%s: key 'n_negative_samples_batch' (%d) exceeds the vocabulary size (%d)", options_path,
                 opt.n_negative_samples, vocab.size);
    const int B = opt.batch_size, T = opt.unroll_steps;
    const long n_batches = (long)opt.n_epochs * (opt.n_train_tokens / ((long)B * T));
    if (n_batches < 1)
        elmo_die("%s: n_epochs * floor(n_train_tokens / (batch_size * unroll_steps)) is 0: nothing to train",
                 options_path);

    make_dir(c.save_dir);
    char existing[4096];
    if (!c.restart && checkpoint_latest(c.save_dir, existing, sizeof existing, NULL) == 0)
        elmo_die("%s: already holds checkpoints (%s); continue them with --restart %s, or choose another --save-dir",
                 c.save_dir, existing, c.save_dir);
    char saved_options[4096];
    snprintf(saved_options, sizeof saved_options, "%s/options.json", c.save_dir);
    if (!c.restart && options_save(&opt, saved_options, 0) < 0) elmo_die_last();

    BilmModel model;
    model_init_layout(&model, &opt, vocab.size);
    model_init_random(&model, c.args.seed);
    if (c.init_from) {
        int softmax_loaded;
        if (model_load_init(&model, c.init_from, &softmax_loaded) < 0) elmo_die_last();
        elmo_note("%s: weights loaded%s", c.init_from,
                  softmax_loaded ? " (softmax included)" : "; softmax freshly initialised (none of this size in the file)");
    }
    LmReader *readers[2] = {NULL, NULL};
    const int n_dirs = opt.bidirectional ? 2 : 1;
    for (int d = 0; d < n_dirs; d++)
        if (lm_reader_open(&readers[d], c.args.train_prefix, &vocab, opt.max_chars, d, LM_TRAIN, c.args.shuffle,
                           c.args.seed * 1000003u + 17u + (uint64_t)d) < 0)
            elmo_die_last();
    Trainer trainer;
    trainer_init(&trainer, &model, B, T, TRAINER_TRAIN, c.args.seed * 7919u + 3u);
    if (c.restart) {
        if (checkpoint_load(checkpoint, &trainer, readers) < 0) elmo_die_last();
        fprintf(stderr, "train: resuming %s at batch %ld of %ld\n", checkpoint, trainer.step, n_batches);
    }

    LmBatch batches[2];
    const LmBatch *batch_ptrs[2] = {&batches[0], &batches[1]};
    for (int d = 0; d < n_dirs; d++) lm_batch_init(&batches[d], B, T, opt.max_chars);
    fprintf(stderr, "train: %ld batches of %d x %d tokens, %d shards, vocabulary %d, %s softmax\n", n_batches, B, T,
            lm_reader_n_shards(readers[0]), vocab.size, opt.sample_softmax ? "sampled" : "full");
    const double start = elmo_now();
    double last_log = start, loss_sum = 0;
    long loss_count = 0, run_batches = 0;
    const long first_step = trainer.step;
    while (trainer.step < n_batches && (!c.max_batches || run_batches < c.max_batches)) {
        for (int d = 0; d < n_dirs; d++)
            if (lm_reader_next(readers[d], &batches[d]) <= 0) elmo_die_last();
        const double loss = trainer_step(&trainer, batch_ptrs);
        if (!isfinite(loss)) elmo_die("train: the loss is %g at batch %ld; lower learning_rate?", loss, trainer.step);
        run_batches++;
        loss_sum += loss;
        loss_count++;
        const double now = elmo_now();
        const int last = trainer.step == n_batches || run_batches == c.max_batches;
        if (now - last_log >= c.log_every || last || run_batches == 1) {
            const double per_batch = (now - start) / (double)(trainer.step - first_step);
            char elapsed[32], eta[32];
            format_duration(elapsed, sizeof elapsed, now - start);
            format_duration(eta, sizeof eta, per_batch * (double)(n_batches - trainer.step));
            fprintf(stderr, "batch %ld/%ld  loss %.4f  perplexity %.2f  %.0f tokens/s  elapsed %s  ETA %s\n",
                    trainer.step, n_batches, loss_sum / loss_count, exp(loss_sum / loss_count),
                    (double)B * T / per_batch, elapsed, eta);
            last_log = now;
            loss_sum = 0;
            loss_count = 0;
        }
        if (trainer.step % c.checkpoint_every == 0 || last) {
            snprintf(checkpoint, sizeof checkpoint, "%s/model.ckpt-%ld.hdf5", c.save_dir, trainer.step);
            if (checkpoint_save(checkpoint, &trainer, readers, &c.args) < 0) elmo_die_last();
            checkpoint_prune(c.save_dir, 2);
        }
    }
    fprintf(stderr, "train: stopped at batch %ld of %ld; newest checkpoint %s/model.ckpt-%ld.hdf5\n", trainer.step,
            n_batches, c.save_dir, trainer.step);
    for (int d = 0; d < n_dirs; d++) {
        lm_batch_free(&batches[d]);
        lm_reader_close(readers[d]);
    }
    trainer_free(&trainer);
    model_free(&model);
    vocab_free(&vocab);
    options_free(&opt);
    return 0;
}
