/* fuzz_checkpoint.c - a training checkpoint of arbitrary bytes read as `elmo train
 * --restart` reads one (train/cmd_train.c): its settings (checkpoint_read_settings), then
 * parameters, accumulators, step, generator, carried states and both readers
 * (checkpoint_load) into a trainer built for fixed tiny options; once loaded, one batch
 * per direction is read, as the resumed run's first step does. The settings and the state
 * are each read whatever the other gave, so damage to one does not hide the other from
 * the fuzzer. Afterwards no HDF5 object may be left open (see fuzz_weights.c). */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "dataset.h"
#include "fileio.h"
#include "fuzz.h"
#include "model.h"
#include "options.h"
#include "settings.h"
#include "trainer.h"
#include "vocab.h"

/* The seeds (tests/fuzz/checkpoint/) come from `elmo train` with these options (the
 * training keys at their explicit values), this vocabulary and this shard, 2 x 3 tokens a
 * batch. */
static const char tiny_options[] =
    "{\"char_cnn\": {\"activation\": \"relu\", \"embedding\": {\"dim\": 2}, \"filters\": [[1, 4], [2, 4]],"
    " \"max_characters_per_token\": 6, \"n_characters\": 261, \"n_highway\": 1}, \"dropout\": 0.1,"
    " \"lstm\": {\"cell_clip\": 3, \"dim\": 8, \"n_layers\": 1, \"proj_clip\": 3, \"projection_dim\": 4,"
    " \"use_skip_connections\": false}, \"n_epochs\": 1, \"n_train_tokens\": 60, \"batch_size\": 2,"
    " \"unroll_steps\": 3, \"n_negative_samples_batch\": 4, \"bidirectional\": true, \"sample_softmax\": true,"
    " \"learning_rate\": 0.2, \"all_clip_norm_val\": 10.0}";
static const char *const words[] = {"<S>", "</S>", "<UNK>", "the", "cat", "a", "dog", "sat"};
static const char shard_text[] = "the cat sat\na dog sat\nthe dog\ncat sat a mat\nthe cat\n";
/* A reader state names its shards by path, so the shard has one path for every process
 * (not the per-process fuzz_dir()): the seeds' states point at it. */
#define SHARD_DIR "/tmp/elmo-fuzz-checkpoint"
#define SHARD_PATH SHARD_DIR "/shard-0.txt"

/* Writes the shard under a temporary name and renames it, so that a process running at
 * the same time never reads a partial one (all write the same bytes). */
static void write_shard(void) {
    CHECK(file_make_dirs(SHARD_DIR) == 0, "cannot create %s", SHARD_DIR);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", SHARD_PATH, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    CHECK(f && fwrite(shard_text, 1, strlen(shard_text), f) == strlen(shard_text), "cannot write %s", tmp);
    CHECK(fclose(f) == 0 && rename(tmp, SHARD_PATH) == 0, "cannot write %s", SHARD_PATH);
}

int fuzz_checkpoint(const uint8_t *data, size_t size) {
    static ElmoOptions opt;
    static Vocab vocab;
    static int ready;
    if (!ready) {
        CHECK(options_parse(&opt, tiny_options, "fuzz_checkpoint") == 0, "%s", elmo_error());
        vocab_from_words(&vocab, words, (int)(sizeof words / sizeof *words));
        write_shard();
        ready = 1;
    }
    /* the name of no step: checkpoint_load's check of the step against the name is left out */
    const char *path = fuzz_write_file("checkpoint.hdf5", data, size);
    RunSettings s;
    checkpoint_read_settings(path, &s);

    BilmModel model;
    model_init_layout(&model, &opt, vocab.size);
    LmReader *readers[2] = {NULL, NULL};
    int opened = 1;
    for (int d = 0; d < 2; d++)
        opened = opened && lm_reader_open(&readers[d], SHARD_PATH, &vocab, opt.max_chars, d, LM_TRAIN, 1,
                                          1000020u + (uint64_t)d) == 0;
    CHECK(opened, "%s", elmo_error());
    Trainer t;
    trainer_init(&t, &model, opt.batch_size, opt.unroll_steps, TRAINER_TRAIN, 7922u);
    if (checkpoint_load(path, &t, readers, 100) == 0) {
        LmBatch b;
        lm_batch_init(&b, opt.batch_size, opt.unroll_steps, opt.max_chars);
        for (int d = 0; d < 2; d++) lm_reader_next(readers[d], &b);
        lm_batch_free(&b);
    }
    trainer_free(&t);
    for (int d = 0; d < 2; d++) lm_reader_close(readers[d]);
    model_free(&model);
    const ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (open_ids != 0) {
        fprintf(stderr, "fuzz_checkpoint: %zd HDF5 objects left open after the checkpoint was read\n", open_ids);
        abort();
    }
    return 0;
}

#ifdef FUZZ_ENTRY
FUZZ_ENTRY_POINT(fuzz_checkpoint)
#endif
