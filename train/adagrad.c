/* adagrad.c - see adagrad.h. */
#include "adagrad.h"

#include <math.h>

#define NORM_BLOCK 65536

double global_norm(const float *grad, size_t n, const SparseGrad *const *sparse, int n_sparse) {
    /* fixed blocks summed in order: the same norm, bit for bit, for any thread count */
    const size_t n_blocks = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    double partial[4096];
    double sum = 0;
    for (size_t first = 0; first < n_blocks; first += 4096) {
        const size_t count = n_blocks - first < 4096 ? n_blocks - first : 4096;
#pragma omp parallel for if (count > 1) schedule(static)
        for (size_t b = 0; b < count; b++) {
            const size_t lo = (first + b) * NORM_BLOCK, hi = lo + NORM_BLOCK < n ? lo + NORM_BLOCK : n;
            double s = 0;
            for (size_t i = lo; i < hi; i++) s += (double)grad[i] * grad[i];
            partial[b] = s;
        }
        for (size_t b = 0; b < count; b++) sum += partial[b];
    }
    for (int s = 0; s < n_sparse; s++) {
        const SparseGrad *g = sparse[s];
        const size_t m = (size_t)g->n * g->width;
        for (size_t i = 0; i < m; i++) sum += (double)g->grad[i] * g->grad[i];
    }
    return sqrt(sum);
}

float clip_scale(double norm, float clip) {
    const float inv_norm = 1.0f / (float)norm, inv_clip = 1.0f / clip;
    return clip * (inv_norm < inv_clip ? inv_norm : inv_clip);
}

void adagrad_dense(float *w, float *acc, const float *grad, size_t n, float lr, float scale) {
#pragma omp parallel for simd if (n > 65536) schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float g = grad[i] * scale;
        acc[i] += g * g;
        w[i] -= lr * g / sqrtf(acc[i]);
    }
}

void adagrad_sparse(float *w, float *acc, const SparseGrad *g, float lr, float scale) {
    const int width = g->width;
#pragma omp parallel for if ((long)g->n * width > 65536) schedule(static)
    for (int s = 0; s < g->n; s++) {
        const size_t row = (size_t)g->rows[s] * width;
        adagrad_dense(w + row, acc + row, g->grad + (size_t)s * width, (size_t)width, lr, scale);
    }
}
