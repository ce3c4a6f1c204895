/* dropout.c - see dropout.h. */
#include "dropout.h"

#include <math.h>

void dropout_mask(float *mask, size_t n, float keep, Rng *rng) {
    for (size_t i = 0; i < n; i++) mask[i] = floorf(keep + (float)rng_uniform(rng));
}

void dropout_apply(float *y, const float *x, const float *mask, size_t n, float keep) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) y[i] = (x[i] / keep) * mask[i];
}

void dropout_backward(float *dx, const float *dy, const float *mask, size_t n, float keep) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] = (dy[i] * mask[i]) / keep;
}
