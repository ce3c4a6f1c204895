/* test_cli.c - `elmo` on bad input: one clear line naming the culprit, exit code 2, no
 * crash, and no output file left behind as if complete (an earlier one stays intact). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ------------------------------------------- embed's output choices (AllenNLP's elmo) */

/* Runs embed on `in` with `extra` options into out; 0 on success. */
static int embed_into(const char *in, const char *out, const char *extra) {
    char args[4096], err[4096];
    snprintf(args, sizeof args,
             "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet %s", opts, weights,
             vocab, in, out, extra);
    int rc = run_elmo(args, err, sizeof err);
    if (rc != 0) print_error("embed %s: rc %d: %s\n", extra, rc, err);
    return rc;
}

/* The lines of the test input, and what sentence_to_index must map each to. */
static const char *const layer_lines[] = {"the cat sat", "", "on the mat .", "the  cat   sat", "say \"hi\" \\ ok",
                                          "on the mat ."};
static const char *const layer_texts[] = {"the cat sat", "", "on the mat .", "the cat sat", "say \"hi\" \\ ok",
                                          "on the mat ."};
static const int layer_first[] = {0, 1, 2, 0, 4, 2};
#define N_LAYER_LINES 6

static void write_layer_input(char *path, size_t size) {
    char text[512] = "";
    for (int i = 0; i < N_LAYER_LINES; i++) {
        strcat(text, layer_lines[i]);
        strcat(text, "\n");
    }
    write_text_file(tmp_path(path, size, "layers_in.txt"), text);
}

/* --layers top / average / a list against --layers all, computed here; --all, --top and
 * --average as AllenNLP spells them. */
static void test_embed_layer_choices(void **state) {
    char in[512], all[512], top[512], avg[512], list[512], alias[512];
    write_layer_input(in, sizeof in);
    tmp_path(all, sizeof all, "layers_all.hdf5");
    tmp_path(top, sizeof top, "layers_top.hdf5");
    tmp_path(avg, sizeof avg, "layers_avg.hdf5");
    tmp_path(list, sizeof list, "layers_list.hdf5");
    tmp_path(alias, sizeof alias, "layers_alias.hdf5");
    assert_int_equal(embed_into(in, all, "--layers all"), 0);
    assert_int_equal(embed_into(in, top, "--layers top"), 0);
    assert_int_equal(embed_into(in, avg, "--layers average"), 0);
    assert_int_equal(embed_into(in, list, "--layers 2,0"), 0);
    assert_int_equal(embed_into(in, alias, "--average"), 0);
    const int L1 = 3, W = 16;
    for (int s = 0; s < N_LAYER_LINES; s++) {
        char name[16];
        snprintf(name, sizeof name, "%d", s);
        int rank;
        size_t da[4], dt[4], dm[4], dl[4], dx[4];
        float *a = read_dataset(all, name, &rank, da);
        assert_non_null(a);
        assert_int_equal(rank, 3);
        assert_int_equal(da[0], L1);
        const size_t n = da[1], layer = n * W;
        float *t = read_dataset(top, name, &rank, dt);
        assert_non_null(t);
        assert_int_equal(rank, 2);
        assert_int_equal(dt[0], n);
        assert_int_equal(dt[1], W);
        float *m = read_dataset(avg, name, &rank, dm);
        assert_non_null(m);
        assert_int_equal(rank, 2);
        assert_int_equal(dm[0], n);
        float *l = read_dataset(list, name, &rank, dl);
        assert_non_null(l);
        assert_int_equal(rank, 3);
        assert_int_equal(dl[0], 2);
        assert_int_equal(dl[1], n);
        float *x = read_dataset(alias, name, &rank, dx);
        assert_non_null(x);
        assert_int_equal(rank, 2);
        /* top = layer L, bit for bit; the list = layers 2 then 0, bit for bit */
        assert_true(max_abs_diff(t, a + 2 * layer, layer) == 0.0);
        assert_true(max_abs_diff(l, a + 2 * layer, layer) == 0.0);
        assert_true(max_abs_diff(l + layer, a, layer) == 0.0);
        assert_true(max_abs_diff(x, m, layer) == 0.0);
        /* average = mean of the three layers, within float rounding */
        double worst = 0;
        for (size_t i = 0; i < layer; i++) {
            const double mean = ((double)a[i] + a[layer + i] + a[2 * layer + i]) / 3.0;
            const double scale = fabs(a[i]) + fabs(a[layer + i]) + fabs(a[2 * layer + i]);
            const double err = fabs(m[i] - mean) / (scale > 1e-30 ? scale : 1e-30);
            if (err > worst) worst = err;
        }
        if (worst > 4e-7) print_error("sentence %d: average off the mean by %g (relative)\n", s, worst);
        assert_true(worst <= 4e-7);
        if (s == 2) assert_true(n == 4 && max_abs_diff(m, a, layer) > 1e-3); /* not just layer 0 */
        free(a), free(t), free(m), free(l), free(x);
    }
}

/* --dtype float16: IEEE half ('<f2' to h5py), each value within half a float16 step of
 * the float32 output (relative 2^-11; absolute 2^-25 in the subnormal range). */
static void test_embed_float16(void **state) {
    char in[512], f32[512], f16[512], v32[512], v16[512], args[4096], err[4096];
    write_layer_input(in, sizeof in);
    tmp_path(f32, sizeof f32, "dtype32.hdf5");
    tmp_path(f16, sizeof f16, "dtype16.hdf5");
    assert_int_equal(embed_into(in, f32, "--dtype float32"), 0);
    assert_int_equal(embed_into(in, f16, "--dtype float16"), 0);
    tmp_path(v32, sizeof v32, "vocab32.hdf5");
    tmp_path(v16, sizeof v16, "vocab16.hdf5");
    const char *vouts[2] = {v32, v16}, *vtypes[2] = {"float32", "float16"};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "embed-vocab --options '%s' --weights '%s' --vocab '%s' --output '%s' --dtype %s",
                 opts, weights, vocab, vouts[i], vtypes[i]);
        assert_int_equal(run_elmo(args, err, sizeof err), 0);
    }
    const char *files[2][2] = {{f32, f16}, {v32, v16}};
    for (int k = 0; k < 2; k++) {
        const char *name = k == 0 ? "2" : "embedding";
        hid_t file;
        assert_int_equal(h5io_open_read(files[k][1], &file), 0);
        hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
        hid_t type = H5Dget_type(ds);
        size_t spos, epos, esize, mpos, msize;
        assert_int_equal(H5Tget_class(type), H5T_FLOAT);
        assert_int_equal(H5Tget_size(type), 2);
        assert_int_equal(H5Tget_order(type), H5T_ORDER_LE);
        assert_true(H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) >= 0);
        assert_true(spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10);
        assert_int_equal(H5Tget_ebias(type), 15);
        H5Tclose(type);
        H5Dclose(ds);
        H5Fclose(file);
        int rank;
        size_t d32[4], d16[4];
        float *a = read_dataset(files[k][0], name, &rank, d32), *h = read_dataset(files[k][1], name, &rank, d16);
        assert_non_null(a);
        assert_non_null(h);
        size_t n = 1;
        for (int i = 0; i < rank; i++) {
            assert_int_equal(d32[i], d16[i]);
            n *= d32[i];
        }
        size_t bad = 0, changed = 0;
        for (size_t i = 0; i < n; i++) {
            const double tol = fmax(ldexp(fabs(a[i]), -11), ldexp(1.0, -25));
            if (fabs((double)h[i] - a[i]) > tol) {
                if (!bad) print_error("%s %zu: float32 %.9g, float16 %.9g\n", name, i, a[i], h[i]);
                bad++;
            }
            changed += h[i] != a[i];
        }
        assert_int_equal(bad, 0);
        assert_true(changed > n / 2); /* really stored in 16 bits */
        free(a);
        free(h);
    }
}

/* sentence_to_index: one JSON string mapping every line's text to its first index. */
static void test_embed_sentence_to_index(void **state) {
    char in[512], out[512];
    write_layer_input(in, sizeof in);
    tmp_path(out, sizeof out, "index.hdf5");
    assert_int_equal(embed_into(in, out, "--batch-size 2"), 0);
    hid_t file;
    assert_int_equal(h5io_open_read(out, &file), 0);
    char **s;
    size_t n;
    assert_int_equal(h5io_read_strings(file, out, "sentence_to_index", &s, &n), 0);
    H5Fclose(file);
    assert_int_equal(n, 1);
    cJSON *map = cJSON_Parse(s[0]);
    if (!map) print_error("not JSON: %s\n", s[0]);
    assert_non_null(map);
    assert_true(cJSON_IsObject(map));
    assert_int_equal(cJSON_GetArraySize(map), 4); /* six lines, two repeated */
    for (int i = 0; i < N_LAYER_LINES; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(map, layer_texts[i]);
        if (!v) print_error("line %d '%s' missing from %s\n", i, layer_texts[i], s[0]);
        assert_non_null(v);
        assert_true(cJSON_IsString(v));
        char want[16];
        snprintf(want, sizeof want, "%d", layer_first[i]);
        assert_string_equal(v->valuestring, want);
    }
    cJSON_Delete(map);
    h5io_free_strings(s, n);
}

/* Bad --layers and --dtype values: one line naming the option, exit 2, no output. */
static void test_embed_bad_choices(void **state) {
    const char *bad[] = {"--layers bottom", "--layers 0,,1", "--layers 1,", "--layers -1", "--layers 3",
                         "--layers 0,x", "--dtype float64", "--dtype ''"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        expect_embed_failure(opts, weights, vocab, input, strncmp(bad[i], "--layers", 8) == 0 ? "--layers" : "--dtype",
                             bad[i]);
    char args[4096], err[4096];
    snprintf(args, sizeof args, "embed-vocab --options '%s' --weights '%s' --vocab '%s' --output '%s' --dtype half",
             opts, weights, vocab, output);
    remove(output);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "--dtype"));
    assert_false(file_exists(output));
}

/* 1 when the two files hold the same bytes. */
static int same_bytes(const char *a, const char *b) {
    char *da, *db;
    size_t la, lb;
    if (file_read_all(a, 1 << 26, &da, &la) < 0) return 0;
    if (file_read_all(b, 1 << 26, &db, &lb) < 0) {
        free(da);
        return 0;
    }
    const int same = la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return same;
}

/* Runs `args`, expects exit 2 and one line holding `what`. */
static void expect_refusal(const char *args, const char *what) {
    char err[4096];
    const int rc = run_elmo(args, err, sizeof err);
    if (rc != 2 || count_lines(err) != 1 || !strstr(err, what))
        print_error("rc %d, stderr: %s(expected one line holding '%s')\n", rc, err, what);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, what));
}

/* No output may be an input: embed --output the weights file (by its name, and by a hard
 * link: files are compared by inode), vocab --output its input. */
static void test_output_is_input(void **state) {
    char copy[512], link_path[512], args[4096], cmd[2048], what[1200];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", weights, tmp_path(copy, sizeof copy, "weights-copy.hdf5"));
    assert_int_equal(system(cmd), 0);
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet",
             opts, weights, vocab, input, weights);
    snprintf(what, sizeof what, "embed: --output %s is also an input (--weights %s)", weights, weights);
    expect_refusal(args, what);
    assert_true(same_bytes(weights, copy));
    unlink(tmp_path(link_path, sizeof link_path, "weights-link.hdf5"));
    assert_int_equal(link(weights, link_path), 0);
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet",
             opts, weights, vocab, input, link_path);
    expect_refusal(args, "is also an input (--weights");
    assert_true(same_bytes(weights, copy));
    unlink(link_path);
    snprintf(args, sizeof args, "embed-vocab --options '%s' --weights '%s' --vocab '%s' --output '%s'", opts, weights,
             vocab, vocab);
    expect_refusal(args, "is also an input (--vocab");

    char corpus[512], corpus_copy[512];
    write_text_file(tmp_path(corpus, sizeof corpus, "vocab-in.txt"), "a b c\nb c\n");
    write_text_file(tmp_path(corpus_copy, sizeof corpus_copy, "vocab-in-copy.txt"), "a b c\nb c\n");
    snprintf(args, sizeof args, "vocab --input '%s/vocab-in*.txt' --output '%s' --quiet", test_tmpdir(), corpus);
    expect_refusal(args, "is also an input (--input");
    assert_true(same_bytes(corpus, corpus_copy));
}

/* shard/prepare: an input inside DIR/train (which the run replaces) is refused. */
static void test_shard_input_in_output(void **state) {
    char dir[512], raw[600], args[4096], cmd[2048];
    tmp_path(dir, sizeof dir, "shard-self");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/train'", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(raw, sizeof raw, "%s/train/raw.txt", dir);
    write_text_file(raw, "a b c\nb c\n");
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 1 --quiet", raw, dir);
    expect_refusal(args, "lies in");
    snprintf(args, sizeof args, "prepare --input '%s' --output-dir '%s' --shards 1 --quiet --force", raw, dir);
    expect_refusal(args, "lies in");
    assert_true(file_exists(raw));
}

/* dump-weights writes weights and options.json as a pair: when options.json cannot be
 * put in place, the weight file does not appear either, and nothing temporary stays. */
static void test_dump_weights_pair(void **state) {
    char dir[512], out[600], cmd[2048], args[4096];
    tmp_path(dir, sizeof dir, "dump-pair");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/options.json'", dir); /* a directory: the rename fails */
    assert_int_equal(system(cmd), 0);
    snprintf(out, sizeof out, "%s/w.hdf5", dir);
    snprintf(args, sizeof args, "dump-weights --checkpoint '%s' --output '%s'", weights, out);
    char err[4096];
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_false(file_exists(out));
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", dir);
    assert_true(system(cmd) != 0);
    /* a full disk (here: files limited to 64 kB) leaves neither file */
    char dir2[512], out2[600], errfile[512];
    tmp_path(dir2, sizeof dir2, "dump-full");
    snprintf(out2, sizeof out2, "%s/w.hdf5", dir2);
    tmp_path(errfile, sizeof errfile, "dump-full-err.txt");
    snprintf(cmd, sizeof cmd, "(trap '' XFSZ; ulimit -f 1; exec %s dump-weights --checkpoint '%s' --output '%s') 2>'%s'",
             elmo_program(), weights, out2, errfile);
    const int status = system(cmd);
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_false(file_exists(out2));
    snprintf(cmd, sizeof cmd, "%s/options.json", dir2);
    assert_false(file_exists(cmd));
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", dir2);
    assert_true(system(cmd) != 0);
    /* and the ordinary case writes both */
    snprintf(args, sizeof args, "dump-weights --checkpoint '%s' --output '%s'", weights, out2);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    assert_true(file_exists(out2));
    snprintf(cmd, sizeof cmd, "%s/options.json", dir2);
    assert_true(file_exists(cmd));
}

/* dump-weights refuses to write into another run's training directory. */
static void test_dump_weights_training_dir(void **state) {
    static const char *markers[] = {"metrics.jsonl", "model.ckpt-12.hdf5", "train-tokens.json"};
    for (int k = 0; k < 3; k++) {
        char dir[512], path[700], cmd[2048], args[4096];
        snprintf(path, sizeof path, "dump-run-%d", k);
        tmp_path(dir, sizeof dir, path);
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
        assert_int_equal(system(cmd), 0);
        snprintf(path, sizeof path, "%s/%s", dir, markers[k]);
        write_text_file(path, "{}\n");
        snprintf(path, sizeof path, "%s/options.json", dir);
        write_text_file(path, "{\"theirs\": 1}\n");
        snprintf(args, sizeof args, "dump-weights --checkpoint '%s' --output '%s/w.hdf5'", weights, dir);
        expect_refusal(args, markers[k]);
        char *text;
        assert_int_equal(file_read_all(path, 1 << 16, &text, NULL), 0);
        assert_string_equal(text, "{\"theirs\": 1}\n");
        free(text);
        snprintf(path, sizeof path, "%s/w.hdf5", dir);
        assert_false(file_exists(path));
    }
}

/* Options asking for more memory than the machine has fail at once, with both figures. */
static void test_options_over_memory(void **state) {
    char big[512], args[4096], err[4096];
    char *text = xstrdup(options_text);
    char *at = strstr(text, "\"projection_dim\": 8, \"dim\": 16}");
    assert_non_null(at);
    char *doc = xmalloc(strlen(text) + 64);
    snprintf(doc, strlen(text) + 64, "%.*s\"projection_dim\": 4096, \"dim\": 1048576}%s", (int)(at - text), text,
             at + strlen("\"projection_dim\": 8, \"dim\": 16}"));
    write_text_file(tmp_path(big, sizeof big, "big-options.json"), doc);
    free(doc);
    free(text);
    const char *commands[] = {"embed --input '%s' --output '%s/big.hdf5'", "embed-vocab --output '%s/big.hdf5'%s"};
    for (int k = 0; k < 2; k++) {
        char tail[1200];
        if (k == 0) snprintf(tail, sizeof tail, commands[0], input, test_tmpdir());
        else snprintf(tail, sizeof tail, commands[1], test_tmpdir(), "");
        snprintf(args, sizeof args, "%.*s --options '%s' --weights '%s' --vocab '%s' %s",
                 (int)strcspn(tail, " "), tail, big, weights, vocab, tail + strcspn(tail, " "));
        const double t0 = elmo_now();
        const int rc = run_elmo(args, err, sizeof err);
        const double secs = elmo_now() - t0;
        if (rc != 2 || !strstr(err, "the model needs") || !strstr(err, "available"))
            print_error("rc %d after %.1f s: %s", rc, secs, err);
        assert_int_equal(rc, 2);
        assert_int_equal(count_lines(err), 1);
        assert_non_null(strstr(err, "big-options.json: the model needs "));
        assert_non_null(strstr(err, "GB of memory, the machine has "));
        assert_non_null(strstr(err, "B available"));
        assert_true(secs < 5.0);
    }
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
        cmocka_unit_test(test_embed_layer_choices),
        cmocka_unit_test(test_embed_float16),
        cmocka_unit_test(test_embed_sentence_to_index),
        cmocka_unit_test(test_embed_bad_choices),
        cmocka_unit_test(test_output_is_input),
        cmocka_unit_test(test_shard_input_in_output),
        cmocka_unit_test(test_dump_weights_pair),
        cmocka_unit_test(test_dump_weights_training_dir),
        cmocka_unit_test(test_options_over_memory),
    };
    return cmocka_run_group_tests_name("cli", tests, setup, NULL);
}
