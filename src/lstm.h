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

/* Training: static_rnn over all T steps of B rows (no lengths), caching what backward
 * needs. All buffers (B, T, width), row b*T + t. */
typedef struct {
    float *gates;   /* (B,T,4H): sigmoid(i), tanh(j), sigmoid(f + 1), sigmoid(o) */
    float *c_pre;   /* (B,T,H) cell before clipping */
    float *c;       /* (B,T,H) cell after clipping (the state) */
    float *m;       /* (B,T,H) sigmoid(o) tanh(c) */
    float *h_pre;   /* (B,T,Hs) projection before clipping (with a projection) */
    float *h;       /* (B,T,Hs) the recurrent state h_t */
    float *c0, *h0; /* (B,H), (B,Hs) initial state */
} LstmCache;

/* Scratch of the backward pass. */
typedef struct {
    float *dz;      /* (B,T,4H) gradients of the gate pre-activations */
    float *dh_pre;  /* (B,T,Hs) gradients of the projection output before clipping */
    float *h_prev;  /* (B,T,Hs) h_{t-1} of every position */
    float *dh, *dc, *dm; /* (B,Hs), (B,H), (B,H) running gradients */
} LstmBackWork;

/* Both return the bytes they allocated (memory accounting). */
size_t lstm_cache_init(LstmCache *c, int B, int T, const LstmDims *d);
void lstm_cache_free(LstmCache *c);
size_t lstm_back_work_init(LstmBackWork *w, int B, int T, const LstmDims *d);
void lstm_back_work_free(LstmBackWork *w);

/* out (B,T,P) = the layer's outputs (h_t, + x_t with skip) for x (B,T,in) from the state
 * (c0, h0) (copied into the cache); c_final, h_final (B,H), (B,Hs) receive the state
 * after step T-1. */
void lstm_train_forward(float *out, float *c_final, float *h_final, LstmCache *cache, const float *x,
                        const float *c0, const float *h0, int B, int T, int skip, const LstmParams *p,
                        const LstmDims *d);
/* Backpropagation through the T steps (no gradient into the initial state): given dout
 * (B,T,P), ADDS the weight gradients into grad and sets dx (B,T,in). Clipping passes the
 * gradient where the value was inside [-clip, clip] (TF's clip_by_value). */
void lstm_backward(float *dx, LstmParams *grad, const float *dout, const float *x, const LstmCache *cache, int B,
                   int T, int skip, const LstmParams *p, const LstmDims *d, LstmBackWork *w);

#endif
