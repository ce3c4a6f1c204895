/* test_options.c - options.json parsing, defaults, validation errors and write-back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fileio.h"
#include "options.h"
#include "testutil.h"

/* The released options.json of the fixture model, with an extra unknown key. */
static const char released[] =
    "{\"lstm\": {\"cell_clip\": 3, \"use_skip_connections\": false, \"n_layers\": 2, \"proj_clip\": 3,"
    " \"projection_dim\": 16, \"dim\": 64}, \"char_cnn\": {\"embedding\": {\"dim\": 4}, \"filters\": [[1, 4],"
    " [2, 8], [3, 16], [4, 32], [5, 64]], \"n_highway\": 2, \"n_characters\": 262,"
    " \"max_characters_per_token\": 50, \"activation\": \"relu\"}, \"my_note\": {\"kept\": [1, 2]}}";

static void test_released_options(void **state) {
    ElmoOptions o;
    assert_int_equal(options_parse(&o, released, "opts"), 0);
    assert_int_equal(o.char_dim, 4);
    assert_int_equal(o.n_filter_kinds, 5);
    assert_int_equal(o.total_filters, 124);
    assert_int_equal(o.filter_width[4], 5);
    assert_int_equal(o.filter_count[4], 64);
    assert_int_equal(o.max_chars, 50);
    assert_int_equal(o.n_characters, 262);
    assert_int_equal(o.activation, ELMO_ACT_RELU);
    assert_int_equal(o.n_highway, 2);
    assert_int_equal(o.lstm_dim, 64);
    assert_int_equal(o.proj_dim, 16);
    assert_int_equal(o.n_layers, 2);
    assert_true(o.has_cell_clip && o.has_proj_clip);
    assert_float_equal(o.cell_clip, 3.0f, 0);
    assert_false(o.use_skip_connections);
    /* defaults of docs/design.md section 1 */
    assert_true(o.bidirectional);
    assert_float_equal(o.dropout, 0.1f, 1e-7);
    assert_int_equal(o.batch_size, 128);
    assert_int_equal(o.unroll_steps, 20);
    assert_int_equal(o.n_negative_samples, 8192);
    assert_true(o.sample_softmax);
    assert_float_equal(o.learning_rate, 0.2f, 1e-7);
    assert_float_equal(o.all_clip_norm_val, 10.0f, 1e-6);
    assert_int_equal(o.n_epochs, 10);      /* bilm-tf's train_elmo.py */
    assert_int_equal(o.n_train_tokens, 0); /* absent: elmo train counts the shards */
    assert_true(options_use_char_proj(&o));
    assert_true(options_use_lstm_proj(&o));
    /* the training keys it lacks are listed with their values, then made explicit */
    char assumed[1024];
    assert_int_equal(options_assumed_training_keys(&o, assumed, sizeof assumed), 9);
    assert_string_equal(assumed, "bidirectional true, dropout 0.1, batch_size 128, unroll_steps 20, "
                                 "n_negative_samples_batch 8192, sample_softmax true, learning_rate 0.2, "
                                 "all_clip_norm_val 10, n_epochs 10");
    options_make_training_keys_explicit(&o);
    assert_int_equal(options_assumed_training_keys(&o, assumed, sizeof assumed), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o.json, "sample_softmax")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o.json, "batch_size")->valueint, 128);
    options_free(&o);
}

static void test_no_clip_no_highway(void **state) {
    const char *text =
        "{\"lstm\": {\"n_layers\": 1, \"projection_dim\": 8, \"dim\": 8, \"cell_clip\": null},"
        " \"char_cnn\": {\"embedding\": {\"dim\": 2}, \"filters\": [[1, 8]], \"n_characters\": 261,"
        " \"max_characters_per_token\": 10, \"activation\": \"tanh\"}}";
    ElmoOptions o;
    assert_int_equal(options_parse(&o, text, "opts"), 0);
    assert_false(o.has_cell_clip);
    assert_false(o.has_proj_clip);
    assert_int_equal(o.n_highway, 0);
    assert_int_equal(o.activation, ELMO_ACT_TANH);
    assert_false(options_use_char_proj(&o)); /* F == P */
    assert_false(options_use_lstm_proj(&o)); /* P == H */
    assert_int_equal(options_state_dim(&o), 8);
    options_free(&o);
}

/* Replaces the first occurrence of `from` in the released text by `to`, parses it, and
 * checks the error mentions `key`. */
static void expect_error(const char *from, const char *to, const char *key) {
    char text[4096];
    const char *at = strstr(released, from);
    assert_non_null(at);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - released), released, to, at + strlen(from));
    ElmoOptions o;
    assert_int_equal(options_parse(&o, text, "bad.json"), -1);
    const char *msg = elmo_error();
    if (!strstr(msg, key) || !strstr(msg, "bad.json")) print_error("message '%s' lacks '%s'\n", msg, key);
    assert_non_null(strstr(msg, key));
    assert_non_null(strstr(msg, "bad.json"));
    assert_null(strchr(msg, '\n'));
}

static void test_validation_errors(void **state) {
    expect_error("\"dim\": 64", "\"dimension\": 64", "lstm.dim");
    expect_error("\"projection_dim\": 16", "\"projection_dim\": 128", "lstm.projection_dim");
    expect_error("\"projection_dim\": 16", "\"projection_dim\": \"16\"", "lstm.projection_dim");
    expect_error("\"projection_dim\": 16", "\"projection_dim\": 16.5", "lstm.projection_dim");
    expect_error("\"n_characters\": 262", "\"n_characters\": 263", "char_cnn.n_characters");
    expect_error("[5, 64]", "[51, 64]", "char_cnn.filters");
    expect_error("[5, 64]", "[5]", "char_cnn.filters");
    expect_error("[5, 64]", "[5, -1]", "char_cnn.filters");
    expect_error("\"relu\"", "\"sigmoid\"", "char_cnn.activation");
    expect_error("\"cell_clip\": 3", "\"cell_clip\": -3", "lstm.cell_clip");
    expect_error("\"use_skip_connections\": false", "\"use_skip_connections\": \"no\"", "lstm.use_skip_connections");
    expect_error("\"n_layers\": 2", "\"n_layers\": 0", "lstm.n_layers");
    /* the sizes of the fixed arrays behind the options, named as such */
    expect_error("\"n_layers\": 2", "\"n_layers\": 17", "key 'lstm.n_layers' is 17, at most 16 are supported");
    expect_error("\"n_highway\": 2", "\"n_highway\": 60", "key 'char_cnn.n_highway' is 60, at most 16 are supported");
    char many[2048] = "[1, 4]";
    for (int k = 1; k < ELMO_MAX_FILTERS + 20; k++) strcat(many, ", [1, 4]");
    expect_error("[1, 4], [2, 8], [3, 16], [4, 32], [5, 64]", many,
                 "key 'char_cnn.filters' has 84 entries, at most 64 are supported");
    expect_error("\"embedding\": {\"dim\": 4}", "\"embedding\": 4", "char_cnn.embedding.dim");
    ElmoOptions o;
    assert_int_equal(options_parse(&o, "{\"lstm\": ", "trunc.json"), -1);
    assert_non_null(strstr(elmo_error(), "trunc.json: invalid JSON"));
    assert_int_equal(options_parse(&o, "[1, 2]", "array.json"), -1);
    assert_int_equal(options_load(&o, "/nonexistent/options.json"), -1);
    assert_non_null(strstr(elmo_error(), "/nonexistent/options.json"));
}

static void test_save_keeps_unknown_keys(void **state) {
    ElmoOptions o, back;
    assert_int_equal(options_parse(&o, released, "opts"), 0);
    char path[512];
    tmp_path(path, sizeof path, "saved_options.json");
    assert_int_equal(options_save(&o, path, 261), 0);
    assert_int_equal(options_load(&back, path), 0);
    assert_int_equal(back.n_characters, 261);
    assert_int_equal(back.total_filters, o.total_filters);
    cJSON *note = cJSON_GetObjectItemCaseSensitive(back.json, "my_note");
    assert_non_null(note);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(note, "kept")), 2);
    options_free(&back);
    /* an unwritable destination fails cleanly */
    assert_int_equal(options_save(&o, "/nonexistent-dir/options.json", 0), -1);
    assert_non_null(strstr(elmo_error(), "/nonexistent-dir/options.json"));
    options_free(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_released_options),
        cmocka_unit_test(test_no_clip_no_highway),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_save_keeps_unknown_keys),
    };
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
