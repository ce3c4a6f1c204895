/* cmd_embed.c - `elmo embed`: contextual embeddings of tokenized sentences, in the
 * layout of bilm-tf's dump_bilm_embeddings: dataset "<line index>" (L+1, n, 2P). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "fileio.h"
#include "h5io.h"
#include "predictor.h"
#include "sentences.h"

static const char embed_help[] =
    "usage: elmo embed --options FILE --weights FILE --vocab FILE --input SENTENCES --output OUT.hdf5\n"
    "                  [--batch-size N] [--stateless] [--threads N] [--max-memory GB] [--quiet]\n\n"
    "Computes the ELMo embeddings of every line of SENTENCES (one tokenized sentence a line,\n"
    "tokens separated by white space, UTF-8) and writes OUT.hdf5 with one float32 dataset per\n"
    "line, named by its 0-based line index, of shape (L+1, n_tokens, 2P): layer 0 is the token\n"
    "embedding twice, layer l the outputs of LSTM layer l, forward then backward (the layout of\n"
    "bilm-tf's dump_bilm_embeddings). An empty line gives a dataset of shape (L+1, 0, 2P).\n\n"
    "  --options FILE     options.json of the model (n_characters 261 or 262)\n"
    "  --weights FILE     weight file in the released HDF5 layout\n"
    "  --vocab FILE       the model's vocabulary (must contain <S> and </S>)\n"
    "  --input FILE       sentences to embed ('-' = standard input)\n"
    "  --output FILE      HDF5 file to write (replaced atomically when complete)\n"
    "  --batch-size N     sentences per batch (default 64)\n"
    "  --stateless        start every batch from zero LSTM state (default: stateful, row r of a\n"
    "                     batch continues from row r of the previous batch, as bilm-tf)\n"
    "  --threads N        threads (default: all cores)\n"
    "  --max-memory GB    refuse a batch whose buffers would exceed this (every row is padded\n"
    "                     to the batch's longest line; default: half the machine's memory)\n"
    "  --quiet            no progress lines\n";

/* Sentences between two reopenings of the output file (bounds HDF5's memory). */
#define REOPEN_EVERY 50000

static int write_batch(hid_t file, const char *out_path, const Predictor *pred, const SentenceBatch *batch,
                       long first_index, float *buffer) {
    const ElmoOptions *o = pred->m->opt;
    for (int b = 0; b < batch->n; b++) {
        const int n = batch->n_tokens[b] - 2;
        predictor_sentence_output(pred, b, buffer);
        char name[32];
        snprintf(name, sizeof name, "%ld", first_index + b);
        hsize_t dims[3] = {(hsize_t)o->n_layers + 1, (hsize_t)n, 2 * (hsize_t)o->proj_dim};
        if (h5io_write_floats(file, out_path, name, 3, dims, buffer) < 0) return -1;
    }
    return 0;
}

int cmd_embed(int argc, char **argv) {
    const char *options_path = NULL, *weights_path = NULL, *vocab_path = NULL, *input = NULL, *output = NULL;
    int batch_size = 64, stateless = 0, threads = 0, quiet = 0;
    double memory_limit = 0.5 * (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    static const struct option longopts[] = {
        {"options", required_argument, 0, 'o'}, {"weights", required_argument, 0, 'w'},
        {"vocab", required_argument, 0, 'v'},   {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'O'},  {"batch-size", required_argument, 0, 'b'},
        {"stateless", no_argument, 0, 's'},     {"threads", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {"max-memory", required_argument, 0, 'm'},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': options_path = optarg; break;
        case 'w': weights_path = optarg; break;
        case 'v': vocab_path = optarg; break;
        case 'i': input = optarg; break;
        case 'O': output = optarg; break;
        case 'b': batch_size = (int)cli_int("--batch-size", optarg, 1, 1 << 16); break;
        case 's': stateless = 1; break;
        case 't': threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case 'q': quiet = 1; break;
        case 'm': {
            char *end;
            const double gb = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(gb > 0))
                elmo_die("--max-memory: expected a positive number of GB, got '%s'", optarg);
            memory_limit = gb * 1e9;
            break;
        }
        case 'h': fputs(embed_help, stdout); return 0;
        default: fputs(embed_help, stderr); return ELMO_EXIT_FAILURE;
        }
    }
    if (optind < argc) elmo_die("embed: unexpected argument '%s'", argv[optind]);
    cli_require("--options", options_path, "embed");
    cli_require("--weights", weights_path, "embed");
    cli_require("--vocab", vocab_path, "embed");
    cli_require("--input", input, "embed");
    cli_require("--output", output, "embed");
    elmo_set_threads(threads);

    PredictionModel pm;
    cli_load_prediction_model(&pm, options_path, weights_path, vocab_path);
    const ElmoOptions *o = &pm.opt;

    SentenceReader reader;
    if (sentence_reader_open(&reader, input) < 0) elmo_die_last();
    PendingFile pending;
    pending_begin(&pending, output);
    hid_t file;
    if (h5io_create(pending.tmp, &file) < 0) {
        pending_abort(&pending);
        elmo_die("%s: cannot create output file", output);
    }

    Predictor pred;
    predictor_init(&pred, &pm.model, batch_size);
    SentenceBatch batch;
    batch_init(&batch, batch_size, o->max_chars);
    float *buffer = NULL;
    size_t buffer_cap = 0;
    long n_sentences = 0, n_tokens = 0;
    double start = elmo_now(), last_report = start;
    int rc = 0, more = 1;
    while (more && rc == 0) {
        batch_clear(&batch);
        while (batch.n < batch_size) {
            int got = sentence_reader_next(&reader);
            if (got < 0) rc = -1;
            if (got <= 0) {
                more = 0;
                break;
            }
            batch_add(&batch, reader.tokens.tokens, reader.tokens.n, reader.line_no);
        }
        if (rc < 0 || batch.n == 0) break;
        batch_build(&batch);
        /* every row is padded to the longest sentence: refuse what cannot fit in memory */
        const double batch_bytes = predictor_bytes(&pred, (long)batch.n * batch.T);
        if (batch_bytes > memory_limit) {
            int longest = 0;
            for (int b = 1; b < batch.n; b++)
                if (batch.n_tokens[b] > batch.n_tokens[longest]) longest = b;
            rc = elmo_fail("%s:%ld: a sentence of %d tokens makes this batch need %.2f GB (limit %.2f GB, "
                           "--max-memory); split that line or lower --batch-size",
                           input, batch.line_no[longest], batch.n_tokens[longest] - 2, batch_bytes / 1e9,
                           memory_limit / 1e9);
            break;
        }
        predictor_run(&pred, batch.ids, batch.n, batch.T, stateless);
        size_t need = (size_t)(o->n_layers + 1) * batch.T * 2 * o->proj_dim;
        if (need > buffer_cap) {
            buffer_cap = need;
            buffer = xrealloc(buffer, buffer_cap * sizeof(float));
        }
        rc = write_batch(file, output, &pred, &batch, n_sentences, buffer);
        n_sentences += batch.n;
        if (rc == 0 && n_sentences / REOPEN_EVERY != (n_sentences - batch.n) / REOPEN_EVERY)
            rc = h5io_reopen(&file, pending.tmp);
        for (int b = 0; b < batch.n; b++) n_tokens += batch.n_tokens[b] - 2;
        double now = elmo_now();
        if (!quiet && now - last_report >= 5.0) {
            fprintf(stderr, "embed: %ld sentences, %ld tokens, %.0f tokens/s\n", n_sentences, n_tokens,
                    n_tokens / (now - start));
            last_report = now;
        }
    }
    if (h5io_close(file, output) < 0) rc = -1;
    if (rc == 0) rc = pending_commit(&pending);
    else {
        char *msg = xstrdup(elmo_error());
        pending_abort(&pending);
        elmo_fail("%s", msg);
        free(msg);
    }
    free(buffer);
    batch_free(&batch);
    predictor_free(&pred);
    sentence_reader_close(&reader);
    cli_free_prediction_model(&pm);
    if (rc < 0) elmo_die_last();
    if (!quiet) {
        double secs = elmo_now() - start;
        fprintf(stderr, "embed: wrote %ld sentences (%ld tokens) to %s in %.1f s (%.0f tokens/s)\n", n_sentences,
                n_tokens, output, secs, secs > 0 ? n_tokens / secs : 0.0);
    }
    return 0;
}
