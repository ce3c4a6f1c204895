/* test_gradients.c - every layer's hand-written backward pass against finite differences.
 *
 * Each layer is wrapped in a scalar loss L = sum(out * r) with a fixed random r, so that
 * dL/dout = r; the analytic gradients of every input and parameter tensor are compared
 * with central differences. The kernels are float: with h = 1e-2 (1e-3 where kinks are
 * near) the truncation error is O(h^2) ~ 1e-4 relative and float rounding of the loss
 * (~1e-7 relative, summed in double) divided by 2h stays near 1e-5, so an asymmetry
 * |fd - an| / (|fd| + |an|) below 1e-2 separates a right gradient from a wrong one (a
 * wrong term or a missing factor gives 0.1 and more).
 */
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
#include "chars.h"
#include "common.h"
#include "dropout.h"
#include "highway.h"
#include "linalg.h"
#include "lstm.h"
#include "model.h"
#include "options.h"
#include "testutil.h"

#define TOL 1e-2

static double weighted_sum(const float *x, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * r[i];
    return s;
}

static void parse_options(ElmoOptions *o, const char *act, int H, int P, const char *lstm_extra) {
    char text[1024];
    snprintf(text, sizeof text,
             "{\"char_cnn\": {\"embedding\": {\"dim\": 3}, \"filters\": [[1, 3], [2, 4], [3, 5]],"
             " \"max_characters_per_token\": 7, \"n_characters\": 261, \"activation\": \"%s\", \"n_highway\": 1},"
             " \"lstm\": {\"dim\": %d, \"projection_dim\": %d, \"n_layers\": 2 %s}}",
             act, H, P, lstm_extra);
    assert_int_equal(options_parse(o, text, "test"), 0);
}

/* ---------------------------------------------------------------- char-CNN */
typedef struct {
    BilmModel *m;
    CharCnnWork *w;
    const int32_t *ids;
    int N;
    float *out, *r;
} CnnCtx;

static double cnn_loss(void *ctx) {
    CnnCtx *c = ctx;
    charcnn_forward(c->out, NULL, c->ids, c->N, c->m->char_embed, CHAR_PAD, c->m, c->w);
    return weighted_sum(c->out, c->r, (size_t)c->N * c->m->opt->total_filters);
}

static void test_charcnn_backward(void **state) {
    for (int use_tanh = 0; use_tanh <= 1; use_tanh++) {
        ElmoOptions o;
        parse_options(&o, use_tanh ? "tanh" : "relu", 8, 4, "");
        BilmModel m, g;
        model_init_layout(&m, &o, 0);
        model_init_random(&m, 5);
        /* larger filters than the init so that relu units are alive */
        for (int k = 0; k < o.n_filter_kinds; k++)
            fill_uniform(m.conv[k].W, (size_t)m.conv[k].width * 3 * m.conv[k].count, 0.5f, 10 + k);
        float *gbuf = calloc(m.n_floats, sizeof(float));
        model_view(&g, &m, gbuf, m.n_floats);
        const int N = 6, C = 7, F = o.total_filters;
        const char *words[6] = {"ab", "xyz", "<S>", "</S>", "hello", "q"};
        int32_t ids[6 * 7], argmax[6 * 12];
        for (int i = 0; i < N; i++) chars_encode(words[i], C, ids + i * C);
        CharCnnWork w;
        Arena arena;
        arena_for_charcnn(&arena, &w, &o);
        float out[6 * 12], r[6 * 12], dpre[6 * 12];
        fill_uniform(r, (size_t)N * F, 1.0f, 3);
        charcnn_forward(out, argmax, ids, N, m.char_embed, CHAR_PAD, &m, &w);
        charcnn_backward(&g, g.char_embed, dpre, r, out, argmax, ids, N, m.char_embed, &m, &w);
        CnnCtx ctx = {&m, &w, ids, N, calloc((size_t)N * F, sizeof(float)), r};
        char name[64];
        for (int k = 0; k < o.n_filter_kinds; k++) {
            snprintf(name, sizeof name, "%s W_cnn_%d", use_tanh ? "tanh" : "relu", k);
            assert_true(fd_check(name, m.conv[k].W, g.conv[k].W, (size_t)m.conv[k].width * 3 * m.conv[k].count,
                                 cnn_loss, &ctx, 1e-3f, TOL, 400, 0.0) < TOL);
            snprintf(name, sizeof name, "b_cnn_%d", k);
            assert_true(fd_check(name, m.conv[k].b, g.conv[k].b, (size_t)m.conv[k].count, cnn_loss, &ctx, 1e-3f, TOL,
                                 400, 0.0) < TOL);
        }
        assert_true(fd_check("char_embed", m.char_embed, g.char_embed, (size_t)CHAR_TABLE_ROWS * 3, cnn_loss, &ctx,
                             1e-3f, TOL, 1000, 0.0) < TOL);
        free(ctx.out);
        arena_free(&arena);
        free(gbuf);
        model_free(&m);
        options_free(&o);
    }
}

/* ---------------------------------------------------------------- highway and projection */
typedef struct {
    HighwayParams *p;
    float *x, *y, *g, *t, *r;
    const float *W, *b;
    int N, F, out;
} DenseCtx;

static double highway_loss(void *ctx) {
    DenseCtx *c = ctx;
    highway_forward(c->y, c->g, c->t, c->x, c->p, c->N, c->F);
    return weighted_sum(c->y, c->r, (size_t)c->N * c->F);
}

static void test_highway_backward(void **state) {
    const int N = 9, F = 6;
    float Wc[36], bc[6], Wt[36], bt[6], x[54], y[54], g[54], t[54], r[54], dx[54];
    fill_uniform(Wc, 36, 0.8f, 1);
    fill_uniform(bc, 6, 0.5f, 2);
    fill_uniform(Wt, 36, 0.8f, 3);
    fill_uniform(bt, 6, 0.5f, 4);
    fill_uniform(x, 54, 1.0f, 5);
    fill_uniform(r, 54, 1.0f, 6);
    HighwayParams p = {Wc, bc, Wt, bt};
    float gWc[36] = {0}, gbc[6] = {0}, gWt[36] = {0}, gbt[6] = {0};
    HighwayParams grad = {gWc, gbc, gWt, gbt};
    highway_forward(y, g, t, x, &p, N, F);
    highway_backward(dx, &grad, r, x, g, t, &p, N, F);
    DenseCtx ctx = {.p = &p, .x = x, .y = y, .g = g, .t = t, .r = r, .N = N, .F = F};
    assert_true(fd_check("highway W_carry", Wc, gWc, 36, highway_loss, &ctx, 1e-2f, TOL, 100, 0.0) < TOL);
    assert_true(fd_check("highway b_carry", bc, gbc, 6, highway_loss, &ctx, 1e-2f, TOL, 100, 0.0) < TOL);
    assert_true(fd_check("highway W_transform", Wt, gWt, 36, highway_loss, &ctx, 1e-3f, TOL, 100, 0.0) < TOL);
    assert_true(fd_check("highway b_transform", bt, gbt, 6, highway_loss, &ctx, 1e-3f, TOL, 100, 0.0) < TOL);
    assert_true(fd_check("highway x", x, dx, 54, highway_loss, &ctx, 1e-3f, TOL, 100, 0.0) < TOL);
}

static double linear_loss(void *ctx) {
    DenseCtx *c = ctx;
    linear_forward(c->y, c->x, c->W, c->b, c->N, c->F, c->out);
    return weighted_sum(c->y, c->r, (size_t)c->N * c->out);
}

static void test_linear_backward(void **state) {
    const int N = 7, in = 5, out = 3;
    float W[15], b[3], x[35], y[21], r[21], dx[35], gW[15] = {0}, gb[3] = {0};
    fill_uniform(W, 15, 1, 1);
    fill_uniform(b, 3, 1, 2);
    fill_uniform(x, 35, 1, 3);
    fill_uniform(r, 21, 1, 4);
    linear_backward(dx, gW, gb, r, x, W, N, in, out);
    DenseCtx ctx = {.x = x, .y = y, .r = r, .W = W, .b = b, .N = N, .F = in, .out = out};
    assert_true(fd_check("proj W", W, gW, 15, linear_loss, &ctx, 1e-2f, TOL, 100, 0.0) < TOL);
    assert_true(fd_check("proj b", b, gb, 3, linear_loss, &ctx, 1e-2f, TOL, 100, 0.0) < TOL);
    assert_true(fd_check("proj x", x, dx, 35, linear_loss, &ctx, 1e-2f, TOL, 100, 0.0) < TOL);
}

/* ---------------------------------------------------------------- LSTM */
typedef struct {
    LstmParams *p;
    LstmDims *d;
    LstmCache *cache;
    float *x, *c0, *h0, *out, *cf, *hf, *r;
    int B, T, skip;
} LstmCtx;

static double lstm_loss(void *ctx) {
    LstmCtx *c = ctx;
    lstm_train_forward(c->out, c->cf, c->hf, c->cache, c->x, c->c0, c->h0, c->B, c->T, c->skip, c->p, c->d);
    return weighted_sum(c->out, c->r, (size_t)c->B * c->T * c->d->P);
}

static void check_lstm(const char *label, int H, int P, const char *extra, int skip, int expect_clipping) {
    ElmoOptions o;
    parse_options(&o, "relu", H, P, extra);
    BilmModel m, g;
    model_init_layout(&m, &o, 0);
    model_init_random(&m, 21);
    LstmDims d = lstm_dims(&o);
    const LstmParams *lp = &m.lstm[0][1];
    fill_uniform(lp->B, 4 * (size_t)H, 0.5f, 8);
    float *gbuf = calloc(m.n_floats, sizeof(float));
    model_view(&g, &m, gbuf, m.n_floats);
    const int B = 3, T = 5;
    const size_t BT = (size_t)B * T;
    float *x = malloc(BT * P * sizeof(float)), *out = malloc(BT * P * sizeof(float)), *r = malloc(BT * P * sizeof(float));
    float *dx = malloc(BT * P * sizeof(float)), *c0 = malloc((size_t)B * H * sizeof(float));
    float *h0 = malloc((size_t)B * d.Hs * sizeof(float)), *cf = malloc((size_t)B * H * sizeof(float));
    float *hf = malloc((size_t)B * d.Hs * sizeof(float));
    fill_uniform(x, BT * P, 1.5f, 31);
    fill_uniform(r, BT * P, 1.0f, 32);
    fill_uniform(c0, (size_t)B * H, 1.0f, 33);
    fill_uniform(h0, (size_t)B * d.Hs, 0.3f, 34);
    LstmCache cache;
    LstmBackWork work;
    Arena arena;
    arena_for_lstm(&arena, &cache, &work, B, T, &d);
    lstm_train_forward(out, cf, hf, &cache, x, c0, h0, B, T, skip, lp, &d);
    /* the clip is active (or not) in this configuration, as intended */
    int clipped = 0;
    for (size_t i = 0; i < BT * H; i++) clipped += cache.c_pre[i] != cache.c[i];
    if (d.has_proj_clip)
        for (size_t i = 0; i < BT * d.Hs; i++) clipped += cache.h_pre[i] != cache.h[i];
    if (expect_clipping) assert_true(clipped > 0);
    else assert_int_equal(clipped, 0);
    lstm_backward(dx, &g.lstm[0][1], r, x, &cache, B, T, skip, lp, &d, &work);
    LstmCtx ctx = {(LstmParams *)lp, &d, &cache, x, c0, h0, out, cf, hf, r, B, T, skip};
    char name[128];
    snprintf(name, sizeof name, "%s W_0", label);
    assert_true(fd_check(name, lp->W, g.lstm[0][1].W, (size_t)(P + d.Hs) * 4 * H, lstm_loss, &ctx, 1e-3f, TOL, 300, 0.0) < TOL);
    snprintf(name, sizeof name, "%s B", label);
    assert_true(fd_check(name, lp->B, g.lstm[0][1].B, 4 * (size_t)H, lstm_loss, &ctx, 1e-3f, TOL, 300, 0.0) < TOL);
    if (d.has_proj) {
        snprintf(name, sizeof name, "%s W_P_0", label);
        assert_true(fd_check(name, lp->W_P, g.lstm[0][1].W_P, (size_t)H * P, lstm_loss, &ctx, 1e-3f, TOL, 300, 0.0) < TOL);
    }
    snprintf(name, sizeof name, "%s x", label);
    assert_true(fd_check(name, x, dx, BT * P, lstm_loss, &ctx, 1e-3f, TOL, 300, 0.0) < TOL);
    arena_free(&arena);
    free(x); free(out); free(r); free(dx); free(c0); free(h0); free(cf); free(hf); free(gbuf);
    model_free(&m);
    options_free(&o);
}

static void test_lstm_backward(void **state) {
    check_lstm("proj, clips active, skip", 8, 4, ", \"cell_clip\": 0.6, \"proj_clip\": 0.15", 1, 1);
    check_lstm("proj, clips inactive", 8, 4, ", \"cell_clip\": 50, \"proj_clip\": 50", 0, 0);
    check_lstm("proj, no clip keys", 8, 4, "", 1, 0);
    check_lstm("P == H, cell clip active, skip", 6, 6, ", \"cell_clip\": 0.6, \"proj_clip\": 0.01", 1, 1);
    check_lstm("P == H, no clip", 6, 6, "", 0, 0);
}

/* ---------------------------------------------------------------- dropout */
static void test_dropout(void **state) {
    Rng r;
    rng_seed(&r, 3);
    const size_t n = 100000;
    float *mask = malloc(n * sizeof(float)), *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    dropout_mask(mask, n, 0.9f, &r);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(mask[i] == 0.0f || mask[i] == 1.0f);
        kept += mask[i] == 1.0f;
        x[i] = 1.0f;
    }
    assert_true(kept > 89000 && kept < 91000);
    dropout_apply(y, x, mask, n, 0.9f);
    for (size_t i = 0; i < n; i++) assert_float_equal(y[i], mask[i] / 0.9f, 1e-7);
    dropout_backward(y, x, mask, n, 0.9f);
    for (size_t i = 0; i < n; i++) assert_float_equal(y[i], mask[i] / 0.9f, 1e-7);
    free(mask);
    free(x);
    free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_charcnn_backward),
        cmocka_unit_test(test_highway_backward),
        cmocka_unit_test(test_linear_backward),
        cmocka_unit_test(test_lstm_backward),
        cmocka_unit_test(test_dropout),
    };
    return cmocka_run_group_tests_name("gradients", tests, NULL, NULL);
}
