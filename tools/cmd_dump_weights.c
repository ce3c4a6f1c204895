/* cmd_dump_weights.c - `elmo dump-weights`: a checkpoint as a released weight file (no
 * softmax, no training state) with its options.json (n_characters 262) next to it. */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "common.h"

static const char dump_help[] =
    "usage: elmo dump-weights (--save-dir DIR | --checkpoint FILE) --output weights.hdf5\n\n"
    "Writes the weights of a training checkpoint in the released ELMo layout (no softmax,\n"
    "no training state) and options.json next to it with n_characters 262: the pair that\n"
    "AllenNLP, bilm-tf and `elmo embed` load.\n\n"
    "  --save-dir DIR      a training directory (its newest checkpoint and options.json)\n"
    "  --checkpoint FILE   a checkpoint; its options.json is the one in the same directory\n"
    "  --output FILE       the weight file to write (options.json goes beside it)\n";

int cmd_dump_weights(int argc, char **argv) {
    const char *save_dir = NULL, *checkpoint = NULL, *output = NULL;
    enum { O_SAVE = 256, O_CKPT, O_OUT };
    static const struct option longopts[] = {
        {"save-dir", required_argument, 0, O_SAVE}, {"save_dir", required_argument, 0, O_SAVE},
        {"checkpoint", required_argument, 0, O_CKPT}, {"output", required_argument, 0, O_OUT},
        {"outfile", required_argument, 0, O_OUT},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_SAVE: save_dir = optarg; break;
        case O_CKPT: checkpoint = optarg; break;
        case O_OUT: output = optarg; break;
        case 'h': fputs(dump_help, stdout); return 0;
        default: fputs(dump_help, stderr); return ELMO_EXIT_FAILURE;
        }
    }
    if (optind < argc) elmo_die("dump-weights: unexpected argument '%s'", argv[optind]);
    if (!save_dir == !checkpoint) elmo_die("dump-weights: give either --save-dir or --checkpoint");
    cli_require("--output", output, "dump-weights");

    char ckpt_buf[4096], options_path[4096];
    if (save_dir) {
        if (checkpoint_latest(save_dir, ckpt_buf, sizeof ckpt_buf, NULL) < 0) elmo_die_last();
        checkpoint = ckpt_buf;
    }
    char *dir_copy = xstrdup(checkpoint);
    snprintf(options_path, sizeof options_path, "%s/options.json", dirname(dir_copy));
    free(dir_copy);
    char *out_copy = xstrdup(output);
    char out_options[4096];
    snprintf(out_options, sizeof out_options, "%s/options.json", dirname(out_copy));
    free(out_copy);
    char real_in[PATH_MAX], real_out[PATH_MAX];
    if (realpath(options_path, real_in) && realpath(out_options, real_out) && strcmp(real_in, real_out) == 0)
        elmo_die("dump-weights: %s would replace the training options of %s; write the export to another directory",
                 out_options, checkpoint);
    ElmoOptions opt;
    if (options_load(&opt, options_path, ELMO_FOR_PREDICTION) < 0) elmo_die_last();
    long rows;
    if (checkpoint_softmax_rows(checkpoint, &rows) < 0) elmo_die_last();
    BilmModel model;
    model_init_layout(&model, &opt, rows);
    if (model_load(&model, checkpoint) < 0) elmo_die_last();
    if (model_save(&model, output, 0) < 0) elmo_die_last();
    if (options_save(&opt, out_options, 262) < 0) elmo_die_last();
    fprintf(stderr, "dump-weights: %s -> %s and %s\n", checkpoint, output, out_options);
    model_free(&model);
    options_free(&opt);
    return 0;
}
