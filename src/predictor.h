/* predictor.h - stateful prediction with a trained biLM (docs/design.md section 8).
 *
 * Input: prediction character ids (B, T, C) of padded sentences `<S> w.. </S>` (ids
 * shifted by one, all-zero padding tokens). A token with any non-zero id is real; a
 * row's length is its number of real tokens. The forward LSTMs read each row left to
 * right, the backward LSTMs its first `length` tokens right to left.
 *
 * Stateful: row r starts from the state row r ended with in the previous call (padded
 * positions leave the state unchanged); rows >= B keep theirs. stateless = 1 starts
 * from zero state and leaves the stored state alone.
 */
#ifndef ELMO_PREDICTOR_H
#define ELMO_PREDICTOR_H

#include <stdint.h>

#include "arena.h"
#include "charcnn.h"
#include "lstm.h"
#include "model.h"
#include "tokenset.h"

typedef struct {
    const BilmModel *m;
    LstmDims dims;
    int max_batch;              /* rows of the stored state */
    int cap_positions;          /* B*T the buffers hold now (grown on demand) */
    Arena arena;                /* every buffer below (see carve in predictor.c) */
    float *char_table;          /* (262, De): a zero row in front of char_embed */
    CharCnnWork cnn;
    /* results of the last run, natural (left-to-right) order */
    int B, T;
    int *lengths;               /* (max_batch) */
    float *token_emb;           /* (B, T, P): token embeddings (0 at padding) */
    float *layer_out[2][ELMO_MAX_LAYERS]; /* [direction][layer] (B, T, P) */
    /* stored state, per direction and layer */
    float *c[2][ELMO_MAX_LAYERS], *h[2][ELMO_MAX_LAYERS];   /* (max_batch, H), (max_batch, Hs) */
    /* workspaces */
    TokenSet tokens;            /* the distinct real tokens of the batch */
    float *feat, *feat2, *feat3; /* (B*T, F) */
    float *seq_in, *seq_out[ELMO_MAX_LAYERS]; /* (B, T, P) one direction's time order */
    /* per direction: the two directions run concurrently, one thread each, because the
     * per-step GEMMs are too small to share between cores (docs/design.md section 11) */
    float *gates[2];            /* (B*T, 4H) */
    float *m_ws[2], *cpre_ws[2], *hp_ws[2]; /* (B, H), (B, H), (B, Hs) */
    float *zero_c[2], *zero_h[2]; /* stateless runs */
    /* seconds spent so far, per phase (for `elmo bench`) */
    double time_cnn, time_highway_proj, time_lstm;
} Predictor;

void predictor_init(Predictor *p, const BilmModel *m, int max_batch);
/* Bytes of the buffers a run over `positions` (B*T) positions needs, the stored states
 * included: what the predictor would allocate (the guard against batches that cannot
 * fit, and bench's memory figure). */
double predictor_bytes(const Predictor *p, long positions);
void predictor_free(Predictor *p);
/* Runs the biLM on ids (B, T, C); B <= max_batch. Results in token_emb and layer_out. */
void predictor_run(Predictor *p, const int32_t *ids, int B, int T, int stateless);
/* Token embeddings (N, P) of N tokens given as prediction ids (N, C) (steps 1-4).
 * feat, feat2, feat3 (N, F) are scratch buffers. */
void predictor_token_embeddings(Predictor *p, float *out, const int32_t *ids, int N, float *feat, float *feat2,
                                float *feat3);
/* The bilm-tf embedding of row b of the last run without its <S> and </S>:
 * out (L+1, n, 2P) with n = length - 2; layer 0 = [e, e], layer l = [fwd_l, bwd_l]. */
void predictor_sentence_output(const Predictor *p, int b, float *out);

#endif
