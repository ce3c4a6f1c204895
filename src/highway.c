/* highway.c - see highway.h. */
#include "highway.h"

#include "linalg.h"
#include "mathfn.h"

void highway_forward(float *y, float *carry, float *transform, const float *x, const HighwayParams *p, int N,
                     int F) {
    linear_forward(carry, x, p->W_carry, p->b_carry, N, F, F);
    linear_forward(transform, x, p->W_transform, p->b_transform, N, F, F);
    const long n = (long)N * F;
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (long i = 0; i < n; i++) {
        float g = fast_sigmoidf(carry[i]);
        float t = transform[i] > 0.0f ? transform[i] : 0.0f;
        carry[i] = g;
        transform[i] = t;
        y[i] = g * t + (1.0f - g) * x[i];
    }
}
