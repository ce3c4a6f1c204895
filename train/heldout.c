/* heldout.c - see heldout.h. */
#include "heldout.h"

#include <math.h>
#include <stdio.h>

#include "common.h"
#include "dataset.h"
#include "replicas.h"
#include "trainer.h"

int heldout_evaluate(const BilmModel *model, const Vocab *vocab, const char *pattern, int batch_size,
                     long max_tokens, int progress, HeldoutResult *r) {
    const ElmoOptions *opt = model->opt;
    const double t_start = elmo_now();
    *r = (HeldoutResult){0};
    if (model->softmax_vocab == 0) return elmo_fail("heldout: the model has no softmax/W: perplexity needs one");
    if (model->softmax_vocab != vocab->size)
        return elmo_fail("heldout: the model's softmax/W has %ld rows but the vocabulary %d tokens",
                         model->softmax_vocab, vocab->size);
    CHECK(batch_size >= 1, "batch_size %d", batch_size);
    const int n_dirs = opt->bidirectional ? 2 : 1;
    LmReader *readers[2] = {NULL, NULL};
    for (int d = 0; d < n_dirs; d++)
        if (lm_reader_open(&readers[d], pattern, vocab, opt->max_chars, d, LM_EVAL, 0, 0) < 0) {
            if (d == 1) lm_reader_close(readers[0]);
            return -1;
        }
    /* Several replicas split each batch by rows (the rows are independent streams), each
     * rank evaluating its share; the batch is then a multiple of their number. */
    const Replicas *rep = replicas();
    const int rows = batch_size / rep->size > 0 ? batch_size / rep->size : 1;
    batch_size = rows * rep->size;
    /* An evaluation-mode trainer only reads the parameters (no gradients, no Adagrad);
     * its arena is zeroed, so the carried states start from zero. */
    Trainer evaluator;
    trainer_init(&evaluator, (BilmModel *)model, rows, 1, TRAINER_EVAL, 0);
    LmBatch batches[2], mine[2];
    const LmBatch *batch_ptrs[2] = {&mine[0], &mine[1]};
    for (int d = 0; d < n_dirs; d++) {
        lm_batch_init(&batches[d], batch_size, 1, opt->max_chars);
        mine[d] = lm_batch_rows(&batches[d], rep->rank * rows, rows);
    }

    /* loss_sum adds the trainer's batch totals in batch order, exactly as `elmo eval`
     * always has, so the printed perplexity stays bit for bit what it was. */
    double loss_sum = 0, dir_sum[2] = {0, 0}, last_log = elmo_now();
    long n_batches = 0;
    int status = 0;
    while (max_tokens <= 0 || n_batches * (long)batch_size < max_tokens) {
        int got = 1;
        for (int d = 0; d < n_dirs && got == 1; d++) got = lm_reader_next(readers[d], &batches[d]);
        if (got < 0) status = -1;
        if (got <= 0) break;
        loss_sum += trainer_eval_batch(&evaluator, batch_ptrs);
        for (int d = 0; d < n_dirs; d++) dir_sum[d] += evaluator.loss[d];
        n_batches++;
        if (progress && elmo_now() - last_log >= 5.0) {
            fprintf(stderr, "heldout: batch %ld, perplexity so far %.3f\n", n_batches, exp(loss_sum / n_batches));
            last_log = elmo_now();
        }
    }
    /* the mean over the replicas of their rows' means: the mean over the whole batch */
    double sums[3] = {loss_sum, dir_sum[0], dir_sum[1]};
    replicas_sum(sums, 3);
    loss_sum = sums[0] / rep->size;
    dir_sum[0] = sums[1] / rep->size;
    dir_sum[1] = sums[2] / rep->size;
    if (status == 0 && n_batches == 0)
        status = elmo_fail("%s: fewer than %d tokens per direction: not one full batch (lower the batch size)",
                           pattern, batch_size);
    if (status == 0) {
        r->batches = n_batches;
        r->tokens = n_batches * (long)batch_size;
        r->loss_forward = dir_sum[0] / n_batches;
        r->loss_backward = n_dirs == 2 ? dir_sum[1] / n_batches : r->loss_forward;
        r->perplexity = exp(loss_sum / n_batches);
        r->perplexity_forward = exp(r->loss_forward);
        r->perplexity_backward = n_dirs == 2 ? exp(r->loss_backward) : r->perplexity_forward;
        if (n_dirs == 1) r->perplexity = r->perplexity_forward; /* the same value: total = loss_0 */
    }
    for (int d = 0; d < n_dirs; d++) {
        lm_batch_free(&batches[d]);
        lm_reader_close(readers[d]);
    }
    trainer_free(&evaluator);
    r->seconds = elmo_now() - t_start;
    return status;
}

int heldout_imbalance(const HeldoutResult *r, char *buf, size_t size) {
    const double f = r->perplexity_forward, b = r->perplexity_backward;
    const int backward_worse = b > HELDOUT_IMBALANCE * f, forward_worse = f > HELDOUT_IMBALANCE * b;
    if (!backward_worse && !forward_worse) return 0;
    snprintf(buf, size,
             "the %s LSTM is far worse than the %s one (forward perplexity %.3f, backward %.3f: more than %g "
             "times): usually a model trained from carried states that cannot start from the zero state prediction "
             "uses; see docs/design.md section 6",
             backward_worse ? "backward" : "forward", backward_worse ? "forward" : "backward", f, b, HELDOUT_IMBALANCE);
    return 1;
}
