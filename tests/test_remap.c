/* test_remap.c - a stored softmax matched to another vocabulary by token: kept rows bit for
 * bit, new rows against an independent least-squares solve (Gram-Schmidt QR here, normal
 * equations in the library), the counts; a file without a stored vocabulary refused unless
 * --init-vocab names it; and the softmax-only warm-up of fine-tuning through the CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "common.h"
#include "model.h"
#include "options.h"
#include "predictor.h"
#include "remap.h"
#include "testutil.h"
#include "vocab.h"

static const char options_text[] =
    "{\"char_cnn\": {\"activation\": \"relu\", \"embedding\": {\"dim\": 4}, \"filters\": [[1, 8], [2, 8], [3, 8]],"
    " \"max_characters_per_token\": 12, \"n_characters\": 261, \"n_highway\": 1},"
    " \"lstm\": {\"cell_clip\": 3, \"dim\": 16, \"n_layers\": 1, \"proj_clip\": 3, \"projection_dim\": 8}}";

#define N_OLD 40
#define N_KEPT 30

/* Word i of the test's vocabularies ("<S>", "</S>", "<UNK>" first). */
static void word(char *buf, size_t size, int i) {
    static const char *const markers[3] = {"<S>", "</S>", "<UNK>"};
    if (i < 3) snprintf(buf, size, "%s", markers[i]);
    else snprintf(buf, size, "w%c%c%d", 'a' + i % 7, 'k' + i % 5, i);
}

/* The old vocabulary: words 0..N_OLD-1. The new one: N_KEPT of them in another order, and
 * N_OLD - N_KEPT words of its own (the same size: never matched by position). */
static void vocabularies(Vocab *old, Vocab *fresh) {
    char buf[N_OLD][32], buf2[N_OLD][32];
    const char *a[N_OLD], *b[N_OLD];
    for (int i = 0; i < N_OLD; i++) {
        word(buf[i], sizeof buf[i], i);
        a[i] = buf[i];
    }
    for (int i = 0; i < N_OLD; i++) {
        if (i < N_KEPT) snprintf(buf2[i], sizeof buf2[i], "%s", buf[i < 3 ? i : 3 + (i * 7) % (N_KEPT - 3)]);
        else word(buf2[i], sizeof buf2[i], 100 + i);
        b[i] = buf2[i];
    }
    vocab_from_words(old, a, N_OLD);
    vocab_from_words(fresh, b, N_OLD);
}

static void token_embeddings(float *out, const BilmModel *m, const Vocab *v, const int *which, int n) {
    const ElmoOptions *o = m->opt;
    Predictor p;
    predictor_init(&p, m, 1);
    int32_t *ids = malloc((size_t)n * o->max_chars * sizeof(int32_t));
    float *f[3];
    for (int i = 0; i < 3; i++) f[i] = malloc((size_t)n * o->total_filters * sizeof(float));
    for (int i = 0; i < n; i++) chars_encode_prediction(v->words[which[i]], o->max_chars, ids + (size_t)i * o->max_chars);
    predictor_token_embeddings(&p, out, ids, n, f[0], f[1], f[2]);
    for (int i = 0; i < 3; i++) free(f[i]);
    free(ids);
    predictor_free(&p);
}

/* Least squares min ||X A - Y|| by modified Gram-Schmidt QR (n x k, n x k). */
static void least_squares_qr(double *A, double *X, const double *Y, int n, int k) {
    double *R = calloc((size_t)k * k, sizeof(double));
    for (int j = 0; j < k; j++) {
        for (int i = 0; i < j; i++) {
            double d = 0;
            for (int r = 0; r < n; r++) d += X[(size_t)r * k + i] * X[(size_t)r * k + j];
            R[(size_t)i * k + j] = d;
            for (int r = 0; r < n; r++) X[(size_t)r * k + j] -= d * X[(size_t)r * k + i];
        }
        double norm = 0;
        for (int r = 0; r < n; r++) norm += X[(size_t)r * k + j] * X[(size_t)r * k + j];
        norm = sqrt(norm);
        R[(size_t)j * k + j] = norm;
        for (int r = 0; r < n; r++) X[(size_t)r * k + j] /= norm;
    }
    for (int c = 0; c < k; c++) { /* R a = Q^T y */
        double *qty = calloc((size_t)k, sizeof(double));
        for (int i = 0; i < k; i++)
            for (int r = 0; r < n; r++) qty[i] += X[(size_t)r * k + i] * Y[(size_t)r * k + c];
        for (int i = k - 1; i >= 0; i--) {
            double s = qty[i];
            for (int p = i + 1; p < k; p++) s -= R[(size_t)i * k + p] * A[(size_t)p * k + c];
            A[(size_t)i * k + c] = s / R[(size_t)i * k + i];
        }
        free(qty);
    }
    free(R);
}

static void test_rows_matched_by_token(void **state) {
    ElmoOptions o;
    assert_int_equal(options_parse(&o, options_text, "remap.json"), 0);
    Vocab old, fresh;
    vocabularies(&old, &fresh);
    const int P = o.proj_dim, k = P + 1;
    BilmModel a;
    model_init_layout(&a, &o, N_OLD);
    model_init_random(&a, 3);
    fill_uniform(a.softmax_b, N_OLD, 0.5f, 4);
    char path[512];
    tmp_path(path, sizeof path, "with_vocab.hdf5");
    assert_int_equal(model_save(&a, path, &old), 0);

    BilmModel b;
    model_init_layout(&b, &o, N_OLD);
    model_init_random(&b, 99);
    assert_int_equal(model_load_bilm(&b, path), 0);
    SoftmaxRemap r;
    assert_int_equal(remap_load_softmax(&b, path, &fresh, NULL, &r), 0);
    char line[256];
    print_message("%s\n", remap_describe(&r, line, sizeof line));
    assert_int_equal(r.kept, N_KEPT);
    assert_int_equal(r.added, N_OLD - N_KEPT);
    assert_int_equal(r.dropped, N_OLD - N_KEPT);
    assert_true(r.fitted);
    /* kept rows: bit for bit, found by token */
    int kept_new[N_OLD], kept_old[N_OLD], added[N_OLD], nk = 0, na = 0;
    for (int i = 0; i < N_OLD; i++) {
        const int from = vocab_lookup(&old, fresh.words[i]);
        if (from >= 0) {
            assert_memory_equal(b.softmax_W + (size_t)i * P, a.softmax_W + (size_t)from * P, (size_t)P * sizeof(float));
            assert_memory_equal(&b.softmax_b[i], &a.softmax_b[from], sizeof(float));
            kept_new[nk] = i;
            kept_old[nk++] = from;
        } else {
            added[na++] = i;
        }
    }
    /* new rows: the affine map of the kept tokens' embeddings, solved here independently */
    float *e = malloc((size_t)N_OLD * P * sizeof(float));
    token_embeddings(e, &b, &fresh, kept_new, nk);
    double *X = malloc((size_t)nk * k * sizeof(double)), *Y = malloc((size_t)nk * k * sizeof(double));
    for (int i = 0; i < nk; i++) {
        for (int j = 0; j < P; j++) {
            X[(size_t)i * k + j] = e[(size_t)i * P + j];
            Y[(size_t)i * k + j] = a.softmax_W[(size_t)kept_old[i] * P + j];
        }
        X[(size_t)i * k + P] = 1;
        Y[(size_t)i * k + P] = a.softmax_b[kept_old[i]];
    }
    double *A = calloc((size_t)k * k, sizeof(double));
    least_squares_qr(A, X, Y, nk, k);
    token_embeddings(e, &b, &fresh, added, na);
    double worst = 0;
    for (int i = 0; i < na; i++)
        for (int c = 0; c < k; c++) {
            double want = A[(size_t)P * k + c];
            for (int j = 0; j < P; j++) want += e[(size_t)i * P + j] * A[(size_t)j * k + c];
            const double got = c < P ? b.softmax_W[(size_t)added[i] * P + c] : b.softmax_b[added[i]];
            worst = fmax(worst, fabs(got - want) / fmax(fabs(want), 1e-3));
        }
    print_message("new rows against the QR solve: max relative difference %.3g\n", worst);
    assert_true(worst < 1e-4);
    free(e);
    free(X);
    free(Y);
    free(A);
    model_free(&a);
    model_free(&b);
    vocab_free(&old);
    vocab_free(&fresh);
    options_free(&o);
}

/* A softmax without a stored vocabulary is used only with the vocabulary it was trained
 * with named; a same-size one is never assumed to match. */
static void test_no_stored_vocabulary(void **state) {
    ElmoOptions o;
    assert_int_equal(options_parse(&o, options_text, "remap.json"), 0);
    Vocab old, fresh;
    vocabularies(&old, &fresh);
    BilmModel a, b;
    model_init_layout(&a, &o, N_OLD);
    model_init_random(&a, 5);
    char path[512], vocab_file[512];
    tmp_path(path, sizeof path, "no_vocab.hdf5");
    assert_int_equal(model_save(&a, path, &old), 0);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Ldelete(file, "vocab", H5P_DEFAULT) >= 0);
    H5Fclose(file);
    model_init_layout(&b, &o, N_OLD);
    assert_int_equal(model_load_bilm(&b, path), 0);
    SoftmaxRemap r;
    assert_int_equal(remap_load_softmax(&b, path, &fresh, NULL, &r), -1);
    assert_non_null(strstr(elmo_error(), "--init-vocab"));
    assert_non_null(strstr(elmo_error(), path));
    FILE *f = fopen(tmp_path(vocab_file, sizeof vocab_file, "old_vocab.txt"), "w");
    for (int i = 0; i < N_OLD; i++) fprintf(f, "%s\n", old.words[i]);
    fclose(f);
    assert_int_equal(remap_load_softmax(&b, path, &fresh, vocab_file, &r), 0);
    assert_int_equal(r.kept, N_KEPT);
    model_free(&a);
    model_free(&b);
    vocab_free(&old);
    vocab_free(&fresh);
    options_free(&o);
}

static int same_dataset(const char *a, const char *b, const char *name) {
    int rank;
    size_t d1[4] = {1, 1, 1, 1}, d2[4] = {1, 1, 1, 1};
    float *x = read_dataset(a, name, &rank, d1), *y = read_dataset(b, name, &rank, d2);
    assert_non_null(x);
    assert_non_null(y);
    const size_t n = d1[0] * d1[1] * d1[2] * d1[3];
    const int same = memcmp(x, y, n * sizeof(float)) == 0;
    free(x);
    free(y);
    return same;
}

/* Fine-tuning from a released weight file: during the warm-up only the softmax changes
 * (every other tensor bit for bit), afterwards every layer trains. */
static void test_softmax_warmup(void **state) {
    char corpus[512], vocab[512], opts[512], save[512], tuned[512], released[600], args[4096], err[16384];
    FILE *f = fopen(tmp_path(corpus, sizeof corpus, "warm.txt"), "w");
    for (int i = 0; i < 200; i++) fprintf(f, "the cat sat on a mat %d\n", i % 7);
    fclose(f);
    f = fopen(tmp_path(vocab, sizeof vocab, "warm_vocab.txt"), "w");
    fprintf(f, "<S>\n</S>\n<UNK>\nthe\ncat\nsat\non\na\nmat\n0\n1\n2\n");
    fclose(f);
    char text[2048];
    snprintf(text, sizeof text, "%.*s, \"batch_size\": 4, \"unroll_steps\": 5, \"n_negative_samples_batch\": 4}",
             (int)strlen(options_text) - 1, options_text);
    write_text_file(tmp_path(opts, sizeof opts, "warm.json"), text);
    tmp_path(save, sizeof save, "warm_base");
    snprintf(args, sizeof args, "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --max-batches 4 "
             "--n-train-tokens 1000", opts, corpus, vocab, save);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    /* an export with its softmax keeps the vocabulary; eval with another vocabulary matches
     * its rows by token */
    char with_softmax[600], other_vocab[512];
    snprintf(with_softmax, sizeof with_softmax, "%s/warm_export/with_softmax.hdf5", test_tmpdir());
    snprintf(args, sizeof args, "dump-weights --save-dir '%s' --with-softmax --output '%s'", save, with_softmax);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    f = fopen(tmp_path(other_vocab, sizeof other_vocab, "warm_vocab_other.txt"), "w");
    fprintf(f, "<S>\n</S>\n<UNK>\nmat\na\non\nsat\ncat\nthe\ndog\n");
    fclose(f);
    snprintf(args, sizeof args, "eval --weights '%s' --options '%s/warm_export/options.json' --test-prefix '%s' "
             "--vocab '%s' --quiet --batch-size 4", with_softmax, test_tmpdir(), corpus, other_vocab);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    assert_non_null(strstr(err, "softmax rows matched by token: 9 kept, 1 new"));
    assert_non_null(strstr(err, "3 dropped"));
    snprintf(released, sizeof released, "%s/warm_released.hdf5", test_tmpdir());
    snprintf(args, sizeof args, "dump-weights --save-dir '%s' --output '%s'", save, released);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    tmp_path(tuned, sizeof tuned, "warm_tuned");
    snprintf(args, sizeof args, "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --max-batches 3 "
             "--n-train-tokens 1000 --init-from '%s' --warmup-softmax 3 --checkpoint-every 3", opts, corpus, vocab, tuned,
             released);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt-3.hdf5", tuned);
    ElmoOptions o;
    assert_int_equal(options_parse(&o, text, "warm.json"), 0);
    BilmModel m;
    model_init_layout(&m, &o, 12);
    int checked = 0;
    for (int i = 0; i < m.n_entries; i++) {
        if (m.entries[i].row_sparse) continue;
        if (!same_dataset(ckpt, released, m.entries[i].name)) print_error("%s changed\n", m.entries[i].name);
        assert_true(same_dataset(ckpt, released, m.entries[i].name));
        checked++;
    }
    assert_true(checked > 5);
    /* after the warm-up (restored by --restart) every layer trains */
    snprintf(args, sizeof args, "train --restart '%s' --max-batches 2", tuned);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt-5.hdf5", tuned);
    for (int i = 0; i < m.n_entries; i++)
        if (m.entries[i].kind == PARAM_LSTM_W || m.entries[i].kind == PARAM_CNN_W)
            assert_false(same_dataset(ckpt, released, m.entries[i].name));
    model_free(&m);
    options_free(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_matched_by_token),
        cmocka_unit_test(test_no_stored_vocabulary),
        cmocka_unit_test(test_softmax_warmup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
