/* trainer.h - one training step of the biLM (docs/design.md sections 3-6), written out by hand:
 * forward with caches, the loss, backward through every layer, global-norm clipping and
 * Adagrad. Also the evaluation forward (full softmax, no dropout).
 *
 * A step reads one batch per direction (B rows of T steps, from its own reader), runs the
 * shared char-CNN/highway/projection on both, each direction's LSTM stack from the state
 * its rows ended the previous batch with, and the loss
 *   total = mean over directions of (mean over the B*T positions of the cross-entropy);
 * gradients are those of total * T. LSTM states carry over, gradients do not.
 */
#ifndef ELMO_TRAINER_H
#define ELMO_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "charcnn.h"
#include "dataset.h"
#include "lstm.h"
#include "model.h"
#include "rng.h"
#include "softmax.h"
#include "sparse.h"
#include "tokenset.h"

typedef enum { TRAINER_TRAIN, TRAINER_EVAL } TrainerMode;

typedef struct Trainer Trainer;
struct Trainer {
    const ElmoOptions *opt;
    BilmModel *model;            /* parameters, softmax (V rows) included */
    TrainerMode mode;
    int B, T, V, n_dirs, L;
    LstmDims dims;
    float keep;                  /* 1 - dropout */
    int use_dropout, use_sampled;
    /* gradients: the dense tensors in the parameter layout, the softmax row-sparse */
    float *grad;
    size_t n_dense;
    BilmModel grad_view;
    SparseGrad grad_softmax_W, grad_softmax_b;
    float *accum;                /* Adagrad accumulators, full layout (softmax included) */
    /* randomness of a step: samples, dropout masks */
    Rng rng;
    SampleSet samples[2];
    float *in_mask[2][ELMO_MAX_LAYERS];   /* (B,T,P) */
    float *out_mask[2];                   /* (B*T,P) */
    /* carried LSTM states and the final states of the last forward */
    float *c_state[2][ELMO_MAX_LAYERS], *h_state[2][ELMO_MAX_LAYERS];
    float *c_final[2][ELMO_MAX_LAYERS], *h_final[2][ELMO_MAX_LAYERS];
    /* activations (N = n_dirs * B * T tokens) */
    int32_t *ids;                /* (N, C) every position's characters, direction by direction */
    TokenSet tokens;             /* the distinct tokens: char-CNN, highway, projection run once each */
    int32_t *targets;            /* (n_dirs, B*T) */
    int32_t *argmax;             /* (N, F) */
    float *feat[ELMO_MAX_HIGHWAY + 1]; /* feat[0] char-CNN output, feat[i+1] highway i output (N, F) */
    float *hw_carry[ELMO_MAX_HIGHWAY], *hw_transform[ELMO_MAX_HIGHWAY]; /* (N, F) */
    float *emb_unique;           /* (distinct tokens, P) token embeddings */
    float *emb;                  /* (N, P) token embedding of every position */
    float *layer_in[2][ELMO_MAX_LAYERS], *layer_out[2][ELMO_MAX_LAYERS]; /* (B,T,P) */
    float *top[2];               /* (B*T,P) top output after dropout */
    LstmCache cache[2][ELMO_MAX_LAYERS];
    LstmBackWork back[2];
    float *dtop[2], *dlayer[2];  /* (B*T,P) */
    float *demb, *demb_unique;   /* (N,P), (distinct tokens,P) */
    float *dfeat, *dpre;         /* (distinct tokens,F) */
    CharCnnWork cnn;
    SoftmaxWork softmax_work;
    double loss[2];              /* per direction, last forward */
    double grad_norm;            /* global norm before clipping, last trainer_step */
    /* fine-tuning: the biLM frozen (only the softmax updated), or its learning rate scaled */
    int softmax_only;
    float lr_scale_dense;        /* 1 unless set */
    long step;                   /* updates done */
    /* between backward and update, when set: the replicas average losses and gradients
     * (replicas_average_gradients) */
    void (*combine)(Trainer *t, void *ctx);
    void *combine_ctx;
    /* the two directions' LSTMs run concurrently, one thread each (with 2 threads: faster
     * than one after the other with both threads in each GEMM); else one after the other
     * with every thread (trainer_init sets it from the thread count) */
    int concurrent_directions;
    Arena arena;                 /* every buffer above but the softmax's own (see carve in trainer.c) */
    /* seconds per phase, for `elmo bench` */
    double time_cnn, time_highway_proj, time_lstm_forward, time_lstm_backward, time_softmax, time_optimizer;
    double time_combine;         /* the replicas' exchange */
};

/* model must have a softmax of V rows. seed drives samples and dropout masks. */
void trainer_init(Trainer *t, BilmModel *model, int B, int T, TrainerMode mode, uint64_t seed);
void trainer_free(Trainer *t);
/* Bytes of every buffer the trainer holds now (its arena, the softmax's gradients and
 * workspace as grown so far); the parameters are the model's. */
size_t trainer_bytes(const Trainer *t);
/* What a trainer of this shape will hold once its first step has grown the softmax's
 * buffers (trainer_bytes then), worked out without allocating any of it: the same carve
 * run on measuring arenas, the sparse gradients and softmax scratch at the size that step
 * grows them to. layout: the model laid out for the run (model_layout is enough; its
 * parameters are not counted). Uses omp_get_max_threads() as trainer_init does (the
 * char-CNN workspaces are per thread).
 * distinct > 0: the most distinct tokens a step's batches will hold (both directions
 * together); `untouched` is then the part of `activations` in rows beyond them, which a
 * run allocates but never touches (calloc'd pages cost no memory until written). */
typedef struct {
    size_t gradient;       /* dense gradient (training) */
    size_t accumulators;   /* Adagrad accumulators, softmax included (training) */
    size_t activations;    /* every per-batch buffer of the arena */
    size_t untouched;      /* of activations: rows beyond `distinct` tokens (0 without) */
    size_t softmax_grads;  /* row-sparse gradients of softmax/W and softmax/b (training) */
    size_t softmax_work;   /* the softmax's scratch */
} TrainerNeed;
void trainer_need(TrainerNeed *need, const BilmModel *layout, int B, int T, TrainerMode mode, long distinct);
/* The sum of trainer_need's parts (untouched rows included): what trainer_bytes reports
 * after the first step. */
size_t trainer_need_bytes(const BilmModel *layout, int B, int T, TrainerMode mode);
/* Draws the step's samples (per direction) and dropout masks. */
void trainer_draw(Trainer *t);
/* Forward (and, with with_grad, backward into the zeroed gradients) on one batch per
 * direction with the randomness last drawn; returns the total loss. The carried states
 * are read, not changed: the final states go to c_final/h_final. */
double trainer_forward_backward(Trainer *t, const LmBatch *const *batches, int with_grad);
/* Makes the final states of the last forward the carried states. */
void trainer_carry_states(Trainer *t);
/* Clips the gradients by their global norm and applies Adagrad; returns the norm. */
double trainer_apply(Trainer *t);
/* draw + forward_backward + combine (when set) + apply + carry; returns the total loss
 * (the replicas' mean with a combine). */
double trainer_step(Trainer *t, const LmBatch *const *batches);
/* When a parameter, an activation of the last forward or a gradient is not finite:
 * describes the first (in that order, table order within each) into buf and returns 1;
 * else 0. */
int trainer_find_nonfinite(const Trainer *t, char *buf, size_t size);
/* Evaluation: forward (full softmax, no dropout) + carry; returns the total loss. */
double trainer_eval_batch(Trainer *t, const LmBatch *const *batches);

#endif
