/* test_train_cli.c - `elmo train`, `eval` and `dump-weights` end to end: convergence on
 * bilm-tf's training fixture, exact resume, fine-tuning, export, and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fileio.h"
#include "h5io.h"
#include "testutil.h"

/* The configuration of bilm-tf's own training test (tests/test_training.py). */
static const char fixture_options[] =
    "{\"bidirectional\": true, \"char_cnn\": {\"activation\": \"tanh\", \"embedding\": {\"dim\": 4},"
    " \"filters\": [[1, 8], [2, 8], [3, 16], [4, 32], [5, 64]], \"max_characters_per_token\": 10,"
    " \"n_characters\": 261, \"n_highway\": 1}, \"dropout\": 0.1, \"lstm\": {\"cell_clip\": 5, \"dim\": 16,"
    " \"n_layers\": 2, \"proj_clip\": 5, \"projection_dim\": 8, \"use_skip_connections\": %s},"
    " \"all_clip_norm_val\": 1.0, \"n_epochs\": 50, \"n_train_tokens\": 134, \"batch_size\": 2,"
    " \"unroll_steps\": 10, \"n_negative_samples_batch\": 16}";

/* A small model for the other tests: 2 x 6 x 10 tokens a batch, 20 batches. */
static const char small_options[] =
    "{\"char_cnn\": {\"activation\": \"relu\", \"embedding\": {\"dim\": 4}, \"filters\": [[1, 8], [2, 8], [3, 8]],"
    " \"max_characters_per_token\": 12, \"n_characters\": %d, \"n_highway\": 1}, \"dropout\": 0.1,"
    " \"lstm\": {\"cell_clip\": 3, \"dim\": 16, \"n_layers\": 2, \"proj_clip\": 3, \"projection_dim\": 8,"
    " \"use_skip_connections\": true}, \"n_epochs\": 1, \"n_train_tokens\": 1200, \"batch_size\": 6,"
    " \"unroll_steps\": 10, \"n_negative_samples_batch\": 8, \"bidirectional\": true, \"sample_softmax\": true,"
    " \"learning_rate\": 0.2, \"all_clip_norm_val\": 10.0}";

static char corpus_glob[512], vocab_path[512], opts_path[512];

static int setup(void **state) {
    /* three shards of simple sentences and their vocabulary */
    const char *words[] = {"the", "cat", "dog", "sat", "on", "a", "mat", "ran", "to", "house", "big", "small"};
    char path[512];
    for (int s = 0; s < 3; s++) {
        char name[64];
        snprintf(name, sizeof name, "corpus/shard-%d.txt", s);
        if (s == 0) {
            char dir[512];
            snprintf(dir, sizeof dir, "mkdir -p '%s/corpus'", test_tmpdir());
            CHECK(system(dir) == 0, "mkdir");
        }
        FILE *f = fopen(tmp_path(path, sizeof path, name), "w");
        for (int i = 0; i < 72; i++) { /* 1212 tokens in all: 20 batches of 6 x 10 */
            int n = 3 + (i * 7 + s) % 6;
            for (int k = 0; k < n; k++) fprintf(f, "%s%s", k ? " " : "", words[(i * 5 + k * 3 + s) % 12]);
            fprintf(f, "%s\n", i % 9 == 0 ? " unseen" : "");
        }
        fclose(f);
    }
    snprintf(corpus_glob, sizeof corpus_glob, "%s/corpus/shard-*.txt", test_tmpdir());
    FILE *v = fopen(tmp_path(vocab_path, sizeof vocab_path, "vocab.txt"), "w");
    fprintf(v, "<S>\n</S>\n<UNK>\n");
    for (int i = 0; i < 12; i++) fprintf(v, "%s\n", words[i]);
    fclose(v);
    char text[2048];
    snprintf(text, sizeof text, small_options, 261);
    write_text_file(tmp_path(opts_path, sizeof opts_path, "small.json"), text);
    return 0;
}

static int run_ok(const char *args) {
    char err[8192];
    int rc = run_elmo(args, err, sizeof err);
    if (rc != 0) print_error("elmo %s\nfailed (%d): %s\n", args, rc, err);
    return rc;
}

/* Runs eval and returns the perplexity it printed. */
static double eval_perplexity(const char *args) {
    char cmd[4096], out[512];
    tmp_path(out, sizeof out, "eval_out.txt");
    snprintf(cmd, sizeof cmd, "%s eval %s --quiet > '%s'", elmo_program(), args, out);
    assert_int_equal(system(cmd), 0);
    char *text;
    assert_int_equal(file_read_all(out, 1 << 16, &text, NULL), 0);
    double ppl = -1;
    const char *at = strstr(text, "perplexity: ");
    if (at) ppl = atof(at + 12);
    free(text);
    return ppl;
}

static void test_convergence_on_bilm_tf_fixture(void **state) {
    char data[512], vocab[512];
    if (!fixture_path(data, sizeof data, "bilm-tf/train/data.txt") ||
        !fixture_path(vocab, sizeof vocab, "bilm-tf/train/vocab.txt"))
        skip();
    for (int skip_connections = 0; skip_connections <= 1; skip_connections++) {
        char opts[512], save[512], text[2048], args[4096];
        snprintf(text, sizeof text, fixture_options, skip_connections ? "true" : "false");
        snprintf(opts, sizeof opts, "%s/fixture_%d.json", test_tmpdir(), skip_connections);
        write_text_file(opts, text);
        snprintf(save, sizeof save, "%s/fixture_save_%d", test_tmpdir(), skip_connections);
        snprintf(args, sizeof args, "train --options '%s' --train_prefix '%s' --vocab_file '%s' --save_dir '%s' --seed 5",
                 opts, data, vocab, save);
        assert_int_equal(run_ok(args), 0);
        snprintf(args, sizeof args, "--save-dir '%s' --test-prefix '%s' --vocab '%s' --batch-size 1", save, data, vocab);
        double ppl = eval_perplexity(args);
        print_message("bilm-tf training fixture, skip connections %s: perplexity %.3f\n",
                      skip_connections ? "on" : "off", ppl);
        assert_true(ppl > 1.0 && ppl < 20.0);
    }
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The checkpoints (and their temporaries) and options.json in dir, sorted, separated by
 * single spaces, into buf; the metrics files are left out. */
static const char *dir_listing(const char *dir, char *buf, size_t size) {
    char *names[256];
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 256)
        if (strncmp(e->d_name, "model.ckpt", 10) == 0 || strcmp(e->d_name, "options.json") == 0)
            names[n++] = xstrdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], compare_names);
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (at < size) at += (size_t)snprintf(buf + at, size - at, "%s%s", i ? " " : "", names[i]);
        free(names[i]);
    }
    return buf;
}

static int files_equal(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (file_read_all(a, 1 << 28, &x, &nx) < 0 || file_read_all(b, 1 << 28, &y, &ny) < 0) return 0;
    int same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

/* 20 batches straight, and 8 + stop + restart + 12: the same final checkpoint, byte for
 * byte (parameters, accumulators, generator, reader positions, LSTM states). */
static void test_exact_resume(void **state) {
    char straight[512], split[512], args[4096], a[600], b[600];
    tmp_path(straight, sizeof straight, "straight");
    tmp_path(split, sizeof split, "split");
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --seed 9 --threads 2 "
             "--checkpoint-every 3", opts_path, corpus_glob, vocab_path, straight);
    assert_int_equal(run_ok(args), 0);
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --seed 9 --threads 2 "
             "--checkpoint-every 3 --max-batches 8", opts_path, corpus_glob, vocab_path, split);
    assert_int_equal(run_ok(args), 0);
    snprintf(a, sizeof a, "%s/model.ckpt-8.hdf5", split);
    assert_true(file_exists(a));
    /* a temporary file left by a killed writer is ignored, and removed (pid 999 ended) */
    snprintf(a, sizeof a, "%s/model.ckpt-12.hdf5.tmp.999", split);
    write_text_file(a, "partial");
    /* the rest, with the run's settings restored (2 threads, a checkpoint every 3
     * batches): 9, 12, 15, 18 and the last, 20 (the extra saves must not change the result) */
    snprintf(args, sizeof args, "train --restart '%s'", split);
    assert_int_equal(run_ok(args), 0);
    snprintf(a, sizeof a, "%s/model.ckpt-20.hdf5", straight);
    snprintf(b, sizeof b, "%s/model.ckpt-20.hdf5", split);
    assert_true(files_equal(a, b));
    /* of the checkpoints (3, 6, 8, 9, 12, 15, 18, 20) only the newest 2 by step are kept
     * (by name, 9 and 8 would be the newest); options.json stays, and the stray temporary
     * file unless a process 999 runs */
    char listing[4096];
    const int pid_999_runs = !(kill(999, 0) < 0 && errno == ESRCH);
    assert_string_equal(dir_listing(split, listing, sizeof listing),
                        pid_999_runs ? "model.ckpt-12.hdf5.tmp.999 model.ckpt-18.hdf5 model.ckpt-20.hdf5 options.json"
                                     : "model.ckpt-18.hdf5 model.ckpt-20.hdf5 options.json");
    snprintf(args, sizeof args, "train --restart '%s'", split); /* nothing left to do */
    assert_int_equal(run_ok(args), 0);
    /* a fresh run refuses a directory holding checkpoints (they would mix with its own) */
    char err[4096];
    snprintf(args, sizeof args, "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s'", opts_path,
             corpus_glob, vocab_path, split);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_non_null(strstr(err, "--restart"));
    snprintf(a, sizeof a, "%s/model.ckpt-20.hdf5", straight);
    assert_true(files_equal(a, b));
}

/* dump-weights gives a released weight file (no softmax, no training state) and an
 * options.json with n_characters 262 that embed reads to the same embeddings as the
 * checkpoint itself; eval --weights agrees with eval --save-dir. */
static void test_dump_weights_then_embed(void **state) {
    char save[512], dumped[512], args[4096], input[512], out1[512], out2[512], ckpt[600], options[600];
    tmp_path(save, sizeof save, "dump_save");
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --max-batches 5", opts_path,
             corpus_glob, vocab_path, save);
    assert_int_equal(run_ok(args), 0);
    snprintf(args, sizeof args, "mkdir -p '%s/export'", test_tmpdir());
    assert_int_equal(system(args), 0);
    /* exporting into the training directory would replace its options: refused */
    char inside[600], err[4096];
    snprintf(inside, sizeof inside, "%s/weights.hdf5", save);
    snprintf(args, sizeof args, "dump-weights --save-dir '%s' --output '%s'", save, inside);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_false(file_exists(inside));
    snprintf(dumped, sizeof dumped, "%s/export/weights.hdf5", test_tmpdir());
    snprintf(args, sizeof args, "dump-weights --save-dir '%s' --output '%s'", save, dumped);
    assert_int_equal(run_ok(args), 0);
    hid_t file;
    assert_int_equal(h5io_open_read(dumped, &file), 0);
    assert_false(h5io_exists(file, "softmax/W"));
    assert_false(h5io_exists(file, "training/step"));
    assert_true(h5io_exists(file, "RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/W_P_0"));
    H5Fclose(file);
    snprintf(options, sizeof options, "%s/export/options.json", test_tmpdir());
    char *text;
    assert_int_equal(file_read_all(options, 1 << 20, &text, NULL), 0);
    assert_non_null(strstr(text, "\"n_characters\":\t262"));
    free(text);

    write_text_file(tmp_path(input, sizeof input, "embed_in.txt"), "the cat sat on a mat\nbig dog ran\n");
    tmp_path(out1, sizeof out1, "embed_dumped.hdf5");
    tmp_path(out2, sizeof out2, "embed_ckpt.hdf5");
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet",
             options, dumped, vocab_path, input, out1);
    assert_int_equal(run_ok(args), 0);
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt-5.hdf5", save);
    snprintf(options, sizeof options, "%s/options.json", save);
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet",
             options, ckpt, vocab_path, input, out2);
    assert_int_equal(run_ok(args), 0);
    for (int i = 0; i < 2; i++) {
        char name[8];
        snprintf(name, sizeof name, "%d", i);
        int rank;
        size_t d1[4], d2[4];
        float *x = read_dataset(out1, name, &rank, d1), *y = read_dataset(out2, name, &rank, d2);
        assert_non_null(x);
        assert_non_null(y);
        assert_int_equal(d1[1], d2[1]);
        assert_true(max_abs_diff(x, y, d1[0] * d1[1] * d1[2]) == 0.0);
        free(x);
        free(y);
    }
    char a1[4096], a2[4096];
    snprintf(a1, sizeof a1, "--save-dir '%s' --test-prefix '%s' --vocab '%s' --batch-size 4", save, corpus_glob,
             vocab_path);
    snprintf(a2, sizeof a2, "--weights '%s' --options '%s' --test-prefix '%s' --vocab '%s' --batch-size 4", ckpt,
             options, corpus_glob, vocab_path);
    const double p1 = eval_perplexity(a1), p2 = eval_perplexity(a2);
    assert_true(p1 > 1.0 && p1 == p2);
}

/* Fine-tuning: --init-from a checkpoint (softmax of the same size taken) or from the
 * dumped weights (softmax fresh); a file of another shape is refused. */
static void test_init_from(void **state) {
    char save[512], tuned[512], args[4096], err[4096], ckpt[600];
    tmp_path(save, sizeof save, "init_base");
    tmp_path(tuned, sizeof tuned, "init_tuned");
    snprintf(args, sizeof args, "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --max-batches 3",
             opts_path, corpus_glob, vocab_path, save);
    assert_int_equal(run_ok(args), 0);
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt-3.hdf5", save);
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --max-batches 2 --init-from '%s'",
             opts_path, corpus_glob, vocab_path, tuned, ckpt);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    assert_non_null(strstr(err, "softmax rows matched by token: 15 kept, 0 new (none), 0 dropped"));
    /* from a released-layout file (no softmax): the softmax starts fresh */
    char released[600];
    snprintf(released, sizeof released, "%s/init_released.hdf5", test_tmpdir());
    snprintf(args, sizeof args, "dump-weights --checkpoint '%s' --output '%s'", ckpt, released);
    assert_int_equal(run_ok(args), 0);
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s/init_from_released' --max-batches 2 "
             "--init-from '%s'",
             opts_path, corpus_glob, vocab_path, test_tmpdir(), released);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    assert_non_null(strstr(err, "no softmax in the file: each row starts as its token's embedding"));
    /* a model with lstm.dim 32 cannot start from it */
    char other[512], text[2048];
    snprintf(text, sizeof text, small_options, 261);
    memcpy(strstr(text, "\"dim\": 16"), "\"dim\": 32", 9);
    write_text_file(tmp_path(other, sizeof other, "other.json"), text);
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s/other_save' --init-from '%s'",
             other, corpus_glob, vocab_path, test_tmpdir(), ckpt);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_non_null(strstr(err, "W_0: got")); /* the one error line, after the plan's */
    assert_int_equal(count_lines(strstr(err, "elmo: ")), 1);
}

static void expect_train_failure(const char *options, const char *prefix, const char *vocab, const char *save,
                                 const char *culprit) {
    char args[4096], err[4096];
    /* the length forced, so that the reader meets the bad input (the count would stop earlier) */
    snprintf(args, sizeof args, "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --n-train-tokens 1200",
             options, prefix, vocab, save);
    int rc = run_elmo(args, err, sizeof err);
    /* progress lines may come first; the error is the one line starting "elmo:" */
    int error_lines = 0;
    for (const char *at = err; (at = strstr(at, "elmo: ")) != NULL; at++) error_lines += at == err || at[-1] == '\n';
    const char *error = strstr(err, "elmo: ");
    if (rc != 2 || error_lines != 1 || !strstr(error ? error : "", culprit))
        print_error("rc %d, stderr: %s(expected one line naming %s)\n", rc, err, culprit);
    assert_int_equal(rc, 2);
    assert_int_equal(error_lines, 1);
    assert_non_null(strstr(error, culprit));
}

static void test_bad_input(void **state) {
    char path[512], save[512], text[2048];
    tmp_path(save, sizeof save, "bad_save");
    write_text_file(tmp_path(path, sizeof path, "no_unk.txt"), "<S>\n</S>\nthe\n");
    expect_train_failure(opts_path, corpus_glob, path, save, "<UNK>");
    expect_train_failure(opts_path, "/nonexistent/shard-*.txt", vocab_path, save, "/nonexistent/shard-*.txt");
    write_text_file(tmp_path(path, sizeof path, "empty_line.txt"), "the cat\n\nthe dog\n");
    expect_train_failure(opts_path, path, vocab_path, save, "empty_line.txt:2");
    char *line = malloc(10002);
    memset(line, 'x', 10000);
    strcpy(line + 10000, "\n");
    write_text_file(tmp_path(path, sizeof path, "long_token.txt"), line);
    free(line);
    expect_train_failure(opts_path, path, vocab_path, save, "long_token.txt:1");
    snprintf(text, sizeof text, small_options, 263);
    write_text_file(tmp_path(path, sizeof path, "n263.json"), text);
    expect_train_failure(path, corpus_glob, vocab_path, save, "char_cnn.n_characters");
    expect_train_failure(opts_path, corpus_glob, vocab_path, "/etc/passwd/save", "/etc/passwd/save");
    /* 262 (a released options.json) is accepted with one note */
    char args[4096], err[4096];
    snprintf(text, sizeof text, small_options, 262);
    write_text_file(tmp_path(path, sizeof path, "n262.json"), text);
    snprintf(args, sizeof args, "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --max-batches 1",
             path, corpus_glob, vocab_path, save);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    assert_non_null(strstr(err, "n_characters is 262"));
}

/* A full disk while writing a checkpoint (file size limit, SIGXFSZ ignored): one line,
 * exit 2, no temporary file, and the earlier checkpoint intact. */
static void test_full_disk_keeps_checkpoint(void **state) {
    char save[512], args[4096], cmd[8192], ckpt[600], copy[600];
    tmp_path(save, sizeof save, "disk_save");
    snprintf(args, sizeof args, "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --max-batches 4",
             opts_path, corpus_glob, vocab_path, save);
    assert_int_equal(run_ok(args), 0);
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt-4.hdf5", save);
    snprintf(copy, sizeof copy, "%s/ckpt-copy.hdf5", test_tmpdir());
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", ckpt, copy);
    assert_int_equal(system(cmd), 0);
    char errfile[512];
    tmp_path(errfile, sizeof errfile, "disk_err.txt");
    snprintf(cmd, sizeof cmd, "(trap '' XFSZ; ulimit -f 64; exec %s train --restart '%s' --max-batches 2) 2>'%s'",
             elmo_program(), save, errfile);
    int status = system(cmd);
    assert_int_equal(WEXITSTATUS(status), 2);
    char *err;
    assert_int_equal(file_read_all(errfile, 1 << 16, &err, NULL), 0);
    assert_non_null(strstr(err, "model.ckpt-6.hdf5"));
    free(err);
    assert_true(files_equal(ckpt, copy));
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", save);
    assert_true(system(cmd) != 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convergence_on_bilm_tf_fixture),
        cmocka_unit_test(test_exact_resume),
        cmocka_unit_test(test_dump_weights_then_embed),
        cmocka_unit_test(test_init_from),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_full_disk_keeps_checkpoint),
    };
    return cmocka_run_group_tests_name("train-cli", tests, setup, NULL);
}
