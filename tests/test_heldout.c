/* test_heldout.c - heldout_evaluate (train/heldout.h) against the loop `elmo eval` used to
 * run, `elmo eval`'s per-direction lines and imbalance warning, `--best`, dump-weights into
 * a new directory, and `elmo --version`. One tiny training run on bilm-tf's training
 * fixture (100 batches, checkpoints 50 and 100) serves every test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dataset.h"
#include "fileio.h"
#include "heldout.h"
#include "model.h"
#include "options.h"
#include "testutil.h"
#include "trainer.h"
#include "vocab.h"

/* bilm-tf's training test configuration (as in test_train_cli.c), skip connections on. */
static const char fixture_options[] =
    "{\"bidirectional\": true, \"char_cnn\": {\"activation\": \"tanh\", \"embedding\": {\"dim\": 4},"
    " \"filters\": [[1, 8], [2, 8], [3, 16], [4, 32], [5, 64]], \"max_characters_per_token\": 10,"
    " \"n_characters\": 261, \"n_highway\": 1}, \"dropout\": 0.1, \"lstm\": {\"cell_clip\": 5, \"dim\": 16,"
    " \"n_layers\": 2, \"proj_clip\": 5, \"projection_dim\": 8, \"use_skip_connections\": true},"
    " \"all_clip_norm_val\": 1.0, \"n_epochs\": 50, \"n_train_tokens\": 134, \"batch_size\": 2,"
    " \"unroll_steps\": 10, \"n_negative_samples_batch\": 16}";

static char data_path[512], vocab_path[512], save_dir[512], ckpt_50[600], ckpt_100[600], options_path[600];
static int have_model;

/* Trains the model every test uses (when the fixture is there). */
static int setup(void **state) {
    if (!fixture_path(data_path, sizeof data_path, "bilm-tf/train/data.txt") ||
        !fixture_path(vocab_path, sizeof vocab_path, "bilm-tf/train/vocab.txt"))
        return 0;
    char opts[512], cmd[4096], err[8192];
    write_text_file(tmp_path(opts, sizeof opts, "fixture.json"), fixture_options);
    tmp_path(save_dir, sizeof save_dir, "save");
    snprintf(cmd, sizeof cmd,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --seed 5 --threads 2 "
             "--max-batches 100 --checkpoint-every 50 --log-every 0",
             opts, data_path, vocab_path, save_dir);
    if (run_elmo(cmd, err, sizeof err) != 0) {
        print_error("elmo %s\nfailed: %s\n", cmd, err);
        return -1;
    }
    snprintf(ckpt_50, sizeof ckpt_50, "%s/model.ckpt-50.hdf5", save_dir);
    snprintf(ckpt_100, sizeof ckpt_100, "%s/model.ckpt-100.hdf5", save_dir);
    snprintf(options_path, sizeof options_path, "%s/options.json", save_dir);
    have_model = file_exists(ckpt_50) && file_exists(ckpt_100);
    return have_model ? 0 : -1;
}

static void need_model(void) {
    if (!have_model) skip(); /* fixture missing (fixture_path failed the run under ELMO_REQUIRE_FIXTURES) */
}

/* `elmo <args>`: exit status; stdout and stderr into out and err (NUL-terminated). */
static int run_capture(const char *args, char *out, size_t out_size, char *err, size_t err_size) {
    char out_path[512], err_path[512], cmd[8192];
    tmp_path(out_path, sizeof out_path, "capture_out.txt");
    tmp_path(err_path, sizeof err_path, "capture_err.txt");
    snprintf(cmd, sizeof cmd, "%s %s > '%s' 2> '%s'", elmo_program(), args, out_path, err_path);
    const int status = system(cmd);
    const char *paths[2] = {out_path, err_path};
    char *bufs[2] = {out, err};
    const size_t sizes[2] = {out_size, err_size};
    for (int i = 0; i < 2; i++) {
        char *text;
        if (file_read_all(paths[i], 1 << 20, &text, NULL) < 0) fail_msg("%s: %s", paths[i], elmo_error());
        snprintf(bufs[i], sizes[i], "%s", text);
        free(text);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static double value_after(const char *text, const char *key) {
    const char *at = strstr(text, key);
    if (!at) fail_msg("no '%s' in:\n%s", key, text);
    return atof(at + strlen(key));
}

typedef struct {
    ElmoOptions opt;
    Vocab vocab;
    BilmModel model;
} Loaded;

static void load(Loaded *m, const char *weights) {
    assert_int_equal(options_load(&m->opt, options_path), 0);
    assert_int_equal(vocab_load(&m->vocab, vocab_path, VOCAB_NEED_BOS_EOS | VOCAB_NEED_UNK), 0);
    model_init_layout(&m->model, &m->opt, m->vocab.size);
    assert_int_equal(model_load(&m->model, weights), 0);
}

static void unload(Loaded *m) {
    model_free(&m->model);
    vocab_free(&m->vocab);
    options_free(&m->opt);
}

typedef struct {
    double perplexity, loss[2];
    long batches;
} Reference;

/* The loop of `elmo eval` before heldout_evaluate, written out again: the trainer in
 * evaluation mode, T = 1, B streams from zero states, batches until the data or
 * max_batches (> 0) ends; perplexity = exp(mean of the batch totals). */
static Reference reference_loop(BilmModel *model, const Vocab *vocab, int B, long max_batches) {
    const int n_dirs = model->opt->bidirectional ? 2 : 1;
    LmReader *readers[2] = {NULL, NULL};
    for (int d = 0; d < n_dirs; d++)
        assert_int_equal(lm_reader_open(&readers[d], data_path, vocab, model->opt->max_chars, d, LM_EVAL, 0, 0), 0);
    Trainer evaluator;
    trainer_init(&evaluator, model, B, 1, TRAINER_EVAL, 0);
    LmBatch batches[2];
    const LmBatch *batch_ptrs[2] = {&batches[0], &batches[1]};
    for (int d = 0; d < n_dirs; d++) lm_batch_init(&batches[d], B, 1, model->opt->max_chars);
    double loss_sum = 0, dir_sum[2] = {0, 0};
    long n = 0;
    while (max_batches <= 0 || n < max_batches) {
        int got = 1;
        for (int d = 0; d < n_dirs && got == 1; d++) got = lm_reader_next(readers[d], &batches[d]);
        assert_true(got >= 0);
        if (got == 0) break;
        loss_sum += trainer_eval_batch(&evaluator, batch_ptrs);
        for (int d = 0; d < n_dirs; d++) dir_sum[d] += evaluator.loss[d];
        n++;
    }
    assert_true(n > 0);
    for (int d = 0; d < n_dirs; d++) {
        lm_batch_free(&batches[d]);
        lm_reader_close(readers[d]);
    }
    trainer_free(&evaluator);
    return (Reference){exp(loss_sum / n), {dir_sum[0] / n, dir_sum[1] / n}, n};
}

/* Bit for bit the old loop's figures, at 1 and 3 streams; the model is left unchanged
 * and `elmo eval` prints the same perplexity. */
static void test_matches_old_loop(void **state) {
    need_model();
    Loaded m;
    load(&m, ckpt_100);
    const size_t bytes = m.model.n_floats * sizeof(float);
    float *before = xmalloc(bytes);
    memcpy(before, m.model.data, bytes);
    const int sizes[2] = {1, 3};
    for (int i = 0; i < 2; i++) {
        const Reference ref = reference_loop(&m.model, &m.vocab, sizes[i], 0);
        HeldoutResult r;
        assert_int_equal(heldout_evaluate(&m.model, &m.vocab, data_path, sizes[i], 0, 0, &r), 0);
        print_message("B = %d: %ld batches, perplexity %.9g (reference %.9g), forward %.6f, backward %.6f\n",
                      sizes[i], r.batches, r.perplexity, ref.perplexity, r.perplexity_forward, r.perplexity_backward);
        assert_true(r.perplexity == ref.perplexity);
        assert_true(r.loss_forward == ref.loss[0] && r.loss_backward == ref.loss[1]);
        assert_true(r.perplexity_forward == exp(ref.loss[0]) && r.perplexity_backward == exp(ref.loss[1]));
        assert_int_equal(r.batches, ref.batches);
        assert_int_equal(r.tokens, ref.batches * sizes[i]);
        assert_true(r.seconds >= 0);
        assert_memory_equal(before, m.model.data, bytes);

        char args[4096], out[4096], err[4096], expected[64];
        snprintf(args, sizeof args, "eval --save-dir '%s' --test-prefix '%s' --vocab '%s' --batch-size %d --quiet",
                 save_dir, data_path, vocab_path, sizes[i]);
        assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 0);
        snprintf(expected, sizeof expected, "perplexity: %.6f\n", ref.perplexity);
        assert_true(strncmp(out, expected, strlen(expected)) == 0); /* the first line, as always */
    }
    free(before);
    unload(&m);
}

/* max_tokens stops after whole batches: the first batch that reaches it is the last. */
static void test_max_tokens(void **state) {
    need_model();
    Loaded m;
    load(&m, ckpt_100);
    const Reference ref = reference_loop(&m.model, &m.vocab, 2, 3);
    const long caps[3] = {6, 5, 4 + 1};
    for (int i = 0; i < 3; i++) {
        HeldoutResult r;
        assert_int_equal(heldout_evaluate(&m.model, &m.vocab, data_path, 2, caps[i], 0, &r), 0);
        assert_int_equal(r.batches, 3);
        assert_int_equal(r.tokens, 6);
        assert_true(r.perplexity == ref.perplexity);
    }
    HeldoutResult all, one;
    assert_int_equal(heldout_evaluate(&m.model, &m.vocab, data_path, 2, 0, 0, &all), 0);
    assert_int_equal(heldout_evaluate(&m.model, &m.vocab, data_path, 2, 1, 0, &one), 0);
    assert_true(all.batches > 10);
    assert_int_equal(one.batches, 1);
    /* more than the data holds: all of it */
    HeldoutResult capped;
    assert_int_equal(heldout_evaluate(&m.model, &m.vocab, data_path, 2, 100000, 0, &capped), 0);
    assert_int_equal(capped.batches, all.batches);
    assert_true(capped.perplexity == all.perplexity);
    /* through `elmo eval --max-tokens` */
    char args[4096], out[4096], err[4096], expected[64];
    snprintf(args, sizeof args,
             "eval --save-dir '%s' --test-prefix '%s' --vocab '%s' --batch-size 2 --max-tokens 5 --quiet", save_dir,
             data_path, vocab_path);
    assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 0);
    snprintf(expected, sizeof expected, "perplexity: %.6f\n", ref.perplexity);
    assert_true(strncmp(out, expected, strlen(expected)) == 0);
    /* less than one batch of data: one line naming the shards */
    HeldoutResult none;
    assert_int_equal(heldout_evaluate(&m.model, &m.vocab, data_path, 1000, 0, 0, &none), -1);
    assert_non_null(strstr(elmo_error(), data_path));
    unload(&m);
}

/* `elmo eval` prints perplexity, then each direction's; a normal model gets no warning. */
static void test_eval_prints_directions(void **state) {
    need_model();
    char args[4096], out[4096], err[4096];
    snprintf(args, sizeof args, "eval --save-dir '%s' --test-prefix '%s' --vocab '%s' --batch-size 1", save_dir,
             data_path, vocab_path);
    assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 0);
    assert_int_equal(count_lines(out), 3);
    assert_true(strncmp(out, "perplexity: ", 12) == 0);
    const char *forward = strstr(out, "\nperplexity_forward: "), *backward = strstr(out, "\nperplexity_backward: ");
    assert_non_null(forward);
    assert_non_null(backward);
    assert_true(forward < backward);
    Loaded m;
    load(&m, ckpt_100);
    HeldoutResult r;
    assert_int_equal(heldout_evaluate(&m.model, &m.vocab, data_path, 1, 0, 0, &r), 0);
    unload(&m);
    char line[128];
    snprintf(line, sizeof line, "perplexity_forward: %.6f\nperplexity_backward: %.6f\n", r.perplexity_forward,
             r.perplexity_backward);
    assert_non_null(strstr(out, line));
    const double f = value_after(out, "perplexity_forward: "), b = value_after(out, "perplexity_backward: ");
    assert_true(f > 1 && b > 1 && f < 3 * b && b < 3 * f);
    assert_null(strstr(err, "warning"));
    /* the average lies between the two */
    const double p = value_after(out, "perplexity: ");
    assert_true(p >= fmin(f, b) && p <= fmax(f, b));
}

/* heldout_imbalance on made-up figures: more than 3 times either way, not at 2.9. */
static void test_imbalance_rule(void **state) {
    char buf[512];
    HeldoutResult r = {0};
    r.perplexity_forward = 10;
    r.perplexity_backward = 31;
    assert_int_equal(heldout_imbalance(&r, buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "the backward LSTM is far worse than the forward one"));
    assert_non_null(strstr(buf, "forward perplexity 10.000, backward 31.000"));
    assert_null(strchr(buf, '\n'));
    r.perplexity_forward = 31;
    r.perplexity_backward = 10;
    assert_int_equal(heldout_imbalance(&r, buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "the forward LSTM is far worse than the backward one"));
    r.perplexity_forward = 10;
    r.perplexity_backward = 29;
    assert_int_equal(heldout_imbalance(&r, buf, sizeof buf), 0);
    r.perplexity_backward = 10; /* a unidirectional model: forward figures everywhere */
    assert_int_equal(heldout_imbalance(&r, buf, sizeof buf), 0);
}

/* A checkpoint whose backward LSTMs have random, large weights and projections (their
 * outputs saturate at the clips: confident nonsense to the softmax) gets the warning; the forward figure is untouched. */
static void test_imbalance_warning(void **state) {
    need_model();
    Loaded m;
    load(&m, ckpt_100);
    for (int l = 0; l < m.opt.n_layers; l++) {
        const LstmParams *p = &m.model.lstm[1][l];
        const size_t rows = (size_t)p->in_dim + (size_t)options_state_dim(&m.opt);
        fill_uniform(p->W, rows * 4 * (size_t)m.opt.lstm_dim, 3.0f, 77 + (uint64_t)l);
        if (p->W_P) fill_uniform(p->W_P, (size_t)m.opt.lstm_dim * (size_t)m.opt.proj_dim, 3.0f, 91 + (uint64_t)l);
    }
    char broken[600];
    tmp_path(broken, sizeof broken, "broken_backward.hdf5");
    assert_int_equal(model_save(&m.model, broken, &m.vocab), 0);
    unload(&m);
    char args[4096], out[4096], err[4096];
    snprintf(args, sizeof args,
             "eval --weights '%s' --options '%s' --test-prefix '%s' --vocab '%s' --batch-size 1 --quiet", broken,
             options_path, data_path, vocab_path);
    assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 0);
    const double f = value_after(out, "perplexity_forward: "), b = value_after(out, "perplexity_backward: ");
    print_message("backward LSTMs broken: forward %.3f, backward %.3f\n", f, b);
    assert_true(b > 3 * f);
    assert_int_equal(count_lines(err), 1);
    assert_true(strncmp(err, "elmo: warning: the backward LSTM is far worse than the forward one", 66) == 0);
    char figures[128];
    snprintf(figures, sizeof figures, "forward perplexity %.3f, backward %.3f", f, b);
    assert_non_null(strstr(err, figures));
    assert_non_null(strstr(err, "docs/design.md section 6"));
}

/* DIR/best.hdf5 (here a copy of the earlier checkpoint, 50, while 100 is the newest):
 * eval --best and dump-weights --best read it; without it both fail in one line naming
 * the file. */
static void test_best(void **state) {
    need_model();
    char dir[512], cmd[4096], args[4096], out[4096], err[4096], best[600];
    tmp_path(dir, sizeof dir, "with_best");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s' '%s/'", dir, options_path, ckpt_100, dir);
    assert_int_equal(system(cmd), 0);
    /* no best.hdf5 yet */
    snprintf(best, sizeof best, "%s/best.hdf5", dir);
    snprintf(args, sizeof args, "eval --save-dir '%s' --best --test-prefix '%s' --vocab '%s' --quiet", dir, data_path,
             vocab_path);
    assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, best));
    char exported[600];
    tmp_path(exported, sizeof exported, "best_export/weights.hdf5");
    snprintf(args, sizeof args, "dump-weights --save-dir '%s' --best --output '%s'", dir, exported);
    assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, best));
    assert_false(file_exists(exported));
    /* --best without --save-dir */
    snprintf(args, sizeof args, "dump-weights --checkpoint '%s' --best --output '%s'", ckpt_50, exported);
    assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 2);
    assert_int_equal(count_lines(err), 1);

    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", ckpt_50, best);
    assert_int_equal(system(cmd), 0);
    char a_best[4096], a_50[4096], a_newest[4096];
    snprintf(args, sizeof args, "eval --save-dir '%s' --best --test-prefix '%s' --vocab '%s' --batch-size 1 --quiet",
             dir, data_path, vocab_path);
    assert_int_equal(run_capture(args, a_best, sizeof a_best, err, sizeof err), 0);
    snprintf(args, sizeof args,
             "eval --weights '%s' --options '%s' --test-prefix '%s' --vocab '%s' --batch-size 1 --quiet", ckpt_50,
             options_path, data_path, vocab_path);
    assert_int_equal(run_capture(args, a_50, sizeof a_50, err, sizeof err), 0);
    snprintf(args, sizeof args, "eval --save-dir '%s' --test-prefix '%s' --vocab '%s' --batch-size 1 --quiet", dir,
             data_path, vocab_path);
    assert_int_equal(run_capture(args, a_newest, sizeof a_newest, err, sizeof err), 0);
    assert_string_equal(a_best, a_50);
    assert_string_not_equal(a_best, a_newest);

    snprintf(args, sizeof args, "dump-weights --save-dir '%s' --best --output '%s'", dir, exported);
    assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 0);
    const char *name = "RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/W_0";
    int rank;
    size_t d1[4], d2[4], d3[4];
    float *x = read_dataset(exported, name, &rank, d1), *y = read_dataset(ckpt_50, name, &rank, d2),
          *z = read_dataset(ckpt_100, name, &rank, d3);
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(z);
    assert_true(max_abs_diff(x, y, d1[0] * d1[1]) == 0.0);
    assert_true(max_abs_diff(x, z, d1[0] * d1[1]) > 0.0);
    free(x);
    free(y);
    free(z);
}

/* The output's directory and its missing parents are created; the training directory's
 * options are still protected, also through a path that only leads back to it. */
static void test_dump_weights_creates_directories(void **state) {
    need_model();
    char exported[600], options[600], args[4096], out[4096], err[4096];
    tmp_path(exported, sizeof exported, "nested/new/dirs/weights.hdf5");
    snprintf(args, sizeof args, "dump-weights --save-dir '%s' --output '%s'", save_dir, exported);
    assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 0);
    assert_true(file_exists(exported));
    tmp_path(options, sizeof options, "nested/new/dirs/options.json");
    assert_true(file_exists(options));
    /* relative to the current directory too */
    snprintf(args, sizeof args, "dump-weights --checkpoint '%s' --output '%s/rel_a/rel_b/w.hdf5'", ckpt_50,
             test_tmpdir());
    assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 0);
    /* save/new/.. is save itself: refused, its options.json untouched */
    char *before;
    assert_int_equal(file_read_all(options_path, 1 << 20, &before, NULL), 0);
    snprintf(args, sizeof args, "dump-weights --save-dir '%s' --output '%s/new/../weights.hdf5'", save_dir, save_dir);
    assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "training options"));
    char *after;
    assert_int_equal(file_read_all(options_path, 1 << 20, &after, NULL), 0);
    assert_string_equal(before, after);
    free(before);
    free(after);
    char inside[700];
    snprintf(inside, sizeof inside, "%s/weights.hdf5", save_dir);
    assert_false(file_exists(inside));
    /* a file where a directory should be: one line naming it */
    char blocker[600];
    write_text_file(tmp_path(blocker, sizeof blocker, "blocker"), "x");
    snprintf(args, sizeof args, "dump-weights --save-dir '%s' --output '%s/sub/w.hdf5'", save_dir, blocker);
    assert_int_equal(run_capture(args, out, sizeof out, err, sizeof err), 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, blocker));
}

/* `elmo --version` and `elmo version`: one line "elmo <version>", the same for both. */
static void test_version(void **state) {
    char out[1024], err[1024], out2[8192];
    assert_int_equal(run_capture("--version", out, sizeof out, err, sizeof err), 0);
    assert_int_equal(count_lines(out), 1);
    assert_true(strncmp(out, "elmo ", 5) == 0 && out[5] >= '0' && out[5] <= '9');
    assert_string_equal(err, "");
    assert_int_equal(run_capture("version", out2, sizeof out2, err, sizeof err), 0);
    assert_string_equal(out, out2);
    print_message("%s", out);
    assert_int_equal(run_capture("--help", out2, sizeof out2, err, sizeof err), 0);
    assert_non_null(strstr(out2, "--version"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_old_loop),
        cmocka_unit_test(test_max_tokens),
        cmocka_unit_test(test_eval_prints_directions),
        cmocka_unit_test(test_imbalance_rule),
        cmocka_unit_test(test_imbalance_warning),
        cmocka_unit_test(test_best),
        cmocka_unit_test(test_dump_weights_creates_directories),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests_name("heldout", tests, setup, NULL);
}
