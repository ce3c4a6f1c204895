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
/* Combining the gradients of several replicas (train/replicas.c), in two halves around a
 * sum of dense blocks over the replicas:
 * sparse_grad_to_union: ids holds every replica's rows (replica order, each in its order of
 * first touch, n_ids in all); writes their union, in that order without repeats, to order
 * (capacity n_ids) and g's gradient of each union row to block (U x width, zero rows for
 * those g does not hold); returns U. g is left empty.
 * sparse_grad_from_union: g (empty) takes the U rows of order, in that order, with the
 * gradient scale * block. */
int sparse_grad_to_union(SparseGrad *g, const int32_t *ids, size_t n_ids, int32_t *order, float *block);
void sparse_grad_from_union(SparseGrad *g, const int32_t *order, int U, const float *block, float scale);
/* Bytes it holds now (its capacity grows with the rows a batch touches). */
size_t sparse_grad_bytes(const SparseGrad *g);
/* What sparse_grad_bytes reports once `rows` distinct rows have been touched between two
 * clears of a gradient made by sparse_grad_init(g, n_total_rows, width, cap). */
size_t sparse_grad_need_bytes(long n_total_rows, int width, int cap, long rows);

#endif
