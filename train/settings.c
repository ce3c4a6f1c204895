/* settings.c - see settings.h. */
#include "settings.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void settings_defaults(RunSettings *s) {
    memset(s, 0, sizeof *s);
    s->seed = 1;
    s->shuffle = 1;
    s->checkpoint_every = 1250;
    s->checkpoint_minutes = 30;
    s->log_every = 10;
    s->eval_batch_size = 256;
    s->lr_scale_pretrained = 1.0;
    s->replicas = 1;
}

/* The fields, by kind, with their JSON keys. */
typedef enum { F_TEXT, F_LONG, F_INT, F_DOUBLE, F_U64 } FieldKind;
static const struct {
    const char *key;
    FieldKind kind;
    size_t offset;
    int optional; /* absent from the checkpoints of earlier versions: the default then */
} FIELDS[] = {
    {"train_prefix", F_TEXT, offsetof(RunSettings, train_prefix), 0},
    {"vocab", F_TEXT, offsetof(RunSettings, vocab), 0},
    {"heldout_prefix", F_TEXT, offsetof(RunSettings, heldout_prefix), 0},
    {"seed", F_U64, offsetof(RunSettings, seed), 0},
    {"shuffle", F_INT, offsetof(RunSettings, shuffle), 0},
    {"n_epochs", F_LONG, offsetof(RunSettings, n_epochs), 0},
    {"n_train_tokens", F_LONG, offsetof(RunSettings, n_train_tokens), 0},
    {"threads", F_INT, offsetof(RunSettings, threads), 0},
    {"replicas", F_INT, offsetof(RunSettings, replicas), 1},
    {"checkpoint_every", F_LONG, offsetof(RunSettings, checkpoint_every), 0},
    {"checkpoint_minutes", F_DOUBLE, offsetof(RunSettings, checkpoint_minutes), 0},
    {"log_every", F_DOUBLE, offsetof(RunSettings, log_every), 0},
    {"eval_every", F_LONG, offsetof(RunSettings, eval_every), 0},
    {"eval_minutes", F_DOUBLE, offsetof(RunSettings, eval_minutes), 0},
    {"eval_tokens", F_LONG, offsetof(RunSettings, eval_tokens), 0},
    {"eval_batch_size", F_INT, offsetof(RunSettings, eval_batch_size), 0},
    {"patience", F_INT, offsetof(RunSettings, patience), 0},
    {"warmup_softmax", F_LONG, offsetof(RunSettings, warmup_softmax), 0},
    {"lr_scale_pretrained", F_DOUBLE, offsetof(RunSettings, lr_scale_pretrained), 0},
    {"best_perplexity", F_DOUBLE, offsetof(RunSettings, best_perplexity), 0},
    {"best_step", F_LONG, offsetof(RunSettings, best_step), 0},
    {"evals_since_best", F_INT, offsetof(RunSettings, evals_since_best), 0},
};
#define N_FIELDS (sizeof FIELDS / sizeof *FIELDS)

char *settings_to_json(const RunSettings *s) {
    cJSON *root = cJSON_CreateObject();
    char number[32];
    for (size_t i = 0; i < N_FIELDS; i++) {
        const char *at = (const char *)s + FIELDS[i].offset;
        switch (FIELDS[i].kind) {
        case F_TEXT: cJSON_AddStringToObject(root, FIELDS[i].key, at); break;
        case F_LONG: cJSON_AddNumberToObject(root, FIELDS[i].key, (double)*(const long *)at); break;
        case F_INT: cJSON_AddNumberToObject(root, FIELDS[i].key, *(const int *)at); break;
        case F_DOUBLE: cJSON_AddNumberToObject(root, FIELDS[i].key, *(const double *)at); break;
        case F_U64: /* as text: a double cannot hold every 64-bit seed */
            snprintf(number, sizeof number, "%llu", (unsigned long long)*(const uint64_t *)at);
            cJSON_AddStringToObject(root, FIELDS[i].key, number);
            break;
        }
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    CHECK(text, "cJSON_PrintUnformatted failed");
    return text;
}

int settings_from_json(RunSettings *s, const char *text, const char *where) {
    settings_defaults(s);
    cJSON *root = cJSON_Parse(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return elmo_fail("%s: the run's settings are not a JSON object", where);
    }
    int rc = 0;
    for (size_t i = 0; i < N_FIELDS && rc == 0; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, FIELDS[i].key);
        char *at = (char *)s + FIELDS[i].offset;
        const int is_text = FIELDS[i].kind == F_TEXT || FIELDS[i].kind == F_U64;
        if (!v && FIELDS[i].optional) continue;
        if (!v || (is_text ? !cJSON_IsString(v) : !cJSON_IsNumber(v))) {
            rc = elmo_fail("%s: the run's settings lack '%s' (or it has the wrong type)", where, FIELDS[i].key);
            break;
        }
        switch (FIELDS[i].kind) {
        case F_TEXT:
            if (strlen(v->valuestring) >= sizeof s->train_prefix)
                rc = elmo_fail("%s: setting '%s' is too long", where, FIELDS[i].key);
            else snprintf(at, sizeof s->train_prefix, "%s", v->valuestring);
            break;
        case F_LONG:
        case F_INT: {
            /* beyond the type's range the conversion is undefined (a damaged checkpoint) */
            const double limit = FIELDS[i].kind == F_INT ? (double)INT_MAX : 9e18;
            if (!(fabs(v->valuedouble) <= limit))
                rc = elmo_fail("%s: setting '%s' is %g, out of range", where, FIELDS[i].key, v->valuedouble);
            else if (FIELDS[i].kind == F_INT) *(int *)at = (int)v->valuedouble;
            else *(long *)at = (long)v->valuedouble;
            break;
        }
        case F_DOUBLE: *(double *)at = v->valuedouble; break;
        case F_U64: *(uint64_t *)at = strtoull(v->valuestring, NULL, 10); break;
        }
    }
    cJSON_Delete(root);
    return rc;
}
