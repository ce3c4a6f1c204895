/* test_layers.c - each layer against small hand-computed cases and its naive twin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charcnn.h"
#include "naive.h"
#include "chars.h"
#include "common.h"
#include "highway.h"
#include "linalg.h"
#include "lstm.h"
#include "model.h"
#include "options.h"
#include "testutil.h"

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* Options text for a small model: the fields the layer tests vary are parameters. */
static void make_options(ElmoOptions *o, const char *filters, int De, int C, const char *act, int H, int P,
                         const char *extra_lstm) {
    char text[1024];
    snprintf(text, sizeof text,
             "{\"char_cnn\": {\"embedding\": {\"dim\": %d}, \"filters\": %s, \"max_characters_per_token\": %d,"
             " \"n_characters\": 261, \"activation\": \"%s\", \"n_highway\": 1},"
             " \"lstm\": {\"dim\": %d, \"projection_dim\": %d, \"n_layers\": 2 %s}}",
             De, filters, C, act, H, P, extra_lstm);
    assert_int_equal(options_parse(o, text, "test options"), 0);
}

/* One filter of width 2 over De = 1 characters, worked out by hand:
 * token [a=2, b=5, c=-1, pad=0], W = [1, -1], bias 0.5:
 * windows 2-5 = -3, 5+1 = 6, -1-0 = -1 -> max 6 at p=1 -> 6.5. */
static void test_cnn_one_filter_by_hand(void **state) {
    for (int use_tanh = 0; use_tanh <= 1; use_tanh++) {
        ElmoOptions o;
        make_options(&o, "[[2, 1]]", 1, 4, use_tanh ? "tanh" : "relu", 4, 2, "");
        BilmModel m;
        model_init_layout(&m, &o, 0);
        float *W = model_param(&m, "CNN/W_cnn_0"), *b = model_param(&m, "CNN/b_cnn_0");
        W[0] = 1.0f;
        W[1] = -1.0f;
        b[0] = 0.5f;
        float table[CHAR_TABLE_ROWS] = {0};
        table[10] = 2.0f;
        table[11] = 5.0f;
        table[12] = -1.0f;
        /* second token [c, a, pad, pad]: windows -1-2 = -3, 2-0 = 2, 0-0 = 0 -> 2 at p=1 */
        const int32_t ids[2][4] = {{10, 11, 12, CHAR_PAD}, {12, 10, CHAR_PAD, CHAR_PAD}};
        const float expect_pre[2] = {6.5f, 2.5f};
        const int expect_arg[2] = {1, 1};
        CharCnnWork w;
        Arena arena;
        arena_for_charcnn(&arena, &w, &o);
        float out[2], ref[2];
        int32_t arg[2], ref_arg[2];
        charcnn_forward(out, arg, &ids[0][0], 2, table, CHAR_PAD, &m, &w);
        charcnn_forward_reference(ref, ref_arg, &ids[0][0], 2, table, &m);
        for (int i = 0; i < 2; i++) {
            float expected = use_tanh ? tanhf(expect_pre[i]) : expect_pre[i];
            assert_float_equal(out[i], expected, 1e-6);
            assert_float_equal(ref[i], expected, 1e-6);
            assert_int_equal(arg[i], expect_arg[i]);
            assert_int_equal(ref_arg[i], expect_arg[i]);
        }
        /* all windows negative (W = [1, 1] on c c c c: -2 everywhere): relu gives 0 */
        const int32_t neg[4] = {12, 12, 12, 12};
        W[1] = 1.0f;
        charcnn_forward(out, arg, neg, 1, table, CHAR_PAD, &m, &w);
        assert_float_equal(out[0], use_tanh ? tanhf(-1.5f) : 0.0f, 1e-6);
        arena_free(&arena);
        model_free(&m);
        options_free(&o);
    }
}

/* The GEMM path (with its padding shortcut) equals the direct loops on random weights,
 * for realistic tokens (short words padded) and for tokens without padding. */
static void test_cnn_gemm_matches_reference(void **state) {
    for (int use_tanh = 0; use_tanh <= 1; use_tanh++) {
        ElmoOptions o;
        make_options(&o, "[[1, 4], [2, 8], [3, 16], [4, 32], [5, 7]]", 4, 12, use_tanh ? "tanh" : "relu", 8, 4, "");
        BilmModel m;
        model_init_layout(&m, &o, 0);
        model_init_random(&m, 42 + use_tanh);
        const int N = 75, C = 12, F = o.total_filters;
        int32_t *ids = malloc((size_t)N * C * sizeof(int32_t));
        const char *words[] = {"a", "the", "Elephants", "<S>", "</S>", "internationalisation", "x-y", "über"};
        for (int i = 0; i < N; i++) chars_encode(words[i % 8], C, ids + (size_t)i * C);
        float *out = malloc((size_t)N * F * sizeof(float)), *ref = malloc((size_t)N * F * sizeof(float));
        int32_t *arg = malloc((size_t)N * F * sizeof(int32_t)), *ref_arg = malloc((size_t)N * F * sizeof(int32_t));
        CharCnnWork w;
        Arena arena;
        arena_for_charcnn(&arena, &w, &o);
        charcnn_forward(out, arg, ids, N, m.char_embed, CHAR_PAD, &m, &w);
        charcnn_forward_reference(ref, ref_arg, ids, N, m.char_embed, &m);
        double diff = max_abs_diff(out, ref, (size_t)N * F);
        print_message("cnn %s: max abs diff GEMM vs direct %g\n", use_tanh ? "tanh" : "relu", diff);
        assert_true(diff < 1e-5);
        int arg_mismatch = 0;
        for (int i = 0; i < N * F; i++) arg_mismatch += arg[i] != ref_arg[i];
        assert_true(arg_mismatch <= 2); /* only near-ties may differ */
        arena_free(&arena);
        free(ids);
        free(out);
        free(ref);
        free(arg);
        free(ref_arg);
        model_free(&m);
        options_free(&o);
    }
}

/* Highway by hand: x = [1, -2], W_carry = I, b_carry = 0, W_transform = [[0,1],[1,0]],
 * b_transform = [-1, 0]: g = sigmoid([1, -2]), t = relu([-3, 1]) = [0, 1]. */
static void test_highway_by_hand(void **state) {
    float Wc[4] = {1, 0, 0, 1}, bc[2] = {0, 0}, Wt[4] = {0, 1, 1, 0}, bt[2] = {-1, 0};
    HighwayParams p = {Wc, bc, Wt, bt};
    float x[2] = {1, -2}, y[2], g[2], t[2];
    highway_forward(y, g, t, x, &p, 1, 2);
    double g0 = sigmoid(1), g1 = sigmoid(-2);
    assert_float_equal(y[0], g0 * 0 + (1 - g0) * 1, 1e-6);
    assert_float_equal(y[1], g1 * 1 + (1 - g1) * -2, 1e-6);
    assert_float_equal(t[0], 0.0f, 0);
    assert_float_equal(t[1], 1.0f, 1e-7);
    highway_forward(x, g, t, x, &p, 1, 2); /* in place */
    assert_float_equal(x[0], y[0], 0);
    assert_float_equal(x[1], y[1], 0);
}

/* One LSTM step with both clips active, against the formulas in double:
 * H = 2, P = 1, input 1, c_prev = [5, -5] so the cell clip (3) bites, proj_clip 0.05. */
static void test_lstm_step_with_clipping(void **state) {
    ElmoOptions o;
    make_options(&o, "[[1, 1]]", 1, 4, "relu", 2, 1, ", \"cell_clip\": 3, \"proj_clip\": 0.05");
    LstmDims d = lstm_dims(&o);
    assert_int_equal(d.Hs, 1);
    assert_true(d.has_cell_clip && d.has_proj_clip);
    /* W (in + Hs = 2, 8): rows x, h; columns i0 i1 j0 j1 f0 f1 o0 o1 */
    float W[16] = {0.5f, -0.3f, 0.8f, 0.2f, 1.0f, -1.0f, 0.3f, 0.4f,
                   -0.2f, 0.6f, -0.4f, 0.9f, 0.1f, 0.7f, -0.5f, 0.2f};
    float Bias[8] = {0.1f, 0, -0.1f, 0, 0.2f, 0, 0, 0.3f};
    float W_P[2] = {2.0f, 1.5f};
    LstmParams p = {W, Bias, W_P, 1};
    const float x = 0.7f, h_prev = -0.4f;
    float c[2] = {5.0f, -5.0f}, h[1] = {h_prev}, out[1], gates[8], c_pre[2], m[2], hp[1];
    const int len = 1;
    const LstmPredictWork w = {gates, c_pre, m, hp};
    lstm_predict(out, c, h, &w, &x, &len, 1, 1, 0, &p, &d);
    double z[8], cexp[2], mexp[2];
    for (int k = 0; k < 8; k++) z[k] = x * W[k] + h_prev * W[8 + k] + Bias[k];
    const double cprev[2] = {5, -5};
    for (int k = 0; k < 2; k++) {
        double cell = sigmoid(z[4 + k] + 1.0) * cprev[k] + sigmoid(z[k]) * tanh(z[2 + k]);
        cexp[k] = fmin(3.0, fmax(-3.0, cell));
        mexp[k] = sigmoid(z[6 + k]) * tanh(cexp[k]);
    }
    double proj = mexp[0] * W_P[0] + mexp[1] * W_P[1];
    assert_true(fabs(cexp[0]) == 3.0 || fabs(cexp[1]) == 3.0); /* the cell clip is active */
    assert_true(fabs(proj) > 0.05);                            /* and the projection clip */
    double hexp = fmin(0.05, fmax(-0.05, proj));
    assert_float_equal(c[0], cexp[0], 1e-6);
    assert_float_equal(c[1], cexp[1], 1e-6);
    assert_float_equal(h[0], hexp, 1e-6);
    assert_float_equal(out[0], hexp, 1e-6);
    options_free(&o);
}

/* lstm_predict equals the naive loops with and without projection, clipping and skip,
 * for rows of different lengths (one empty), starting from a non-zero state; so does
 * lstm_train_forward over every step from the same state. */
static void test_lstm_predict_matches_naive(void **state) {
    const struct { int H, P; const char *extra; int skip; } cases[] = {
        {16, 8, ", \"cell_clip\": 0.5, \"proj_clip\": 0.1", 1},
        {16, 8, "", 0},
        {12, 12, ", \"cell_clip\": 0.3", 1}, /* P == H: no projection, proj_clip unused */
        {12, 12, "", 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        ElmoOptions o;
        make_options(&o, "[[1, 3]]", 2, 5, "relu", cases[ci].H, cases[ci].P, cases[ci].extra);
        BilmModel m;
        model_init_layout(&m, &o, 0);
        model_init_random(&m, 7 + ci);
        const LstmDims d = lstm_dims(&o);
        const int B = 3, T = 6, H = d.H, Hs = d.Hs, P = d.P;
        const int lengths[3] = {6, 2, 0};
        float *x = malloc((size_t)B * T * P * sizeof(float));
        fill_uniform(x, (size_t)B * T * P, 1.5f, 99);
        float *c = malloc((size_t)B * H * sizeof(float)), *h = malloc((size_t)B * Hs * sizeof(float));
        fill_uniform(c, (size_t)B * H, 1.0f, 5);
        fill_uniform(h, (size_t)B * Hs, 0.2f, 6);
        double *cn = malloc((size_t)B * H * sizeof(double)), *hn = malloc((size_t)B * Hs * sizeof(double));
        for (int i = 0; i < B * H; i++) cn[i] = c[i];
        for (int i = 0; i < B * Hs; i++) hn[i] = h[i];
        float *out = malloc((size_t)B * T * P * sizeof(float)), *gates = malloc((size_t)B * T * 4 * H * sizeof(float));
        float *mw = calloc((size_t)B * H, sizeof(float)), *hp = calloc((size_t)B * Hs, sizeof(float));
        float *cpre = calloc((size_t)B * H, sizeof(float));
        double *outn = malloc((size_t)B * T * P * sizeof(double));
        const LstmPredictWork w = {gates, cpre, mw, hp};
        /* training's forward from the same state, every step of every row */
        LstmCache cache;
        Arena arena;
        arena_for_lstm(&arena, &cache, NULL, B, T, &d);
        float *out_train = malloc((size_t)B * T * P * sizeof(float));
        float *c_final = malloc((size_t)B * H * sizeof(float)), *h_final = malloc((size_t)B * Hs * sizeof(float));
        lstm_train_forward(out_train, c_final, h_final, &cache, x, c, h, B, T, cases[ci].skip, &m.lstm[0][1], &d);
        const int full[3] = {T, T, T};
        double *outt = malloc((size_t)B * T * P * sizeof(double));
        double *ct = malloc((size_t)B * H * sizeof(double)), *ht = malloc((size_t)B * Hs * sizeof(double));
        memcpy(ct, cn, (size_t)B * H * sizeof(double));
        memcpy(ht, hn, (size_t)B * Hs * sizeof(double));
        double *xd = malloc((size_t)B * T * P * sizeof(double));
        for (int i = 0; i < B * T * P; i++) xd[i] = x[i];
        naive_lstm(outt, ct, ht, xd, full, B, T, cases[ci].skip, &m.lstm[0][1], &d, NULL, NULL);
        double worst_train = 0;
        for (int i = 0; i < B * T * P; i++) worst_train = fmax(worst_train, fabs(out_train[i] - outt[i]));
        for (int i = 0; i < B * H; i++) worst_train = fmax(worst_train, fabs(c_final[i] - ct[i]));
        for (int i = 0; i < B * Hs; i++) worst_train = fmax(worst_train, fabs(h_final[i] - ht[i]));
        print_message("lstm case %zu: training forward max abs diff %g\n", ci, worst_train);
        assert_true(worst_train < 2e-6);
        arena_free(&arena);
        free(out_train); free(c_final); free(h_final); free(outt); free(ct); free(ht);
        lstm_predict(out, c, h, &w, x, lengths, B, T, cases[ci].skip, &m.lstm[0][1], &d);
        naive_lstm(outn, cn, hn, xd, lengths, B, T, cases[ci].skip, &m.lstm[0][1], &d, NULL, NULL);
        double worst = 0;
        for (int i = 0; i < B * T * P; i++) worst = fmax(worst, fabs(out[i] - outn[i]));
        for (int i = 0; i < B * H; i++) worst = fmax(worst, fabs(c[i] - cn[i]));
        for (int i = 0; i < B * Hs; i++) worst = fmax(worst, fabs(h[i] - hn[i]));
        print_message("lstm case %zu: max abs diff %g\n", ci, worst);
        assert_true(worst < 2e-6);
        free(x); free(c); free(h); free(cn); free(hn); free(out); free(gates); free(mw); free(hp); free(cpre); free(outn); free(xd);
        model_free(&m);
        options_free(&o);
    }
}

static void test_gemm_matches_reference(void **state) {
    const int M = 37, N = 29, K = 41;
    float *A = malloc(M * K * sizeof(float)), *B = malloc(K * N * sizeof(float));
    float *C1 = malloc(M * N * sizeof(float)), *C2 = malloc(M * N * sizeof(float));
    fill_uniform(A, M * K, 1, 1);
    fill_uniform(B, K * N, 1, 2);
    fill_uniform(C1, M * N, 1, 3);
    memcpy(C2, C1, M * N * sizeof(float));
    gemm_nn(M, N, K, A, K, B, N, 1.0f, C1, N);
    gemm_nn_reference(M, N, K, A, K, B, N, 1.0f, C2, N);
    assert_true(max_abs_diff(C1, C2, M * N) < 1e-4);
    free(A); free(B); free(C1); free(C2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cnn_one_filter_by_hand),
        cmocka_unit_test(test_cnn_gemm_matches_reference),
        cmocka_unit_test(test_highway_by_hand),
        cmocka_unit_test(test_lstm_step_with_clipping),
        cmocka_unit_test(test_lstm_predict_matches_naive),
        cmocka_unit_test(test_gemm_matches_reference),
    };
    return cmocka_run_group_tests_name("layers", tests, NULL, NULL);
}
