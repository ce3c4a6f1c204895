/* model.h - the parameters of the biLM: one buffer, one table (docs/design.md section 7).
 *
 * One static table in model.c describes every kind of tensor: its weight-file name, its
 * TensorFlow name, its shape in terms of the options, its initialisation, whether its
 * gradient is row-sparse, and the view that points at it. Everything else derives from
 * it: the layout for given options (model_init_layout), the views, initialisation,
 * loading and saving, and in training the gradients, the Adagrad slots and the
 * checkpoint datasets, which share the layout. The names are the released HDF5 names, so
 * the mapping between the file and memory is the identity.
 */
#ifndef ELMO_MODEL_H
#define ELMO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "vocab.h"

/* The kinds of tensor of the biLM, in file order. The table in model.c says, for each,
 * its names, shape, initialisation and how its gradient is kept. */
typedef enum {
    PARAM_CHAR_EMBED,
    PARAM_CNN_W, PARAM_CNN_B,                                   /* per filter kind */
    PARAM_HIGHWAY_W_CARRY, PARAM_HIGHWAY_B_CARRY,                /* per highway layer */
    PARAM_HIGHWAY_W_TRANSFORM, PARAM_HIGHWAY_B_TRANSFORM,
    PARAM_PROJ_W, PARAM_PROJ_B,                                 /* when F != P */
    PARAM_LSTM_W, PARAM_LSTM_B, PARAM_LSTM_W_P,                 /* per direction and layer */
    PARAM_SOFTMAX_W, PARAM_SOFTMAX_B,                           /* training only */
    PARAM_KINDS
} ParamKind;

/* One tensor of a model laid out for its options. */
typedef struct {
    ParamKind kind;
    int index[2];         /* filter kind, highway layer, or (direction, layer) of the LSTM */
    char name[96];        /* weight-file (and checkpoint) dataset, e.g. "CNN_high_0/W_carry" */
    char tf_name[112];    /* bilm-tf's TensorFlow variable, e.g. "lm/CNN_high_0/W_carry" */
    int rank;
    int shape[4];
    size_t offset, size;  /* in floats, within the parameter buffer */
    int row_sparse;       /* gradient kept as the rows a batch touched (the softmax) */
} ParamEntry;

/* Views of one layer's tensors inside a buffer laid out by the table: the parameters,
 * or (same layout) their gradients. */
typedef struct { float *W, *b; int width, count; } ConvParams;   /* W (w, De, n), b (n) */
typedef struct { float *W_carry, *b_carry, *W_transform, *b_transform; } HighwayParams; /* (F,F), (F) */
typedef struct { float *W, *B, *W_P; int in_dim; } LstmParams;  /* W (in+Hs, 4H), B (4H), W_P (H,P) */

typedef struct {
    const ElmoOptions *opt;          /* not owned; must outlive the model */
    ParamEntry *entries;             /* the table's rows for these options, in file order */
    int n_entries;
    size_t n_floats;
    float *data;                     /* all parameters, in table order */
    long softmax_vocab;              /* rows of softmax/W, 0 when the model has no softmax */
    /* views into data */
    float *char_embed;               /* (261, De) training table */
    ConvParams conv[ELMO_MAX_FILTERS];
    HighwayParams highway[ELMO_MAX_HIGHWAY];
    float *W_proj, *b_proj;          /* (F, P), (P); NULL when F == P */
    LstmParams lstm[2][ELMO_MAX_LAYERS];
    float *softmax_W, *softmax_b;    /* (V, P), (V); NULL without softmax */
} BilmModel;

/* Lays out the parameters for the options (softmax_vocab rows of softmax, 0 = none),
 * zero-filled. */
void model_init_layout(BilmModel *m, const ElmoOptions *opt, long softmax_vocab);
/* The same layout without the parameter buffer (data and every view NULL): the entries
 * and n_floats, for sizing a run before it allocates anything. model_free it. */
void model_layout(BilmModel *m, const ElmoOptions *opt, long softmax_vocab);
/* A copy of m's table whose views point into `buffer` (same layout) instead, e.g. the
 * gradients. Tensors at or beyond `n_floats` floats (the softmax, kept sparse) get NULL
 * views. The copy does not own the buffer: do not model_free it. */
void model_view(BilmModel *view, const BilmModel *m, float *buffer, size_t n_floats);
/* Offset (in floats) where the softmax tensors start; n_floats without softmax. */
size_t model_dense_floats(const BilmModel *m);
/* Fills every parameter with the initialisation of docs/design.md section 5 from seed. */
void model_init_random(BilmModel *m, uint64_t seed);
/* Loads the released layout from an HDF5 weight file with shape checks; softmax is
 * loaded too when the model has one. Notes on stderr what it assumed (char_embed rows). */
int model_load(BilmModel *m, const char *path);
/* Like model_load, without the softmax (it keeps its values): the biLM of a file whose
 * softmax, if any, belongs to another vocabulary (train/remap.h matches its rows). */
int model_load_bilm(BilmModel *m, const char *path);
/* Writes every parameter to a new HDF5 file (atomically: temporary name + rename).
 * vocab NULL leaves the softmax out (the released layout); otherwise the softmax is
 * written with its tokens, vocab's words, as the string dataset `vocab` (one per row). */
int model_save(const BilmModel *m, const char *path, const Vocab *vocab);
const ParamEntry *model_find(const BilmModel *m, const char *name);
float *model_param(BilmModel *m, const char *name);
void model_free(BilmModel *m);

#endif
