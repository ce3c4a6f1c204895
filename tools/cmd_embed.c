/* cmd_embed.c - `elmo embed`: contextual embeddings of tokenized sentences, in the
 * layout of bilm-tf's dump_bilm_embeddings: dataset "<line index>" (L+1, n, 2P), or the
 * layer choices of AllenNLP's `elmo` command (--layers top|average|<list>), float32 or
 * float16, and AllenNLP's "sentence_to_index". */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "fileio.h"
#include "h5io.h"
#include "paths.h"
#include "predictor.h"
#include "sentences.h"
#include "memfit.h"

static const char embed_help[] =
    "usage: elmo embed --options FILE --weights FILE --vocab FILE --input SENTENCES --output OUT.hdf5\n"
    "                  [--layers all|top|average|LIST] [--dtype float32|float16] [--batch-size N]\n"
    "                  [--stateless] [--threads N] [--max-memory GB] [--quiet]\n\n"
    "Computes the ELMo embeddings of every line of SENTENCES (one tokenized sentence a line,\n"
    "tokens separated by white space, UTF-8) and writes OUT.hdf5 with one dataset per line,\n"
    "named by its 0-based line index. With --layers all (the default) its shape is\n"
    "(L+1, n_tokens, 2P): layer 0 is the token embedding twice, layer l the outputs of LSTM\n"
    "layer l, forward then backward (the layout of bilm-tf's dump_bilm_embeddings). An empty\n"
    "line gives a dataset with n_tokens = 0.\n\n"
    "OUT.hdf5 also holds \"sentence_to_index\", as AllenNLP's `elmo` command writes it: a\n"
    "dataset of shape (1) holding one variable-length UTF-8 string, a JSON object mapping each\n"
    "line's text (its tokens joined by single spaces) to its dataset name (\"0\", \"1\", ...).\n"
    "A line repeated maps to the index of its FIRST occurrence (AllenNLP's dict kept the last).\n"
    "It is built at the end from a temporary file of the texts: it then takes memory of about\n"
    "twice the input's size plus 60 bytes a line.\n\n"
    "  --options FILE     options.json of the model (n_characters 261 or 262)\n"
    "  --weights FILE     weight file in the released HDF5 layout\n"
    "  --vocab FILE       the model's vocabulary (must contain <S> and </S>)\n"
    "  --input FILE       sentences to embed ('-' = standard input)\n"
    "  --output FILE      HDF5 file to write (replaced atomically when complete)\n"
    "  --layers WHICH     all: (L+1, n, 2P) every layer (AllenNLP's --all);\n"
    "                     top: (n, 2P) the top LSTM layer L (AllenNLP's --top);\n"
    "                     average: (n, 2P) the mean of the L+1 layers (AllenNLP's --average);\n"
    "                     LIST: comma-separated layer numbers in 0..L, e.g. 0,2: (k, n, 2P)\n"
    "                     of those layers in the order given. --all, --top, --average are\n"
    "                     accepted as aliases.\n"
    "  --dtype TYPE       float32 (default) or float16 (IEEE half, rounded to nearest;\n"
    "                     magnitudes above 65504 become infinite)\n"
    "  --batch-size N     sentences per batch (default 64)\n"
    "  --stateless        start every batch from zero LSTM state (default: stateful, row r of a\n"
    "                     batch continues from row r of the previous batch, as bilm-tf)\n"
    "  --threads N        threads (default: all cores)\n"
    "  --max-memory GB    refuse a batch whose buffers would exceed this (every row is padded\n"
    "                     to the batch's longest line; default: half the machine's memory)\n"
    "  --quiet            no progress lines\n";

/* Sentences between two reopenings of the output file (bounds HDF5's memory). */
#define REOPEN_EVERY 50000

/* What each dataset holds: every layer, the top one, their mean, or a list. */
typedef enum { LAYERS_ALL, LAYERS_TOP, LAYERS_AVERAGE, LAYERS_LIST } LayersMode;

typedef struct {
    LayersMode mode;
    int n;                          /* LAYERS_LIST: the layers chosen, in order */
    int list[ELMO_MAX_LAYERS + 1];
    int half;                       /* --dtype float16 */
} OutputChoice;

/* Parses --layers; exits with one line on a bad value. */
static void parse_layers(OutputChoice *out, const char *value) {
    if (strcmp(value, "all") == 0) out->mode = LAYERS_ALL;
    else if (strcmp(value, "top") == 0) out->mode = LAYERS_TOP;
    else if (strcmp(value, "average") == 0) out->mode = LAYERS_AVERAGE;
    else {
        out->mode = LAYERS_LIST;
        out->n = 0;
        const char *p = value;
        for (;;) {
            char *end;
            long v = (*p >= '0' && *p <= '9') ? strtol(p, &end, 10) : -1;
            if (v < 0 || v > ELMO_MAX_LAYERS || (*end != ',' && *end != '\0') || out->n == ELMO_MAX_LAYERS + 1)
                elmo_die("--layers: expected all, top, average or comma-separated layer numbers (e.g. 0,2), "
                         "got '%s'",
                         value);
            out->list[out->n++] = (int)v;
            if (*end == '\0') break;
            p = end + 1;
        }
    }
}

static void parse_dtype(OutputChoice *out, const char *value) {
    if (strcmp(value, "float32") == 0) out->half = 0;
    else if (strcmp(value, "float16") == 0) out->half = 1;
    else elmo_die("--dtype: expected float32 or float16, got '%s'", value);
}

/* One sentence's dataset from its (L+1, n, 2P) output `all`: into `out` (room for all of
 * it), its rank and dims. */
static int select_layers(const OutputChoice *c, int L, int n, int width, const float *all, float *out,
                         hsize_t *dims) {
    const size_t layer = (size_t)n * width;
    switch (c->mode) {
    case LAYERS_ALL:
        memcpy(out, all, (L + 1) * layer * sizeof(float));
        dims[0] = (hsize_t)L + 1, dims[1] = (hsize_t)n, dims[2] = (hsize_t)width;
        return 3;
    case LAYERS_TOP:
        memcpy(out, all + (size_t)L * layer, layer * sizeof(float));
        break;
    case LAYERS_AVERAGE:
        for (size_t i = 0; i < layer; i++) {
            float s = 0.0f;
            for (int l = 0; l <= L; l++) s += all[(size_t)l * layer + i];
            out[i] = s / (float)(L + 1);
        }
        break;
    case LAYERS_LIST:
        for (int k = 0; k < c->n; k++) memcpy(out + k * layer, all + (size_t)c->list[k] * layer, layer * sizeof(float));
        dims[0] = (hsize_t)c->n, dims[1] = (hsize_t)n, dims[2] = (hsize_t)width;
        return 3;
    }
    dims[0] = (hsize_t)n, dims[1] = (hsize_t)width;
    return 2;
}

static int write_batch(hid_t file, const char *out_path, const Predictor *pred, const SentenceBatch *batch,
                       long first_index, const OutputChoice *choice, float *buffer, float *selected) {
    const ElmoOptions *o = pred->m->opt;
    for (int b = 0; b < batch->n; b++) {
        const int n = batch->n_tokens[b] - 2;
        predictor_sentence_output(pred, b, buffer);
        char name[32];
        snprintf(name, sizeof name, "%ld", first_index + b);
        hsize_t dims[3];
        const int rank = select_layers(choice, o->n_layers, n, 2 * o->proj_dim, buffer, selected, dims);
        if (h5io_write_floats_as(file, out_path, name, rank, dims, selected, choice->half) < 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ sentence_to_index */

/* Writes s (n bytes of valid UTF-8) at w as the body of a JSON string (at most 6n bytes:
 * '"', '\' and control characters escaped, the rest as is); returns the bytes written. */
static size_t json_escape(char *w, const char *s, size_t n) {
    char *const w0 = w;
    for (size_t i = 0; i < n; i++) {
        const unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            *w++ = '\\';
            *w++ = (char)ch;
        } else if (ch < 0x20) {
            w += sprintf(w, "\\u%04x", ch);
        } else {
            *w++ = (char)ch;
        }
    }
    return (size_t)(w - w0);
}

static uint64_t text_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Writes "sentence_to_index" from `texts`, a file of n_sentences lines (each sentence's
 * tokens joined by single spaces): {"text": "index", ...} in line order, a repeated text
 * keeping its first index (an open-addressing set of line numbers finds repeats). */
static int write_sentence_index(hid_t file, const char *out_path, FILE *texts, long n_sentences) {
    if (fflush(texts) != 0 || fseek(texts, 0, SEEK_END) != 0)
        return elmo_fail("%s: cannot read back the temporary list of sentences", out_path);
    const long size = ftell(texts);
    char *all = xmalloc((size_t)size + 1);
    rewind(texts);
    if (size < 0 || fread(all, 1, (size_t)size, texts) != (size_t)size) {
        free(all);
        return elmo_fail("%s: cannot read back the temporary list of sentences", out_path);
    }
    size_t *start = xmalloc(((size_t)n_sentences + 1) * sizeof *start);
    size_t at = 0;
    for (long i = 0; i < n_sentences; i++) {
        start[i] = at;
        char *nl = memchr(all + at, '\n', (size_t)size - at);
        CHECK(nl, "sentence %ld missing from the temporary list", i);
        at = (size_t)(nl - all) + 1;
    }
    start[n_sentences] = at;
    size_t slots = 16;
    while (slots < 2 * (size_t)n_sentences) slots *= 2;
    long *set = xmalloc(slots * sizeof *set);
    for (size_t s = 0; s < slots; s++) set[s] = -1;
    size_t len = 0, cap = (size_t)size + 16 * (size_t)n_sentences + 64;
    char *json = xmalloc(cap);
    json[len++] = '{';
    for (long i = 0; i < n_sentences; i++) {
        const char *s = all + start[i];
        const size_t n = start[i + 1] - start[i] - 1;
        size_t slot = text_hash(s, n) & (slots - 1);
        int repeated = 0;
        for (; set[slot] >= 0; slot = (slot + 1) & (slots - 1)) {
            const long j = set[slot];
            if (start[j + 1] - start[j] - 1 == n && memcmp(all + start[j], s, n) == 0) {
                repeated = 1;
                break;
            }
        }
        if (repeated) continue;
        set[slot] = i;
        if (len + 6 * n + 48 > cap) {
            cap = 2 * (len + 6 * n + 48);
            json = xrealloc(json, cap);
        }
        if (len > 1) {
            memcpy(json + len, ", ", 2);
            len += 2;
        }
        json[len++] = '"';
        len += json_escape(json + len, s, n);
        len += (size_t)sprintf(json + len, "\": \"%ld\"", i);
    }
    json[len++] = '}';
    json[len] = '\0';
    const char *one[1] = {json};
    int rc = h5io_write_strings(file, out_path, "sentence_to_index", one, 1);
    free(json);
    free(set);
    free(start);
    free(all);
    return rc;
}

/* ---------------------------------------------------------------------------- command */

int cmd_embed(int argc, char **argv) {
    const char *options_path = NULL, *weights_path = NULL, *vocab_path = NULL, *input = NULL, *output = NULL;
    int batch_size = 64, stateless = 0, threads = 0, quiet = 0;
    OutputChoice choice = {LAYERS_ALL, 0, {0}, 0};
    double memory_limit = 0.5 * (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    enum { O_LAYERS = 256, O_DTYPE, O_ALL, O_TOP, O_AVERAGE };
    static const struct option longopts[] = {
        {"options", required_argument, 0, 'o'}, {"weights", required_argument, 0, 'w'},
        {"vocab", required_argument, 0, 'v'},   {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'O'},  {"batch-size", required_argument, 0, 'b'},
        {"stateless", no_argument, 0, 's'},     {"threads", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {"max-memory", required_argument, 0, 'm'}, {"layers", required_argument, 0, O_LAYERS},
        {"dtype", required_argument, 0, O_DTYPE}, {"all", no_argument, 0, O_ALL},
        {"top", no_argument, 0, O_TOP},         {"average", no_argument, 0, O_AVERAGE},
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
        case O_LAYERS: parse_layers(&choice, optarg); break;
        case O_DTYPE: parse_dtype(&choice, optarg); break;
        case O_ALL: choice.mode = LAYERS_ALL; break;
        case O_TOP: choice.mode = LAYERS_TOP; break;
        case O_AVERAGE: choice.mode = LAYERS_AVERAGE; break;
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
    const char *inputs[] = {"--options", options_path, "--weights", weights_path, "--vocab", vocab_path,
                            "--input", input};
    if (paths_refuse_overwrite(output, inputs, 4, "embed") < 0) elmo_die_last();
    if (file_remove_stale_temporaries_beside(output) < 0) elmo_die_last();
    elmo_set_threads(threads);

    if (memfit_check_file(options_path, 0, batch_size) < 0) elmo_die_last();
    PredictionModel pm;
    cli_load_prediction_model(&pm, options_path, weights_path, vocab_path);
    const ElmoOptions *o = &pm.opt;
    if (choice.mode == LAYERS_LIST)
        for (int k = 0; k < choice.n; k++)
            if (choice.list[k] > o->n_layers)
                elmo_die("--layers: layer %d does not exist: the model has layers 0..%d (0 = token embedding)",
                         choice.list[k], o->n_layers);

    SentenceReader reader;
    if (sentence_reader_open(&reader, input) < 0) elmo_die_last();
    FILE *texts = tmpfile(); /* each line's text, for sentence_to_index at the end */
    if (!texts) elmo_die("embed: cannot create a temporary file for sentence_to_index: %s", strerror(errno));
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
    float *buffer = NULL, *selected = NULL;
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
            for (int k = 0; k < reader.tokens.n; k++) {
                if (k) fputc(' ', texts);
                fputs(reader.tokens.tokens[k], texts);
            }
            if (fputc('\n', texts) == EOF) {
                rc = elmo_fail("embed: cannot write the temporary list of sentences (disk full?)");
                more = 0;
                break;
            }
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
            selected = xrealloc(selected, buffer_cap * sizeof(float));
        }
        rc = write_batch(file, output, &pred, &batch, n_sentences, &choice, buffer, selected);
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
    if (rc == 0) rc = write_sentence_index(file, output, texts, n_sentences);
    fclose(texts);
    if (h5io_close(file, output) < 0) rc = -1;
    if (rc == 0) rc = pending_commit(&pending);
    else {
        char *msg = xstrdup(elmo_error());
        pending_abort(&pending);
        elmo_fail("%s", msg);
        free(msg);
    }
    free(buffer);
    free(selected);
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
