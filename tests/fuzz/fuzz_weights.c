/* fuzz_weights.c - a weight file of arbitrary bytes loaded as `elmo embed` loads one
 * (model_load into a model without softmax, src/cli.c), for a fixed tiny options set.
 * Afterwards no HDF5 object may be left open: a leaked id would keep the file open
 * inside the library, and the next input, written under the same name, would meet it. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "fuzz.h"
#include "model.h"
#include "options.h"

/* What `elmo dump-weights` writes beside the seeds' weight files (tests/fuzz/weights/),
 * the training keys left out: F = 8 != P = 4 (a char projection), P < H (an LSTM
 * projection), one highway and one LSTM layer, so every kind of tensor but the softmax. */
static const char tiny_options[] =
    "{\"char_cnn\": {\"activation\": \"relu\", \"embedding\": {\"dim\": 2}, \"filters\": [[1, 4], [2, 4]],"
    " \"max_characters_per_token\": 6, \"n_characters\": 262, \"n_highway\": 1},"
    " \"lstm\": {\"cell_clip\": 3, \"dim\": 8, \"n_layers\": 1, \"proj_clip\": 3, \"projection_dim\": 4,"
    " \"use_skip_connections\": false}}";

int fuzz_weights(const uint8_t *data, size_t size) {
    static ElmoOptions opt;
    static int parsed;
    if (!parsed) {
        CHECK(options_parse(&opt, tiny_options, "fuzz_weights") == 0, "%s", elmo_error());
        parsed = 1;
    }
    BilmModel m;
    model_init_layout(&m, &opt, 0);
    model_load(&m, fuzz_write_file("weights.hdf5", data, size));
    model_free(&m);
    const ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (open_ids != 0) {
        fprintf(stderr, "fuzz_weights: %zd HDF5 objects left open after model_load\n", open_ids);
        abort();
    }
    return 0;
}

#ifdef FUZZ_ENTRY
FUZZ_ENTRY_POINT(fuzz_weights)
#endif
