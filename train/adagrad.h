/* adagrad.h - the optimiser of docs/design.md section 5: clipping by the global norm of all
 * gradients, then Adagrad (accumulators start at 1.0) on the dense tensors and on the
 * rows of the sparse ones (softmax/W, softmax/b) a batch touched. */
#ifndef ELMO_ADAGRAD_H
#define ELMO_ADAGRAD_H

#include <stddef.h>

#include "sparse.h"

/* sqrt of the sum of squares of the dense gradient and of every held sparse row. */
double global_norm(const float *grad, size_t n, const SparseGrad *const *sparse, int n_sparse);
/* TF's clip_by_global_norm factor: clip * min(1/norm, 1/clip), in float. */
float clip_scale(double norm, float clip);

/* Dense: acc += g^2; w -= lr g / sqrt(acc), with g = scale * grad, over n entries. */
void adagrad_dense(float *w, float *acc, const float *grad, size_t n, float lr, float scale);
/* Row-sparse: the same on the rows held by g; w and acc are the full (V, width) tensors. */
void adagrad_sparse(float *w, float *acc, const SparseGrad *g, float lr, float scale);

#endif
