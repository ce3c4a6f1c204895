/* linalg.h - row-major matrix products through OpenBLAS, and their naive twins.
 *
 * gemm(C, A, B): C (M,N) = beta * C + A (M,K) . B (K,N), every matrix row-major with
 * its own leading dimension. The transposed variants are what backward passes need.
 */
#ifndef ELMO_LINALG_H
#define ELMO_LINALG_H

#include <cblas.h>

static inline void gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                           float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

/* C (M,N) = beta * C + A^T . B with A stored (K, M): weight gradients X^T dY. */
static inline void gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                           float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

/* C (M,N) = beta * C + A . B^T with B stored (N, K): input gradients dY W^T. */
static inline void gemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                           float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

/* Naive reference of gemm_nn, accumulated in double; for tests only. */
void gemm_nn_reference(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                       float *C, int ldc);

/* y (N, out) = x (N, in) . W (in, out) + b (out). */
void linear_forward(float *y, const float *x, const float *W, const float *b, int N, int in, int out);
/* Backward of linear_forward: ADDS x^T dy into dW and the column sums of dy into db;
 * sets dx = dy W^T (skipped when dx is NULL). */
void linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int N, int in,
                     int out);
/* db (n) += column sums of dy (N, n), accumulated in double. */
void add_column_sums(float *db, const float *dy, int N, int n, int ld);

#endif
