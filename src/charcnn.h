/* charcnn.h - character embedding, convolution and max-pool (docs/design.md section 3, steps 1-2).
 *
 * For filter k of width w and count n:
 *   y[i, f] = act(max over p in 0..C-w of (sum_{j<w, e<De} E[i, p+j, e] W_k[j, e, f]) + b_k[f])
 * with E[i] = table[ids[i]] (C, De). The filters' outputs are concatenated in order (F).
 *
 * Fast path: the windows of a token are contiguous rows of E, so each chunk of tokens
 * is unfolded into a matrix (rows = windows, w*De columns) and multiplied by W_k in one
 * GEMM. Windows lying entirely in a token's trailing padding all have the same value
 * for every token; it is computed once per call instead of once per window.
 */
#ifndef ELMO_CHARCNN_H
#define ELMO_CHARCNN_H

#include <stdint.h>

#include "arena.h"
#include "model.h"

typedef struct {
    int chunk;           /* tokens per GEMM */
    int n_threads;
    size_t emb_stride, unfold_stride, conv_stride; /* floats per thread */
    float *emb;          /* per thread (chunk, C, De) */
    float *unfold;       /* per thread (chunk * C, w * De) */
    float *conv;         /* per thread (chunk * C, n) */
    int32_t *row_start;  /* per thread (chunk + 1) */
    float *pad_value;    /* (F): value of an all-padding window, before bias */
    /* backward: per-thread partial gradients */
    size_t weight_floats; /* sum over filters of w * De * n */
    float *dweights;     /* per thread (weight_floats): every filter's W, in order */
    float *dtable;       /* per thread (262, De): the table rows */
} CharCnnWork;

/* Takes its buffers from the arena (see arena.h). */
void charcnn_work_carve(CharCnnWork *w, Arena *a, const ElmoOptions *o);

/* out (N, F). ids (N, C) index the rows of table (De wide); pad_id is the id of the
 * padding character in this numbering (CHAR_PAD for training ids, CHAR_PAD + 1 for
 * prediction ids). argmax (N, F), when not NULL, receives the winning window position. */
void charcnn_forward(float *out, int32_t *argmax, const int32_t *ids, int N, const float *table, int pad_id,
                     const BilmModel *m, CharCnnWork *w);

/* Backward of charcnn_forward (training): given dout (N, F), the gradient of the
 * outputs `out`, ADDS the gradients of the filters into grad->conv[k].W, .b and of the
 * table rows into dtable (rows, De). The max-pool routes each gradient to the window that
 * won (argmax, the first maximum, as TF's MaxPoolGrad); relu passes it where out > 0,
 * tanh scales it by 1 - out^2. dpre (N, F) is scratch. The weight gradients are GEMMs over
 * the unfolded windows, as in the forward pass. */
void charcnn_backward(BilmModel *grad, float *dtable, float *dpre, const float *dout, const float *out,
                      const int32_t *argmax, const int32_t *ids, int N, const float *table, const BilmModel *m,
                      CharCnnWork *w);

/* Direct loops, for tests: the same result without GEMM or the padding shortcut. */
void charcnn_forward_reference(float *out, int32_t *argmax, const int32_t *ids, int N, const float *table,
                               const BilmModel *m);

#endif
