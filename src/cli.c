/* cli.c - see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>

#include "common.h"

long cli_int(const char *flag, const char *value, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0' || v < lo || v > hi)
        elmo_die("%s: expected an integer in [%ld, %ld], got '%s'", flag, lo, hi, value);
    return v;
}

void cli_require(const char *flag, const char *value, const char *command) {
    if (!value) elmo_die("%s: missing %s (see 'elmo %s --help')", command, flag, command);
}

void cli_load_prediction_model(PredictionModel *pm, const char *options_path, const char *weights_path,
                               const char *vocab_path) {
    if (options_load(&pm->opt, options_path) < 0) elmo_die_last();
    if (pm->opt.n_characters == 261)
        elmo_note("%s: n_characters is 261 (a training file); predicting with 262 (padding row 0 + the "
                  "261 rows of char_embed), as every released model does",
                  options_path);
    model_init_layout(&pm->model, &pm->opt, 0);
    if (model_load(&pm->model, weights_path) < 0) elmo_die_last();
    if (vocab_path && vocab_load(&pm->vocab, vocab_path, VOCAB_NEED_BOS_EOS) < 0) elmo_die_last();
}

void cli_free_prediction_model(PredictionModel *pm) {
    vocab_free(&pm->vocab);
    model_free(&pm->model);
    options_free(&pm->opt);
}
