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

void highway_backward(float *dx, HighwayParams *grad, const float *dy, const float *x, float *carry,
                      float *transform, const HighwayParams *p, int N, int F) {
    const long n = (long)N * F;
    /* y = g t + (1 - g) x:  dg = dy (t - x), dt = dy g, direct dx = dy (1 - g);
     * g = sigmoid(zc): dzc = dg g (1 - g);  t = relu(zt): dzt = dt where t > 0.
     * dzc overwrites carry, dzt overwrites transform. */
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (long i = 0; i < n; i++) {
        const float g = carry[i], t = transform[i], d = dy[i];
        carry[i] = d * (t - x[i]) * g * (1.0f - g);
        transform[i] = t > 0.0f ? d * g : 0.0f;
        dx[i] = d * (1.0f - g);
    }
    gemm_tn(F, F, N, x, F, carry, F, 1.0f, grad->W_carry, F);
    add_column_sums(grad->b_carry, carry, N, F, F);
    gemm_tn(F, F, N, x, F, transform, F, 1.0f, grad->W_transform, F);
    add_column_sums(grad->b_transform, transform, N, F, F);
    gemm_nt(N, F, F, carry, F, p->W_carry, F, 1.0f, dx, F);
    gemm_nt(N, F, F, transform, F, p->W_transform, F, 1.0f, dx, F);
}
