/* cmd_embed_vocab.c - `elmo embed-vocab`: the token embedding of every vocabulary word
 * (docs/design.md section 3, steps 1-4, each word alone), bilm-tf's dump_token_embeddings. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "cli.h"
#include "commands.h"
#include "common.h"
#include "fileio.h"
#include "h5io.h"
#include "paths.h"
#include "predictor.h"
#include "memfit.h"

static const char embed_vocab_help[] =
    "usage: elmo embed-vocab --options FILE --weights FILE --vocab FILE --output OUT.hdf5\n"
    "                        [--dtype float32|float16] [--threads N]\n\n"
    "Writes OUT.hdf5 with the dataset \"embedding\" of shape (V, P): row k is the\n"
    "context-free token embedding of line k of the vocabulary (the char-CNN, highway and\n"
    "projection applied to the word alone; <S> and </S> use the sentence-marker characters).\n"
    "This is the file bilm-tf's dump_token_embeddings writes.\n\n"
    "  --options FILE   options.json of the model\n"
    "  --weights FILE   weight file in the released HDF5 layout\n"
    "  --vocab FILE     vocabulary, one token a line (must contain <S> and </S>)\n"
    "  --output FILE    HDF5 file to write (replaced atomically when complete)\n"
    "  --dtype TYPE     float32 (default) or float16 (IEEE half, rounded to nearest)\n"
    "  --threads N      threads (default: all cores)\n";

#define VOCAB_CHUNK 4096

int cmd_embed_vocab(int argc, char **argv) {
    const char *options_path = NULL, *weights_path = NULL, *vocab_path = NULL, *output = NULL;
    int threads = 0, half = 0;
    static const struct option longopts[] = {
        {"options", required_argument, 0, 'o'}, {"weights", required_argument, 0, 'w'},
        {"vocab", required_argument, 0, 'v'},   {"output", required_argument, 0, 'O'},
        {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {"dtype", required_argument, 0, 256},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': options_path = optarg; break;
        case 'w': weights_path = optarg; break;
        case 'v': vocab_path = optarg; break;
        case 'O': output = optarg; break;
        case 't': threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case 256:
            if (strcmp(optarg, "float32") == 0) half = 0;
            else if (strcmp(optarg, "float16") == 0) half = 1;
            else elmo_die("--dtype: expected float32 or float16, got '%s'", optarg);
            break;
        case 'h': fputs(embed_vocab_help, stdout); return 0;
        default: fputs(embed_vocab_help, stderr); return ELMO_EXIT_FAILURE;
        }
    }
    if (optind < argc) elmo_die("embed-vocab: unexpected argument '%s'", argv[optind]);
    cli_require("--options", options_path, "embed-vocab");
    cli_require("--weights", weights_path, "embed-vocab");
    cli_require("--vocab", vocab_path, "embed-vocab");
    cli_require("--output", output, "embed-vocab");
    const char *inputs[] = {"--options", options_path, "--weights", weights_path, "--vocab", vocab_path};
    if (paths_refuse_overwrite(output, inputs, 3, "embed-vocab") < 0) elmo_die_last();
    if (file_remove_stale_temporaries_beside(output) < 0) elmo_die_last();
    elmo_set_threads(threads);

    if (memfit_check_file(options_path, 0, VOCAB_CHUNK) < 0) elmo_die_last();
    PredictionModel pm;
    cli_load_prediction_model(&pm, options_path, weights_path, vocab_path);
    const int V = pm.vocab.size, C = pm.opt.max_chars, P = pm.opt.proj_dim, F = pm.opt.total_filters;
    Predictor pred;
    predictor_init(&pred, &pm.model, 1);
    float *emb = xmalloc_aligned((size_t)V * P * sizeof(float));
    int32_t *ids = xmalloc((size_t)VOCAB_CHUNK * C * sizeof(int32_t));
    float *feat[3];
    for (int i = 0; i < 3; i++) feat[i] = xmalloc_aligned((size_t)VOCAB_CHUNK * F * sizeof(float));
    for (int start = 0; start < V; start += VOCAB_CHUNK) {
        int n = V - start < VOCAB_CHUNK ? V - start : VOCAB_CHUNK;
        for (int i = 0; i < n; i++) chars_encode_prediction(pm.vocab.words[start + i], C, ids + (size_t)i * C);
        predictor_token_embeddings(&pred, emb + (size_t)start * P, ids, n, feat[0], feat[1], feat[2]);
    }

    PendingFile pending;
    pending_begin(&pending, output);
    hid_t file;
    int rc = h5io_create(pending.tmp, &file);
    if (rc == 0) {
        hsize_t dims[2] = {(hsize_t)V, (hsize_t)P};
        rc = h5io_write_floats_as(file, output, "embedding", 2, dims, emb, half);
        if (h5io_close(file, output) < 0) rc = -1;
    }
    if (rc == 0) rc = pending_commit(&pending);
    else pending_abort(&pending);
    if (rc < 0) elmo_die_last();
    fprintf(stderr, "embed-vocab: wrote %d token embeddings of dimension %d to %s\n", V, P, output);
    for (int i = 0; i < 3; i++) free(feat[i]);
    free(ids);
    free(emb);
    predictor_free(&pred);
    cli_free_prediction_model(&pm);
    return 0;
}
