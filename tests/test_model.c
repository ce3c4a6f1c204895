/* test_model.c - the parameter table: the layout it gives for the fixture's options is
 * exactly the datasets (names and shapes) of the released weight file; the optional
 * tensors appear exactly when the options call for them; names, TensorFlow names and
 * views agree for every entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "options.h"
#include "testutil.h"

typedef struct {
    const BilmModel *m;
    int n_datasets, matched;
} Visit;

/* Every dataset of the file must be an entry of the same shape. */
static herr_t visit_dataset(hid_t root, const char *name, const H5L_info_t *info, void *data) {
    Visit *v = data;
    hid_t object = H5Oopen(root, name, H5P_DEFAULT);
    const int is_dataset = H5Iget_type(object) == H5I_DATASET;
    H5Oclose(object);
    if (!is_dataset) return 0;
    v->n_datasets++;
    const ParamEntry *e = model_find(v->m, name);
    if (!e) {
        print_error("dataset %s of the file is not in the table\n", name);
        return 0;
    }
    hid_t ds = H5Dopen2(root, name, H5P_DEFAULT), space = H5Dget_space(ds);
    hsize_t dims[8];
    const int rank = H5Sget_simple_extent_dims(space, dims, NULL);
    int same = rank == e->rank;
    for (int k = 0; same && k < rank; k++) same = dims[k] == (hsize_t)e->shape[k];
    if (same) v->matched++;
    else print_error("dataset %s: shape differs from the table's\n", name);
    H5Sclose(space);
    H5Dclose(ds);
    return 0;
}

static void test_layout_is_the_released_file(void **state) {
    char options_path[4096], weights_path[4096];
    if (!fixture_path(options_path, sizeof options_path, "bilm-tf/model/options.json") ||
        !fixture_path(weights_path, sizeof weights_path, "bilm-tf/model/lm_weights.hdf5")) {
        skip();
        return;
    }
    ElmoOptions o;
    assert_int_equal(options_load(&o, options_path), 0);
    BilmModel m;
    model_init_layout(&m, &o, 0);
    hid_t file = H5Fopen(weights_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    Visit v = {&m, 0, 0};
    assert_true(H5Lvisit(file, H5_INDEX_NAME, H5_ITER_NATIVE, visit_dataset, &v) >= 0);
    H5Fclose(file);
    print_message("%d datasets in the file, %d entries in the layout\n", v.n_datasets, m.n_entries);
    assert_int_equal(v.matched, v.n_datasets);
    assert_int_equal(v.n_datasets, m.n_entries);
    model_free(&m);
    options_free(&o);
}

static int parse(ElmoOptions *o, int H, int P, int n_highway) {
    char text[512];
    snprintf(text, sizeof text,
             "{\"char_cnn\": {\"embedding\": {\"dim\": 3}, \"filters\": [[1, 2], [3, 6]], \"n_highway\": %d,"
             " \"max_characters_per_token\": 7, \"n_characters\": 261, \"activation\": \"relu\"},"
             " \"lstm\": {\"dim\": %d, \"projection_dim\": %d, \"n_layers\": 2}}",
             n_highway, H, P);
    return options_parse(o, text, "opts");
}

/* Following lstm.projection_dim: W_P_0 (H, P) with its TensorFlow name, only when P < H;
 * CNN_proj only when F != P; the softmax only with a vocabulary. */
static void test_optional_tensors_and_names(void **state) {
    ElmoOptions o;
    assert_int_equal(parse(&o, 12, 4, 1), 0);
    BilmModel m;
    model_init_layout(&m, &o, 30);
    const ParamEntry *e = model_find(&m, "RNN_1/RNN/MultiRNNCell/Cell0/LSTMCell/W_P_0");
    assert_non_null(e);
    assert_int_equal(e->kind, PARAM_LSTM_W_P);
    assert_int_equal(e->rank, 2);
    assert_int_equal(e->shape[0], 12);
    assert_int_equal(e->shape[1], 4);
    assert_string_equal(e->tf_name, "lm/RNN_1/rnn/multi_rnn_cell/cell_0/lstm_cell/projection/kernel");
    assert_ptr_equal(m.lstm[1][0].W_P, m.data + e->offset);
    e = model_find(&m, "RNN_0/RNN/MultiRNNCell/Cell1/LSTMCell/W_0");
    assert_non_null(e);
    assert_int_equal(e->shape[0], 4 + 4); /* input P + state P */
    assert_int_equal(e->shape[1], 48);
    assert_string_equal(e->tf_name, "lm/RNN_0/rnn/multi_rnn_cell/cell_1/lstm_cell/kernel");
    e = model_find(&m, "CNN/W_cnn_1");
    assert_non_null(e);
    assert_int_equal(e->rank, 4);
    assert_int_equal(e->shape[1], 3);
    assert_int_equal(e->shape[3], 6);
    assert_non_null(model_find(&m, "CNN_proj/W_proj")); /* F = 8 != P = 4 */
    e = model_find(&m, "softmax/W");
    assert_non_null(e);
    assert_true(e->row_sparse);
    assert_int_equal(e->shape[0], 30);
    assert_int_equal(model_dense_floats(&m), e->offset);
    /* every entry's view points at its tensor, each tensor lies after the one before */
    size_t end = 0;
    for (int i = 0; i < m.n_entries; i++) {
        assert_true(m.entries[i].offset >= end);
        end = m.entries[i].offset + m.entries[i].size;
    }
    assert_true(end <= m.n_floats);
    assert_ptr_equal(m.highway[0].b_carry, m.data + model_find(&m, "CNN_high_0/b_carry")->offset);
    model_free(&m);
    options_free(&o);

    assert_int_equal(parse(&o, 8, 8, 0), 0); /* P == H == F */
    model_init_layout(&m, &o, 0);
    assert_null(model_find(&m, "RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_P_0"));
    assert_null(m.lstm[0][0].W_P);
    assert_null(model_find(&m, "CNN_proj/W_proj"));
    assert_null(model_find(&m, "softmax/W"));
    assert_null(model_find(&m, "CNN_high_0/W_carry"));
    assert_int_equal(model_find(&m, "RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_0")->shape[0], 16);
    assert_int_equal(m.n_entries, 1 + 2 * 2 + 2 * 2 * 2);
    model_free(&m);
    options_free(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_is_the_released_file),
        cmocka_unit_test(test_optional_tensors_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
