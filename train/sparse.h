/* sparse.h - row-sparse gradients (softmax/W, softmax/b): only the rows a batch touched
 * are held, in order of first touch, so that clipping and Adagrad cost O(rows used),
 * never O(V). */
#ifndef ELMO_SPARSE_H
#define ELMO_SPARSE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int width;           /* floats per row */
    long n_total_rows;   /* rows of the full tensor (V) */
    int n, cap;          /* rows held, capacity */
    int32_t *rows;       /* (n) row ids, in order of first touch */
    float *grad;         /* (cap, width) gradient of each held row */
    int32_t *slot_of;    /* (n_total_rows) slot of each row, -1 = not held */
} SparseGrad;

void sparse_grad_init(SparseGrad *g, long n_total_rows, int width, int cap);
/* The gradient row of `row` (zero-filled when first touched since the last clear). */
float *sparse_grad_row(SparseGrad *g, int32_t row);
/* Forgets every held row (O(rows held)). */
void sparse_grad_clear(SparseGrad *g);
void sparse_grad_free(SparseGrad *g);
/* Bytes it holds now (its capacity grows with the rows a batch touches). */
size_t sparse_grad_bytes(const SparseGrad *g);
/* What sparse_grad_bytes reports once `rows` distinct rows have been touched between two
 * clears of a gradient made by sparse_grad_init(g, n_total_rows, width, cap). */
size_t sparse_grad_need_bytes(long n_total_rows, int width, int cap, long rows);

#endif
