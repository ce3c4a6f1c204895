/* memfit.h - options checked against what the machine can hold, before anything large is
 * allocated: a model whose options ask for more memory than the machine has is refused at
 * once, with both figures, instead of failing (or swapping) in the middle of a load. */
#ifndef ELMO_MEMFIT_H
#define ELMO_MEMFIT_H

#include "options.h"

/* Bytes a prediction run holds at least: the parameters (model_layout with softmax_rows
 * rows of softmax, 0 = none) and the predictor's buffers for one batch of `batch` rows
 * (predictor_bytes at one position a row; longer sentences add to it). */
double memfit_prediction_bytes(const ElmoOptions *o, long softmax_rows, int batch);
/* Fails with "<options_path>: the model needs 412 GB of memory, the machine has 23 GB
 * available" when memfit_prediction_bytes exceeds plan_available_memory. */
int memfit_check(const char *options_path, const ElmoOptions *o, long softmax_rows, int batch);
/* The same for an options file not loaded yet (loads, checks and frees it; load errors
 * are reported as options_load reports them). */
int memfit_check_file(const char *options_path, long softmax_rows, int batch);

#endif
