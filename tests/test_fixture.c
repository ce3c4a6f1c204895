/* test_fixture.c - the bilm-tf reference model reproduced (docs/design.md section 8).
 *
 * $ELMO_FIXTURES/bilm-tf/model holds a tiny trained biLM and the top-layer
 * embeddings bilm-tf computed for 3 lists of 10 sentences, statefully, in 10 batches of
 * 3 (batch i = sentence i of each list). Skipped (not passed) when the fixture is absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "common.h"
#include "fileio.h"
#include "model.h"
#include "naive.h"
#include "options.h"
#include "predictor.h"
#include "sentences.h"
#include "testutil.h"
#include "text.h"

#define TOLERANCE 1e-5

typedef struct {
    char options[512], weights[512], vocab[512], sentences[512];
    char *text[3][10]; /* the sentences, owned */
} Fixture;

/* Loads the fixture paths and sentences; returns 0 when the fixture is absent. */
static int load_fixture(Fixture *fx) {
    if (!fixture_path(fx->options, sizeof fx->options, "bilm-tf/model/options.json") ||
        !fixture_path(fx->weights, sizeof fx->weights, "bilm-tf/model/lm_weights.hdf5") ||
        !fixture_path(fx->vocab, sizeof fx->vocab, "bilm-tf/model/vocab_test.txt") ||
        !fixture_path(fx->sentences, sizeof fx->sentences, "bilm-tf/model/lm_embeddings_sentences.json"))
        return 0;
    char *json;
    assert_int_equal(file_read_all(fx->sentences, 1 << 22, &json, NULL), 0);
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 10; i++)
            fx->text[k][i] = xstrdup(cJSON_GetArrayItem(cJSON_GetArrayItem(root, k), i)->valuestring);
    cJSON_Delete(root);
    free(json);
    return 1;
}

static void free_fixture(Fixture *fx) {
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 10; i++) free(fx->text[k][i]);
}

/* Compares the top layer of an (L+1, n, 2P) embedding with the expected (2, n, P). */
static double top_layer_diff(const float *got, const float *expected, int L, int n, int P) {
    double worst = 0;
    const float *top = got + (size_t)L * n * 2 * P;
    for (int i = 0; i < n; i++)
        for (int d = 0; d < 2; d++) {
            double diff = max_abs_diff(top + (size_t)i * 2 * P + d * P, expected + ((size_t)d * n + i) * P, (size_t)P);
            if (diff > worst) worst = diff;
        }
    return worst;
}

static const float *expected_top(int list, int i, size_t *n_out, float **owned) {
    char rel[128], path[512];
    snprintf(rel, sizeof rel, "bilm-tf/model/lm_embeddings_%d.hdf5", list);
    assert_non_null(fixture_path(path, sizeof path, rel));
    char name[16];
    snprintf(name, sizeof name, "%d", i);
    int rank;
    size_t dims[4];
    *owned = read_dataset(path, name, &rank, dims);
    assert_non_null(*owned);
    assert_int_equal(rank, 3);
    assert_int_equal(dims[0], 2);
    *n_out = dims[1];
    return *owned;
}

/* Embeds the 30 sentences with the library, batch i = sentence i of each list. */
static void check_library(const char *options_path, const Fixture *fx) {
    ElmoOptions opt;
    assert_int_equal(options_load(&opt, options_path), 0);
    BilmModel model;
    model_init_layout(&model, &opt, 0);
    assert_int_equal(model_load(&model, fx->weights), 0);
    Predictor pred;
    predictor_init(&pred, &model, 3);
    SentenceBatch batch;
    batch_init(&batch, 3, opt.max_chars);
    TokenList toks = {0};
    const int L = opt.n_layers, P = opt.proj_dim;
    double worst = 0;
    for (int i = 0; i < 10; i++) {
        batch_clear(&batch);
        for (int k = 0; k < 3; k++) {
            char *line = xstrdup(fx->text[k][i]);
            assert_int_equal(text_split(line, strlen(line), &toks, "fixture"), 0);
            batch_add(&batch, toks.tokens, toks.n, i);
            free(line);
        }
        batch_build(&batch);
        predictor_run(&pred, batch.ids, 3, batch.T, 0);
        for (int k = 0; k < 3; k++) {
            size_t n;
            float *owned;
            const float *expected = expected_top(k, i, &n, &owned);
            assert_int_equal(n, batch.n_tokens[k] - 2);
            float *got = malloc((size_t)(L + 1) * n * 2 * P * sizeof(float));
            predictor_sentence_output(&pred, k, got);
            double diff = top_layer_diff(got, expected, L, (int)n, P);
            if (diff > worst) worst = diff;
            if (diff > TOLERANCE) print_error("list %d sentence %d: max abs diff %g\n", k, i, diff);
            free(got);
            free(owned);
        }
    }
    print_message("library: max abs diff over 30 sentences: %g\n", worst);
    assert_true(worst <= TOLERANCE);
    token_list_free(&toks);
    batch_free(&batch);
    predictor_free(&pred);
    model_free(&model);
    options_free(&opt);
}

static void test_library_reproduces_fixture(void **state) {
    Fixture fx;
    if (!load_fixture(&fx)) skip();
    check_library(fx.options, &fx);
    free_fixture(&fx);
}

/* The same weights with options saying n_characters 261 (a training file). */
static void test_n_characters_261_accepted(void **state) {
    Fixture fx;
    if (!load_fixture(&fx)) skip();
    ElmoOptions opt;
    assert_int_equal(options_load(&opt, fx.options), 0);
    assert_int_equal(opt.n_characters, 262);
    char path[512];
    tmp_path(path, sizeof path, "options261.json");
    assert_int_equal(options_save(&opt, path, 261), 0);
    options_free(&opt);
    assert_int_equal(options_load(&opt, path), 0);
    assert_int_equal(opt.n_characters, 261);
    options_free(&opt);
    check_library(path, &fx);
    free_fixture(&fx);
}

/* The float64 twin of a stateful run: the sentence (n tokens, markers included) continues
 * from its row's state (per direction and layer, updated); out (L+1, n-2, 2P) as
 * predictor_sentence_output gives it. */
static void naive_sentence(double *out, char **tokens, int n, double *const c[2][ELMO_MAX_LAYERS],
                           double *const h[2][ELMO_MAX_LAYERS], const BilmModel *m, const LstmDims *d) {
    const ElmoOptions *o = m->opt;
    const int C = o->max_chars, P = o->proj_dim, L = o->n_layers;
    double *emb = malloc((size_t)n * P * sizeof(double)), *x = malloc((size_t)n * P * sizeof(double));
    double *y = malloc((size_t)n * P * sizeof(double));
    int32_t *ids = malloc((size_t)C * sizeof(int32_t));
    for (int t = 0; t < n; t++) {
        chars_encode(tokens[t], C, ids);
        naive_token_embedding(emb + (size_t)t * P, ids, m);
    }
    for (int t = 1; t < n - 1; t++)
        for (int k = 0; k < P; k++) out[(size_t)(t - 1) * 2 * P + k] = out[(size_t)(t - 1) * 2 * P + P + k] = emb[(size_t)t * P + k];
    for (int dir = 0; dir < 2; dir++) {
        for (int t = 0; t < n; t++) /* the backward LSTMs read the sentence reversed */
            memcpy(x + (size_t)t * P, emb + (size_t)(dir ? n - 1 - t : t) * P, (size_t)P * sizeof(double));
        for (int l = 0; l < L; l++) {
            naive_lstm(y, c[dir][l], h[dir][l], x, NULL, 1, n, o->use_skip_connections && l > 0, &m->lstm[dir][l], d,
                       NULL, NULL);
            for (int t = 1; t < n - 1; t++) {
                const int from = dir ? n - 1 - t : t;
                memcpy(out + ((size_t)(l + 1) * (n - 2) + t - 1) * 2 * P + dir * P, y + (size_t)from * P,
                       (size_t)P * sizeof(double));
            }
            memcpy(x, y, (size_t)n * P * sizeof(double));
        }
    }
    free(emb);
    free(x);
    free(y);
    free(ids);
}

/* Every layer of a stateful run against the float64 twin of the same weights, at batch 1
 * (each sentence continues from the state the previous one left, 90 in a row) and at
 * batch 3. float32 stays within a few 1e-6 of float64 at both: an error that grew with the
 * carried state, or with the batch shape, would show here (measured: ~1e-6). */
static void test_float64_agreement_at_batch_1_and_3(void **state) {
    Fixture fx;
    if (!load_fixture(&fx)) skip();
    ElmoOptions opt;
    assert_int_equal(options_load(&opt, fx.options), 0);
    BilmModel model;
    model_init_layout(&model, &opt, 0);
    assert_int_equal(model_load(&model, fx.weights), 0);
    const LstmDims d = lstm_dims(&opt);
    const int L = opt.n_layers, P = opt.proj_dim, H = d.H, Hs = d.Hs, N_SENTENCES = 90;
    for (int B = 1; B <= 3; B += 2) {
        Predictor pred;
        predictor_init(&pred, &model, B);
        SentenceBatch batch;
        batch_init(&batch, B, opt.max_chars);
        double *c[3][2][ELMO_MAX_LAYERS], *h[3][2][ELMO_MAX_LAYERS]; /* per row */
        for (int r = 0; r < B; r++)
            for (int dir = 0; dir < 2; dir++)
                for (int l = 0; l < L; l++) {
                    c[r][dir][l] = calloc((size_t)H, sizeof(double));
                    h[r][dir][l] = calloc((size_t)Hs, sizeof(double));
                }
        TokenList toks[3] = {{0}};
        char *lines[3];
        double worst = 0, worst_top = 0;
        for (int s0 = 0; s0 < N_SENTENCES; s0 += B) {
            batch_clear(&batch);
            for (int r = 0; r < B; r++) {
                const int s = s0 + r;
                lines[r] = xstrdup(fx.text[s % 3][(s / 3) % 10]);
                assert_int_equal(text_split(lines[r], strlen(lines[r]), &toks[r], "fixture"), 0);
                batch_add(&batch, toks[r].tokens, toks[r].n, s);
            }
            batch_build(&batch);
            predictor_run(&pred, batch.ids, B, batch.T, 0);
            for (int r = 0; r < B; r++) {
                const int n = toks[r].n + 2;
                char **tokens = malloc((size_t)n * sizeof(char *));
                tokens[0] = "<S>";
                for (int t = 0; t < toks[r].n; t++) tokens[t + 1] = toks[r].tokens[t];
                tokens[n - 1] = "</S>";
                const size_t size = (size_t)(L + 1) * (n - 2) * 2 * P;
                float *got = malloc(size * sizeof(float));
                double *want = malloc(size * sizeof(double));
                predictor_sentence_output(&pred, r, got);
                naive_sentence(want, tokens, n, c[r], h[r], &model, &d);
                for (size_t i = 0; i < size; i++) {
                    const double diff = fabs(got[i] - want[i]);
                    worst = fmax(worst, diff);
                    if (i >= (size_t)L * (n - 2) * 2 * P) worst_top = fmax(worst_top, diff);
                }
                free(tokens);
                free(got);
                free(want);
                free(lines[r]);
            }
        }
        print_message("batch %d, %d sentences carried: max abs diff from float64 %.3g (top layer %.3g)\n", B,
                      N_SENTENCES, worst, worst_top);
        assert_true(worst < 5e-6);
        for (int r = 0; r < B; r++) {
            token_list_free(&toks[r]);
            for (int dir = 0; dir < 2; dir++)
                for (int l = 0; l < L; l++) {
                    free(c[r][dir][l]);
                    free(h[r][dir][l]);
                }
        }
        batch_free(&batch);
        predictor_free(&pred);
    }
    model_free(&model);
    options_free(&opt);
    free_fixture(&fx);
}

static void write_fixture_input(const Fixture *fx, const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 10; i++)
        for (int k = 0; k < 3; k++) fprintf(f, "%s\n", fx->text[k][i]);
    fclose(f);
}

/* Compares every sentence of an `elmo embed` output with the fixture. */
static void check_cli_output(const char *out, int L, int P) {
    double worst = 0;
    for (int i = 0; i < 10; i++)
        for (int k = 0; k < 3; k++) {
            char name[16];
            snprintf(name, sizeof name, "%d", 3 * i + k);
            int rank;
            size_t dims[4];
            float *got = read_dataset(out, name, &rank, dims);
            assert_non_null(got);
            assert_int_equal(rank, 3);
            assert_int_equal(dims[0], L + 1);
            assert_int_equal(dims[2], 2 * P);
            size_t n;
            float *owned;
            const float *expected = expected_top(k, i, &n, &owned);
            assert_int_equal(dims[1], n);
            double diff = top_layer_diff(got, expected, L, (int)n, P);
            if (diff > worst) worst = diff;
            free(got);
            free(owned);
        }
    print_message("elmo embed: max abs diff over 30 sentences: %g\n", worst);
    assert_true(worst <= TOLERANCE);
}

static void test_cli_reproduces_fixture(void **state) {
    Fixture fx;
    if (!load_fixture(&fx)) skip();
    char input[512], out[512], args[4096], err[4096];
    write_fixture_input(&fx, tmp_path(input, sizeof input, "fixture.txt"));
    tmp_path(out, sizeof out, "fixture_out.hdf5");
    for (int threads = 1; threads <= 2; threads++) {
        snprintf(args, sizeof args,
                 "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --batch-size 3 "
                 "--threads %d",
                 fx.options, fx.weights, fx.vocab, input, out, threads);
        assert_int_equal(run_elmo(args, err, sizeof err), 0);
        check_cli_output(out, 2, 16);
    }
    free_fixture(&fx);
}

/* embed-vocab rows equal layer 0 of embed for the same words. */
static void test_embed_vocab_matches_layer0(void **state) {
    Fixture fx;
    if (!load_fixture(&fx)) skip();
    char input[512], out[512], vout[512], vocab[512], args[4096], err[4096];
    write_text_file(tmp_path(vocab, sizeof vocab, "small_vocab.txt"), "<S>\n</S>\nThe\nflu\n,\nCrazy\n");
    write_text_file(tmp_path(input, sizeof input, "words.txt"), "The flu , Crazy\n");
    tmp_path(out, sizeof out, "words.hdf5");
    tmp_path(vout, sizeof vout, "vocab_emb.hdf5");
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s'",
             fx.options, fx.weights, vocab, input, out);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    snprintf(args, sizeof args, "embed-vocab --options '%s' --weights '%s' --vocab '%s' --output '%s'", fx.options,
             fx.weights, vocab, vout);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    int rank;
    size_t dims[4], vdims[4];
    float *emb = read_dataset(out, "0", &rank, dims);
    float *vemb = read_dataset(vout, "embedding", &rank, vdims);
    assert_non_null(emb);
    assert_non_null(vemb);
    assert_int_equal(vdims[0], 6);
    assert_int_equal(vdims[1], 16);
    assert_int_equal(dims[1], 4);
    for (int i = 0; i < 4; i++) { /* sentence token i is vocabulary word i + 2 */
        const float *row = emb + (size_t)i * 32;
        assert_true(max_abs_diff(row, vemb + (size_t)(i + 2) * 16, 16) <= 1e-6);
        assert_true(max_abs_diff(row + 16, vemb + (size_t)(i + 2) * 16, 16) <= 1e-6); /* [e, e] */
    }
    free(emb);
    free(vemb);
    free_fixture(&fx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_reproduces_fixture),
        cmocka_unit_test(test_float64_agreement_at_batch_1_and_3),
        cmocka_unit_test(test_n_characters_261_accepted),
        cmocka_unit_test(test_cli_reproduces_fixture),
        cmocka_unit_test(test_embed_vocab_matches_layer0),
    };
    return cmocka_run_group_tests_name("fixture", tests, NULL, NULL);
}
