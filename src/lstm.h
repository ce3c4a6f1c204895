/* lstm.h - one LSTM layer with optional projection and clipping (SPEC.md section 3, step 5).
 *
 *   z = [x_t, h_{t-1}] W + B                       W: (in + Hs, 4H), gates i, j, f, o
 *   c_t = sigmoid(f + 1) c_{t-1} + sigmoid(i) tanh(j)      (forget bias 1.0, as TF)
 *   c_t = clip(c_t, +-cell_clip)
 *   m_t = sigmoid(o) tanh(c_t)
 *   h_t = clip(m_t W_P, +-proj_clip)   when P < H, else h_t = m_t
 *   output_t = h_t (+ x_t with a skip connection)
 *
 * The input half x W[:in] + B is one GEMM over all B*T positions; each step then adds
 * h_{t-1} W[in:] with one GEMM over the batch.
 */
#ifndef ELMO_LSTM_H
#define ELMO_LSTM_H

#include "model.h"

typedef struct {
    int H, Hs, P, in_dim;        /* cell, state (P or H), output, input widths */
    int has_proj;
    int has_cell_clip, has_proj_clip;
    float cell_clip, proj_clip;
} LstmDims;

LstmDims lstm_dims(const ElmoOptions *o);

/* The gate non-linearities and the cell update for one position:
 * z (4H) pre-activations (i, j, f, o); c (H) in: previous cell, out: new cell; m (H) out. */
void lstm_cell_step(float *restrict c, float *restrict m, const float *restrict z, const LstmDims *d);

/* Prediction over T steps of B rows (dynamic_rnn with sequence lengths): positions
 * t >= lengths[b] leave the state (c, h) of row b as it was and output zeros.
 *   out (B, T, P)   x (B, T, in)   c (B, H), h (B, Hs): state in/out
 *   gates (B*T, 4H), m (B, H), hp (B, Hs): workspaces
 */
void lstm_predict(float *out, float *c, float *h, float *gates, float *m, float *hp, const float *x,
                  const int *lengths, int B, int T, int skip, const LstmParams *p, const LstmDims *d);

#endif
