/* heldout.h - perplexity of a biLM on held-out shards (docs/design.md section 6), the loop of
 * `elmo eval`, also meant for `elmo train` between training batches.
 *
 * The evaluation of bilm-tf's test: full softmax, no dropout, T = 1, B = batch_size
 * streams, every shard once in sorted-name order, sentences in file order, LSTM states
 * starting from zero and carried from batch to batch, the final partial batch dropped.
 *   loss_d      = mean over the batches of direction d's mean cross-entropy
 *   perplexity  = exp(mean over the batches of the batch total), the total being the mean
 *                 of the directions' losses (section 4): what `elmo eval` always printed
 */
#ifndef ELMO_HELDOUT_H
#define ELMO_HELDOUT_H

#include <stddef.h>

#include "model.h"
#include "vocab.h"

typedef struct {
    double perplexity;           /* exp(mean of the batch totals) */
    double perplexity_forward;   /* exp(loss_forward) */
    double perplexity_backward;  /* exp(loss_backward) */
    double loss_forward, loss_backward;
    long batches, tokens;        /* tokens = positions evaluated per direction (batches * B) */
    double seconds;              /* wall clock of the whole evaluation */
} HeldoutResult;

/* Perplexity of model (with its softmax of V = vocab->size rows) on the shards matching
 * pattern, as described above. max_tokens > 0 stops after the first batch that brings the
 * positions per direction to max_tokens or more (whole batches only; fewer when the data
 * ends first). A unidirectional model reports its forward figures as all three.
 * progress = 1: a line on stderr every 5 seconds. The model is read, never modified; the
 * caller's thread settings apply. Fails (one line: the pattern, a shard's file:line, or
 * the softmax) when the shards hold less than one batch or cannot be read. */
int heldout_evaluate(const BilmModel *model, const Vocab *vocab, const char *pattern, int batch_size,
                     long max_tokens, int progress, HeldoutResult *r);

/* The factor between the directions' perplexities above which one of them is taken to
 * be broken. */
#define HELDOUT_IMBALANCE 3.0

/* When one direction's perplexity exceeds HELDOUT_IMBALANCE times the other's: writes one
 * line (no newline, no prefix) naming both figures and what it usually means into buf,
 * returns 1; otherwise (and for a unidirectional model) returns 0. */
int heldout_imbalance(const HeldoutResult *r, char *buf, size_t size);

#endif
