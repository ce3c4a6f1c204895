/* memfit.c - options checked against the machine's memory (see memfit.h). */
#include "memfit.h"

#include <string.h>

#include "common.h"
#include "model.h"
#include "plan.h"
#include "predictor.h"

double memfit_prediction_bytes(const ElmoOptions *o, long softmax_rows, int batch) {
    BilmModel layout;
    model_layout(&layout, o, softmax_rows);
    const double params = (double)layout.n_floats * sizeof(float);
    /* predictor_bytes only measures the carve: a predictor that allocated nothing */
    Predictor sized;
    memset(&sized, 0, sizeof sized);
    sized.m = &layout;
    sized.dims = lstm_dims(o);
    sized.max_batch = batch;
    const double buffers = predictor_bytes(&sized, batch);
    model_free(&layout);
    return params + buffers;
}

int memfit_check(const char *options_path, const ElmoOptions *o, long softmax_rows, int batch) {
    const double need = memfit_prediction_bytes(o, softmax_rows, batch), have = plan_available_memory();
    if (have > 0 && need > have) {
        char a[32], b[32];
        return elmo_fail("%s: the model needs %s of memory, the machine has %s available", options_path,
                         plan_format_bytes(a, sizeof a, need), plan_format_bytes(b, sizeof b, have));
    }
    return 0;
}

int memfit_check_file(const char *options_path, long softmax_rows, int batch) {
    ElmoOptions o;
    if (options_load(&o, options_path) < 0) return -1;
    const int rc = memfit_check(options_path, &o, softmax_rows, batch);
    options_free(&o);
    return rc;
}
