/* checkpoint.h - training checkpoints (docs/design.md section 7): an HDF5 file in the released
 * weight layout, which AllenNLP and bilm-tf load as it is, plus what an exact resume
 * needs:
 *   softmax/W, softmax/b                 the output layer
 *   training/adagrad/<name>              Adagrad accumulator of every parameter <name>
 *   training/step, training/rng          batches done, the trainer's generator
 *   training/lstm_c_<d>_<l>, _h_<d>_<l>  the LSTM states carried to the next batch
 *   training/reader_<d>/...              the data reader of direction d
 *   attributes of /training: train_prefix, vocab, seed, shuffle (for --restart)
 * Written under a temporary name, fsync'ed and renamed, so a crash never leaves a
 * truncated file under a checkpoint name.
 */
#ifndef ELMO_CHECKPOINT_H
#define ELMO_CHECKPOINT_H

#include <stdint.h>

#include "dataset.h"
#include "trainer.h"

typedef struct {
    char train_prefix[1024];
    char vocab[1024];
    uint64_t seed;
    int shuffle;
} TrainingArgs;

int checkpoint_save(const char *path, const Trainer *t, LmReader *const *readers, const TrainingArgs *args);
/* Restores parameters, accumulators, step, generator, carried states and readers. */
int checkpoint_load(const char *path, Trainer *t, LmReader *const *readers);
/* Reads the /training attributes of a checkpoint. */
int checkpoint_read_args(const char *path, TrainingArgs *args);
/* Rows of softmax/W in a weight file, 0 when it has none. */
int checkpoint_softmax_rows(const char *path, long *rows);
/* The checkpoint with the highest step in dir ("model.ckpt-<step>.hdf5"): path into out;
 * fails naming dir when there is none. */
int checkpoint_latest(const char *dir, char *out, size_t size, long *step);
/* Removes all but the newest `keep` checkpoints of dir. */
void checkpoint_prune(const char *dir, int keep);

#endif
