/* test_cli.c - `elmo` on bad input: one clear line naming the culprit, exit code 2, no
 * crash, and no output file left behind as if complete (an earlier one stays intact). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fileio.h"
#include "h5io.h"
#include "model.h"
#include "options.h"
#include "testutil.h"

static const char options_text[] =
    "{\"lstm\": {\"cell_clip\": 3, \"use_skip_connections\": true, \"n_layers\": 2, \"proj_clip\": 3,"
    " \"projection_dim\": 8, \"dim\": 16}, \"char_cnn\": {\"embedding\": {\"dim\": 4}, \"filters\": [[1, 4],"
    " [2, 8], [3, 8]], \"n_highway\": 1, \"n_characters\": 262, \"max_characters_per_token\": 16,"
    " \"activation\": \"relu\"}}";

static char opts[512], weights[512], vocab[512], input[512], output[512];

/* Writes options, random weights, a vocabulary and an input into the temp directory. */
static int setup(void **state) {
    write_text_file(tmp_path(opts, sizeof opts, "options.json"), options_text);
    ElmoOptions o;
    CHECK(options_parse(&o, options_text, "test") == 0, "%s", elmo_error());
    BilmModel m;
    model_init_layout(&m, &o, 0);
    model_init_random(&m, 3);
    CHECK(model_save(&m, tmp_path(weights, sizeof weights, "weights.hdf5"), 0) == 0, "%s", elmo_error());
    model_free(&m);
    options_free(&o);
    write_text_file(tmp_path(vocab, sizeof vocab, "vocab.txt"), "<S>\n</S>\n<UNK>\nthe\ncat\n");
    write_text_file(tmp_path(input, sizeof input, "input.txt"), "the cat sat\n\non the mat .\n");
    tmp_path(output, sizeof output, "out.hdf5");
    return 0;
}

/* Runs embed with some paths replaced; expects failure with one line naming `culprit`. */
static void expect_embed_failure(const char *o, const char *w, const char *v, const char *in, const char *culprit,
                                 const char *extra) {
    char args[4096], err[4096];
    remove(output);
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' %s", o,
             w, v, in, output, extra ? extra : "");
    int rc = run_elmo(args, err, sizeof err);
    if (rc != 2 || count_lines(err) != 1 || !strstr(err, culprit))
        print_error("rc %d, stderr: %s(expected a line naming %s)\n", rc, err, culprit);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, culprit));
    assert_false(file_exists(output));
}

static void test_good_run(void **state) {
    char args[4096], err[4096];
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet",
             opts, weights, vocab, input, output);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    int rank;
    size_t dims[4];
    float *e = read_dataset(output, "1", &rank, dims); /* the empty line */
    assert_non_null(e);
    assert_int_equal(rank, 3);
    assert_int_equal(dims[0], 3);
    assert_int_equal(dims[1], 0);
    assert_int_equal(dims[2], 16);
    free(e);
    e = read_dataset(output, "2", &rank, dims);
    assert_int_equal(dims[1], 4);
    free(e);
}

static void test_bad_weight_files(void **state) {
    char path[512];
    /* garbage */
    write_text_file(tmp_path(path, sizeof path, "garbage.hdf5"), "this is not an HDF5 file\n");
    expect_embed_failure(opts, path, vocab, input, "garbage.hdf5", NULL);
    /* truncated: the first half of a real file */
    char *data;
    size_t len;
    assert_int_equal(file_read_all(weights, 1 << 26, &data, &len), 0);
    FILE *f = fopen(tmp_path(path, sizeof path, "truncated.hdf5"), "wb");
    fwrite(data, 1, len / 2, f);
    fclose(f);
    free(data);
    expect_embed_failure(opts, path, vocab, input, "truncated.hdf5", NULL);
    /* unreadable path */
    expect_embed_failure(opts, "/nonexistent/weights.hdf5", vocab, input, "/nonexistent/weights.hdf5", NULL);
}

/* Weights of a model with lstm.dim 32 read with options saying 16. */
static void test_weights_from_other_config(void **state) {
    char other_opts[512], other_weights[512];
    char *text = xstrdup(options_text);
    memcpy(strstr(text, "\"dim\": 16"), "\"dim\": 32", 9);
    write_text_file(tmp_path(other_opts, sizeof other_opts, "other.json"), text);
    ElmoOptions o;
    assert_int_equal(options_parse(&o, text, "other"), 0);
    BilmModel m;
    model_init_layout(&m, &o, 0);
    assert_int_equal(model_save(&m, tmp_path(other_weights, sizeof other_weights, "other.hdf5"), 0), 0);
    model_free(&m);
    options_free(&o);
    free(text);
    expect_embed_failure(opts, other_weights, vocab, input, "RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_0: got (16, 128), expected (16, 64)", NULL);
}

/* char_embed with 300 rows (neither 261 nor 262), and a file without char_embed. */
static void test_bad_char_embed(void **state) {
    char path[512], cmd[2048];
    const char *names[2] = {"char300.hdf5", "nochar.hdf5"};
    for (int variant = 0; variant < 2; variant++) {
        tmp_path(path, sizeof path, names[variant]);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", weights, path);
        assert_int_equal(system(cmd), 0);
        hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        assert_true(file >= 0);
        assert_true(H5Ldelete(file, "char_embed", H5P_DEFAULT) >= 0);
        if (variant == 0) {
            float *rows = calloc(300 * 4, sizeof(float));
            hsize_t dims[2] = {300, 4};
            assert_int_equal(h5io_write_floats(file, path, "char_embed", 2, dims, rows), 0);
            free(rows);
        }
        H5Fclose(file);
        expect_embed_failure(opts, path, vocab, input, variant == 0 ? "char_embed: got (300, 4)" : "missing dataset char_embed", NULL);
    }
}

static void test_bad_vocab_and_options(void **state) {
    char path[512];
    write_text_file(tmp_path(path, sizeof path, "nomarkers.txt"), "<UNK>\nthe\ncat\n");
    expect_embed_failure(opts, weights, path, input, "<S> and </S>", NULL);
    write_text_file(tmp_path(path, sizeof path, "badopts.json"), "{\"lstm\": {\"dim\": 16}}");
    expect_embed_failure(path, weights, vocab, input, "badopts.json", NULL);
    write_text_file(tmp_path(path, sizeof path, "notjson.json"), "\x89PNG\x01\x02");
    expect_embed_failure(path, weights, vocab, input, "notjson.json", NULL);
    /* counts beyond the fixed arrays behind them: the key named, never an internal error */
    static const char *const over_limit[][3] = {
        {"60", "1", "key 'char_cnn.n_highway' is 60, at most 16 are supported"},
        {"1", "17", "key 'lstm.n_layers' is 17, at most 16 are supported"},
    };
    for (int i = 0; i < 2; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "{\"char_cnn\": {\"embedding\": {\"dim\": 4}, \"filters\": [[1, 4]], \"max_characters_per_token\": 50,"
                 " \"n_characters\": 262, \"activation\": \"relu\", \"n_highway\": %s}, \"lstm\": {\"dim\": 8,"
                 " \"projection_dim\": 4, \"n_layers\": %s}}",
                 over_limit[i][0], over_limit[i][1]);
        write_text_file(tmp_path(path, sizeof path, "limits.json"), text);
        expect_embed_failure(path, weights, vocab, input, over_limit[i][2], NULL);
    }
}

/* A batch whose padded buffers would exceed --max-memory is refused, naming the long line. */
static void test_batch_over_memory_limit(void **state) {
    char path[512];
    FILE *f = fopen(tmp_path(path, sizeof path, "long_sentence.txt"), "w");
    fprintf(f, "a short one\n");
    for (int i = 0; i < 20000; i++) fprintf(f, "word ");
    fprintf(f, "\n");
    fclose(f);
    expect_embed_failure(opts, weights, vocab, path, "long_sentence.txt:2: a sentence of 20000 tokens",
                         "--max-memory 0.01");
    /* within the limit it is embedded */
    char args[4096], err[4096];
    snprintf(args, sizeof args,
             "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet --max-memory 4", opts,
             weights, vocab, path, output);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    remove(output);
}

static void test_bad_input_text(void **state) {
    char path[512];
    write_text_file(tmp_path(path, sizeof path, "latin1.txt"), "fine\nna\xefve caf\xe9\n");
    expect_embed_failure(opts, weights, vocab, path, "latin1.txt:2", NULL);
    char *line = malloc(10002);
    memset(line, 'a', 10000);
    strcpy(line + 10000, "\n");
    write_text_file(tmp_path(path, sizeof path, "longtoken.txt"), line);
    free(line);
    expect_embed_failure(opts, weights, vocab, path, "longtoken.txt:1", NULL);
    expect_embed_failure(opts, weights, vocab, "/nonexistent/input.txt", "/nonexistent/input.txt", NULL);
    expect_embed_failure(opts, weights, vocab, test_tmpdir(), test_tmpdir(), NULL); /* a directory */
    write_text_file(tmp_path(path, sizeof path, "binary.txt"), "abc");
    FILE *f = fopen(path, "ab");
    fwrite("\0\1\2", 1, 3, f);
    fclose(f);
    expect_embed_failure(opts, weights, vocab, path, "binary.txt:1", NULL);
}

/* The output file still holds what test_*_keeps_earlier_output put there, and no
 * temporary file is left in the directory. */
static void assert_earlier_output_intact(void) {
    char *data;
    assert_int_equal(file_read_all(output, 1 << 20, &data, NULL), 0);
    assert_string_equal(data, "an earlier result\n");
    free(data);
    DIR *dir = opendir(test_tmpdir());
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) assert_null(strstr(e->d_name, ".tmp."));
    closedir(dir);
    remove(output);
}

/* A run that fails half-way (bad line 40, after batches were written) leaves the earlier
 * output file as it was and no temporary file. */
static void test_failure_keeps_earlier_output(void **state) {
    char path[512], args[4096], err[4096];
    FILE *f = fopen(tmp_path(path, sizeof path, "late_error.txt"), "w");
    for (int i = 0; i < 39; i++) fprintf(f, "the cat %d\n", i);
    fprintf(f, "bad \xff byte\n");
    fclose(f);
    write_text_file(output, "an earlier result\n");
    snprintf(args, sizeof args,
             "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --batch-size 4", opts,
             weights, vocab, path, output);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_non_null(strstr(err, "late_error.txt:40"));
    assert_earlier_output_intact();
}

/* A run killed with SIGTERM half-way removes its temporary file and leaves the earlier
 * output as it was. */
static void test_killed_run_keeps_earlier_output(void **state) {
    char path[512], cmd[4096];
    FILE *f = fopen(tmp_path(path, sizeof path, "long_input.txt"), "w");
    for (int i = 0; i < 400000; i++) fprintf(f, "the cat sat on the mat number %d .\n", i);
    fclose(f);
    write_text_file(output, "an earlier result\n");
    snprintf(cmd, sizeof cmd,
             "%s embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet --batch-size 1 & "
             "pid=$!; sleep 1; kill -TERM $pid; wait $pid; test $? -eq 143",
             elmo_program(), opts, weights, vocab, path, output);
    assert_int_equal(system(cmd), 0); /* still running after 1 s, then killed by the signal */
    assert_earlier_output_intact();
}

static void test_usage_errors(void **state) {
    char args[4096], err[4096];
    assert_int_equal(run_elmo("no-such-command", err, sizeof err), 2);
    assert_non_null(strstr(err, "no-such-command"));
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --output '%s'", opts, weights, vocab,
             output);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_non_null(strstr(err, "--input"));
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --batch-size 0",
             opts, weights, vocab, input, output);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_non_null(strstr(err, "--batch-size"));
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output /nonexistent-dir/out.hdf5",
             opts, weights, vocab, input);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_non_null(strstr(err, "/nonexistent-dir/out.hdf5"));
    const char *commands[] = {"embed", "embed-vocab", "bench"};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "%s --help", commands[i]);
        assert_int_equal(run_elmo(args, err, sizeof err), 0);
    }
    assert_int_equal(run_elmo("--help", err, sizeof err), 0);
}

/* Options with n_characters 261 are accepted for prediction with one note, and give the
 * same embeddings as 262. */
static void test_n_characters_note(void **state) {
    char opts261[512], out261[512], args[4096], err[4096];
    char *text = xstrdup(options_text);
    memcpy(strstr(text, "262"), "261", 3);
    write_text_file(tmp_path(opts261, sizeof opts261, "options261.json"), text);
    free(text);
    tmp_path(out261, sizeof out261, "out261.hdf5");
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet",
             opts261, weights, vocab, input, out261);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "n_characters is 261"));
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet",
             opts, weights, vocab, input, output);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    assert_int_equal(count_lines(err), 0);
    int rank;
    size_t d1[4], d2[4];
    float *a = read_dataset(out261, "2", &rank, d1), *b = read_dataset(output, "2", &rank, d2);
    assert_true(max_abs_diff(a, b, d1[0] * d1[1] * d1[2]) == 0.0);
    free(a);
    free(b);
}

static void test_embed_vocab_errors(void **state) {
    char path[512], args[4096], err[4096];
    write_text_file(tmp_path(path, sizeof path, "nomarkers2.txt"), "the\ncat\n");
    snprintf(args, sizeof args, "embed-vocab --options '%s' --weights '%s' --vocab '%s' --output '%s'", opts, weights,
             path, output);
    remove(output);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_int_equal(count_lines(err), 1);
    assert_false(file_exists(output));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_run),
        cmocka_unit_test(test_bad_weight_files),
        cmocka_unit_test(test_weights_from_other_config),
        cmocka_unit_test(test_bad_char_embed),
        cmocka_unit_test(test_bad_vocab_and_options),
        cmocka_unit_test(test_bad_input_text),
        cmocka_unit_test(test_batch_over_memory_limit),
        cmocka_unit_test(test_failure_keeps_earlier_output),
        cmocka_unit_test(test_killed_run_keeps_earlier_output),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_n_characters_note),
        cmocka_unit_test(test_embed_vocab_errors),
    };
    return cmocka_run_group_tests_name("cli", tests, setup, NULL);
}
