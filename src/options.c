/* options.c - parsing and validation of options.json (docs/design.md section 1). */
#include "options.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fileio.h"

/* Looks up a dotted key ("lstm.dim") in the document; NULL when absent or JSON null. */
static const cJSON *lookup(const cJSON *root, const char *dotted) {
    char part[64];
    const cJSON *node = root;
    const char *p = dotted;
    while (node && *p) {
        size_t n = strcspn(p, ".");
        CHECK(n < sizeof part, "key too long: %s", dotted);
        memcpy(part, p, n);
        part[n] = '\0';
        node = cJSON_IsObject(node) ? cJSON_GetObjectItemCaseSensitive(node, part) : NULL;
        p += n + (p[n] == '.');
    }
    return (node && !cJSON_IsNull(node)) ? node : NULL;
}

/* Sets a top-level key of the document (replacing it). */
static void set_key(cJSON *root, const char *key, cJSON *item) {
    /* cJSON_HasObjectItem ignores case: "Dropout" would be found, not replaced, and the
     * new item leaked (found by make fuzz) */
    if (cJSON_GetObjectItemCaseSensitive(root, key)) cJSON_ReplaceItemInObjectCaseSensitive(root, key, item);
    else cJSON_AddItemToObject(root, key, item);
}

/* Integer key; `required` decides between an error and the default when absent. */
static int get_int(const cJSON *root, const char *name, const char *key, int required,
                   long dflt, long lo, long hi, long *out) {
    const cJSON *v = lookup(root, key);
    if (!v) {
        if (required) return elmo_fail("%s: missing required key '%s'", name, key);
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return elmo_fail("%s: key '%s' must be an integer", name, key);
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return elmo_fail("%s: key '%s' is %.0f, must be in [%ld, %ld]", name, key,
                         v->valuedouble, lo, hi);
    *out = (long)v->valuedouble;
    return 0;
}

/* An integer key that sizes a fixed array: above `supported` it is refused as such. */
static int get_count(const cJSON *root, const char *name, const char *key, int required, long dflt, long lo,
                     long supported, long *out) {
    if (get_int(root, name, key, required, dflt, lo, 1L << 30, out) < 0) return -1;
    if (*out > supported)
        return elmo_fail("%s: key '%s' is %ld, at most %ld are supported", name, key, *out, supported);
    return 0;
}

static int get_float(const cJSON *root, const char *name, const char *key, int *present,
                     double dflt, double lo, double hi, float *out) {
    const cJSON *v = lookup(root, key);
    if (present) *present = v != NULL;
    if (!v) {
        *out = (float)dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return elmo_fail("%s: key '%s' must be a number", name, key);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return elmo_fail("%s: key '%s' is %g, must be in [%g, %g]", name, key,
                         v->valuedouble, lo, hi);
    *out = (float)v->valuedouble;
    return 0;
}

/* Booleans: JSON true/false, or the numbers 0/1 that some hand-written files use. */
static int get_bool(const cJSON *root, const char *name, const char *key, int dflt, int *out) {
    const cJSON *v = lookup(root, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return 0;
    }
    if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1)) {
        *out = v->valuedouble != 0;
        return 0;
    }
    return elmo_fail("%s: key '%s' must be true or false", name, key);
}

static int parse_filters(ElmoOptions *o, const cJSON *root, const char *name) {
    const cJSON *f = lookup(root, "char_cnn.filters");
    if (!f) return elmo_fail("%s: missing required key 'char_cnn.filters'", name);
    int n = cJSON_IsArray(f) ? cJSON_GetArraySize(f) : -1;
    if (n < 1) return elmo_fail("%s: key 'char_cnn.filters' must be a list of [width, count] pairs", name);
    if (n > ELMO_MAX_FILTERS)
        return elmo_fail("%s: key 'char_cnn.filters' has %d entries, at most %d are supported", name, n,
                         ELMO_MAX_FILTERS);
    o->n_filter_kinds = n;
    o->total_filters = 0;
    for (int k = 0; k < n; k++) {
        const cJSON *pair = cJSON_GetArrayItem(f, k);
        const cJSON *w = cJSON_IsArray(pair) && cJSON_GetArraySize(pair) == 2 ? cJSON_GetArrayItem(pair, 0) : NULL;
        const cJSON *c = w ? cJSON_GetArrayItem(pair, 1) : NULL;
        if (!w || !cJSON_IsNumber(w) || !cJSON_IsNumber(c) || w->valuedouble != floor(w->valuedouble) ||
            c->valuedouble != floor(c->valuedouble) || w->valuedouble < 1 || c->valuedouble < 1 ||
            c->valuedouble > 1e6)
            return elmo_fail("%s: key 'char_cnn.filters' entry %d must be [width, count] with positive integers",
                             name, k);
        /* compared before the conversion: a width beyond int's range does not convert */
        if (w->valuedouble > o->max_chars)
            return elmo_fail("%s: key 'char_cnn.filters' entry %d: width %.0f is wider than "
                             "char_cnn.max_characters_per_token (%d)",
                             name, k, w->valuedouble, o->max_chars);
        o->filter_width[k] = (int)w->valuedouble;
        o->filter_count[k] = (int)c->valuedouble;
        o->total_filters += o->filter_count[k];
    }
    return 0;
}

static int validate(ElmoOptions *o, const char *name) {
    const cJSON *r = o->json;
    long v;
    if (!cJSON_IsObject(r)) return elmo_fail("%s: not a JSON object", name);
#define INT(key, req, dflt, lo, hi, field)                                    \
    do {                                                                      \
        if (get_int(r, name, key, req, dflt, lo, hi, &v) < 0) return -1;     \
        field = v;                                                            \
    } while (0)
    INT("char_cnn.embedding.dim", 1, 0, 1, 1 << 20, o->char_dim);
    INT("char_cnn.max_characters_per_token", 1, 0, 3, 1 << 16, o->max_chars);
    INT("char_cnn.n_characters", 1, 0, 0, 1 << 20, o->n_characters);
    if (o->n_characters != 261 && o->n_characters != 262)
        return elmo_fail("%s: key 'char_cnn.n_characters' is %d, must be 261 (training) or 262 "
                         "(prediction)", name, o->n_characters);
#define COUNT(key, req, dflt, lo, supported, field)                             \
    do {                                                                        \
        if (get_count(r, name, key, req, dflt, lo, supported, &v) < 0) return -1; \
        field = v;                                                              \
    } while (0)
    COUNT("char_cnn.n_highway", 0, 0, 0, ELMO_MAX_HIGHWAY, o->n_highway);
    INT("lstm.dim", 1, 0, 1, 1 << 20, o->lstm_dim);
    INT("lstm.projection_dim", 1, 0, 1, 1 << 20, o->proj_dim);
    COUNT("lstm.n_layers", 1, 0, 1, ELMO_MAX_LAYERS, o->n_layers);
#undef COUNT
    INT("batch_size", 0, 128, 1, 1 << 20, o->batch_size);
    INT("unroll_steps", 0, 20, 1, 1 << 20, o->unroll_steps);
    INT("n_tokens_vocab", 0, 0, 0, 1L << 40, o->n_tokens_vocab);
    INT("n_negative_samples_batch", 0, 8192, 1, 1L << 30, o->n_negative_samples);
    INT("n_epochs", 0, 10, 1, 1L << 30, o->n_epochs);
    INT("n_train_tokens", 0, 0, 1, 1L << 50, o->n_train_tokens); /* 0: count the shards */
#undef INT
    if (parse_filters(o, r, name) < 0) return -1;

    const cJSON *act = lookup(r, "char_cnn.activation");
    if (!act) return elmo_fail("%s: missing required key 'char_cnn.activation'", name);
    if (cJSON_IsString(act) && strcmp(act->valuestring, "relu") == 0)
        o->activation = ELMO_ACT_RELU;
    else if (cJSON_IsString(act) && strcmp(act->valuestring, "tanh") == 0)
        o->activation = ELMO_ACT_TANH;
    else
        return elmo_fail("%s: key 'char_cnn.activation' must be \"relu\" or \"tanh\"", name);

    if (o->proj_dim > o->lstm_dim)
        return elmo_fail("%s: key 'lstm.projection_dim' (%d) must not exceed lstm.dim (%d)", name,
                         o->proj_dim, o->lstm_dim);
    if (get_float(r, name, "lstm.cell_clip", &o->has_cell_clip, 0, 0, 3.4e38, &o->cell_clip) < 0 ||
        get_float(r, name, "lstm.proj_clip", &o->has_proj_clip, 0, 0, 3.4e38, &o->proj_clip) < 0 ||
        get_float(r, name, "dropout", NULL, 0.1, 0, 0.999999, &o->dropout) < 0 ||
        get_float(r, name, "learning_rate", NULL, 0.2, 0, 1e6, &o->learning_rate) < 0 ||
        get_float(r, name, "all_clip_norm_val", NULL, 10.0, 1e-30, 3.4e38, &o->all_clip_norm_val) < 0)
        return -1;
    if (get_bool(r, name, "lstm.use_skip_connections", 0, &o->use_skip_connections) < 0 ||
        get_bool(r, name, "bidirectional", 1, &o->bidirectional) < 0 ||
        get_bool(r, name, "sample_softmax", 1, &o->sample_softmax) < 0)
        return -1;
    return 0;
}

int options_parse(ElmoOptions *o, const char *text, const char *name) {
    memset(o, 0, sizeof *o);
    o->json = cJSON_Parse(text);
    if (!o->json) {
        const char *at = cJSON_GetErrorPtr();
        size_t offset = at && at >= text ? (size_t)(at - text) : 0;
        return elmo_fail("%s: invalid JSON near byte %zu", name, offset);
    }
    if (validate(o, name) < 0) {
        options_free(o);
        return -1;
    }
    return 0;
}

int options_set_integer(ElmoOptions *o, const char *key, long value, const char *name) {
    set_key(o->json, key, cJSON_CreateNumber((double)value));
    return validate(o, name);
}

/* The training keys with the values bilm-tf's train_elmo.py gives them, in the order they
 * are listed and written. */
typedef enum { KEY_BOOL, KEY_INT, KEY_FLOAT } KeyType;
static const struct {
    const char *key;
    KeyType type;
    size_t field;
} TRAINING_KEYS[] = {
    {"bidirectional", KEY_BOOL, offsetof(ElmoOptions, bidirectional)},
    {"dropout", KEY_FLOAT, offsetof(ElmoOptions, dropout)},
    {"batch_size", KEY_INT, offsetof(ElmoOptions, batch_size)},
    {"unroll_steps", KEY_INT, offsetof(ElmoOptions, unroll_steps)},
    {"n_negative_samples_batch", KEY_INT, offsetof(ElmoOptions, n_negative_samples)},
    {"sample_softmax", KEY_BOOL, offsetof(ElmoOptions, sample_softmax)},
    {"learning_rate", KEY_FLOAT, offsetof(ElmoOptions, learning_rate)},
    {"all_clip_norm_val", KEY_FLOAT, offsetof(ElmoOptions, all_clip_norm_val)},
    {"n_epochs", KEY_INT, offsetof(ElmoOptions, n_epochs)},
};

static double key_value(const ElmoOptions *o, size_t k) {
    const char *field = (const char *)o + TRAINING_KEYS[k].field;
    switch (TRAINING_KEYS[k].type) {
    case KEY_FLOAT: return *(const float *)field;
    default: return *(const int *)field;
    }
}

int options_assumed_training_keys(const ElmoOptions *o, char *buf, size_t size) {
    int n = 0;
    size_t used = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < sizeof TRAINING_KEYS / sizeof *TRAINING_KEYS; k++) {
        if (lookup(o->json, TRAINING_KEYS[k].key)) continue;
        const double v = key_value(o, k);
        char value[32];
        if (TRAINING_KEYS[k].type == KEY_BOOL) snprintf(value, sizeof value, "%s", v != 0 ? "true" : "false");
        else snprintf(value, sizeof value, "%g", v);
        const int w = snprintf(buf + used, size - used, "%s%s %s", n ? ", " : "", TRAINING_KEYS[k].key, value);
        if (w > 0 && (size_t)w < size - used) used += (size_t)w;
        n++;
    }
    return n;
}

void options_make_training_keys_explicit(ElmoOptions *o) {
    for (size_t k = 0; k < sizeof TRAINING_KEYS / sizeof *TRAINING_KEYS; k++) {
        const double v = key_value(o, k);
        set_key(o->json, TRAINING_KEYS[k].key,
                TRAINING_KEYS[k].type == KEY_BOOL ? cJSON_CreateBool(v != 0) : cJSON_CreateNumber(v));
    }
}

int options_set_bool(ElmoOptions *o, const char *key, int value, const char *name) {
    set_key(o->json, key, cJSON_CreateBool(value));
    return validate(o, name);
}

int options_load(ElmoOptions *o, const char *path) {
    char *text = NULL;
    if (file_read_all(path, 1 << 24, &text, NULL) < 0) return -1;
    int rc = options_parse(o, text, path);
    free(text);
    return rc;
}

int options_save(const ElmoOptions *o, const char *path, int n_characters) {
    cJSON *doc = cJSON_Duplicate(o->json, 1);
    if (n_characters) {
        cJSON *cnn = cJSON_GetObjectItemCaseSensitive(doc, "char_cnn");
        cJSON_ReplaceItemInObjectCaseSensitive(cnn, "n_characters", cJSON_CreateNumber(n_characters));
    }
    char *text = cJSON_Print(doc);
    cJSON_Delete(doc);
    CHECK(text, "cJSON_Print failed");
    size_t n = strlen(text);
    char *with_newline = xmalloc(n + 2);
    memcpy(with_newline, text, n);
    memcpy(with_newline + n, "\n", 2);
    free(text);
    int rc = file_write_atomic(path, with_newline, n + 1);
    free(with_newline);
    return rc;
}

void options_free(ElmoOptions *o) {
    if (o->json) cJSON_Delete(o->json);
    o->json = NULL;
}
