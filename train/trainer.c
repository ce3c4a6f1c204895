/* trainer.c - see trainer.h. */
#include "trainer.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adagrad.h"
#include "chars.h"
#include "common.h"
#include "dropout.h"
#include "highway.h"
#include "linalg.h"

/* Every buffer of the trainer but the softmax's row-sparse gradients and workspace,
 * which grow with what a batch touches (see arena.h: run twice, measuring then
 * handing out). In three parts, so that trainer_need can tell them apart: the dense
 * gradient, the Adagrad accumulators (training only), then everything per batch. */
static void carve_gradient(void *ctx, Arena *a) {
    Trainer *t = ctx;
    t->grad = arena_floats(a, t->n_dense);
}

static void carve_accumulators(void *ctx, Arena *a) {
    Trainer *t = ctx;
    t->accum = arena_floats(a, t->model->n_floats);
}

/* The buffers with a row per distinct token of a step (N rows at most): a step touches
 * only the rows of the tokens it has, so the pages of the rest are never mapped (the
 * arena is calloc'd). */
static void carve_token_rows(Trainer *t, Arena *a, size_t rows) {
    const ElmoOptions *o = t->opt;
    const int F = o->total_filters, P = o->proj_dim;
    t->argmax = arena_ints(a, rows * F);
    for (int i = 0; i <= o->n_highway; i++) t->feat[i] = arena_floats(a, rows * F);
    for (int i = 0; i < o->n_highway; i++) {
        t->hw_carry[i] = arena_floats(a, rows * F);
        t->hw_transform[i] = arena_floats(a, rows * F);
    }
    t->emb_unique = arena_floats(a, rows * P);
    if (t->mode == TRAINER_TRAIN) {
        t->demb_unique = arena_floats(a, rows * P);
        t->dfeat = arena_floats(a, rows * F);
        t->dpre = arena_floats(a, rows * F);
    }
}

static void carve_activations(void *ctx, Arena *a) {
    Trainer *t = ctx;
    const ElmoOptions *o = t->opt;
    const int B = t->B, T = t->T, C = o->max_chars, P = o->proj_dim;
    const int H = t->dims.H, Hs = t->dims.Hs, train = t->mode == TRAINER_TRAIN;
    const size_t BT = (size_t)B * T, N = (size_t)t->n_dirs * BT;
    for (int d = 0; d < t->n_dirs; d++) {
        for (int l = 0; l < t->L; l++) {
            t->c_state[d][l] = arena_floats(a, (size_t)B * H);
            t->h_state[d][l] = arena_floats(a, (size_t)B * Hs);
            t->c_final[d][l] = arena_floats(a, (size_t)B * H);
            t->h_final[d][l] = arena_floats(a, (size_t)B * Hs);
            t->layer_in[d][l] = arena_floats(a, BT * P);
            t->layer_out[d][l] = arena_floats(a, BT * P);
            lstm_cache_carve(&t->cache[d][l], a, B, T, &t->dims);
            if (t->use_dropout) t->in_mask[d][l] = arena_floats(a, BT * P);
        }
        t->top[d] = arena_floats(a, BT * P);
        if (t->use_dropout) t->out_mask[d] = arena_floats(a, BT * P);
        if (train) {
            lstm_back_work_carve(&t->back[d], a, B, T, &t->dims);
            t->dtop[d] = arena_floats(a, BT * P);
            t->dlayer[d] = arena_floats(a, BT * P);
        }
    }
    t->ids = arena_ints(a, N * C);
    token_set_carve(&t->tokens, a, (int)N, C);
    t->targets = arena_ints(a, N);
    carve_token_rows(t, a, N);
    t->emb = arena_floats(a, N * P);
    if (train) t->demb = arena_floats(a, N * P);
    charcnn_work_carve(&t->cnn, a, o);
}

static void carve(void *ctx, Arena *a) {
    Trainer *t = ctx;
    if (t->mode == TRAINER_TRAIN) {
        carve_gradient(t, a);
        carve_accumulators(t, a);
    }
    carve_activations(t, a);
}

/* The fields the carve functions and the softmax sizes read. */
static void set_shape(Trainer *t, BilmModel *model, int B, int T, TrainerMode mode) {
    const ElmoOptions *o = model->opt;
    CHECK(model->softmax_vocab > 0, "the trainer needs a model with a softmax");
    t->opt = o;
    t->model = model;
    t->mode = mode;
    t->B = B;
    t->T = T;
    t->V = (int)model->softmax_vocab;
    t->n_dirs = o->bidirectional ? 2 : 1;
    t->L = o->n_layers;
    t->dims = lstm_dims(o);
    t->keep = 1.0f - o->dropout;
    t->use_dropout = mode == TRAINER_TRAIN && o->dropout > 0.0f;
    t->use_sampled = mode == TRAINER_TRAIN && o->sample_softmax;
    t->n_dense = model_dense_floats(model);
}

/* Rows the softmax's sparse gradients start with: every target and sample of a step. */
static int softmax_grad_rows(const Trainer *t) {
    return (int)(2 * (size_t)t->B * t->T + 2 * t->opt->n_negative_samples);
}

void trainer_init(Trainer *t, BilmModel *model, int B, int T, TrainerMode mode, uint64_t seed) {
    const ElmoOptions *o = model->opt;
    memset(t, 0, sizeof *t);
    set_shape(t, model, B, T, mode);
    rng_seed(&t->rng, seed);
    t->lr_scale_dense = 1.0f;
    /* measured (docs/design.md section 11): with 2 threads the directions side by side beat
     * one after the other; with more, each direction's GEMMs and loops take them all */
    t->concurrent_directions = t->n_dirs == 2 && omp_get_max_threads() == 2;
    arena_build(&t->arena, carve, t);
    if (mode == TRAINER_TRAIN) {
        model_view(&t->grad_view, model, t->grad, t->n_dense);
        const int rows = softmax_grad_rows(t);
        sparse_grad_init(&t->grad_softmax_W, t->V, o->proj_dim, rows);
        sparse_grad_init(&t->grad_softmax_b, t->V, 1, rows);
        for (size_t i = 0; i < model->n_floats; i++) t->accum[i] = 1.0f;
        if (t->use_sampled) {
            CHECK(o->n_negative_samples <= t->V, "more samples than vocabulary");
            for (int d = 0; d < t->n_dirs; d++) sample_set_init(&t->samples[d], o->n_negative_samples, t->V);
        }
    }
}

size_t trainer_bytes(const Trainer *t) {
    size_t bytes = t->arena.size + softmax_work_bytes(&t->softmax_work);
    if (t->mode == TRAINER_TRAIN) bytes += sparse_grad_bytes(&t->grad_softmax_W) + sparse_grad_bytes(&t->grad_softmax_b);
    return bytes;
}

typedef struct {
    Trainer *t;
    size_t rows;
} TokenRows;

static void carve_token_rows_of(void *ctx, Arena *a) {
    TokenRows *r = ctx;
    carve_token_rows(r->t, a, r->rows);
}

void trainer_need(TrainerNeed *need, const BilmModel *layout, int B, int T, TrainerMode mode, long distinct) {
    Trainer t;
    memset(&t, 0, sizeof t);
    set_shape(&t, (BilmModel *)layout, B, T, mode); /* the carve functions only read the model's sizes */
    const ElmoOptions *o = t.opt;
    const int P = o->proj_dim, BT = B * T, train = mode == TRAINER_TRAIN;
    memset(need, 0, sizeof *need);
    if (train) {
        need->gradient = arena_measure(carve_gradient, &t);
        need->accumulators = arena_measure(carve_accumulators, &t);
    }
    need->activations = arena_measure(carve_activations, &t);
    CHECK(need->gradient + need->accumulators + need->activations == arena_measure(carve, &t),
          "the trainer's carve is not its three parts");
    const size_t N = (size_t)t.n_dirs * BT;
    if (distinct > 0 && (size_t)distinct < N) {
        TokenRows all = {&t, N}, used = {&t, (size_t)distinct};
        need->untouched = arena_measure(carve_token_rows_of, &all) - arena_measure(carve_token_rows_of, &used);
    }
    SoftmaxScratch scratch;
    if (t.use_sampled) scratch = softmax_sampled_scratch(BT, P, o->n_negative_samples);
    else scratch = softmax_full_scratch(BT, P, t.V, train);
    need->softmax_work = softmax_scratch_bytes(scratch);
    if (train) {
        /* the rows a step touches: each direction's samples and targets, or all V */
        long rows = t.use_sampled ? (long)t.n_dirs * (o->n_negative_samples + BT) : t.V;
        if (rows > t.V) rows = t.V;
        const int cap = softmax_grad_rows(&t);
        need->softmax_grads = sparse_grad_need_bytes(t.V, P, cap, rows) + sparse_grad_need_bytes(t.V, 1, cap, rows);
    }
}

size_t trainer_need_bytes(const BilmModel *layout, int B, int T, TrainerMode mode) {
    TrainerNeed n;
    trainer_need(&n, layout, B, T, mode, 0);
    return n.gradient + n.accumulators + n.activations + n.softmax_grads + n.softmax_work;
}

void trainer_free(Trainer *t) {
    if (t->mode == TRAINER_TRAIN) {
        sparse_grad_free(&t->grad_softmax_W);
        sparse_grad_free(&t->grad_softmax_b);
    }
    if (t->use_sampled)
        for (int d = 0; d < t->n_dirs; d++) sample_set_free(&t->samples[d]);
    softmax_work_free(&t->softmax_work);
    arena_free(&t->arena);
    memset(t, 0, sizeof *t);
}

void trainer_draw(Trainer *t) {
    const size_t BTP = (size_t)t->B * t->T * t->opt->proj_dim;
    for (int d = 0; d < t->n_dirs; d++) {
        if (t->use_sampled) sampler_draw(&t->samples[d], &t->rng);
        if (t->use_dropout) {
            for (int l = 0; l < t->L; l++) dropout_mask(t->in_mask[d][l], BTP, t->keep, &t->rng);
            dropout_mask(t->out_mask[d], BTP, t->keep, &t->rng);
        }
    }
}

/* Char-CNN, highway layers and projection, once per distinct token of the batch (both
 * directions at once); every position then takes its token's embedding. */
static void token_embeddings_forward(Trainer *t, int N) {
    const BilmModel *m = t->model;
    const ElmoOptions *o = t->opt;
    const int F = o->total_filters, P = o->proj_dim;
    const double t0 = elmo_now();
    token_set_build(&t->tokens, t->ids, N, 0);
    const int U = t->tokens.n;
    charcnn_forward(t->feat[0], t->argmax, t->tokens.ids, U, m->char_embed, CHAR_PAD, m, &t->cnn);
    const double t1 = elmo_now();
    t->time_cnn += t1 - t0;
    for (int i = 0; i < o->n_highway; i++)
        highway_forward(t->feat[i + 1], t->hw_carry[i], t->hw_transform[i], t->feat[i], &m->highway[i], U, F);
    if (m->W_proj) linear_forward(t->emb_unique, t->feat[o->n_highway], m->W_proj, m->b_proj, U, F, P);
    else memcpy(t->emb_unique, t->feat[o->n_highway], (size_t)U * F * sizeof(float));
#pragma omp parallel for if ((long)N * P > 65536) schedule(static)
    for (int i = 0; i < N; i++)
        memcpy(t->emb + (size_t)i * P, t->emb_unique + (size_t)t->tokens.index_of[i] * P, (size_t)P * sizeof(float));
    t->time_highway_proj += elmo_now() - t1;
}

static void token_embeddings_backward(Trainer *t, int N) {
    const BilmModel *m = t->model;
    const ElmoOptions *o = t->opt;
    const int F = o->total_filters, P = o->proj_dim, U = t->tokens.n;
    BilmModel *g = &t->grad_view;
    const double t0 = elmo_now();
    /* a token's gradient is the sum over the positions it fills (in position order) */
    memset(t->demb_unique, 0, (size_t)U * P * sizeof(float));
    for (int i = 0; i < N; i++) {
        float *du = t->demb_unique + (size_t)t->tokens.index_of[i] * P;
        const float *d = t->demb + (size_t)i * P;
        for (int k = 0; k < P; k++) du[k] += d[k];
    }
    if (m->W_proj)
        linear_backward(t->dfeat, g->W_proj, g->b_proj, t->demb_unique, t->feat[o->n_highway], m->W_proj, U, F, P);
    else memcpy(t->dfeat, t->demb_unique, (size_t)U * F * sizeof(float));
    for (int i = o->n_highway - 1; i >= 0; i--)
        highway_backward(t->dfeat, &g->highway[i], t->dfeat, t->feat[i], t->hw_carry[i], t->hw_transform[i],
                         &m->highway[i], U, F);
    const double t1 = elmo_now();
    charcnn_backward(g, g->char_embed, t->dpre, t->dfeat, t->feat[0], t->argmax, t->tokens.ids, U, m->char_embed, m,
                     &t->cnn);
    t->time_highway_proj += t1 - t0;
    t->time_cnn += elmo_now() - t1;
}

/* The LSTM stack of direction d over its token embeddings; the top output after dropout
 * goes to t->top[d]. */
static void lstm_stack_forward(Trainer *t, int d) {
    const ElmoOptions *o = t->opt;
    const size_t BTP = (size_t)t->B * t->T * o->proj_dim;
    const float *x = t->emb + (size_t)d * BTP;
    for (int l = 0; l < t->L; l++) {
        if (t->use_dropout) dropout_apply(t->layer_in[d][l], x, t->in_mask[d][l], BTP, t->keep);
        else memcpy(t->layer_in[d][l], x, BTP * sizeof(float));
        lstm_train_forward(t->layer_out[d][l], t->c_final[d][l], t->h_final[d][l], &t->cache[d][l], t->layer_in[d][l],
                           t->c_state[d][l], t->h_state[d][l], t->B, t->T, o->use_skip_connections && l > 0,
                           &t->model->lstm[d][l], &t->dims);
        x = t->layer_out[d][l];
    }
    if (t->use_dropout) dropout_apply(t->top[d], x, t->out_mask[d], BTP, t->keep);
    else memcpy(t->top[d], x, BTP * sizeof(float));
}

static void lstm_stack_backward(Trainer *t, int d) {
    const ElmoOptions *o = t->opt;
    const size_t BTP = (size_t)t->B * t->T * o->proj_dim;
    float *dout = t->dtop[d], *dx = t->dlayer[d];
    if (t->use_dropout) dropout_backward(dout, dout, t->out_mask[d], BTP, t->keep);
    for (int l = t->L - 1; l >= 0; l--) {
        lstm_backward(dx, &t->grad_view.lstm[d][l], dout, t->layer_in[d][l], &t->cache[d][l], t->B, t->T,
                      o->use_skip_connections && l > 0, &t->model->lstm[d][l], &t->dims, &t->back[d]);
        float *below = l == 0 ? t->demb + (size_t)d * BTP : dout; /* dout is free again */
        if (t->use_dropout) dropout_backward(below, dx, t->in_mask[d][l], BTP, t->keep);
        else memcpy(below, dx, BTP * sizeof(float));
    }
}

double trainer_forward_backward(Trainer *t, const LmBatch *const *batches, int with_grad) {
    const ElmoOptions *o = t->opt;
    const int B = t->B, T = t->T, C = o->max_chars, P = o->proj_dim;
    const size_t BT = (size_t)B * T;
    const int N = (int)(t->n_dirs * BT);
    CHECK(!with_grad || t->mode == TRAINER_TRAIN, "gradients need a training trainer");
    for (int d = 0; d < t->n_dirs; d++) {
        CHECK(batches[d]->B == B && batches[d]->T == T && batches[d]->C == C, "batch shape");
        memcpy(t->ids + d * BT * C, batches[d]->chars, BT * C * sizeof(int32_t));
        memcpy(t->targets + d * BT, batches[d]->targets, BT * sizeof(int32_t));
    }
    token_embeddings_forward(t, N);
    double t0 = elmo_now();
    /* the directions' LSTMs are independent: one thread each, or all threads for each in turn */
#pragma omp parallel for num_threads(2) schedule(static, 1) if (t->concurrent_directions)
    for (int d = 0; d < t->n_dirs; d++) lstm_stack_forward(t, d);
    t->time_lstm_forward += elmo_now() - t0;
    t0 = elmo_now();

    if (with_grad) {
        memset(t->grad, 0, t->n_dense * sizeof(float));
        sparse_grad_clear(&t->grad_softmax_W);
        sparse_grad_clear(&t->grad_softmax_b);
    }
    const float scale = (float)T / (float)t->n_dirs; /* d(total * T) */
    double total = 0;
    for (int d = 0; d < t->n_dirs; d++) {
        float *dx = with_grad ? t->dtop[d] : NULL;
        const int32_t *targets = t->targets + d * BT;
        if (t->use_sampled)
            t->loss[d] = softmax_sampled(dx, &t->grad_softmax_W, &t->grad_softmax_b, t->top[d], targets, (int)BT,
                                         t->model->softmax_W, t->model->softmax_b, P, &t->samples[d], scale,
                                         &t->softmax_work);
        else
            t->loss[d] = softmax_full(dx, &t->grad_softmax_W, &t->grad_softmax_b, t->top[d], targets, (int)BT,
                                      t->model->softmax_W, t->model->softmax_b, P, t->V, scale, &t->softmax_work);
        total += t->loss[d] / t->n_dirs;
    }
    t->time_softmax += elmo_now() - t0;
    if (!with_grad || t->softmax_only) return total; /* a frozen biLM needs no gradient below the softmax */

    t0 = elmo_now();
#pragma omp parallel for num_threads(2) schedule(static, 1) if (t->concurrent_directions)
    for (int d = 0; d < t->n_dirs; d++) lstm_stack_backward(t, d);
    t->time_lstm_backward += elmo_now() - t0;
    token_embeddings_backward(t, N);
    return total;
}

void trainer_carry_states(Trainer *t) {
    for (int d = 0; d < t->n_dirs; d++)
        for (int l = 0; l < t->L; l++) {
            memcpy(t->c_state[d][l], t->c_final[d][l], (size_t)t->B * t->dims.H * sizeof(float));
            memcpy(t->h_state[d][l], t->h_final[d][l], (size_t)t->B * t->dims.Hs * sizeof(float));
        }
}

double trainer_apply(Trainer *t) {
    const double t0 = elmo_now();
    const SparseGrad *sparse[2] = {&t->grad_softmax_W, &t->grad_softmax_b};
    const double norm = global_norm(t->grad, t->n_dense, sparse, 2);
    const float scale = clip_scale(norm, t->opt->all_clip_norm_val), lr = t->opt->learning_rate;
    BilmModel *m = t->model;
    if (!t->softmax_only) adagrad_dense(m->data, t->accum, t->grad, t->n_dense, lr * t->lr_scale_dense, scale);
    const size_t offset_W = (size_t)(m->softmax_W - m->data), offset_b = (size_t)(m->softmax_b - m->data);
    adagrad_sparse(m->softmax_W, t->accum + offset_W, &t->grad_softmax_W, lr, scale);
    adagrad_sparse(m->softmax_b, t->accum + offset_b, &t->grad_softmax_b, lr, scale);
    t->step++;
    t->time_optimizer += elmo_now() - t0;
    return norm;
}

double trainer_step(Trainer *t, const LmBatch *const *batches) {
    trainer_draw(t);
    double loss = trainer_forward_backward(t, batches, 1);
    if (t->combine) {
        const double t0 = elmo_now();
        t->combine(t, t->combine_ctx);
        t->time_combine += elmo_now() - t0;
        loss = 0;
        for (int d = 0; d < t->n_dirs; d++) loss += t->loss[d] / t->n_dirs; /* as the forward adds them */
    }
    t->grad_norm = trainer_apply(t);
    trainer_carry_states(t);
    return loss;
}

double trainer_eval_batch(Trainer *t, const LmBatch *const *batches) {
    double loss = trainer_forward_backward(t, batches, 0);
    trainer_carry_states(t);
    return loss;
}

/* Index of the first non-finite value of x (n floats), or -1. */
static long first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (long)i;
    return -1;
}

int trainer_find_nonfinite(const Trainer *t, char *buf, size_t size) {
    const BilmModel *m = t->model;
    long at;
    for (int i = 0; i < m->n_entries; i++) {
        const ParamEntry *e = &m->entries[i];
        if ((at = first_nonfinite(m->data + e->offset, e->size)) >= 0) {
            snprintf(buf, size, "parameter %s (value %ld: %g)", e->name, at, m->data[e->offset + at]);
            return 1;
        }
    }
    /* the forward pass in order: token embeddings, each layer, the top output */
    const size_t BTP = (size_t)t->B * t->T * t->opt->proj_dim;
    if ((at = first_nonfinite(t->emb, (size_t)t->n_dirs * BTP)) >= 0) {
        snprintf(buf, size, "activation token embeddings (value %ld)", at);
        return 1;
    }
    for (int d = 0; d < t->n_dirs; d++)
        for (int l = 0; l < t->L; l++)
            if ((at = first_nonfinite(t->layer_out[d][l], BTP)) >= 0) {
                snprintf(buf, size, "activation LSTM layer %d, direction %d (value %ld)", l, d, at);
                return 1;
            }
    if (t->mode != TRAINER_TRAIN) return 0;
    for (int i = 0; i < m->n_entries; i++) {
        const ParamEntry *e = &m->entries[i];
        if (e->row_sparse) continue;
        if ((at = first_nonfinite(t->grad + e->offset, e->size)) >= 0) {
            snprintf(buf, size, "gradient of %s (value %ld: %g)", e->name, at, t->grad[e->offset + at]);
            return 1;
        }
    }
    const SparseGrad *sparse[2] = {&t->grad_softmax_W, &t->grad_softmax_b};
    const char *names[2] = {"softmax/W", "softmax/b"};
    for (int k = 0; k < 2; k++)
        if ((at = first_nonfinite(sparse[k]->grad, (size_t)sparse[k]->n * sparse[k]->width)) >= 0) {
            snprintf(buf, size, "gradient of %s (row %d)", names[k], sparse[k]->rows[at / sparse[k]->width]);
            return 1;
        }
    return 0;
}
