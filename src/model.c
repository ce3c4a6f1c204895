/* model.c - see model.h. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "common.h"
#include "fileio.h"
#include "h5io.h"
#include "rng.h"

static void add_entry(BilmModel *m, const char *name, int rank, int d0, int d1, int d2, int d3) {
    CHECK(m->n_entries < MODEL_MAX_PARAMS, "too many parameters");
    ParamEntry *e = &m->entries[m->n_entries++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->rank = rank;
    int d[4] = {d0, d1, d2, d3};
    e->size = 1;
    for (int i = 0; i < rank; i++) {
        e->shape[i] = d[i];
        e->size *= (size_t)d[i];
    }
    /* keep every tensor 64-byte aligned */
    e->offset = m->n_floats;
    m->n_floats += (e->size + 15) / 16 * 16;
}


static void lstm_param_prefix(char *buf, size_t size, int direction, int layer) {
    snprintf(buf, size, "RNN_%d/RNN/MultiRNNCell/Cell%d/LSTMCell/", direction, layer);
}

/* The tensor `name` inside buffer, or NULL when it lies beyond `available` floats. */
static float *tensor_at(const BilmModel *m, float *buffer, size_t available, const char *name) {
    const ParamEntry *e = model_find(m, name);
    CHECK(e, "no parameter %s", name);
    return e->offset + e->size <= available ? buffer + e->offset : NULL;
}

/* Points every view of m at its tensor inside buffer (NULL beyond `available` floats). */
static void bind_views(BilmModel *m, float *buffer, size_t available) {
    const ElmoOptions *o = m->opt;
    char name[80], prefix[64];
    m->char_embed = tensor_at(m, buffer, available, "char_embed");
    for (int k = 0; k < o->n_filter_kinds; k++) {
        snprintf(name, sizeof name, "CNN/W_cnn_%d", k);
        m->conv[k].W = tensor_at(m, buffer, available, name);
        snprintf(name, sizeof name, "CNN/b_cnn_%d", k);
        m->conv[k].b = tensor_at(m, buffer, available, name);
        m->conv[k].width = o->filter_width[k];
        m->conv[k].count = o->filter_count[k];
    }
    for (int i = 0; i < o->n_highway; i++) {
        HighwayParams *h = &m->highway[i];
        snprintf(name, sizeof name, "CNN_high_%d/W_carry", i);
        h->W_carry = tensor_at(m, buffer, available, name);
        snprintf(name, sizeof name, "CNN_high_%d/b_carry", i);
        h->b_carry = tensor_at(m, buffer, available, name);
        snprintf(name, sizeof name, "CNN_high_%d/W_transform", i);
        h->W_transform = tensor_at(m, buffer, available, name);
        snprintf(name, sizeof name, "CNN_high_%d/b_transform", i);
        h->b_transform = tensor_at(m, buffer, available, name);
    }
    if (options_use_char_proj(o)) {
        m->W_proj = tensor_at(m, buffer, available, "CNN_proj/W_proj");
        m->b_proj = tensor_at(m, buffer, available, "CNN_proj/b_proj");
    }
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < o->n_layers; l++) {
            LstmParams *p = &m->lstm[d][l];
            lstm_param_prefix(prefix, sizeof prefix, d, l);
            snprintf(name, sizeof name, "%sW_0", prefix);
            p->W = tensor_at(m, buffer, available, name);
            snprintf(name, sizeof name, "%sB", prefix);
            p->B = tensor_at(m, buffer, available, name);
            snprintf(name, sizeof name, "%sW_P_0", prefix);
            p->W_P = options_use_lstm_proj(o) ? tensor_at(m, buffer, available, name) : NULL;
            p->in_dim = o->proj_dim;
        }
    if (m->softmax_vocab > 0) {
        m->softmax_W = tensor_at(m, buffer, available, "softmax/W");
        m->softmax_b = tensor_at(m, buffer, available, "softmax/b");
    }
}

void model_init_layout(BilmModel *m, const ElmoOptions *o, long softmax_vocab) {
    memset(m, 0, sizeof *m);
    m->opt = o;
    m->softmax_vocab = softmax_vocab;
    const int De = o->char_dim, F = o->total_filters, P = o->proj_dim, H = o->lstm_dim;
    char name[80], prefix[64];
    add_entry(m, "char_embed", 2, CHAR_TABLE_ROWS, De, 0, 0);
    for (int k = 0; k < o->n_filter_kinds; k++) {
        snprintf(name, sizeof name, "CNN/W_cnn_%d", k);
        add_entry(m, name, 4, 1, o->filter_width[k], De, o->filter_count[k]);
        snprintf(name, sizeof name, "CNN/b_cnn_%d", k);
        add_entry(m, name, 1, o->filter_count[k], 0, 0, 0);
    }
    for (int i = 0; i < o->n_highway; i++) {
        static const char *const parts[4][2] = {
            {"W_carry", "2"}, {"b_carry", "1"}, {"W_transform", "2"}, {"b_transform", "1"}};
        for (int p = 0; p < 4; p++) {
            snprintf(name, sizeof name, "CNN_high_%d/%s", i, parts[p][0]);
            if (parts[p][1][0] == '2') add_entry(m, name, 2, F, F, 0, 0);
            else add_entry(m, name, 1, F, 0, 0, 0);
        }
    }
    if (options_use_char_proj(o)) {
        add_entry(m, "CNN_proj/W_proj", 2, F, P, 0, 0);
        add_entry(m, "CNN_proj/b_proj", 1, P, 0, 0, 0);
    }
    const int Hs = options_state_dim(o);
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < o->n_layers; l++) {
            lstm_param_prefix(prefix, sizeof prefix, d, l);
            /* every layer's input is P wide: the token embedding or the layer below */
            snprintf(name, sizeof name, "%sW_0", prefix);
            add_entry(m, name, 2, P + Hs, 4 * H, 0, 0);
            snprintf(name, sizeof name, "%sB", prefix);
            add_entry(m, name, 1, 4 * H, 0, 0, 0);
            if (options_use_lstm_proj(o)) {
                snprintf(name, sizeof name, "%sW_P_0", prefix);
                add_entry(m, name, 2, H, P, 0, 0);
            }
        }
    if (softmax_vocab > 0) {
        add_entry(m, "softmax/W", 2, (int)softmax_vocab, P, 0, 0);
        add_entry(m, "softmax/b", 1, (int)softmax_vocab, 0, 0, 0);
    }
    m->data = xmalloc_aligned(m->n_floats * sizeof(float));
    memset(m->data, 0, m->n_floats * sizeof(float));
    bind_views(m, m->data, m->n_floats);
}

const ParamEntry *model_find(const BilmModel *m, const char *name) {
    for (int i = 0; i < m->n_entries; i++)
        if (strcmp(m->entries[i].name, name) == 0) return &m->entries[i];
    return NULL;
}

void model_view(BilmModel *view, const BilmModel *m, float *buffer, size_t n_floats) {
    *view = *m;
    view->data = buffer;
    bind_views(view, buffer, n_floats);
}

size_t model_dense_floats(const BilmModel *m) {
    const ParamEntry *e = model_find(m, "softmax/W");
    return e ? e->offset : m->n_floats;
}

float *model_param(BilmModel *m, const char *name) {
    const ParamEntry *e = model_find(m, name);
    CHECK(e, "no parameter %s", name);
    return m->data + e->offset;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* SPEC section 5: initialisation of a new model. N(0, v) has variance v. */
void model_init_random(BilmModel *m, uint64_t seed) {
    const ElmoOptions *o = m->opt;
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < m->n_entries; i++) {
        const ParamEntry *e = &m->entries[i];
        float *x = m->data + e->offset;
        const char *n = e->name;
        if (strcmp(n, "char_embed") == 0) {
            for (size_t k = 0; k < e->size; k++) x[k] = (float)(2.0 * rng_uniform(&rng) - 1.0);
        } else if (strncmp(n, "CNN/W_cnn_", 10) == 0) {
            double sd = sqrt(1.0 / (e->shape[1] * o->char_dim));
            for (size_t k = 0; k < e->size; k++)
                x[k] = o->activation == ELMO_ACT_RELU ? (float)(0.1 * rng_uniform(&rng) - 0.05)
                                                      : (float)(sd * rng_normal(&rng));
        } else if (ends_with(n, "/W_carry") || ends_with(n, "/W_transform") || strcmp(n, "CNN_proj/W_proj") == 0) {
            double sd = sqrt(1.0 / e->shape[0]);
            for (size_t k = 0; k < e->size; k++) x[k] = (float)(sd * rng_normal(&rng));
        } else if (ends_with(n, "/b_carry")) {
            for (size_t k = 0; k < e->size; k++) x[k] = -2.0f;
        } else if (ends_with(n, "/W_0") || ends_with(n, "/W_P_0")) {
            double limit = sqrt(6.0 / (e->shape[0] + e->shape[1])); /* Glorot uniform */
            for (size_t k = 0; k < e->size; k++) x[k] = (float)(limit * (2.0 * rng_uniform(&rng) - 1.0));
        } else if (strcmp(n, "softmax/W") == 0) {
            double sd = sqrt(1.0 / o->proj_dim);
            for (size_t k = 0; k < e->size; k++) x[k] = (float)(sd * rng_normal(&rng));
        } else {
            memset(x, 0, e->size * sizeof *x); /* every other bias */
        }
    }
}

static void entry_dims(const ParamEntry *e, hsize_t *dims) {
    for (int i = 0; i < e->rank; i++) dims[i] = (hsize_t)e->shape[i];
}

/* char_embed: 261 rows in every released file; a 262-row table (the padding row in
 * front, as bilm-tf builds it for prediction) is accepted too. */
static int load_char_embed(BilmModel *m, hid_t file, const char *path, const ParamEntry *e) {
    int rank;
    hsize_t dims[H5IO_MAX_RANK];
    if (h5io_shape(file, path, "char_embed", &rank, dims) < 0) return -1;
    if (rank != 2 || dims[1] != (hsize_t)m->opt->char_dim || (dims[0] != 261 && dims[0] != 262)) {
        char got[96];
        return elmo_fail("%s: char_embed: got %s, expected (261, %d) (or 262 rows with the padding row)", path,
                         h5io_shape_str(got, sizeof got, rank, dims), m->opt->char_dim);
    }
    if (dims[0] == 261) return h5io_read_floats(file, path, "char_embed", 2, dims, m->data + e->offset);
    float *with_pad = xmalloc(262 * (size_t)m->opt->char_dim * sizeof(float));
    int rc = h5io_read_floats(file, path, "char_embed", 2, dims, with_pad);
    if (rc == 0) {
        memcpy(m->data + e->offset, with_pad + m->opt->char_dim, e->size * sizeof(float));
        elmo_note("%s: char_embed has 262 rows; row 0 taken as the padding row and dropped", path);
    }
    free(with_pad);
    return rc;
}

/* Whether the file has `e` with exactly its shape. */
static int has_same_shape(hid_t file, const char *path, const ParamEntry *e) {
    int rank;
    hsize_t dims[H5IO_MAX_RANK];
    if (!h5io_exists(file, e->name) || h5io_shape(file, path, e->name, &rank, dims) < 0 || rank != e->rank) return 0;
    for (int k = 0; k < rank; k++)
        if (dims[k] != (hsize_t)e->shape[k]) return 0;
    return 1;
}

/* Loads every tensor of the table; the softmax is required (require_softmax) or taken
 * only when the file has it with the same shape (*softmax_loaded tells). */
static int load_tensors(BilmModel *m, const char *path, int require_softmax, int *softmax_loaded) {
    hid_t file;
    if (h5io_open_read(path, &file) < 0) return -1;
    int rc = 0;
    if (softmax_loaded) *softmax_loaded = 0;
    for (int i = 0; i < m->n_entries && rc == 0; i++) {
        const ParamEntry *e = &m->entries[i];
        hsize_t dims[H5IO_MAX_RANK];
        entry_dims(e, dims);
        const int is_softmax = strncmp(e->name, "softmax/", 8) == 0;
        if (is_softmax && !require_softmax && !has_same_shape(file, path, e)) continue;
        if (strcmp(e->name, "char_embed") == 0) rc = load_char_embed(m, file, path, e);
        else rc = h5io_read_floats(file, path, e->name, e->rank, dims, m->data + e->offset);
        if (rc == 0 && is_softmax && softmax_loaded) *softmax_loaded = 1;
    }
    H5Fclose(file);
    return rc;
}

int model_load(BilmModel *m, const char *path) { return load_tensors(m, path, 1, NULL); }

int model_load_init(BilmModel *m, const char *path, int *softmax_loaded) {
    return load_tensors(m, path, 0, softmax_loaded);
}

int model_save(const BilmModel *m, const char *path, int with_softmax) {
    PendingFile pf;
    pending_begin(&pf, path);
    hid_t file;
    if (h5io_create(pf.tmp, &file) < 0) {
        pending_abort(&pf);
        return elmo_fail("%s: cannot create", path);
    }
    int rc = 0;
    for (int i = 0; i < m->n_entries && rc == 0; i++) {
        const ParamEntry *e = &m->entries[i];
        if (!with_softmax && strncmp(e->name, "softmax/", 8) == 0) continue;
        hsize_t dims[H5IO_MAX_RANK];
        entry_dims(e, dims);
        rc = h5io_write_floats(file, path, e->name, e->rank, dims, m->data + e->offset);
    }
    if (h5io_close(file, path) < 0) rc = -1;
    if (rc < 0) {
        pending_abort(&pf);
        return -1;
    }
    return pending_commit(&pf);
}

void model_free(BilmModel *m) {
    free(m->data);
    m->data = NULL;
}
