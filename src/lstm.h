/* lstm.h - one LSTM layer with optional projection and clipping (docs/design.md section 3, step 5).
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

#include "arena.h"
#include "model.h"

typedef struct {
    int H, Hs, P, in_dim;        /* cell, state (P or H), output, input widths */
    int has_proj;
    int has_cell_clip, has_proj_clip;
    float cell_clip, proj_clip;
} LstmDims;

LstmDims lstm_dims(const ElmoOptions *o);

/* One position of one layer, the only place the cell's arithmetic is written (prediction
 * and training both run it). gates (4H): in the pre-activations z (i, j, f, o), out the
 * activations sigmoid(i), tanh(j), sigmoid(f + 1), sigmoid(o); c_pre (H) out: the cell
 * before clipping; c (H) out: the clipped cell; m (H) out; c_prev (H) in (may be c). */
void lstm_cell_step(float *gates, float *c_pre, float *c, float *m, const float *c_prev, const LstmDims *d);
/* The step's output from s (Hs): the projection output with a projection, else m. The
 * recurrent state h (Hs) = s clipped by proj_clip; out (P) = h (+ x (P) with skip). */
void lstm_output_step(float *h, float *out, const float *s, const float *x, int skip, const LstmDims *d);

/* Where one quantity of the recurrence lives: element (row b, step t) at
 * p + b * row + t * step. Training keeps every step (row = T * width, step = width);
 * prediction keeps only the current one (row = width, step = 0), overwritten in place. */
typedef struct {
    float *p;
    size_t row, step;
} SeqBuf;

typedef struct {
    float *gates;                 /* (B, T, 4H) always: z, then the activations */
    SeqBuf c_pre, c, m;           /* H wide */
    SeqBuf h_pre, h;              /* Hs wide: projection output before clipping, state */
    const float *c0, *h0;         /* (B, H), (B, Hs): the state before step 0 */
} LstmSeq;

/* The one recurrence: T steps of B rows from (c0, h0), out (B, T, P) the layer output
 * for x (B, T, in). lengths NULL: every step of every row (training's static_rnn);
 * otherwise dynamic_rnn: steps t >= lengths[b] leave row b's state as it was and output
 * zeros (meaningful only with step-0 buffers, where the state is updated in place). */
void lstm_forward(float *out, const LstmSeq *s, const float *x, const int *lengths, int B, int T, int skip,
                  const LstmParams *p, const LstmDims *d);

/* Workspaces of prediction: gates (B*T, 4H); c_pre, m (B, H); h_pre (B, Hs). */
typedef struct {
    float *gates, *c_pre, *m, *h_pre;
} LstmPredictWork;

/* Prediction over T steps of B rows with lengths: c (B, H), h (B, Hs) the state in/out. */
void lstm_predict(float *out, float *c, float *h, const LstmPredictWork *w, const float *x, const int *lengths,
                  int B, int T, int skip, const LstmParams *p, const LstmDims *d);

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

/* Take their buffers from the arena (see arena.h). */
void lstm_cache_carve(LstmCache *c, Arena *a, int B, int T, const LstmDims *d);
void lstm_back_work_carve(LstmBackWork *w, Arena *a, int B, int T, const LstmDims *d);

/* lstm_forward keeping every step in the cache: out (B,T,P) for x (B,T,in) from the state
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
