/* test_train.c - the whole training step: the model's loss against finite differences
 * for every parameter tensor over the option combinations of docs/design.md (sections 1, 3), one Adagrad step
 * by hand, and Adagrad's sparse and dense forms agreeing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adagrad.h"
#include "chars.h"
#include "common.h"
#include "dataset.h"
#include "model.h"
#include "options.h"
#include "rng.h"
#include "testutil.h"
#include "trainer.h"

/* See test_gradients.c for the choice of step and tolerance. The loss here is a sum of
 * 2*B*T float cross-entropies (~12 in all): its rounding (~1e-6) over 2h = 2e-3 makes each
 * difference uncertain by ~5e-4, so 1e-3 per entry is forgiven; a wrong term in a backward
 * pass is off by far more (the mutations tried on test_gradients.c give 0.1 and up). */
#define TOL 1e-2
#define NOISE 1e-3

typedef struct {
    Trainer *t;
    const LmBatch *const *batches;
} LossCtx;

/* The quantity whose gradients the trainer computes: total * T. */
static double model_loss(void *ctx) {
    LossCtx *c = ctx;
    return trainer_forward_backward(c->t, c->batches, 0) * c->t->T;
}

/* Random words (as character ids) and targets for one direction. */
static void random_batch(LmBatch *b, int V, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    char word[16];
    for (int i = 0; i < b->B * b->T; i++) {
        int len = 1 + (int)(rng_next(&r) % 9);
        for (int k = 0; k < len; k++) word[k] = (char)('a' + rng_next(&r) % 26);
        word[len] = '\0';
        chars_encode(i % 7 == 0 ? "<S>" : word, b->C, b->chars + (size_t)i * b->C);
        b->targets[i] = (int32_t)(rng_next(&r) % V);
    }
}

typedef struct {
    const char *label;
    const char *char_cnn; /* activation, filters, n_highway */
    const char *lstm;     /* dim, projection, clips, skip */
    const char *training; /* dropout, sample_softmax, ... */
    int expect_cell_clip; /* the cell clip bites somewhere */
} Case;

static void check_case(const Case *k) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"char_cnn\": {\"embedding\": {\"dim\": 3}, \"max_characters_per_token\": 8, \"n_characters\": 261, %s},"
             " \"lstm\": {\"n_layers\": 2, %s}, \"batch_size\": 2, \"unroll_steps\": 4, \"n_epochs\": 1,"
             " \"n_train_tokens\": 100, \"n_negative_samples_batch\": 5, %s}",
             k->char_cnn, k->lstm, k->training);
    ElmoOptions o;
    assert_int_equal(options_parse(&o, text, k->label), 0);
    const int V = 17;
    BilmModel m;
    model_init_layout(&m, &o, V);
    model_init_random(&m, 3);
    /* livelier than the initialisation: non-zero biases, larger softmax */
    for (int i = 0; i < m.n_entries; i++) {
        ParamEntry *e = &m.entries[i];
        if (e->rank == 1) fill_uniform(m.data + e->offset, e->size, 0.3f, 100 + i);
    }
    fill_uniform(m.softmax_W, (size_t)V * o.proj_dim, 1.0f, 7);
    Trainer t;
    trainer_init(&t, &m, o.batch_size, o.unroll_steps, TRAINER_TRAIN, 11);
    /* non-zero carried state, as after a first batch */
    for (int d = 0; d < t.n_dirs; d++)
        for (int l = 0; l < o.n_layers; l++) {
            fill_uniform(t.c_state[d][l], (size_t)t.B * t.dims.H, 0.5f, 40 + d * 4 + l);
            fill_uniform(t.h_state[d][l], (size_t)t.B * t.dims.Hs, 0.1f, 50 + d * 4 + l);
        }
    LmBatch batches[2];
    for (int d = 0; d < 2; d++) {
        lm_batch_init(&batches[d], t.B, t.T, o.max_chars);
        random_batch(&batches[d], V, 60 + d);
    }
    const LmBatch *ptrs[2] = {&batches[0], &batches[1]};
    trainer_draw(&t);
    trainer_forward_backward(&t, ptrs, 1);
    int clipped = 0;
    for (int d = 0; d < t.n_dirs; d++)
        for (int l = 0; l < o.n_layers; l++)
            for (size_t i = 0; i < (size_t)t.B * t.T * t.dims.H; i++)
                clipped += t.cache[d][l].c_pre[i] != t.cache[d][l].c[i];
    if (k->expect_cell_clip) assert_true(clipped > 0);
    else assert_int_equal(clipped, 0);

    /* the softmax gradients as dense tensors */
    const int P = o.proj_dim;
    float *gW = calloc((size_t)V * P, sizeof(float)), *gb = calloc(V, sizeof(float));
    for (int s = 0; s < t.grad_softmax_W.n; s++)
        memcpy(gW + (size_t)t.grad_softmax_W.rows[s] * P, t.grad_softmax_W.grad + (size_t)s * P, P * sizeof(float));
    for (int s = 0; s < t.grad_softmax_b.n; s++) gb[t.grad_softmax_b.rows[s]] = t.grad_softmax_b.grad[s];

    LossCtx ctx = {&t, ptrs};
    for (int i = 0; i < m.n_entries; i++) {
        ParamEntry *e = &m.entries[i];
        const float *grad = strcmp(e->name, "softmax/W") == 0   ? gW
                            : strcmp(e->name, "softmax/b") == 0 ? gb
                                                                : t.grad + e->offset;
        char name[160];
        snprintf(name, sizeof name, "%s: %s", k->label, e->name);
        assert_true(fd_check(name, m.data + e->offset, grad, e->size, model_loss, &ctx, 1e-3f, TOL, 60, NOISE) < TOL);
    }
    free(gW);
    free(gb);
    for (int d = 0; d < 2; d++) lm_batch_free(&batches[d]);
    trainer_free(&t);
    model_free(&m);
    options_free(&o);
}

static const Case cases[] = {
    {"tanh, highway, P<H, skip, clips active, sampled, dropout",
     "\"activation\": \"tanh\", \"filters\": [[1, 3], [2, 4], [3, 5]], \"n_highway\": 1",
     "\"dim\": 8, \"projection_dim\": 4, \"cell_clip\": 0.5, \"proj_clip\": 0.6, \"use_skip_connections\": true",
     "\"dropout\": 0.2", 1},
    {"relu, no highway, P==H==F, no skip, no clip, full softmax",
     "\"activation\": \"relu\", \"filters\": [[1, 2], [2, 4]], \"n_highway\": 0",
     "\"dim\": 6, \"projection_dim\": 6", "\"dropout\": 0.0, \"sample_softmax\": false", 0},
    {"relu, 2 highway, P<H, skip, clips inactive, sampled",
     "\"activation\": \"relu\", \"filters\": [[1, 3], [2, 4], [3, 5]], \"n_highway\": 2",
     "\"dim\": 8, \"projection_dim\": 4, \"cell_clip\": 100, \"proj_clip\": 100, \"use_skip_connections\": true",
     "\"dropout\": 0.0", 0},
    {"tanh, no highway, P==H, skip, cell clip active, full softmax, dropout",
     "\"activation\": \"tanh\", \"filters\": [[1, 3], [3, 4]], \"n_highway\": 0",
     "\"dim\": 5, \"projection_dim\": 5, \"cell_clip\": 0.3, \"use_skip_connections\": true",
     "\"dropout\": 0.3, \"sample_softmax\": false", 1},
    {"relu, highway, P<H, no skip, unidirectional",
     "\"activation\": \"relu\", \"filters\": [[1, 3], [2, 4]], \"n_highway\": 1",
     "\"dim\": 8, \"projection_dim\": 3", "\"dropout\": 0.1, \"bidirectional\": false", 0},
};

static void test_model_gradients(void **state) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(&cases[i]);
}

/* Clip then Adagrad by hand: gradients [3, 4] (norm 5), clip 2 -> scale 0.4, g = [1.2, 1.6];
 * acc = 1 + g^2 = [2.44, 3.56]; w -= 0.2 g / sqrt(acc). */
static void test_adagrad_step_by_hand(void **state) {
    float w[2] = {1.0f, -2.0f}, acc[2] = {1.0f, 1.0f}, g[2] = {3.0f, 4.0f};
    const double norm = global_norm(g, 2, NULL, 0);
    assert_float_equal(norm, 5.0, 1e-12);
    const float scale = clip_scale(norm, 2.0f);
    assert_float_equal(scale, 0.4f, 1e-7);
    adagrad_dense(w, acc, g, 2, 0.2f, scale);
    assert_float_equal(acc[0], 2.44f, 1e-6);
    assert_float_equal(acc[1], 3.56f, 1e-6);
    assert_float_equal(w[0], 1.0 - 0.2 * 1.2 / sqrt(2.44), 1e-6);
    assert_float_equal(w[1], -2.0 - 0.2 * 1.6 / sqrt(3.56), 1e-6);
    /* below the clip the factor is 1 */
    assert_float_equal(clip_scale(0.5, 2.0f), 1.0f, 1e-7);

    /* the sparse form on rows 3 and 1 of a (5, 2) tensor, with a sparse part in the norm */
    SparseGrad sg;
    sparse_grad_init(&sg, 5, 2, 4);
    float *r3 = sparse_grad_row(&sg, 3), *r1 = sparse_grad_row(&sg, 1);
    r3[0] = 3;
    r3[1] = 0;
    r1[0] = 0;
    r1[1] = 4;
    const SparseGrad *list[1] = {&sg};
    float dense_g[1] = {12};
    assert_float_equal(global_norm(dense_g, 1, list, 1), 13.0, 1e-12);
    float W[10], A[10];
    for (int i = 0; i < 10; i++) {
        W[i] = (float)i;
        A[i] = 1.0f;
    }
    adagrad_sparse(W, A, &sg, 0.5f, 1.0f);
    for (int i = 0; i < 10; i++) {
        const int row = i / 2;
        if (row != 1 && row != 3) { /* untouched rows unchanged */
            assert_float_equal(W[i], (float)i, 0);
            assert_float_equal(A[i], 1.0f, 0);
        }
    }
    assert_float_equal(W[6], 6.0 - 0.5 * 3 / sqrt(10.0), 1e-6);
    assert_float_equal(A[6], 10.0f, 1e-6);
    assert_float_equal(W[7], 7.0f, 0); /* zero gradient: no change */
    assert_float_equal(W[3], 3.0 - 0.5 * 4 / sqrt(17.0), 1e-6);
    sparse_grad_free(&sg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_gradients),
        cmocka_unit_test(test_adagrad_step_by_hand),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
