/* test_checkpoint_state.c - weight files and checkpoints validated on load (issue
 * "Hardening", items 3 and 4): a NaN or an integer dataset in a weight file, a damaged
 * training state (all-zero generators, steps out of range, a reader past its shard, a
 * zero accumulator, a truncated file) refused with one line naming the file and what is
 * wrong, never a hang; `train --restart` names the newest intact checkpoint and
 * `--restart --fallback` resumes from it. Each case doctors a copy of a tiny run's
 * checkpoints with the HDF5 API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "h5io.h"
#include "testutil.h"

/* test_train_cli.c's small model: 2 x 6 x 10 tokens a batch, 20 batches. */
static const char small_options[] =
    "{\"char_cnn\": {\"activation\": \"relu\", \"embedding\": {\"dim\": 4}, \"filters\": [[1, 8], [2, 8], [3, 8]],"
    " \"max_characters_per_token\": 12, \"n_characters\": 261, \"n_highway\": 1}, \"dropout\": 0.1,"
    " \"lstm\": {\"cell_clip\": 3, \"dim\": 16, \"n_layers\": 2, \"proj_clip\": 3, \"projection_dim\": 8,"
    " \"use_skip_connections\": true}, \"n_epochs\": 1, \"n_train_tokens\": 1200, \"batch_size\": 6,"
    " \"unroll_steps\": 10, \"n_negative_samples_batch\": 8, \"bidirectional\": true, \"sample_softmax\": true,"
    " \"learning_rate\": 0.2, \"all_clip_norm_val\": 10.0}";

static char corpus_glob[512], vocab_path[512], opts_path[512], run_dir[512];
static char err[16384];

/* `timeout 120 elmo <args>`: its exit status (124 after a hang), stderr into err. */
static int run_timed(const char *args) {
    char errfile[512], cmd[8192];
    tmp_path(errfile, sizeof errfile, "state_stderr.txt");
    snprintf(cmd, sizeof cmd, "timeout 120 %s %s >/dev/null 2>'%s'", elmo_program(), args, errfile);
    int status = system(cmd);
    FILE *f = fopen(errfile, "rb");
    size_t n = f ? fread(err, 1, sizeof err - 1, f) : 0;
    if (f) fclose(f);
    err[n] = '\0';
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int setup(void **state) {
    const char *words[] = {"the", "cat", "dog", "sat", "on", "a", "mat", "ran", "to", "house", "big", "small"};
    char path[1024], cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/corpus'", test_tmpdir());
    CHECK(system(cmd) == 0, "mkdir");
    for (int s = 0; s < 3; s++) {
        char name[64];
        snprintf(name, sizeof name, "corpus/shard-%d.txt", s);
        FILE *f = fopen(tmp_path(path, sizeof path, name), "w");
        for (int i = 0; i < 72; i++) {
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
    write_text_file(tmp_path(opts_path, sizeof opts_path, "small.json"), small_options);
    /* checkpoints at steps 2 and 4 */
    tmp_path(run_dir, sizeof run_dir, "run");
    snprintf(cmd, sizeof cmd,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --max-batches 4 "
             "--checkpoint-every 2",
             opts_path, corpus_glob, vocab_path, run_dir);
    if (run_timed(cmd) != 0) {
        fprintf(stderr, "training the run failed: %s\n", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/model.ckpt-2.hdf5", run_dir);
    CHECK(file_exists(path), "%s missing", path);
    snprintf(path, sizeof path, "%s/model.ckpt-4.hdf5", run_dir);
    CHECK(file_exists(path), "%s missing", path);
    return 0;
}

/* A copy of the run's directory named name; its newest checkpoint's path into ckpt. */
static void copy_run(const char *name, char *dir, size_t size, char *ckpt, size_t ckpt_size) {
    char cmd[2048];
    tmp_path(dir, size, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", dir, run_dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(ckpt, ckpt_size, "%s/model.ckpt-4.hdf5", dir);
}

/* Overwrites dataset name of file path with data of memory type mem. */
static void overwrite(const char *path, const char *name, hid_t mem, const void *data) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(ds);
    H5Fclose(f);
}

/* Sets one float of dataset name (n floats) to value. */
static void set_float(const char *path, const char *name, size_t n, size_t index, float value) {
    float *x = malloc(n * sizeof *x);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Dclose(ds);
    H5Fclose(f);
    x[index] = value;
    overwrite(path, name, H5T_NATIVE_FLOAT, x);
    free(x);
}

static long long read_i64(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    long long v = 0;
    assert_true(H5Dread(ds, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0);
    H5Dclose(ds);
    H5Fclose(f);
    return v;
}

static int embed(const char *weights) {
    char args[4096], input[512], out[512];
    write_text_file(tmp_path(input, sizeof input, "state_in.txt"), "the cat sat on a mat\n");
    tmp_path(out, sizeof out, "state_embed.hdf5");
    snprintf(args, sizeof args, "embed --options '%s/options.json' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet",
             run_dir, weights, vocab_path, input, out);
    return run_timed(args);
}

static void assert_has(const char *needle) {
    if (!strstr(err, needle)) fail_msg("expected \"%s\" in: %s", needle, err);
}

/* Lines of err other than notes. */
static int error_lines(void) {
    int n = 0;
    for (const char *p = err; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        n += strncmp(p, "elmo: note:", 11) != 0;
    return n;
}

static void test_weights_nan_and_integer_refused(void **state) {
    char w[1024], cmd[4096];
    snprintf(w, sizeof w, "%s/model.ckpt-4.hdf5", run_dir);
    assert_int_equal(embed(w), 0);
    /* CNN/W_cnn_0 is (1, 1, 4, 8) */
    tmp_path(w, sizeof w, "w_nan.hdf5");
    snprintf(cmd, sizeof cmd, "cp '%s/model.ckpt-4.hdf5' '%s'", run_dir, w);
    assert_int_equal(system(cmd), 0);
    set_float(w, "CNN/W_cnn_0", 32, 17, NAN);
    assert_int_equal(embed(w), 2);
    assert_has("w_nan.hdf5: CNN/W_cnn_0: value 17 is nan");
    if (error_lines() != 1) fail_msg("one error line expected: %s", err);

    tmp_path(w, sizeof w, "w_int.hdf5");
    snprintf(cmd, sizeof cmd, "cp '%s/model.ckpt-4.hdf5' '%s'", run_dir, w);
    assert_int_equal(system(cmd), 0);
    hid_t f = H5Fopen(w, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(H5Ldelete(f, "CNN/b_cnn_1", H5P_DEFAULT) >= 0);
    hsize_t dims[1] = {8};
    int32_t ints[8] = {0};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t ds = H5Dcreate2(f, "CNN/b_cnn_1", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ints) >= 0);
    H5Dclose(ds);
    H5Sclose(space);
    H5Fclose(f);
    assert_int_equal(embed(w), 2);
    assert_has("w_int.hdf5: CNN/b_cnn_1 is an integer dataset, expected floats");
    if (error_lines() != 1) fail_msg("one error line expected: %s", err);
}

/* --restart on a copy whose newest checkpoint was doctored: refused in one line naming
 * it, why (needle) and the intact model.ckpt-2.hdf5. */
static void assert_restart_refused(const char *dir, const char *needle) {
    char args[2048];
    snprintf(args, sizeof args, "train --restart '%s'", dir);
    int rc = run_timed(args);
    if (rc != 2) fail_msg("--restart %s: exit %d (124: a hang), expected 2: %s", dir, rc, err);
    /* one line holds it all */
    const char *at = strstr(err, "elmo: damaged checkpoint: ");
    if (!at) fail_msg("no \"elmo: damaged checkpoint\" line in: %s", err);
    char line[4096];
    size_t len = strcspn(at, "\n");
    snprintf(line, sizeof line, "%.*s", (int)len, at);
    const char *parts[] = {"model.ckpt-4.hdf5: ", needle, "the newest intact one is ", "model.ckpt-2.hdf5"};
    for (int i = 0; i < 4; i++)
        if (!strstr(line, parts[i])) fail_msg("expected \"%s\" in: %s", parts[i], line);
}

static void test_zero_trainer_rng(void **state) {
    char dir[512], ckpt[600];
    copy_run("zero_rng", dir, sizeof dir, ckpt, sizeof ckpt);
    const uint64_t zero[4] = {0};
    overwrite(ckpt, "training/rng", H5T_NATIVE_UINT64, zero);
    assert_restart_refused(dir, "training/rng: all-zero generator state");
}

static void test_zero_reader_rng(void **state) {
    char dir[512], ckpt[600];
    copy_run("zero_reader_rng", dir, sizeof dir, ckpt, sizeof ckpt);
    const uint64_t zero[4] = {0};
    overwrite(ckpt, "training/reader_1/rng_state", H5T_NATIVE_UINT64, zero);
    assert_restart_refused(dir, "reader_1: rng_state: all-zero generator state");
}

static void test_negative_step(void **state) {
    char dir[512], ckpt[600];
    copy_run("negative_step", dir, sizeof dir, ckpt, sizeof ckpt);
    const uint64_t minus_one = UINT64_MAX;
    overwrite(ckpt, "training/step", H5T_NATIVE_UINT64, &minus_one);
    assert_restart_refused(dir, "training/step -1 is negative");
}

static void test_step_beyond_the_end(void **state) {
    char dir[512], ckpt[600];
    copy_run("step_beyond", dir, sizeof dir, ckpt, sizeof ckpt);
    const uint64_t step = 21;
    overwrite(ckpt, "training/step", H5T_NATIVE_UINT64, &step);
    assert_restart_refused(dir, "training/step 21 is beyond the run's 20 batches");
}

static void test_step_differs_from_name(void **state) {
    char dir[512], ckpt[600];
    copy_run("step_name", dir, sizeof dir, ckpt, sizeof ckpt);
    const uint64_t step = 3;
    overwrite(ckpt, "training/step", H5T_NATIVE_UINT64, &step);
    assert_restart_refused(dir, "training/step is 3, the file name says 4");
}

static void test_reader_past_its_shard(void **state) {
    char dir[512], ckpt[600];
    copy_run("reader_past", dir, sizeof dir, ckpt, sizeof ckpt);
    const long long n = read_i64(ckpt, "training/reader_0/shard_sentences");
    const int64_t position = n + 5;
    overwrite(ckpt, "training/reader_0/shard_position", H5T_NATIVE_INT64, &position);
    assert_restart_refused(dir, "inconsistent counters");
}

static void test_zero_accumulator(void **state) {
    char dir[512], ckpt[600];
    copy_run("zero_accum", dir, sizeof dir, ckpt, sizeof ckpt);
    set_float(ckpt, "training/adagrad/CNN/b_cnn_0", 8, 3, 0.0f);
    assert_restart_refused(dir, "training/adagrad/CNN/b_cnn_0: value 3 is 0, an accumulator must be > 0");
}

static void test_nan_lstm_state(void **state) {
    char dir[512], ckpt[600];
    copy_run("nan_state", dir, sizeof dir, ckpt, sizeof ckpt);
    set_float(ckpt, "training/lstm_c_0_1", 6 * 16, 5, INFINITY);
    assert_restart_refused(dir, "training/lstm_c_0_1: value 5 is inf");
}

static void test_truncated_newest_then_fallback(void **state) {
    char dir[512], ckpt[600], args[2048];
    copy_run("truncated", dir, sizeof dir, ckpt, sizeof ckpt);
    struct stat st;
    assert_int_equal(stat(ckpt, &st), 0);
    assert_int_equal(truncate(ckpt, st.st_size / 2), 0);
    assert_restart_refused(dir, "truncated");
    snprintf(args, sizeof args, "train --restart '%s' --fallback --max-batches 6", dir);
    int rc = run_timed(args);
    if (rc != 0) fail_msg("--restart --fallback: exit %d: %s", rc, err);
    assert_has("elmo: note: damaged checkpoint: ");
    assert_has("resuming from ");
    assert_has("model.ckpt-2.hdf5 (--fallback)");
    assert_has("resuming");
    snprintf(args, sizeof args, "%s/model.ckpt-6.hdf5", dir);
    assert_true(file_exists(args));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights_nan_and_integer_refused),
        cmocka_unit_test(test_zero_trainer_rng),
        cmocka_unit_test(test_zero_reader_rng),
        cmocka_unit_test(test_negative_step),
        cmocka_unit_test(test_step_beyond_the_end),
        cmocka_unit_test(test_step_differs_from_name),
        cmocka_unit_test(test_reader_past_its_shard),
        cmocka_unit_test(test_zero_accumulator),
        cmocka_unit_test(test_nan_lstm_state),
        cmocka_unit_test(test_truncated_newest_then_fallback),
    };
    return cmocka_run_group_tests_name("checkpoint-state", tests, setup, NULL);
}
