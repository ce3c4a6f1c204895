/* cmd_dump_weights.c - `elmo dump-weights`: a checkpoint as a released weight file (no
 * softmax, no training state) with its options.json (n_characters 262) next to it. */
#include <dirent.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "common.h"
#include "fileio.h"
#include "h5io.h"
#include "paths.h"

static const char dump_help[] =
    "usage: elmo dump-weights (--save-dir DIR [--best] | --checkpoint FILE) --output weights.hdf5\n"
    "                         [--with-softmax]\n\n"
    "Writes the weights of a training checkpoint in the released ELMo layout (no softmax,\n"
    "no training state) and options.json next to it with n_characters 262: the pair that\n"
    "AllenNLP, bilm-tf and `elmo embed` load. The output's directory is created if needed;\n"
    "it may not be a training directory (one holding checkpoints, metrics.jsonl or\n"
    "train-tokens.json: its options.json belongs to that run). Both files are written or\n"
    "neither.\n\n"
    "  --save-dir DIR      a training directory (its newest checkpoint and options.json)\n"
    "  --best              with --save-dir: DIR/best.hdf5 instead of the newest checkpoint\n"
    "  --checkpoint FILE   a checkpoint; its options.json is the one in the same directory\n"
    "  --output FILE       the weight file to write (options.json goes beside it)\n"
    "  --with-softmax      keep softmax/W, softmax/b and the vocabulary of their rows (dataset\n"
    "                      vocab): a file to fine-tune from, evaluate or score, which readers\n"
    "                      of the released layout still load\n";

/* Fails naming dir when it holds a training run's files (checkpoints, metrics.jsonl,
 * train-tokens.json): its options.json belongs to that run. */
static int refuse_training_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        const char *n = e->d_name;
        const size_t len = strlen(n);
        if (strcmp(n, "metrics.jsonl") == 0 || strcmp(n, "train-tokens.json") == 0 ||
            (strncmp(n, "model.ckpt-", 11) == 0 && len > 16 && strcmp(n + len - 5, ".hdf5") == 0))
            rc = elmo_fail("dump-weights: %s is a training directory (it holds %s): its options.json belongs to "
                           "that run; write the export to another directory",
                           dir, n);
    }
    closedir(d);
    return rc;
}

int cmd_dump_weights(int argc, char **argv) {
    const char *save_dir = NULL, *checkpoint = NULL, *output = NULL;
    int best = 0, with_softmax = 0;
    enum { O_SAVE = 256, O_BEST, O_CKPT, O_OUT, O_WITH_SOFTMAX };
    static const struct option longopts[] = {
        {"save-dir", required_argument, 0, O_SAVE}, {"save_dir", required_argument, 0, O_SAVE},
        {"best", no_argument, 0, O_BEST},           {"checkpoint", required_argument, 0, O_CKPT},
        {"output", required_argument, 0, O_OUT},    {"outfile", required_argument, 0, O_OUT},
        {"with-softmax", no_argument, 0, O_WITH_SOFTMAX}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_SAVE: save_dir = optarg; break;
        case O_BEST: best = 1; break;
        case O_CKPT: checkpoint = optarg; break;
        case O_OUT: output = optarg; break;
        case O_WITH_SOFTMAX: with_softmax = 1; break;
        case 'h': fputs(dump_help, stdout); return 0;
        default: fputs(dump_help, stderr); return ELMO_EXIT_FAILURE;
        }
    }
    if (optind < argc) elmo_die("dump-weights: unexpected argument '%s'", argv[optind]);
    if (!save_dir == !checkpoint) elmo_die("dump-weights: give either --save-dir or --checkpoint");
    if (best && !save_dir) elmo_die("dump-weights: --best needs --save-dir (it reads DIR/best.hdf5)");
    cli_require("--output", output, "dump-weights");

    char ckpt_buf[4096], options_path[4096];
    if (save_dir) {
        if (best) {
            struct stat st;
            snprintf(ckpt_buf, sizeof ckpt_buf, "%s/best.hdf5", save_dir);
            if (stat(ckpt_buf, &st) != 0)
                elmo_die("%s: no such file: --best exports the best checkpoint that training keeps there", ckpt_buf);
        } else if (checkpoint_latest(save_dir, ckpt_buf, sizeof ckpt_buf, NULL) < 0) {
            elmo_die_last();
        }
        checkpoint = ckpt_buf;
    }
    char *dir_copy = xstrdup(checkpoint);
    snprintf(options_path, sizeof options_path, "%s/options.json", dirname(dir_copy));
    free(dir_copy);
    char *out_copy = xstrdup(output);
    char out_dir[4096], out_options[sizeof out_dir + 16];
    snprintf(out_dir, sizeof out_dir, "%s", dirname(out_copy));
    free(out_copy);
    snprintf(out_options, sizeof out_options, "%s/options.json", out_dir);
    const char *inputs[] = {"--checkpoint", checkpoint, "options", options_path};
    if (paths_refuse_overwrite(output, inputs, 2, "dump-weights") < 0) elmo_die_last();
    ElmoOptions opt;
    if (options_load(&opt, options_path) < 0) elmo_die_last();
    long rows;
    if (checkpoint_softmax_rows(checkpoint, &rows) < 0) elmo_die_last();
    BilmModel model;
    model_init_layout(&model, &opt, rows);
    if (model_load(&model, checkpoint) < 0) elmo_die_last();
    /* created first, so that the check below sees the directory the files will go to
     * (a path such as DIR/new/.. is DIR itself) */
    if (file_make_dirs(out_dir) < 0 || file_remove_stale_temporaries(out_dir) < 0) elmo_die_last();
    char real_in[PATH_MAX], real_out[PATH_MAX];
    if (realpath(options_path, real_in) && realpath(out_options, real_out) && strcmp(real_in, real_out) == 0)
        elmo_die("dump-weights: %s would replace the training options of %s; write the export to another directory",
                 out_options, checkpoint);
    if (refuse_training_dir(out_dir) < 0) elmo_die_last();
    Vocab vocab = {0};
    if (with_softmax) {
        if (rows == 0) elmo_die("%s: has no softmax (--with-softmax)", checkpoint);
        hid_t file;
        char **words;
        size_t n;
        if (h5io_open_read(checkpoint, &file) < 0) elmo_die_last();
        if (!h5io_exists(file, "vocab"))
            elmo_die("%s: stores no vocabulary for its softmax (a checkpoint of an earlier version)", checkpoint);
        const int rc = h5io_read_strings(file, checkpoint, "vocab", &words, &n);
        H5Fclose(file);
        if (rc < 0) elmo_die_last();
        vocab_from_words(&vocab, (const char *const *)words, (int)n);
        h5io_free_strings(words, n);
    }
    /* the pair is written whole or not at all: both under temporary names (each fsynced
     * by its own atomic write), then options.json renamed into place, then the weights;
     * a failure before the renames removes both temporaries */
    PendingFile pw, po;
    pending_begin(&pw, output);
    pending_begin(&po, out_options);
    int rc = model_save(&model, pw.tmp, with_softmax ? &vocab : NULL);
    if (rc == 0) rc = options_save(&opt, po.tmp, 262);
    if (rc == 0) rc = pending_commit(&po);
    else pending_abort(&po);
    if (rc == 0) rc = pending_commit(&pw);
    else pending_abort(&pw);
    if (rc < 0) elmo_die_last();
    if (with_softmax) vocab_free(&vocab);
    fprintf(stderr, "dump-weights: %s -> %s and %s\n", checkpoint, output, out_options);
    model_free(&model);
    options_free(&opt);
    return 0;
}
