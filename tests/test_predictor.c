/* test_predictor.c - stateful prediction semantics (docs/design.md section 8) on a random model:
 * padded positions keep the state, rows beyond a batch keep theirs, --stateless leaves
 * the stored state alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"
#include "options.h"
#include "predictor.h"
#include "sentences.h"
#include "testutil.h"
#include "text.h"

static const char options_text[] =
    "{\"lstm\": {\"cell_clip\": 3, \"use_skip_connections\": true, \"n_layers\": 2, \"proj_clip\": 3,"
    " \"projection_dim\": 8, \"dim\": 16}, \"char_cnn\": {\"embedding\": {\"dim\": 4}, \"filters\": [[1, 4],"
    " [2, 8], [3, 8]], \"n_highway\": 1, \"n_characters\": 262, \"max_characters_per_token\": 16,"
    " \"activation\": \"relu\"}}";

static const char *const sentences[] = {
    "a short one",
    "this sentence is quite a bit longer than the others .",
    "third",
    "fourth sentence here",
    "fifth and final",
    "",
};

typedef struct {
    ElmoOptions opt;
    BilmModel model;
} Fixture;

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    assert_int_equal(options_parse(&f->opt, options_text, "test"), 0);
    model_init_layout(&f->model, &f->opt, 0);
    model_init_random(&f->model, 11);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    model_free(&f->model);
    options_free(&f->opt);
    free(f);
    return 0;
}

/* Runs one batch of the given sentence indexes; returns the (L+1, n, 2P) outputs of
 * each row, concatenated (caller frees). */
static float *run_batch(Predictor *p, const int *which, int B, int stateless, size_t *sizes) {
    const ElmoOptions *o = p->m->opt;
    SentenceBatch batch;
    batch_init(&batch, B, o->max_chars);
    TokenList toks = {0};
    for (int i = 0; i < B; i++) {
        char *line = xstrdup(sentences[which[i]]);
        assert_int_equal(text_split(line, strlen(line), &toks, "test"), 0);
        batch_add(&batch, toks.tokens, toks.n, i);
        free(line);
    }
    batch_build(&batch);
    predictor_run(p, batch.ids, B, batch.T, stateless);
    size_t total = 0, per_token = (size_t)(o->n_layers + 1) * 2 * o->proj_dim;
    for (int i = 0; i < B; i++) total += (size_t)(batch.n_tokens[i] - 2) * per_token;
    float *out = malloc((total ? total : 1) * sizeof(float)), *at = out;
    for (int i = 0; i < B; i++) {
        predictor_sentence_output(p, i, at);
        sizes[i] = (size_t)(batch.n_tokens[i] - 2) * per_token;
        at += sizes[i];
    }
    token_list_free(&toks);
    batch_free(&batch);
    return out;
}

/* Row 0 holds a short sentence padded to the length of row 1; its state afterwards must
 * be the one it would have without padding. */
static void test_padding_keeps_state(void **state) {
    Fixture *f = *state;
    Predictor a, b;
    predictor_init(&a, &f->model, 2);
    predictor_init(&b, &f->model, 1);
    size_t sa[2], sb[1];
    const int first[2] = {0, 1}, alone[1] = {0}, next_a[2] = {3, 2}, next_b[1] = {3};
    free(run_batch(&a, first, 2, 0, sa));
    free(run_batch(&b, alone, 1, 0, sb));
    float *oa = run_batch(&a, next_a, 2, 0, sa);
    float *ob = run_batch(&b, next_b, 1, 0, sb);
    assert_int_equal(sa[0], sb[0]);
    double diff = max_abs_diff(oa, ob, sa[0]);
    print_message("padded vs unpadded history: max abs diff %g\n", diff);
    assert_true(diff < 1e-6);
    free(oa);
    free(ob);
    predictor_free(&a);
    predictor_free(&b);
}

/* Batches of 3, 1, 3 rows: rows 1 and 2 of the last batch continue from the first batch
 * (the 1-row batch leaves them alone); row 0 continues from the 1-row batch. */
static void test_rows_beyond_batch_keep_state(void **state) {
    Fixture *f = *state;
    Predictor a, b;
    predictor_init(&a, &f->model, 3);
    predictor_init(&b, &f->model, 3);
    size_t s3[3], s1[1], t3[3];
    const int x[3] = {0, 1, 2}, y[1] = {4}, z[3] = {3, 4, 0};
    free(run_batch(&a, x, 3, 0, s3));
    free(run_batch(&a, y, 1, 0, s1));
    float *za = run_batch(&a, z, 3, 0, s3);
    free(run_batch(&b, x, 3, 0, t3));
    float *zb = run_batch(&b, z, 3, 0, t3);
    assert_true(max_abs_diff(za + s3[0], zb + t3[0], s3[1] + s3[2]) < 1e-6); /* rows 1, 2 */
    assert_true(max_abs_diff(za, zb, s3[0]) > 1e-4);                         /* row 0 differs */
    free(za);
    free(zb);
    predictor_free(&a);
    predictor_free(&b);
}

/* A stateless batch equals the same batch on a fresh predictor and does not disturb the
 * stored state; a stateful one differs from it. */
static void test_stateless(void **state) {
    Fixture *f = *state;
    Predictor a, fresh, b;
    predictor_init(&a, &f->model, 2);
    predictor_init(&fresh, &f->model, 2);
    predictor_init(&b, &f->model, 2);
    size_t s[2], r[2];
    const int x[2] = {0, 1}, y[2] = {2, 3}, z[2] = {4, 5};
    free(run_batch(&a, x, 2, 0, s));
    float *ya = run_batch(&a, y, 2, 1, s);
    float *yf = run_batch(&fresh, y, 2, 0, r);
    assert_true(max_abs_diff(ya, yf, s[0] + s[1]) == 0.0);
    float *za = run_batch(&a, z, 2, 0, s);
    free(run_batch(&b, x, 2, 0, r));
    float *zb = run_batch(&b, z, 2, 0, r);
    assert_true(max_abs_diff(za, zb, s[0] + s[1]) == 0.0);
    float *zs = run_batch(&fresh, z, 2, 1, r); /* stateless z differs from stateful z */
    assert_true(max_abs_diff(za, zs, s[0]) > 1e-4);
    assert_int_equal(s[1], 0); /* the empty sentence has no tokens */
    free(ya); free(yf); free(za); free(zb); free(zs);
    predictor_free(&a);
    predictor_free(&fresh);
    predictor_free(&b);
}

/* Thread count does not change the results beyond float rounding. */
static void test_threads_agree(void **state) {
    Fixture *f = *state;
    size_t s[3];
    const int x[3] = {0, 1, 3};
    elmo_set_threads(1);
    Predictor a;
    predictor_init(&a, &f->model, 3);
    float *one = run_batch(&a, x, 3, 0, s);
    predictor_free(&a);
    elmo_set_threads(2);
    predictor_init(&a, &f->model, 3);
    float *two = run_batch(&a, x, 3, 0, s);
    predictor_free(&a);
    assert_true(max_abs_diff(one, two, s[0] + s[1] + s[2]) < 1e-6);
    free(one);
    free(two);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_padding_keeps_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_beyond_batch_keep_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stateless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_agree, setup, teardown),
    };
    return cmocka_run_group_tests_name("predictor", tests, NULL, NULL);
}
