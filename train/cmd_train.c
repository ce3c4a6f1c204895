/* cmd_train.c - `elmo train`: pretrain or fine-tune the biLM (docs/design.md sections 3-7):
 * the settings of the run (fresh, or restored by --restart and overridden), the options
 * settled against the data, the plan printed before the first batch, then run.c's loop. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "cli.h"
#include "common.h"
#include "dataset.h"
#include "fileio.h"
#include "metrics.h"
#include "plan.h"
#include "remap.h"
#include "replicas.h"
#include "run.h"
#include "runlock.h"
#include "settings.h"
#include "train_commands.h"
#include "trainer.h"

static const char train_help[] =
    "usage: elmo train --options FILE --train-prefix GLOB --vocab FILE --save-dir DIR [options]\n"
    "       elmo train --restart DIR [options]\n\n"
    "Trains the biLM of the options file (bilm-tf training options such as configs/small.json,\n"
    "or a released options.json: missing training keys take bilm-tf's train_elmo.py values)\n"
    "on the shards matching GLOB (one tokenized sentence a line, plain or .gz), for\n"
    "n_epochs * floor(n_train_tokens / (batch_size * unroll_steps)) batches. Before the first\n"
    "batch it prints the plan: tokens (counted from the shards unless --n-train-tokens gives\n"
    "them), batches, memory against what the machine has, disk. It writes DIR/options.json\n"
    "(every key explicit), checkpoints DIR/model.ckpt-<step>.hdf5 (the newest 2 are kept),\n"
    "DIR/metrics.jsonl, TensorBoard event files (tensorboard --logdir DIR) and, with held-out\n"
    "data, DIR/best.hdf5 (the best evaluation's checkpoint) and DIR/curves.svg.\n"
    "SIGINT/SIGTERM: the current batch is finished and checkpointed (a second one stops at once).\n\n"
    "data and model\n"
    "  --options FILE          training options (n_characters 261; 262 is accepted)\n"
    "  --train-prefix GLOB     training shards (also --train_prefix)\n"
    "  --vocab FILE            vocabulary with <S>, </S>, <UNK> (also --vocab_file)\n"
    "  --save-dir DIR          where everything goes (also --save_dir)\n"
    "  --init-from FILE        start from the weights of FILE (a checkpoint, an export with its\n"
    "                          softmax, or a released weight file): fine-tuning. A softmax in the\n"
    "                          file is matched to --vocab by token: shared tokens keep their rows,\n"
    "                          new tokens get rows predicted from their token embeddings (least\n"
    "                          squares on the shared ones), the others are dropped\n"
    "  --init-vocab FILE       the vocabulary the file's softmax was trained with, when the file\n"
    "                          does not store it (rows are never matched by position)\n"
    "  --keep-optimizer        keep the file's Adagrad accumulators (bilm-tf's restart.py)\n"
    "  --softmax-init embeddings|fresh  a softmax the file lacks starts with each row its token's\n"
    "                          embedding (the default: measured far better) or as a new model's\n"
    "  --warmup-softmax N      the first N batches update only the softmax, the biLM frozen\n"
    "                          (default 0: on the Brown sample a warm-up made fine-tuning worse)\n"
    "  --lr-scale-pretrained F the learning rate of every layer but the softmax times F (default 1)\n"
    "  --restart DIR           resume the newest checkpoint of DIR exactly where it stopped, with\n"
    "                          every setting of the run; any option below overrides its setting\n"
    "  --fallback              with --restart: when the newest checkpoint is damaged, resume the\n"
    "                          newest intact older one (without it: an error naming both)\n"
    "  --seed N                seed of initialisation, data order, samples, dropout (default 1)\n"
    "  --no-shuffle            shards in sorted-name order, sentences in file order\n"
    "  --n-epochs N            override the options' n_epochs (default 10)\n"
    "  --n-train-tokens N      override the count of the training shards' tokens\n"
    "held-out evaluation (full softmax, both directions, from the zero state, as elmo eval)\n"
    "  --heldout-prefix GLOB   held-out shards; without it there is no evaluation\n"
    "  --eval-every N          batches between evaluations\n"
    "  --eval-minutes M        minutes between evaluations (neither: at every checkpoint)\n"
    "  --eval-tokens K         at most K tokens per direction and evaluation (default: all)\n"
    "  --eval-batch-size N     streams of an evaluation (default 256)\n"
    "  --patience K            stop after K evaluations without a better perplexity (default: never)\n"
    "the run\n"
    "  --threads N             threads (default: all cores; under MPI shared by the ranks of a machine)\n"
    "  --checkpoint-every N    batches between checkpoints (default 1250)\n"
    "  --checkpoint-minutes M  minutes between checkpoints (default 30; 0: by batches only)\n"
    "  --log-every SECONDS     seconds between progress lines and metrics (default 10)\n"
    "  --max-batches N         stop after N batches in this run (with a checkpoint)\n"
    "  --ignore-memory-check   start even when the plan's memory exceeds what is available\n"
    "Small corpora (under ~10M tokens): bilm-tf's advice is few epochs and watching held-out\n"
    "perplexity: use --heldout-prefix with --patience and keep best.hdf5.\n"
    "Several nodes: an MPI build (make MPI=1) started by mpirun or srun runs one of bilm-tf's\n"
    "towers per rank: batch_size rows each, gradients averaged, n_train_tokens / (batch_size *\n"
    "unroll_steps * ranks) batches an epoch; rank 0 writes DIR (README: Training on a cluster).\n";

/* The options whose value is a setting of the run (kept in its checkpoints). */
enum {
    O_TRAIN_PREFIX = 256, O_VOCAB, O_HELDOUT, O_SEED, O_NO_SHUFFLE, O_EPOCHS, O_TOKENS, O_THREADS, O_CKPT,
    O_CKPT_MINUTES, O_LOG, O_EVAL_EVERY, O_EVAL_MINUTES, O_EVAL_TOKENS, O_EVAL_BATCH, O_PATIENCE, O_WARMUP,
    O_LR_SCALE, O_SETTINGS_END,
    /* the command's own */
    O_OPTIONS = O_SETTINGS_END, O_SAVE, O_INIT, O_INIT_VOCAB, O_KEEP_OPTIMIZER, O_SOFTMAX_INIT, O_RESTART, O_MAX,
    O_IGNORE_MEMORY, O_FALLBACK
};

typedef struct {
    const char *options, *save_dir, *init_from, *init_vocab, *restart;
    long max_batches;
    int ignore_memory, keep_optimizer, softmax_from_embeddings, fallback;
    RunSettings given;               /* the settings given on the command line ... */
    int is_given[O_SETTINGS_END];    /* ... and which */
} TrainCommand;

static void copy_text(char *dst, const char *src, const char *flag) {
    if (strlen(src) >= sizeof ((RunSettings *)0)->train_prefix) elmo_die("%s: too long", flag);
    snprintf(dst, sizeof ((RunSettings *)0)->train_prefix, "%s", src);
}

static void parse_args(TrainCommand *c, int argc, char **argv) {
    static const struct option longopts[] = {
        {"options", required_argument, 0, O_OPTIONS},        {"train-prefix", required_argument, 0, O_TRAIN_PREFIX},
        {"train_prefix", required_argument, 0, O_TRAIN_PREFIX}, {"vocab", required_argument, 0, O_VOCAB},
        {"vocab_file", required_argument, 0, O_VOCAB},       {"vocab-file", required_argument, 0, O_VOCAB},
        {"save-dir", required_argument, 0, O_SAVE},          {"save_dir", required_argument, 0, O_SAVE},
        {"init-from", required_argument, 0, O_INIT},         {"restart", required_argument, 0, O_RESTART},
        {"seed", required_argument, 0, O_SEED},              {"no-shuffle", no_argument, 0, O_NO_SHUFFLE},
        {"threads", required_argument, 0, O_THREADS},        {"checkpoint-every", required_argument, 0, O_CKPT},
        {"checkpoint-minutes", required_argument, 0, O_CKPT_MINUTES},
        {"log-every", required_argument, 0, O_LOG},          {"max-batches", required_argument, 0, O_MAX},
        {"n-epochs", required_argument, 0, O_EPOCHS},        {"n-train-tokens", required_argument, 0, O_TOKENS},
        {"heldout-prefix", required_argument, 0, O_HELDOUT}, {"eval-every", required_argument, 0, O_EVAL_EVERY},
        {"eval-minutes", required_argument, 0, O_EVAL_MINUTES}, {"eval-tokens", required_argument, 0, O_EVAL_TOKENS},
        {"eval-batch-size", required_argument, 0, O_EVAL_BATCH}, {"patience", required_argument, 0, O_PATIENCE},
        {"ignore-memory-check", no_argument, 0, O_IGNORE_MEMORY}, {"init-vocab", required_argument, 0, O_INIT_VOCAB},
        {"keep-optimizer", no_argument, 0, O_KEEP_OPTIMIZER}, {"warmup-softmax", required_argument, 0, O_WARMUP},
        {"lr-scale-pretrained", required_argument, 0, O_LR_SCALE}, {"softmax-init", required_argument, 0, O_SOFTMAX_INIT},
        {"fallback", no_argument, 0, O_FALLBACK},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    memset(c, 0, sizeof *c);
    c->softmax_from_embeddings = 1;
    RunSettings *g = &c->given;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (opt >= O_TRAIN_PREFIX && opt < O_SETTINGS_END) c->is_given[opt] = 1;
        switch (opt) {
        case O_OPTIONS: c->options = optarg; break;
        case O_SAVE: c->save_dir = optarg; break;
        case O_INIT: c->init_from = optarg; break;
        case O_INIT_VOCAB: c->init_vocab = optarg; break;
        case O_KEEP_OPTIMIZER: c->keep_optimizer = 1; break;
        case O_SOFTMAX_INIT:
            if (strcmp(optarg, "embeddings") != 0 && strcmp(optarg, "fresh") != 0)
                elmo_die("--softmax-init: expected fresh or embeddings, got '%s'", optarg);
            c->softmax_from_embeddings = strcmp(optarg, "embeddings") == 0;
            break;
        case O_WARMUP: g->warmup_softmax = cli_int("--warmup-softmax", optarg, 0, 1L << 40); break;
        case O_LR_SCALE: {
            char *end;
            g->lr_scale_pretrained = strtod(optarg, &end);
            if (*end || !(g->lr_scale_pretrained >= 0) || g->lr_scale_pretrained > 1e6)
                elmo_die("--lr-scale-pretrained: expected a number >= 0, got '%s'", optarg);
            break;
        }
        case O_RESTART: c->restart = optarg; break;
        case O_FALLBACK: c->fallback = 1; break;
        case O_MAX: c->max_batches = cli_int("--max-batches", optarg, 1, 1L << 40); break;
        case O_IGNORE_MEMORY: c->ignore_memory = 1; break;
        case O_TRAIN_PREFIX: copy_text(g->train_prefix, optarg, "--train-prefix"); break;
        case O_VOCAB: copy_text(g->vocab, optarg, "--vocab"); break;
        case O_HELDOUT: copy_text(g->heldout_prefix, optarg, "--heldout-prefix"); break;
        case O_SEED: g->seed = (uint64_t)cli_int("--seed", optarg, 0, 1L << 62); break;
        case O_NO_SHUFFLE: g->shuffle = 0; break;
        case O_EPOCHS: g->n_epochs = cli_int("--n-epochs", optarg, 1, 1L << 30); break;
        case O_TOKENS: g->n_train_tokens = cli_int("--n-train-tokens", optarg, 1, 1L << 50); break;
        case O_THREADS: g->threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case O_CKPT: g->checkpoint_every = cli_int("--checkpoint-every", optarg, 1, 1L << 40); break;
        case O_CKPT_MINUTES: g->checkpoint_minutes = (double)cli_int("--checkpoint-minutes", optarg, 0, 1 << 20); break;
        case O_LOG: g->log_every = (double)cli_int("--log-every", optarg, 0, 1 << 20); break;
        case O_EVAL_EVERY: g->eval_every = cli_int("--eval-every", optarg, 1, 1L << 40); break;
        case O_EVAL_MINUTES: g->eval_minutes = (double)cli_int("--eval-minutes", optarg, 1, 1 << 20); break;
        case O_EVAL_TOKENS: g->eval_tokens = cli_int("--eval-tokens", optarg, 1, 1L << 50); break;
        case O_EVAL_BATCH: g->eval_batch_size = (int)cli_int("--eval-batch-size", optarg, 1, 1 << 20); break;
        case O_PATIENCE: g->patience = (int)cli_int("--patience", optarg, 1, 1 << 20); break;
        case 'h': fputs(train_help, stdout); exit(0);
        default: fputs(train_help, stderr); exit(ELMO_EXIT_FAILURE);
        }
    }
    if (optind < argc) elmo_die("train: unexpected argument '%s'", argv[optind]);
    if (c->fallback && !c->restart) elmo_die("train: --fallback goes with --restart DIR");
    if (c->restart) {
        if (c->options || c->init_from || c->save_dir || c->init_vocab || c->keep_optimizer)
            elmo_die("train: --restart DIR takes its options and save directory from DIR; drop --options, "
                     "--save-dir and --init-from");
        c->save_dir = c->restart;
        return;
    }
    cli_require("--options", c->options, "train");
    cli_require("--train-prefix", c->is_given[O_TRAIN_PREFIX] ? g->train_prefix : NULL, "train");
    cli_require("--vocab", c->is_given[O_VOCAB] ? g->vocab : NULL, "train");
    cli_require("--save-dir", c->save_dir, "train");
    if ((c->init_vocab || c->keep_optimizer) && !c->init_from)
        elmo_die("train: --init-vocab and --keep-optimizer go with --init-from");
}

/* The command line's settings over s (the defaults, or the restarted run's). */
static void apply_given(RunSettings *s, const TrainCommand *c) {
    const RunSettings *g = &c->given;
    const int *is = c->is_given;
    if (is[O_TRAIN_PREFIX]) memcpy(s->train_prefix, g->train_prefix, sizeof s->train_prefix);
    if (is[O_VOCAB]) memcpy(s->vocab, g->vocab, sizeof s->vocab);
    if (is[O_HELDOUT]) memcpy(s->heldout_prefix, g->heldout_prefix, sizeof s->heldout_prefix);
    if (is[O_SEED]) s->seed = g->seed;
    if (is[O_NO_SHUFFLE]) s->shuffle = 0;
    if (is[O_EPOCHS]) s->n_epochs = g->n_epochs;
    if (is[O_TOKENS]) s->n_train_tokens = g->n_train_tokens;
    if (is[O_CKPT]) s->checkpoint_every = g->checkpoint_every;
    if (is[O_CKPT_MINUTES]) s->checkpoint_minutes = g->checkpoint_minutes;
    if (is[O_LOG]) s->log_every = g->log_every;
    if (is[O_EVAL_EVERY]) s->eval_every = g->eval_every;
    if (is[O_EVAL_MINUTES]) s->eval_minutes = g->eval_minutes;
    if (is[O_EVAL_TOKENS]) s->eval_tokens = g->eval_tokens;
    if (is[O_EVAL_BATCH]) s->eval_batch_size = g->eval_batch_size;
    if (is[O_PATIENCE]) s->patience = g->patience;
    if (is[O_WARMUP]) s->warmup_softmax = g->warmup_softmax;
    if (is[O_LR_SCALE]) s->lr_scale_pretrained = g->lr_scale_pretrained;
}

/* The save directory of a fresh run as it was found: a run that fails before its first
 * batch removes what it wrote there (options.json, the token count, metrics, the lock),
 * and the directory itself when it created it. */
static struct {
    const char *dir;
    int created, kept;
    pid_t pid;
    char **names; /* the entries found there */
    int n_names;
} found;

static int was_found(const char *name) {
    for (int i = 0; i < found.n_names; i++)
        if (strcmp(found.names[i], name) == 0) return 1;
    return 0;
}

static void restore_found_dir(void) {
    if (found.kept || !found.dir || getpid() != found.pid) return;
    runlock_release();
    DIR *d = opendir(found.dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || was_found(e->d_name)) continue;
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", found.dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    if (found.created) rmdir(found.dir);
}

/* Creates the save directory if needed, locks it, notes what it holds. */
static void begin_save_dir(const char *dir) {
    found.created = mkdir(dir, 0777) == 0;
    if (!found.created && errno != EEXIST) elmo_die("%s: cannot create directory: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) elmo_die("%s: not a directory", dir);
    if (runlock_take(dir) < 0) {
        if (found.created) rmdir(dir);
        elmo_die_last();
    }
    DIR *d = opendir(dir);
    if (!d) elmo_die("%s: cannot list: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, "elmo.lock")) continue; /* this run's now */
        found.names = xrealloc(found.names, (size_t)(found.n_names + 1) * sizeof *found.names);
        found.names[found.n_names++] = xstrdup(e->d_name);
    }
    closedir(d);
    found.dir = dir;
    found.pid = getpid();
    atexit(restore_found_dir);
    at_quick_exit(restore_found_dir); /* elmo_die's */
}

/* n_train_tokens of a fresh run: --n-train-tokens, else the shards' count (warning when
 * the options' figure is more than 10% off it). */
static long settle_train_tokens(const TrainCommand *c, const ElmoOptions *opt, const char *options_path,
                                const char *save_dir, cJSON *plan) {
    if (c->is_given[O_TOKENS]) {
        cJSON_AddStringToObject(plan, "train_tokens_from", "--n-train-tokens");
        return c->given.n_train_tokens;
    }
    long count;
    int cached;
    const double t0 = elmo_now();
    if (plan_count_tokens(c->given.train_prefix, save_dir, 0, &count, &cached) < 0) elmo_die_last();
    fprintf(stderr, "plan: %ld training tokens in %s (%s)\n", count, c->given.train_prefix,
            cached ? "count cached in the save directory" : "counted");
    if (!cached) fprintf(stderr, "plan: counting took %.1f s\n", elmo_now() - t0);
    cJSON_AddStringToObject(plan, "train_tokens_from", cached ? "cached count" : "count");
    if (opt->n_train_tokens && fabs((double)opt->n_train_tokens - (double)count) > 0.1 * (double)count)
        fprintf(stderr, "train: warning: %s says n_train_tokens %ld, but %s holds %ld tokens: using the count "
                "(--n-train-tokens %ld forces the options' figure)\n",
                options_path, opt->n_train_tokens, c->given.train_prefix, count, opt->n_train_tokens);
    return count;
}

/* Memory and disk of the run against the machine's; refuses what cannot fit. */
static void plan_resources(const TrainCommand *c, const ElmoOptions *opt, long V, const char *save_dir,
                           const char *prefix, cJSON *plan) {
    PlanMemory mem;
    if (plan_memory(opt, V, opt->batch_size, opt->unroll_steps, prefix, &mem) < 0) elmo_die_last();
    const double available = plan_available_memory(), free_disk = plan_free_disk(save_dir);
    char b[9][32];
    fprintf(stderr,
            "plan: memory %s (parameters %s, Adagrad %s, gradients %s, activations %s, softmax %s, data %s, "
            "program %s) of %s available\n",
            plan_format_bytes(b[0], 32, mem.total), plan_format_bytes(b[1], 32, mem.params),
            plan_format_bytes(b[2], 32, mem.optimizer), plan_format_bytes(b[3], 32, mem.gradients),
            plan_format_bytes(b[4], 32, mem.activations), plan_format_bytes(b[5], 32, mem.softmax),
            plan_format_bytes(b[6], 32, mem.data), plan_format_bytes(b[8], 32, mem.baseline),
            plan_format_bytes(b[7], 32, available));
    /* the kept checkpoints, best.hdf5, and the one being written */
    const int files = RUN_KEPT_CHECKPOINTS + 2;
    const double disk = files * mem.checkpoint;
    fprintf(stderr, "plan: checkpoints %s each, up to %s on disk (%d files) of %s free in %s\n",
            plan_format_bytes(b[0], 32, mem.checkpoint), plan_format_bytes(b[1], 32, disk), files,
            plan_format_bytes(b[2], 32, free_disk), save_dir);
    cJSON_AddNumberToObject(plan, "memory_bytes", mem.total);
    cJSON_AddNumberToObject(plan, "memory_available_bytes", available);
    cJSON_AddNumberToObject(plan, "checkpoint_bytes", mem.checkpoint);
    cJSON_AddNumberToObject(plan, "disk_needed_bytes", disk);
    cJSON_AddNumberToObject(plan, "disk_free_bytes", free_disk);
    if (available > 0 && mem.total > available && !c->ignore_memory)
        elmo_die("train: the run needs about %s of memory and the machine has %s available; lower batch_size or "
                 "unroll_steps, use a smaller vocabulary, or pass --ignore-memory-check",
                 plan_format_bytes(b[0], 32, mem.total), plan_format_bytes(b[1], 32, available));
    if (free_disk >= 0 && disk > free_disk)
        fprintf(stderr, "train: warning: %s has %s free, the checkpoints need up to %s\n", save_dir,
                plan_format_bytes(b[0], 32, free_disk), plan_format_bytes(b[1], 32, disk));
}

/* The first damaged checkpoint met on --restart: "PATH: why", or "" while none. */
static char restart_damage[1200];

static void note_damage(void) {
    if (!restart_damage[0]) snprintf(restart_damage, sizeof restart_damage, "%s", elmo_error());
}

int cmd_train(int argc, char **argv) {
    /* under mpirun/srun: one replica of the job (replicas.h); rank 0 alone writes */
    const Replicas *rep = replicas_start();
    const int lead = replicas_lead();
    TrainCommand c;
    parse_args(&c, argc, argv);
    /* a SIGINT/SIGTERM from here on is noted: during the setup it stops the run before its
     * first batch (a fresh run's directory restored as found), later after a checkpoint */
    signals_stop_gracefully();
    /* one run at a time in the save directory, locked before anything is written there */
    struct stat dir_st;
    if (lead) { /* rank 0 holds the directory for the job */
        if (!c.restart)
            begin_save_dir(c.save_dir);
        else if (stat(c.restart, &dir_st) == 0 && S_ISDIR(dir_st.st_mode) && runlock_take(c.restart) < 0)
            elmo_die_last();
        if (file_remove_stale_temporaries(c.save_dir) < 0) elmo_die_last();
    }

    /* the settings: a fresh run's defaults, or the restarted run's; the command line over them */
    RunSettings s;
    char options_path[4096], checkpoint[4096];
    long *restart_steps = NULL;
    int n_restart = 0, candidate = 0;
    if (c.restart) {
        /* newest first; a damaged one is passed over here only to name the intact one
         * (or, with --fallback, to resume from it) once the checkpoints are loaded */
        if (checkpoint_list(c.restart, &restart_steps, &n_restart) < 0) elmo_die_last();
        for (; candidate < n_restart; candidate++) {
            checkpoint_path(checkpoint, sizeof checkpoint, c.restart, restart_steps[candidate]);
            if (checkpoint_read_settings(checkpoint, &s) == 0) break;
            note_damage();
        }
        if (candidate == n_restart)
            elmo_die("damaged checkpoint: %s; no intact older one in %s", restart_damage, c.restart);
        snprintf(options_path, sizeof options_path, "%s/options.json", c.restart);
    } else {
        settings_defaults(&s);
        snprintf(options_path, sizeof options_path, "%s", c.options);
    }
    if (c.restart && s.replicas != rep->size)
        elmo_die("%s: the run was trained by %d replica%s (MPI ranks) and this is %d: its batches and states are "
                 "those of %d; resume it with mpirun -np %d (or start a new run)",
                 c.restart, s.replicas, s.replicas == 1 ? "" : "s", rep->size, s.replicas, s.replicas);
    s.replicas = rep->size;
    const int saved_threads = s.threads;
    apply_given(&s, &c);
    s.threads = elmo_set_threads(replicas_threads(c.is_given[O_THREADS] ? c.given.threads : s.threads));
    if (c.restart && saved_threads && s.threads != saved_threads)
        fprintf(stderr, "train: note: %d threads where the run had %d: the result is no longer bit-identical to an "
                "uninterrupted run\n", s.threads, saved_threads);

    ElmoOptions opt;
    if (options_load(&opt, options_path) < 0) elmo_die_last();
    cJSON *plan = cJSON_CreateObject();
    cJSON_AddStringToObject(plan, "kind", "plan");
    if (!c.restart) {
        if (opt.n_characters == 262)
            elmo_note("%s: n_characters is 262 (a file for prediction); training uses the 261-row char_embed as "
                      "bilm-tf does", options_path);
        char assumed[1024];
        if (options_assumed_training_keys(&opt, assumed, sizeof assumed) > 0) {
            elmo_note("%s: training keys absent, bilm-tf's train_elmo.py values assumed: %s", options_path, assumed);
            cJSON_AddStringToObject(plan, "assumed", assumed);
        }
    }
    Vocab vocab;
    if (vocab_load(&vocab, s.vocab, VOCAB_NEED_BOS_EOS | VOCAB_NEED_UNK) < 0) elmo_die_last();
    if (opt.n_tokens_vocab && opt.n_tokens_vocab != vocab.size && !c.restart)
        elmo_note("%s: n_tokens_vocab %ld replaced by the size of %s (%d)", options_path, opt.n_tokens_vocab, s.vocab,
                  vocab.size);
    if (opt.sample_softmax && opt.n_negative_samples > vocab.size) {
        const cJSON *given = cJSON_GetObjectItemCaseSensitive(opt.json, "n_negative_samples_batch");
        if (given)
            elmo_die("%s: key 'n_negative_samples_batch' (%d) exceeds the vocabulary size (%d)", options_path,
                     opt.n_negative_samples, vocab.size);
        /* the assumed 8192 candidates cannot be drawn from a smaller vocabulary: its full
         * softmax is the exact loss they approximate */
        elmo_note("%s: the vocabulary (%d) is smaller than the assumed n_negative_samples_batch (%d): full softmax",
                  options_path, vocab.size, opt.n_negative_samples);
        if (options_set_bool(&opt, "sample_softmax", 0, options_path) < 0) elmo_die_last();
    }
    if (!c.restart) {
        char existing[4096];
        if (checkpoint_latest(c.save_dir, existing, sizeof existing, NULL) == 0)
            elmo_die("%s: already holds checkpoints (%s); continue them with --restart %s, or choose another "
                     "--save-dir", c.save_dir, existing, c.save_dir);
        s.n_epochs = c.is_given[O_EPOCHS] ? c.given.n_epochs : opt.n_epochs;
        /* rank 0 counts (and caches the count in the save directory); the others take it */
        if (lead) s.n_train_tokens = settle_train_tokens(&c, &opt, options_path, c.save_dir, plan);
        replicas_broadcast(&s.n_train_tokens, sizeof s.n_train_tokens);
    }
    if (options_set_integer(&opt, "n_tokens_vocab", vocab.size, options_path) < 0 ||
        options_set_integer(&opt, "n_epochs", s.n_epochs, options_path) < 0 ||
        options_set_integer(&opt, "n_train_tokens", s.n_train_tokens, options_path) < 0)
        elmo_die_last();
    options_make_training_keys_explicit(&opt);
    /* batch_size is per replica (bilm-tf's per GPU): an update takes B * T * N tokens */
    const int B = opt.batch_size, T = opt.unroll_steps, N = rep->size;
    const long per_epoch = s.n_train_tokens / ((long)B * T * N), n_batches = s.n_epochs * per_epoch;
    if (n_batches < 1)
        elmo_die("%s: n_epochs * floor(n_train_tokens / (batch_size * unroll_steps * replicas)) = %ld * floor(%ld / "
                 "%ld) is 0: nothing to train (a corpus this small needs a smaller batch_size or unroll_steps)",
                 options_path, s.n_epochs, s.n_train_tokens, (long)B * T * N);
    if (N > 1)
        fprintf(stderr, "plan: %d replicas (MPI ranks) of %d rows each: a global batch of %d x %d tokens\n", N, B,
                B * N, T);
    fprintf(stderr, "plan: %ld batches per epoch of %d x %d tokens, %ld epoch%s: %ld batches\n", per_epoch, B * N, T,
            s.n_epochs, s.n_epochs == 1 ? "" : "s", n_batches);
    cJSON_AddNumberToObject(plan, "train_tokens", (double)s.n_train_tokens);
    cJSON_AddNumberToObject(plan, "batches_per_epoch", (double)per_epoch);
    cJSON_AddNumberToObject(plan, "n_epochs", (double)s.n_epochs);
    cJSON_AddNumberToObject(plan, "batches", (double)n_batches);
    plan_resources(&c, &opt, vocab.size, c.save_dir, s.train_prefix, plan);
    if (s.heldout_prefix[0])
        fprintf(stderr, "plan: held-out evaluation on %s %s, %s per direction%s\n", s.heldout_prefix,
                s.eval_every ? "every --eval-every batches" : s.eval_minutes > 0 ? "every --eval-minutes" : "at every checkpoint",
                s.eval_tokens ? "capped" : "all tokens", s.patience ? ", stopping after --patience without improvement" : "");
    /* the save directory's options state every key, with the length as settled */
    char saved_options[4096];
    snprintf(saved_options, sizeof saved_options, "%s/options.json", c.save_dir);
    if (lead && options_save(&opt, saved_options, 0) < 0) elmo_die_last();

    BilmModel model;
    model_init_layout(&model, &opt, vocab.size);
    model_init_random(&model, s.seed);
    long init_softmax_rows = 0;
    if (c.init_from) {
        if (model_load_bilm(&model, c.init_from) < 0 || checkpoint_softmax_rows(c.init_from, &init_softmax_rows) < 0)
            elmo_die_last();
        if (init_softmax_rows > 0) {
            SoftmaxRemap remap;
            if (remap_load_softmax(&model, c.init_from, &vocab, c.init_vocab, &remap) < 0) elmo_die_last();
            char line[256];
            elmo_note("%s: weights loaded; %s", c.init_from, remap_describe(&remap, line, sizeof line));
        } else {
            /* measured on the Brown sample (docs/design.md section 6): rows from the token
             * embeddings beat a fresh softmax by far, with or without a warm-up */
            if (c.softmax_from_embeddings) remap_softmax_from_embeddings(&model, &vocab);
            elmo_note("%s: weights loaded; no softmax in the file: %s", c.init_from,
                      c.softmax_from_embeddings ? "each row starts as its token's embedding (--softmax-init embeddings)"
                                                : "a fresh one (--softmax-init fresh)");
        }
        if (s.warmup_softmax)
            elmo_note("train: the first %ld batches update only the softmax (--warmup-softmax), then all layers",
                      s.warmup_softmax);
    }
    TrainRun run = {.save_dir = c.save_dir, .settings = &s, .opt = &opt, .vocab = &vocab,
                    .n_batches = n_batches, .batches_per_epoch = per_epoch, .max_batches = c.max_batches};
    const int n_dirs = opt.bidirectional ? 2 : 1;
    for (int d = 0; d < n_dirs; d++)
        if (lm_reader_open(&run.readers[d], s.train_prefix, &vocab, opt.max_chars, d, LM_TRAIN, s.shuffle,
                           s.seed * 1000003u + 17u + (uint64_t)d) < 0)
            elmo_die_last();
    Trainer trainer;
    /* each replica its own candidates and masks; rank 0 draws what a single process does */
    trainer_init(&trainer, &model, B, T, TRAINER_TRAIN, s.seed * 7919u + 3u + (uint64_t)rep->rank * 0x9E3779B97F4A7C15u);
    run.trainer = &trainer;
    if (c.keep_optimizer) {
        /* bilm-tf's restart.py: the pretrained model's Adagrad state goes on */
        if (checkpoint_load_accumulators(c.init_from, &trainer) < 0 ||
            (init_softmax_rows > 0 &&
             remap_load_softmax_accumulators(&model, c.init_from, &vocab, c.init_vocab,
                                             trainer.accum + (model.softmax_W - model.data),
                                             trainer.accum + (model.softmax_b - model.data)) < 0))
            elmo_die_last();
        elmo_note("%s: Adagrad accumulators kept (--keep-optimizer)", c.init_from);
    }
    if (c.restart) {
        for (; candidate < n_restart; candidate++) {
            checkpoint_path(checkpoint, sizeof checkpoint, c.restart, restart_steps[candidate]);
            RunSettings older;
            if (checkpoint_read_settings(checkpoint, &older) == 0 &&
                checkpoint_load(checkpoint, &trainer, run.readers, n_batches) == 0)
                break;
            note_damage();
        }
        free(restart_steps);
        if (candidate == n_restart)
            elmo_die("damaged checkpoint: %s; no intact older one in %s", restart_damage, c.restart);
        if (restart_damage[0] && !c.fallback)
            elmo_die("damaged checkpoint: %s; the newest intact one is %s: resume from it with --restart %s --fallback",
                     restart_damage, checkpoint, c.restart);
        if (restart_damage[0]) elmo_note("damaged checkpoint: %s; resuming from %s (--fallback)", restart_damage, checkpoint);
        fprintf(stderr, "train: resuming %s at batch %ld of %ld\n", checkpoint, trainer.step, n_batches);
    }
    cJSON_AddNumberToObject(plan, "step", (double)trainer.step);
    cJSON_AddNumberToObject(plan, "replicas", N);
    if (lead && (metrics_open(&run.metrics, c.save_dir, trainer.step) < 0 || metrics_record_json(run.metrics, plan) < 0))
        elmo_die_last();
    cJSON_Delete(plan);
    fprintf(stderr, "train: %ld batches of %d x %d tokens, %d shards, vocabulary %d, %s softmax\n", n_batches, B, T,
            lm_reader_n_shards(run.readers[0]), vocab.size, opt.sample_softmax ? "sampled" : "full");

    int early_signal = signals_stop_requested();
    double now = elmo_now();
    replicas_agree(&now, &early_signal);
    if (early_signal) {
        fprintf(stderr, "train: stopped by %s before the first batch%s\n", early_signal == SIGINT ? "SIGINT" : "SIGTERM",
                c.restart ? "; the checkpoints are as they were" : "; the save directory is left as it was found");
        exit(128 + early_signal); /* atexit: restore_found_dir */
    }
    found.kept = 1; /* from the first batch on, the directory holds the run */
    const int code = train_run(&run);

    if (lead) metrics_close(run.metrics);
    for (int d = 0; d < n_dirs; d++) lm_reader_close(run.readers[d]);
    trainer_free(&trainer);
    model_free(&model);
    vocab_free(&vocab);
    options_free(&opt);
    return code;
}
