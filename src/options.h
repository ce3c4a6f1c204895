/* options.h - the model/training options of an options.json file (docs/design.md section 1).
 *
 * The same keys as the released ELMo options.json and the bilm-tf training options.
 * The parsed JSON document is kept so that unknown keys are written back unchanged.
 *
 * Dimension glossary used throughout the project: B batch rows, T steps, C characters
 * per token, De character embedding dim, F total filters, P projection dim (lstm
 * output), H LSTM cell dim, L LSTM layers, V vocabulary, S negative samples.
 */
#ifndef ELMO_OPTIONS_H
#define ELMO_OPTIONS_H

#include <cjson/cJSON.h>

/* Sizes of the fixed arrays behind the options; validation refuses more. */
#define ELMO_MAX_FILTERS 64
#define ELMO_MAX_HIGHWAY 16
#define ELMO_MAX_LAYERS 16

typedef enum { ELMO_ACT_RELU, ELMO_ACT_TANH } ElmoActivation;

typedef struct {
    /* char_cnn */
    int char_dim;                          /* De */
    int n_filter_kinds;                    /* number of [width, count] pairs */
    int filter_width[ELMO_MAX_FILTERS];
    int filter_count[ELMO_MAX_FILTERS];
    int total_filters;                     /* F = sum of counts */
    int max_chars;                         /* C */
    int n_characters;                      /* 261 or 262 as written in the file */
    ElmoActivation activation;
    int n_highway;
    /* lstm */
    int lstm_dim;                          /* H */
    int proj_dim;                          /* P */
    int n_layers;                          /* L */
    int has_cell_clip, has_proj_clip;
    float cell_clip, proj_clip;
    int use_skip_connections;
    /* training */
    int bidirectional;
    float dropout;
    int batch_size, unroll_steps;
    long n_tokens_vocab;                   /* 0: take it from the vocabulary file */
    int n_negative_samples;
    int sample_softmax;
    float learning_rate, all_clip_norm_val;
    int n_epochs;                          /* 10 when absent (bilm-tf's train_elmo.py) */
    long n_train_tokens;                   /* 0 when absent: count the training shards */
    cJSON *json;                           /* the document as read (owned) */
} ElmoOptions;

/* Derived sizes with bilm-tf's conditions. */
static inline int options_use_char_proj(const ElmoOptions *o) { return o->total_filters != o->proj_dim; }
static inline int options_use_lstm_proj(const ElmoOptions *o) { return o->proj_dim < o->lstm_dim; }
/* Width of the recurrent state h: P with an LSTM projection, H without. */
static inline int options_state_dim(const ElmoOptions *o) {
    return options_use_lstm_proj(o) ? o->proj_dim : o->lstm_dim;
}

/* Reads and validates path. On error: -1 with a message naming the file and the key. */
int options_load(ElmoOptions *o, const char *path);
/* Parses and validates a JSON text; `name` is used in messages. */
int options_parse(ElmoOptions *o, const char *text, const char *name);
/* Sets a top-level integer key (e.g. "n_epochs") in the document and validates again. */
int options_set_integer(ElmoOptions *o, const char *key, long value, const char *name);
/* Sets a top-level boolean key and validates again. */
int options_set_bool(ElmoOptions *o, const char *key, int value, const char *name);
/* The training keys absent from the file, with the value each took (bilm-tf's
 * train_elmo.py defaults), as "batch_size 128, unroll_steps 20, ..." into buf; returns
 * how many. (n_train_tokens and n_tokens_vocab are the training command's to settle.) */
int options_assumed_training_keys(const ElmoOptions *o, char *buf, size_t size);
/* Writes every training key's value into the document, so that a saved file states them all. */
void options_make_training_keys_explicit(ElmoOptions *o);
/* Writes the document back (unknown keys unchanged) with the given n_characters
 * (0: as read), atomically (temporary file + rename). */
int options_save(const ElmoOptions *o, const char *path, int n_characters);
void options_free(ElmoOptions *o);

#endif
