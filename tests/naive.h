/* naive.h - the biLM written again for the tests, in double precision, loop by loop from
 * the formulas of docs/design.md section 3, sharing nothing with the library but the
 * parameter views. The tests compare the library's float32 results with it. */
#ifndef ELMO_NAIVE_H
#define ELMO_NAIVE_H

#include <stdint.h>

#include "lstm.h"
#include "model.h"

/* Steps 1-4: the token embedding out (P) of one token's training character ids (C). */
void naive_token_embedding(double *out, const int32_t *ids, const BilmModel *m);

/* Step 5, one layer: T steps of B rows from the state (c (B, H), h (B, Hs)), updated in
 * place; out (B, T, P) for x (B, T, P). lengths NULL: every step; otherwise steps
 * t >= lengths[b] output 0 and leave row b's state alone. When not NULL, *cell_clipped
 * and *proj_clipped count the values each clip changed. */
void naive_lstm(double *out, double *c, double *h, const double *x, const int *lengths, int B, int T, int skip,
                const LstmParams *p, const LstmDims *d, int *cell_clipped, int *proj_clipped);

#endif
