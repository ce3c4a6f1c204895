/* dropout.h - inverted dropout as TF 1.x's nn.dropout: y = (x / keep) * mask with
 * mask = floor(keep + u), u uniform in [0, 1), i.e. 1 with probability keep. */
#ifndef ELMO_DROPOUT_H
#define ELMO_DROPOUT_H

#include <stddef.h>

#include "rng.h"

/* Draws n mask values (0 or 1). */
void dropout_mask(float *mask, size_t n, float keep, Rng *rng);
/* y = (x / keep) * mask; y may be x. */
void dropout_apply(float *y, const float *x, const float *mask, size_t n, float keep);
/* Backward: dx = (dy * mask) / keep; dx may be dy. */
void dropout_backward(float *dx, const float *dy, const float *mask, size_t n, float keep);

#endif
