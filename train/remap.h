/* remap.h - a stored softmax put to use for another vocabulary, row by token (never by
 * position): the rows of tokens both vocabularies hold are kept bit for bit; a token new
 * to the model gets a row predicted from its own token embedding (char-CNN, highway,
 * projection: what embed-vocab computes) through the affine map [e, 1] -> [W row, b] fitted
 * by least squares (double precision) on the kept tokens; tokens only the old vocabulary
 * has are dropped. Used by train --init-from, eval and score (docs/design.md section 7). */
#ifndef ELMO_REMAP_H
#define ELMO_REMAP_H

#include "model.h"
#include "vocab.h"

typedef struct {
    long kept, added, dropped;  /* rows by token */
    int fitted;                 /* the new rows were predicted (else they keep the model's values) */
    double residual;            /* ||[e,1] A - [W,b]|| / ||[W,b]|| over the kept rows, when fitted */
} SoftmaxRemap;

/* Fills m's softmax (one row per word of vocab; m's other tensors already loaded, for the
 * token embeddings) from the softmax stored in path. The rows' tokens are the file's
 * `vocab` dataset or, when it has none, the words of init_vocab (NULL: refused, naming
 * the file: a vocabulary of the same size is never assumed to match). Fewer than
 * 2 (P + 1) kept rows: no fit, the new rows keep the values m had. */
int remap_load_softmax(BilmModel *m, const char *path, const Vocab *vocab, const char *init_vocab, SoftmaxRemap *r);
/* The same matching for the softmax's Adagrad accumulators (training/adagrad/softmax/W
 * and /b of the file; acc_W (V, P) and acc_b (V) in m's layout): kept rows take theirs,
 * new rows keep the values they have (a fresh 1.0). */
int remap_load_softmax_accumulators(const BilmModel *m, const char *path, const Vocab *vocab, const char *init_vocab,
                                    float *acc_W, float *acc_b);

/* Every row of m's softmax set to its token's embedding, the biases to 0 (a start for a
 * softmax the file does not have: train --softmax-init embeddings). */
void remap_softmax_from_embeddings(BilmModel *m, const Vocab *vocab);
/* A model for evaluating or scoring with vocab: m laid out for it, the file's biLM loaded
 * and its softmax matched by token, a note when any row is new or dropped. */
int remap_load_model(BilmModel *m, const ElmoOptions *o, const char *path, const Vocab *vocab,
                     const char *init_vocab);
/* "softmax: N rows kept, N new (...), N dropped" into buf. */
const char *remap_describe(const SoftmaxRemap *r, char *buf, size_t size);

#endif
