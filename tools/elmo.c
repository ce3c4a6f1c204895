/* elmo.c - the `elmo` program: git-style subcommands over the library in src/. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"

/* From the Makefile: VERSION, plus the git commit when built in a git checkout. */
#ifndef ELMO_VERSION
#define ELMO_VERSION "unknown"
#endif

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"vocab", cmd_vocab, "vocabulary file and n_train_tokens of a corpus"},
    {"shard", cmd_shard, "a raw corpus as shuffled training shards and a held-out part"},
    {"prepare", cmd_prepare, "shard and vocab in one pass, with the options.json counts"},
    {"train", cmd_train, "train or fine-tune a biLM on a corpus (bilm-tf train_elmo)"},
    {"eval", cmd_eval, "perplexity of a trained model on held-out data"},
    {"dump-weights", cmd_dump_weights, "a checkpoint as a released weight file + options.json"},
    {"embed", cmd_embed, "contextual embeddings of tokenized sentences (bilm-tf dump_bilm_embeddings)"},
    {"embed-vocab", cmd_embed_vocab, "token embeddings of a vocabulary (bilm-tf dump_token_embeddings)"},
    {"score", cmd_score, "log-probability and perplexity of each sentence of a file (full softmax)"},
    {"import-tf", cmd_import_tf, "a TensorFlow checkpoint of bilm-tf as an HDF5 model (no TensorFlow needed)"},
    {"bench", cmd_bench, "speed of training steps and prediction on random weights and data"},
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: elmo <command> [options]   (elmo <command> --help for its options)\n\n"
            "ELMo biLM in C: the char-CNN + biLSTM language model of bilm-tf / AllenNLP.\n\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-12s %s\n", "version", "the version of this program (also elmo --version)");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return ELMO_EXIT_FAILURE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("elmo %s\n", ELMO_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "elmo: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return ELMO_EXIT_FAILURE;
}
