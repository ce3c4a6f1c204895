/* linalg.c - see linalg.h. */
#include "linalg.h"

void gemm_nn_reference(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                       float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)A[(size_t)i * lda + k] * B[(size_t)k * ldb + j];
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)(s + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}

void linear_forward(float *y, const float *x, const float *W, const float *b, int N, int in, int out) {
#pragma omp parallel for if ((long)N * out > 65536) schedule(static)
    for (int i = 0; i < N; i++)
        for (int j = 0; j < out; j++) y[(size_t)i * out + j] = b[j];
    gemm_nn(N, out, in, x, in, W, out, 1.0f, y, out);
}

void add_column_sums(float *db, const float *dy, int N, int n, int ld) {
    /* blocks of columns, rows read in order (contiguous), accumulated in double */
    enum { BLOCK = 256 };
    const int n_blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for if ((long)N * n > 65536) schedule(static)
    for (int blk = 0; blk < n_blocks; blk++) {
        const int j0 = blk * BLOCK, nj = n - j0 < BLOCK ? n - j0 : BLOCK;
        double acc[BLOCK] = {0};
        for (int i = 0; i < N; i++) {
            const float *row = dy + (size_t)i * ld + j0;
#pragma omp simd
            for (int j = 0; j < nj; j++) acc[j] += row[j];
        }
        for (int j = 0; j < nj; j++) db[j0 + j] += (float)acc[j];
    }
}

void linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int N, int in,
                     int out) {
    gemm_tn(in, out, N, x, in, dy, out, 1.0f, dW, out);
    add_column_sums(db, dy, N, out, out);
    if (dx) gemm_nt(N, in, out, dy, out, W, out, 0.0f, dx, in);
}
