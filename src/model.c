/* model.c - see model.h. */
#include "model.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "common.h"
#include "fileio.h"
#include "h5io.h"
#include "rng.h"

/* How many tensors of a kind a model has, and which view struct holds their pointers. */
typedef enum { ONCE, PER_FILTER, PER_HIGHWAY, PER_LSTM } Repeat;
/* Which models have the tensor at all. */
typedef enum { ALWAYS, WITH_CHAR_PROJ, WITH_LSTM_PROJ, WITH_SOFTMAX } Presence;
/* A dimension, in terms of the options (and of the filter kind for the CNN). */
typedef enum { D_ONE = 1, D_CHAR_ROWS, D_DE, D_WIDTH, D_COUNT, D_F, D_P, D_LSTM_IN, D_4H, D_H, D_V } Dim;
/* Initialisation of a new model (docs/design.md section 5); N(0, v) has variance v. */
typedef enum {
    INIT_UNIFORM_1,  /* U(-1, 1) */
    INIT_CNN,        /* relu: U(-0.05, 0.05); tanh: N(0, 1 / (w * De)) */
    INIT_FAN_IN,     /* N(0, 1 / rows) */
    INIT_GLOROT,     /* U(-a, a), a = sqrt(6 / (rows + columns)) */
    INIT_SOFTMAX,    /* N(0, 1 / P) */
    INIT_MINUS_2,    /* -2: the carry gate starts mostly closed */
    INIT_ZERO,
} Init;

typedef struct {
    const char *name, *tf_name; /* printf formats of the repeat's indices */
    Repeat repeat;
    Presence presence;
    int rank;
    Dim dims[4];
    Init init;
    int row_sparse;
    size_t view;                /* offset of the float * in BilmModel or the repeat's view struct */
} ParamSpec;

#define LSTM_CELL "RNN_%d/RNN/MultiRNNCell/Cell%d/LSTMCell/"
#define TF_LSTM_CELL "lm/RNN_%d/rnn/multi_rnn_cell/cell_%d/lstm_cell/"

/* THE parameter table. Rows of the same repeat that follow each other form a group laid
 * out instance by instance (W_cnn_0, b_cnn_0, W_cnn_1, ...), which is the order of the
 * file, of the buffer, and of the random draws of model_init_random. */
static const ParamSpec PARAM_TABLE[PARAM_KINDS] = {
    [PARAM_CHAR_EMBED] = {"char_embed", "lm/char_embed", ONCE, ALWAYS, 2, {D_CHAR_ROWS, D_DE}, INIT_UNIFORM_1, 0,
                          offsetof(BilmModel, char_embed)},
    [PARAM_CNN_W] = {"CNN/W_cnn_%d", "lm/CNN/W_cnn_%d", PER_FILTER, ALWAYS, 4, {D_ONE, D_WIDTH, D_DE, D_COUNT},
                     INIT_CNN, 0, offsetof(ConvParams, W)},
    [PARAM_CNN_B] = {"CNN/b_cnn_%d", "lm/CNN/b_cnn_%d", PER_FILTER, ALWAYS, 1, {D_COUNT}, INIT_ZERO, 0,
                     offsetof(ConvParams, b)},
    [PARAM_HIGHWAY_W_CARRY] = {"CNN_high_%d/W_carry", "lm/CNN_high_%d/W_carry", PER_HIGHWAY, ALWAYS, 2, {D_F, D_F},
                               INIT_FAN_IN, 0, offsetof(HighwayParams, W_carry)},
    [PARAM_HIGHWAY_B_CARRY] = {"CNN_high_%d/b_carry", "lm/CNN_high_%d/b_carry", PER_HIGHWAY, ALWAYS, 1, {D_F},
                               INIT_MINUS_2, 0, offsetof(HighwayParams, b_carry)},
    [PARAM_HIGHWAY_W_TRANSFORM] = {"CNN_high_%d/W_transform", "lm/CNN_high_%d/W_transform", PER_HIGHWAY, ALWAYS, 2,
                                   {D_F, D_F}, INIT_FAN_IN, 0, offsetof(HighwayParams, W_transform)},
    [PARAM_HIGHWAY_B_TRANSFORM] = {"CNN_high_%d/b_transform", "lm/CNN_high_%d/b_transform", PER_HIGHWAY, ALWAYS, 1,
                                   {D_F}, INIT_ZERO, 0, offsetof(HighwayParams, b_transform)},
    [PARAM_PROJ_W] = {"CNN_proj/W_proj", "lm/CNN_proj/W_proj", ONCE, WITH_CHAR_PROJ, 2, {D_F, D_P}, INIT_FAN_IN, 0,
                      offsetof(BilmModel, W_proj)},
    [PARAM_PROJ_B] = {"CNN_proj/b_proj", "lm/CNN_proj/b_proj", ONCE, WITH_CHAR_PROJ, 1, {D_P}, INIT_ZERO, 0,
                      offsetof(BilmModel, b_proj)},
    /* every layer's input is P wide: the token embedding or the layer below */
    [PARAM_LSTM_W] = {LSTM_CELL "W_0", TF_LSTM_CELL "kernel", PER_LSTM, ALWAYS, 2, {D_LSTM_IN, D_4H}, INIT_GLOROT, 0,
                      offsetof(LstmParams, W)},
    [PARAM_LSTM_B] = {LSTM_CELL "B", TF_LSTM_CELL "bias", PER_LSTM, ALWAYS, 1, {D_4H}, INIT_ZERO, 0,
                      offsetof(LstmParams, B)},
    [PARAM_LSTM_W_P] = {LSTM_CELL "W_P_0", TF_LSTM_CELL "projection/kernel", PER_LSTM, WITH_LSTM_PROJ, 2, {D_H, D_P},
                        INIT_GLOROT, 0, offsetof(LstmParams, W_P)},
    /* last, so that the dense tensors are one prefix of the buffer */
    [PARAM_SOFTMAX_W] = {"softmax/W", "lm/softmax/W", ONCE, WITH_SOFTMAX, 2, {D_V, D_P}, INIT_SOFTMAX, 1,
                         offsetof(BilmModel, softmax_W)},
    [PARAM_SOFTMAX_B] = {"softmax/b", "lm/softmax/b", ONCE, WITH_SOFTMAX, 1, {D_V}, INIT_ZERO, 1,
                         offsetof(BilmModel, softmax_b)},
};

static int is_present(const ParamSpec *s, const BilmModel *m) {
    switch (s->presence) {
    case WITH_CHAR_PROJ: return options_use_char_proj(m->opt);
    case WITH_LSTM_PROJ: return options_use_lstm_proj(m->opt);
    case WITH_SOFTMAX: return m->softmax_vocab > 0;
    default: return 1;
    }
}

static int instances(Repeat r, const ElmoOptions *o) {
    switch (r) {
    case PER_FILTER: return o->n_filter_kinds;
    case PER_HIGHWAY: return o->n_highway;
    case PER_LSTM: return 2 * o->n_layers;
    default: return 1;
    }
}

static int dim_value(Dim d, const BilmModel *m, int instance) {
    const ElmoOptions *o = m->opt;
    switch (d) {
    case D_CHAR_ROWS: return CHAR_TABLE_ROWS;
    case D_DE: return o->char_dim;
    case D_WIDTH: return o->filter_width[instance];
    case D_COUNT: return o->filter_count[instance];
    case D_F: return o->total_filters;
    case D_P: return o->proj_dim;
    case D_LSTM_IN: return o->proj_dim + options_state_dim(o);
    case D_4H: return 4 * o->lstm_dim;
    case D_H: return o->lstm_dim;
    case D_V: return (int)m->softmax_vocab;
    default: return 1;
    }
}

/* Adds the tensor of kind k, instance i (an LSTM's is direction * n_layers + layer). */
static void add_entry(BilmModel *m, ParamKind k, int i, int keep) {
    const ParamSpec *s = &PARAM_TABLE[k];
    const int L = m->opt->n_layers;
    if (!keep) {
        m->n_entries++;
        return;
    }
    ParamEntry *e = &m->entries[m->n_entries++];
    e->kind = k;
    e->index[0] = s->repeat == PER_LSTM ? i / L : i;
    e->index[1] = s->repeat == PER_LSTM ? i % L : 0;
    snprintf(e->name, sizeof e->name, s->name, e->index[0], e->index[1]);
    snprintf(e->tf_name, sizeof e->tf_name, s->tf_name, e->index[0], e->index[1]);
    e->rank = s->rank;
    e->row_sparse = s->row_sparse;
    e->size = 1;
    for (int r = 0; r < s->rank; r++) {
        e->shape[r] = dim_value(s->dims[r], m, i);
        e->size *= (size_t)e->shape[r];
    }
    /* every tensor 64-byte aligned */
    e->offset = m->n_floats;
    m->n_floats += (e->size + 15) / 16 * 16;
    CHECK(!e->row_sparse || k >= PARAM_SOFTMAX_W, "row-sparse tensors come last");
}

/* Walks the table group by group (consecutive rows of one repeat), instance by
 * instance; keep = 0 only counts the entries. */
static void lay_out(BilmModel *m, int keep) {
    m->n_entries = 0;
    m->n_floats = 0;
    for (int first = 0; first < PARAM_KINDS;) {
        int end = first;
        while (end < PARAM_KINDS && PARAM_TABLE[end].repeat == PARAM_TABLE[first].repeat) end++;
        for (int i = 0; i < instances(PARAM_TABLE[first].repeat, m->opt); i++)
            for (int k = first; k < end; k++)
                if (is_present(&PARAM_TABLE[k], m)) add_entry(m, (ParamKind)k, i, keep);
        first = end;
    }
}

/* The address of entry e's view pointer inside model m. */
static float **view_slot(BilmModel *m, const ParamEntry *e) {
    const ParamSpec *s = &PARAM_TABLE[e->kind];
    char *base = (char *)m;
    switch (s->repeat) {
    case PER_FILTER: base = (char *)&m->conv[e->index[0]]; break;
    case PER_HIGHWAY: base = (char *)&m->highway[e->index[0]]; break;
    case PER_LSTM: base = (char *)&m->lstm[e->index[0]][e->index[1]]; break;
    default: break;
    }
    return (float **)(base + s->view);
}

/* Points every view of m at its tensor inside buffer (NULL beyond `available` floats). */
static void bind_views(BilmModel *m, float *buffer, size_t available) {
    const ElmoOptions *o = m->opt;
    for (int i = 0; i < m->n_entries; i++) {
        const ParamEntry *e = &m->entries[i];
        *view_slot(m, e) = e->offset + e->size <= available ? buffer + e->offset : NULL;
    }
    for (int k = 0; k < o->n_filter_kinds; k++) {
        m->conv[k].width = o->filter_width[k];
        m->conv[k].count = o->filter_count[k];
    }
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < o->n_layers; l++) m->lstm[d][l].in_dim = o->proj_dim;
}

void model_layout(BilmModel *m, const ElmoOptions *o, long softmax_vocab) {
    memset(m, 0, sizeof *m);
    m->opt = o;
    m->softmax_vocab = softmax_vocab;
    lay_out(m, 0);
    m->entries = xcalloc((size_t)m->n_entries, sizeof *m->entries);
    lay_out(m, 1);
}

void model_init_layout(BilmModel *m, const ElmoOptions *o, long softmax_vocab) {
    model_layout(m, o, softmax_vocab);
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
    for (int i = 0; i < m->n_entries; i++)
        if (m->entries[i].row_sparse) return m->entries[i].offset;
    return m->n_floats;
}

float *model_param(BilmModel *m, const char *name) {
    const ParamEntry *e = model_find(m, name);
    CHECK(e, "no parameter %s", name);
    return m->data + e->offset;
}

void model_init_random(BilmModel *m, uint64_t seed) {
    const ElmoOptions *o = m->opt;
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < m->n_entries; i++) {
        const ParamEntry *e = &m->entries[i];
        float *x = m->data + e->offset;
        switch (PARAM_TABLE[e->kind].init) {
        case INIT_UNIFORM_1:
            for (size_t k = 0; k < e->size; k++) x[k] = (float)(2.0 * rng_uniform(&rng) - 1.0);
            break;
        case INIT_CNN: {
            const double sd = sqrt(1.0 / (e->shape[1] * o->char_dim));
            for (size_t k = 0; k < e->size; k++)
                x[k] = o->activation == ELMO_ACT_RELU ? (float)(0.1 * rng_uniform(&rng) - 0.05)
                                                      : (float)(sd * rng_normal(&rng));
            break;
        }
        case INIT_FAN_IN: {
            const double sd = sqrt(1.0 / e->shape[0]);
            for (size_t k = 0; k < e->size; k++) x[k] = (float)(sd * rng_normal(&rng));
            break;
        }
        case INIT_GLOROT: {
            const double limit = sqrt(6.0 / (e->shape[0] + e->shape[1]));
            for (size_t k = 0; k < e->size; k++) x[k] = (float)(limit * (2.0 * rng_uniform(&rng) - 1.0));
            break;
        }
        case INIT_SOFTMAX: {
            const double sd = sqrt(1.0 / o->proj_dim);
            for (size_t k = 0; k < e->size; k++) x[k] = (float)(sd * rng_normal(&rng));
            break;
        }
        case INIT_MINUS_2:
            for (size_t k = 0; k < e->size; k++) x[k] = -2.0f;
            break;
        case INIT_ZERO:
            memset(x, 0, e->size * sizeof *x);
            break;
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
    if (dims[0] == 261) return h5io_read_weights(file, path, "char_embed", 2, dims, m->data + e->offset);
    float *with_pad = xmalloc(262 * (size_t)m->opt->char_dim * sizeof(float));
    int rc = h5io_read_weights(file, path, "char_embed", 2, dims, with_pad);
    if (rc == 0) {
        memcpy(m->data + e->offset, with_pad + m->opt->char_dim, e->size * sizeof(float));
        elmo_note("%s: char_embed has 262 rows; row 0 taken as the padding row and dropped", path);
    }
    free(with_pad);
    return rc;
}

/* Loads every tensor of the table; the softmax is required (require_softmax) or taken
 * only when the file has it with the same shape (*softmax_loaded tells). */
/* Loads every tensor of the table, or (with_softmax = 0) all but the softmax. */
static int load_tensors(BilmModel *m, const char *path, int with_softmax) {
    hid_t file;
    if (h5io_open_read(path, &file) < 0) return -1;
    int rc = 0;
    for (int i = 0; i < m->n_entries && rc == 0; i++) {
        const ParamEntry *e = &m->entries[i];
        hsize_t dims[H5IO_MAX_RANK];
        entry_dims(e, dims);
        if (!with_softmax && PARAM_TABLE[e->kind].presence == WITH_SOFTMAX) continue;
        if (e->kind == PARAM_CHAR_EMBED) rc = load_char_embed(m, file, path, e);
        else rc = h5io_read_weights(file, path, e->name, e->rank, dims, m->data + e->offset);
    }
    H5Fclose(file);
    return rc;
}

int model_load(BilmModel *m, const char *path) { return load_tensors(m, path, 1); }

int model_load_bilm(BilmModel *m, const char *path) { return load_tensors(m, path, 0); }

int model_save(const BilmModel *m, const char *path, const Vocab *vocab) {
    const int with_softmax = vocab != NULL;
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
        if (!with_softmax && PARAM_TABLE[e->kind].presence == WITH_SOFTMAX) continue;
        hsize_t dims[H5IO_MAX_RANK];
        entry_dims(e, dims);
        rc = h5io_write_floats(file, path, e->name, e->rank, dims, m->data + e->offset);
    }
    if (rc == 0 && with_softmax) rc = h5io_write_strings(file, path, "vocab", (const char *const *)vocab->words, (size_t)vocab->size);
    if (h5io_close(file, path) < 0) rc = -1;
    if (rc < 0) {
        pending_abort(&pf);
        return -1;
    }
    return pending_commit(&pf);
}

void model_free(BilmModel *m) {
    free(m->data);
    free(m->entries);
    m->data = NULL;
    m->entries = NULL;
}
