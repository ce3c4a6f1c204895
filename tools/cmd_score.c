/* cmd_score.c - `elmo score`: the log-probability of every sentence of a file under a
 * trained biLM with its softmax (docs/design.md sections 4, 6 and 8): the predictor's top
 * layer, a full softmax over the vocabulary, both directions, one line per sentence.
 *
 * Sentence `w1 .. wn` is framed `<S> w1 .. wn </S>` (positions 0..n+1). The forward
 * output at position t (t = 0..n) predicts token t+1 (w1 .. wn, </S>); the backward output
 * at position t (t = 1..n+1, natural order: it has read tokens n+1 down to t) predicts
 * token t-1 (wn .. w1, <S>): n+1 targets per direction, the targets of section 6. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "commands.h"
#include "common.h"
#include "remap.h"
#include "predictor.h"
#include "sentences.h"
#include "softmax.h"
#include "memfit.h"

static const char score_help[] =
    "usage: elmo score [--options FILE] (--weights FILE | --save-dir DIR) --vocab FILE --input SENTENCES\n"
    "                  [--stateless] [--batch-size N] [--threads N]\n\n"
    "Log-probability of every line of SENTENCES (one tokenized sentence a line, UTF-8) under a\n"
    "model with its softmax (a training checkpoint). Sentence w1 .. wn is scored in both\n"
    "directions, each over n+1 targets: forward w1 .. wn, </S> from <S> w1 .. wn; backward\n"
    "wn .. w1, <S> from </S> wn .. w1; a full softmax over the vocabulary on the top LSTM\n"
    "layer's output, natural logarithms, <UNK> for words not in the vocabulary.\n\n"
    "Prints one tab-separated line per input line, in order:\n"
    "  index  tokens  logprob_forward  logprob_backward  perplexity\n"
    "index the 0-based line number, tokens n (markers not counted), logprob_d the sum of the\n"
    "n+1 log-probabilities of direction d, and\n"
    "  perplexity = exp(-(logprob_forward + logprob_backward) / (2 (n+1)))\n"
    "the exponential of minus the mean of both directions' per-token log-probabilities (a\n"
    "unidirectional model: exp(-logprob_forward / (n+1)), logprob_backward printed as nan).\n"
    "Then one summary line over the file, with N sentences and M tokens (sum of the n):\n"
    "  # total sentences N tokens M logprob_forward X logprob_backward Y perplexity Z\n"
    "Z = exp(-(X + Y) / (2 (M + N))), the same per-token definition. `elmo eval` prints\n"
    "exp(mean over its positions of the mean of the directions' losses): over one sentence\n"
    "with --batch-size 1 that is this line's perplexity, computed from the zero state.\n\n"
    "  --options FILE     options.json (default with --save-dir: DIR/options.json)\n"
    "  --weights FILE     a weight file with softmax/W and softmax/b, one row per vocabulary line\n"
    "  --save-dir DIR     a training directory: its newest checkpoint\n"
    "  --vocab FILE       the training vocabulary (<S>, </S> and <UNK> needed)\n"
    "  --input FILE       sentences to score ('-' = standard input)\n"
    "  --stateless        every sentence from zero LSTM state (default: stateful as embed: row r\n"
    "                     of a batch continues from row r of the previous batch)\n"
    "  --batch-size N     sentences per batch (default 64)\n"
    "  --threads N        threads (default: all cores)\n"
    "  --init-vocab FILE  the vocabulary the softmax was trained with, for a file that does not\n"
    "                     store it; the rows are matched to --vocab by token\n";

/* A prediction model and its softmax. Kept in one function so that another way of
 * matching softmax rows to the vocabulary (by token) can replace it. */
typedef struct {
    ElmoOptions opt;
    BilmModel model;
    Vocab vocab;
} ScoringModel;

static void load_scoring_model(ScoringModel *sm, const char *options_path, const char *weights_path,
                               const char *vocab_path, const char *init_vocab, int batch) {
    if (options_load(&sm->opt, options_path) < 0) elmo_die_last();
    if (vocab_load(&sm->vocab, vocab_path, VOCAB_NEED_BOS_EOS | VOCAB_NEED_UNK) < 0) elmo_die_last();
    long rows;
    if (checkpoint_softmax_rows(weights_path, &rows) < 0) elmo_die_last();
    if (rows == 0)
        elmo_die("%s: no softmax/W: scoring needs a checkpoint with its softmax (released weight files "
                 "have none)",
                 weights_path);
    /* the softmax's rows matched to --vocab by token (train/remap.h) */
    if (memfit_check(options_path, &sm->opt, sm->vocab.size, batch) < 0) elmo_die_last();
    if (remap_load_model(&sm->model, &sm->opt, weights_path, &sm->vocab, init_vocab) < 0) elmo_die_last();
}

static void free_scoring_model(ScoringModel *sm) {
    model_free(&sm->model);
    vocab_free(&sm->vocab);
    options_free(&sm->opt);
}

/* Vocabulary ids of the batch's sentences, <S> w1 .. wn </S> each, back to back. */
typedef struct {
    int32_t *ids;
    size_t used, cap;
    size_t offset[1 << 16]; /* per batch row (--batch-size is at most 2^16) */
} BatchTargets;

static void targets_add(BatchTargets *t, const Vocab *v, int row, char *const *tokens, int n) {
    if (t->used + (size_t)n + 2 > t->cap) {
        t->cap = 2 * (t->used + (size_t)n + 2);
        t->ids = xrealloc(t->ids, t->cap * sizeof(int32_t));
    }
    t->offset[row] = t->used;
    t->ids[t->used++] = v->bos;
    for (int k = 0; k < n; k++) {
        const int id = vocab_lookup(v, tokens[k]);
        t->ids[t->used++] = id >= 0 ? id : v->unk;
    }
    t->ids[t->used++] = v->eos;
}

/* Sum of the log-probabilities of the N targets from the N rows of x (N, P). */
static double logprob_sum(const BilmModel *m, const float *x, const int32_t *targets, int N, SoftmaxWork *work) {
    const int P = m->opt->proj_dim, V = (int)m->softmax_vocab;
    return -softmax_full(NULL, NULL, NULL, x, targets, N, m->softmax_W, m->softmax_b, P, V, 1.0f, work) * N;
}

int cmd_score(int argc, char **argv) {
    const char *options_path = NULL, *weights_path = NULL, *save_dir = NULL, *vocab_path = NULL, *input = NULL;
    const char *init_vocab = NULL;
    int batch_size = 64, stateless = 0, threads = 0;
    enum { O_OPTIONS = 256, O_WEIGHTS, O_SAVE, O_VOCAB, O_INPUT, O_STATELESS, O_BATCH, O_THREADS, O_INIT_VOCAB };
    static const struct option longopts[] = {
        {"options", required_argument, 0, O_OPTIONS}, {"weights", required_argument, 0, O_WEIGHTS},
        {"save-dir", required_argument, 0, O_SAVE},   {"vocab", required_argument, 0, O_VOCAB},
        {"input", required_argument, 0, O_INPUT},     {"stateless", no_argument, 0, O_STATELESS},
        {"batch-size", required_argument, 0, O_BATCH}, {"threads", required_argument, 0, O_THREADS},
        {"init-vocab", required_argument, 0, O_INIT_VOCAB},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_OPTIONS: options_path = optarg; break;
        case O_WEIGHTS: weights_path = optarg; break;
        case O_SAVE: save_dir = optarg; break;
        case O_VOCAB: vocab_path = optarg; break;
        case O_INPUT: input = optarg; break;
        case O_STATELESS: stateless = 1; break;
        case O_BATCH: batch_size = (int)cli_int("--batch-size", optarg, 1, 1 << 16); break;
        case O_THREADS: threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case O_INIT_VOCAB: init_vocab = optarg; break;
        case 'h': fputs(score_help, stdout); return 0;
        default: fputs(score_help, stderr); return ELMO_EXIT_FAILURE;
        }
    }
    if (optind < argc) elmo_die("score: unexpected argument '%s'", argv[optind]);
    if (!save_dir == !weights_path) elmo_die("score: give either --weights or --save-dir");
    char options_buf[4096], weights_buf[4096];
    if (save_dir) {
        if (checkpoint_latest(save_dir, weights_buf, sizeof weights_buf, NULL) < 0) elmo_die_last();
        weights_path = weights_buf;
        if (!options_path) {
            snprintf(options_buf, sizeof options_buf, "%s/options.json", save_dir);
            options_path = options_buf;
        }
    }
    cli_require("--options", options_path, "score");
    cli_require("--vocab", vocab_path, "score");
    cli_require("--input", input, "score");
    elmo_set_threads(threads);

    ScoringModel sm;
    load_scoring_model(&sm, options_path, weights_path, vocab_path, init_vocab, batch_size);
    const ElmoOptions *o = &sm.opt;
    const int P = o->proj_dim, L = o->n_layers, bidirectional = o->bidirectional;

    SentenceReader reader;
    if (sentence_reader_open(&reader, input) < 0) elmo_die_last();
    Predictor pred;
    predictor_init(&pred, &sm.model, batch_size);
    SentenceBatch batch;
    batch_init(&batch, batch_size, o->max_chars);
    BatchTargets *targets = xcalloc(1, sizeof *targets);
    SoftmaxWork work = {0};
    long n_sentences = 0, n_tokens = 0;
    double total[2] = {0, 0};
    int rc = 0, more = 1;
    while (more) {
        batch_clear(&batch);
        targets->used = 0;
        while (batch.n < batch_size) {
            int got = sentence_reader_next(&reader);
            if (got < 0) rc = -1;
            if (got <= 0) {
                more = 0;
                break;
            }
            targets_add(targets, &sm.vocab, batch.n, reader.tokens.tokens, reader.tokens.n);
            batch_add(&batch, reader.tokens.tokens, reader.tokens.n, reader.line_no);
        }
        if (rc < 0 || batch.n == 0) break;
        batch_build(&batch);
        predictor_run(&pred, batch.ids, batch.n, batch.T, stateless);
        for (int b = 0; b < batch.n; b++) {
            const int n = batch.n_tokens[b] - 2; /* targets per direction: n + 1 */
            const int32_t *ids = targets->ids + targets->offset[b];
            const size_t row = (size_t)b * batch.T;
            /* forward: positions 0..n predict tokens 1..n+1; backward: 1..n+1 predict 0..n */
            const double lp_f = logprob_sum(&sm.model, pred.layer_out[0][L - 1] + row * P, ids + 1, n + 1, &work);
            const double lp_b = bidirectional
                                    ? logprob_sum(&sm.model, pred.layer_out[1][L - 1] + (row + 1) * P, ids, n + 1, &work)
                                    : NAN;
            const double ppl = bidirectional ? exp(-(lp_f + lp_b) / (2.0 * (n + 1))) : exp(-lp_f / (n + 1));
            printf("%ld\t%d\t%.6f\t%.6f\t%.6f\n", n_sentences + b, n, lp_f, lp_b, ppl);
            total[0] += lp_f;
            total[1] += bidirectional ? lp_b : 0.0;
            n_tokens += n;
        }
        n_sentences += batch.n;
    }
    if (rc == 0) {
        const double positions = (double)(n_tokens + n_sentences);
        const double ppl = n_sentences == 0 ? NAN
                           : bidirectional  ? exp(-(total[0] + total[1]) / (2.0 * positions))
                                            : exp(-total[0] / positions);
        printf("# total sentences %ld tokens %ld logprob_forward %.6f logprob_backward %.6f perplexity %.6f\n",
               n_sentences, n_tokens, total[0], bidirectional ? total[1] : NAN, ppl);
        if (fflush(stdout) != 0) rc = elmo_fail("score: cannot write the results: %s", strerror(errno));
    }
    softmax_work_free(&work);
    free(targets->ids);
    free(targets);
    batch_free(&batch);
    predictor_free(&pred);
    sentence_reader_close(&reader);
    free_scoring_model(&sm);
    if (rc < 0) elmo_die_last();
    return 0;
}
