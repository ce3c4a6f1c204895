/* softmax.h - the loss of docs/design.md section 4: TensorFlow's sampled softmax (log-uniform
 * unique sampler, expected-count correction, accidental-hit removal) and the full
 * softmax, forward and backward.
 *
 * N positions (rows of x), P = width of x, V vocabulary rows of W (V, P) and b (V),
 * S sampled candidates.
 */
#ifndef ELMO_SOFTMAX_H
#define ELMO_SOFTMAX_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "sparse.h"

/* One set of S distinct candidate ids, drawn once per batch and direction. */
typedef struct {
    int S, V;
    long tries;          /* draws it took, duplicates included */
    int32_t *ids;        /* (S) in the order drawn */
    float *expected;     /* (S) expected counts q(ids[i]) */
    int32_t *table;      /* private to sampler_draw: hash set of the ids drawn so far */
} SampleSet;

void sample_set_init(SampleSet *s, int S, int V);
void sample_set_free(SampleSet *s);
/* Draws k = (floor(exp(u * log(V+1))) - 1) mod V, u = rng_uniform(rng), until S distinct
 * ids are found (TF's LogUniformSampler with unique = true). Requires S <= V. */
void sampler_draw(SampleSet *s, Rng *rng);
/* P(k) = (log(k+2) - log(k+1)) / log(V+1), computed in double, returned as float (TF). */
float sampler_probability(int32_t k, int V);
/* q(k) = -expm1(tries * log1p(-P(k))) in float, or P(k) * S when tries == S (TF). */
float sampler_expected_count(int32_t k, long tries, int S, int V);

/* Scratch space for up to N rows (grown on demand, never shrunk; all zero = empty). */
typedef struct {
    int cap_rows, cap_cols;  /* W_rows, dlogits_W hold cap_rows x cap_cols floats, b_rows 2 x cap_rows */
    size_t cap_logits;       /* floats allocated in logits */
    float *logits;       /* (N, S) + 2N, or (rows of a chunk, V) + rows: see softmax.c */
    float *W_rows;       /* (S, P) gathered rows of W */
    float *b_rows;       /* (S) gathered b, then (S) log q */
    float *dlogits_W;    /* scratch for the W gradient of the gathered rows (S, P) */
} SoftmaxWork;

void softmax_work_free(SoftmaxWork *w);
/* Bytes it holds now (it grows to the largest call so far). */
size_t softmax_work_bytes(const SoftmaxWork *w);

/* The scratch one call needs (the work grows to it): floats of logits, and rows x cols of
 * the gathered block (W_rows, dlogits_W; b_rows holds 2 x rows). */
typedef struct {
    size_t logits;
    int rows, cols;
} SoftmaxScratch;

/* A softmax_sampled call of N rows, width P, S samples; a softmax_full call (backward:
 * with dx, training). */
SoftmaxScratch softmax_sampled_scratch(int N, int P, int S);
SoftmaxScratch softmax_full_scratch(int N, int P, int V, int backward);
/* Bytes of a work grown to s (what softmax_work_bytes then reports). */
size_t softmax_scratch_bytes(SoftmaxScratch s);

/* Sampled softmax (tf.nn.sampled_softmax_loss defaults, num_true = 1). Returns the mean
 * over the N rows of the cross-entropy of the true logit (class 0) among the S+1 logits
 *   true:    x.W[y] + b[y] - log q(y)
 *   sampled: x.W[s] + b[s] - log q(s), and -FLT_MAX added where s == y.
 * When dx is not NULL (training): dx (N, P) is set to d(scale * mean)/dx, and the
 * gradients d(scale * mean)/dW, /db are ADDED into the rows of gW (width P) and gb
 * (width 1) (every target row and every sampled row is touched). */
double softmax_sampled(float *dx, SparseGrad *gW, SparseGrad *gb, const float *x, const int32_t *targets, int N,
                       const float *W, const float *b, int P, const SampleSet *samples, float scale,
                       SoftmaxWork *work);

/* Full softmax: mean over N rows of the cross-entropy of logits x W^T + b (V classes).
 * dx NULL: forward only (evaluation). Otherwise as softmax_sampled, with every row of W
 * touched by the gradient. */
double softmax_full(float *dx, SparseGrad *gW, SparseGrad *gb, const float *x, const int32_t *targets, int N,
                    const float *W, const float *b, int P, int V, float scale, SoftmaxWork *work);

#endif
