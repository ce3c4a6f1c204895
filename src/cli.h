/* cli.h - what the subcommands share: argument helpers and model loading. */
#ifndef ELMO_CLI_H
#define ELMO_CLI_H

#include "model.h"
#include "options.h"
#include "vocab.h"

/* Parses an integer option value in [lo, hi] or exits with a message naming the flag. */
long cli_int(const char *flag, const char *value, long lo, long hi);
/* Exits with "missing --flag" when value is NULL. */
void cli_require(const char *flag, const char *value, const char *command);

/* Options, weights and vocabulary of a released model, for prediction; exits with a
 * one-line message on any error. */
typedef struct {
    ElmoOptions opt;
    BilmModel model;
    Vocab vocab;
} PredictionModel;

void cli_load_prediction_model(PredictionModel *pm, const char *options_path, const char *weights_path,
                               const char *vocab_path);
void cli_free_prediction_model(PredictionModel *pm);

#endif
