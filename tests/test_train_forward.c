/* test_train_forward.c - the training forward pass (every LSTM layer's output and the
 * loss of each direction) against a naive twin written here in double precision, loop by
 * loop from the formulas of docs/design.md sections 3 and 4 (tests/naive.c and the loss
 * below), over the option combinations:
 * clips that bite, skip connections, dropout (the residual adds the dropped input),
 * projection or not, relu or tanh, highway layers, sampled and full softmax. The twin
 * shares nothing with the library but the parameters, the batch and the randomness the
 * trainer drew (dropout masks, candidate sets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "naive.h"
#include "dataset.h"
#include "model.h"
#include "options.h"
#include "rng.h"
#include "softmax.h"
#include "testutil.h"
#include "trainer.h"

/* Mean over the N rows of x (N, P) of the cross-entropy of the target: over all V
 * classes, or (samples != NULL) TF's sampled softmax. */
static double naive_loss(const double *x, const int32_t *targets, int N, const BilmModel *m, const SampleSet *samples) {
    const int P = m->opt->proj_dim, V = (int)m->softmax_vocab;
    double total = 0;
    for (int r = 0; r < N; r++) {
        const double *xr = x + (size_t)r * P;
        const int y = targets[r];
        const int n = samples ? samples->S + 1 : V;
        double *logit = malloc((size_t)n * sizeof(double));
        for (int i = 0; i < n; i++) {
            const int id = !samples ? i : i == 0 ? y : samples->ids[i - 1];
            double s = m->softmax_b[id];
            for (int k = 0; k < P; k++) s += xr[k] * m->softmax_W[(size_t)id * P + k];
            if (samples) {
                const double q = i == 0 ? sampler_expected_count(y, samples->tries, samples->S, V) : samples->expected[i - 1];
                s -= log(q);
                if (i > 0 && id == y) s = -INFINITY; /* an accidental hit is removed */
            }
            logit[i] = s;
        }
        const int true_class = samples ? 0 : y;
        double top = -INFINITY, sum = 0;
        for (int i = 0; i < n; i++) top = fmax(top, logit[i]);
        for (int i = 0; i < n; i++) sum += exp(logit[i] - top);
        total += top + log(sum) - logit[true_class];
        free(logit);
    }
    return total / N;
}

typedef struct {
    const char *label;
    const char *char_cnn, *lstm, *training;
    int expect_cell_clip, expect_proj_clip;
} Case;

static void random_batch(LmBatch *b, int V, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    char word[16];
    for (int i = 0; i < b->B * b->T; i++) {
        const int len = 1 + (int)(rng_next(&r) % 9);
        for (int k = 0; k < len; k++) word[k] = (char)('a' + rng_next(&r) % 26);
        word[len] = '\0';
        chars_encode(i % 5 == 0 ? "</S>" : word, b->C, b->chars + (size_t)i * b->C);
        b->targets[i] = (int32_t)(rng_next(&r) % V);
    }
}

static void check_case(const Case *k) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"char_cnn\": {\"embedding\": {\"dim\": 4}, \"max_characters_per_token\": 9, \"n_characters\": 261, %s},"
             " \"lstm\": {\"n_layers\": 3, %s}, \"batch_size\": 3, \"unroll_steps\": 5, \"n_epochs\": 1,"
             " \"n_train_tokens\": 100, \"n_negative_samples_batch\": 6, %s}",
             k->char_cnn, k->lstm, k->training);
    ElmoOptions o;
    assert_int_equal(options_parse(&o, text, k->label), 0);
    const int V = 23;
    BilmModel m;
    model_init_layout(&m, &o, V);
    model_init_random(&m, 5);
    for (int i = 0; i < m.n_entries; i++) /* non-zero biases: every term shows */
        if (m.entries[i].rank == 1) fill_uniform(m.data + m.entries[i].offset, m.entries[i].size, 0.5f, 200 + i);
    Trainer t;
    trainer_init(&t, &m, o.batch_size, o.unroll_steps, TRAINER_TRAIN, 13);
    const int B = t.B, T = t.T, P = o.proj_dim, H = t.dims.H, Hs = t.dims.Hs, L = o.n_layers;
    const size_t BT = (size_t)B * T;
    for (int d = 0; d < t.n_dirs; d++)
        for (int l = 0; l < L; l++) {
            fill_uniform(t.c_state[d][l], (size_t)B * H, 2.0f, 40 + d * 8 + l);
            fill_uniform(t.h_state[d][l], (size_t)B * Hs, 0.3f, 50 + d * 8 + l);
        }
    LmBatch batches[2];
    for (int d = 0; d < 2; d++) {
        lm_batch_init(&batches[d], B, T, o.max_chars);
        random_batch(&batches[d], V, 70 + d);
    }
    const LmBatch *ptrs[2] = {&batches[0], &batches[1]};
    trainer_draw(&t);
    const double total = trainer_forward_backward(&t, ptrs, 1);

    double *x = malloc(BT * P * sizeof(double)), *in = malloc(BT * P * sizeof(double));
    double *out = malloc(BT * P * sizeof(double));
    double *c = malloc((size_t)B * H * sizeof(double)), *h = malloc((size_t)B * Hs * sizeof(double));
    const double keep = 1.0 - o.dropout;
    int cell_clipped = 0, proj_clipped = 0;
    double naive_total = 0, worst_out = 0, worst_loss = 0;
    for (int d = 0; d < t.n_dirs; d++) {
        for (size_t i = 0; i < BT; i++) naive_token_embedding(x + i * P, batches[d].chars + i * o.max_chars, &m);
        for (int l = 0; l < L; l++) {
            for (size_t i = 0; i < BT * P; i++) in[i] = t.use_dropout ? x[i] / keep * t.in_mask[d][l][i] : x[i];
            for (size_t i = 0; i < (size_t)B * H; i++) c[i] = t.c_state[d][l][i];
            for (size_t i = 0; i < (size_t)B * Hs; i++) h[i] = t.h_state[d][l][i];
            /* the residual: layers above the first, adding the input after dropout */
            naive_lstm(out, c, h, in, NULL, B, T, o.use_skip_connections && l > 0, &m.lstm[d][l], &t.dims,
                       &cell_clipped, &proj_clipped);
            for (size_t i = 0; i < BT * P; i++) worst_out = fmax(worst_out, fabs(out[i] - t.layer_out[d][l][i]));
            for (size_t i = 0; i < (size_t)B * H; i++) worst_out = fmax(worst_out, fabs(c[i] - t.c_final[d][l][i]));
            for (size_t i = 0; i < (size_t)B * Hs; i++) worst_out = fmax(worst_out, fabs(h[i] - t.h_final[d][l][i]));
            memcpy(x, out, BT * P * sizeof(double));
        }
        for (size_t i = 0; i < BT * P; i++) x[i] = t.use_dropout ? x[i] / keep * t.out_mask[d][i] : x[i];
        const double loss = naive_loss(x, batches[d].targets, (int)BT, &m, t.use_sampled ? &t.samples[d] : NULL);
        worst_loss = fmax(worst_loss, fabs(loss - t.loss[d]) / fabs(loss));
        naive_total += loss / t.n_dirs;
    }
    print_message("%s: LSTM outputs and states max abs diff %.3g, loss rel diff %.3g (loss %.6f)\n", k->label,
                  worst_out, worst_loss, naive_total);
    assert_true(worst_out < 2e-6);
    assert_true(worst_loss < 1e-6);
    assert_true(fabs(naive_total - total) <= 1e-6 * fabs(naive_total));
    /* the clips this case is about really bite (or really do not) */
    assert_int_equal(cell_clipped > 0, k->expect_cell_clip);
    assert_int_equal(proj_clipped > 0, k->expect_proj_clip);
    free(x);
    free(in);
    free(out);
    free(c);
    free(h);
    for (int d = 0; d < 2; d++) lm_batch_free(&batches[d]);
    trainer_free(&t);
    model_free(&m);
    options_free(&o);
}

static const Case cases[] = {
    {"relu, highway, P<H, skip, both clips biting, dropout, sampled",
     "\"activation\": \"relu\", \"filters\": [[1, 3], [2, 4], [3, 5]], \"n_highway\": 1",
     "\"dim\": 10, \"projection_dim\": 6, \"cell_clip\": 0.8, \"proj_clip\": 0.15, \"use_skip_connections\": true",
     "\"dropout\": 0.3", 1, 1},
    {"tanh, 2 highway, P<H, no skip, no clips, full softmax",
     "\"activation\": \"tanh\", \"filters\": [[1, 4], [3, 4]], \"n_highway\": 2",
     "\"dim\": 9, \"projection_dim\": 5", "\"dropout\": 0.0, \"sample_softmax\": false", 0, 0},
    {"relu, no highway, P==H==F, skip, cell clip biting, dropout, full softmax",
     "\"activation\": \"relu\", \"filters\": [[1, 2], [2, 5]], \"n_highway\": 0",
     "\"dim\": 7, \"projection_dim\": 7, \"cell_clip\": 0.5, \"use_skip_connections\": true",
     "\"dropout\": 0.2, \"sample_softmax\": false", 1, 0},
    {"tanh, highway, P<H, skip, unidirectional, sampled",
     "\"activation\": \"tanh\", \"filters\": [[2, 3], [3, 3]], \"n_highway\": 1",
     "\"dim\": 8, \"projection_dim\": 4, \"proj_clip\": 0.2, \"use_skip_connections\": true",
     "\"dropout\": 0.1, \"bidirectional\": false", 0, 1},
};

static void test_training_forward_matches_naive_twin(void **state) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(&cases[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_forward_matches_naive_twin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
