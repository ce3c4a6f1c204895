/* highway.h - highway layers over the char-CNN output (docs/design.md section 3, step 3):
 *   g = sigmoid(x W_carry + b_carry);  t = relu(x W_transform + b_transform)
 *   y = g * t + (1 - g) * x
 */
#ifndef ELMO_HIGHWAY_H
#define ELMO_HIGHWAY_H

#include "model.h"

/* y (N, F) may be the same buffer as x. carry, transform (N, F) receive g and t. */
void highway_forward(float *y, float *carry, float *transform, const float *x, const HighwayParams *p, int N,
                     int F);

/* Backward (training): given dy (N, F), ADDS the gradients of the four tensors into
 * grad and sets dx (N, F) (which may be the same buffer as dy). carry and transform are
 * g and t from the forward pass and become scratch (overwritten). */
void highway_backward(float *dx, HighwayParams *grad, const float *dy, const float *x, float *carry,
                      float *transform, const HighwayParams *p, int N, int F);

#endif
