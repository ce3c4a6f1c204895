/* checkpoint.h - training checkpoints (docs/design.md section 7): an HDF5 file in the released
 * weight layout, which AllenNLP and bilm-tf load as it is, plus what an exact resume
 * needs:
 *   softmax/W, softmax/b                 the output layer
 *   vocab                                its rows' tokens (strings), in row order
 *   training/adagrad/<name>              Adagrad accumulator of every parameter <name>
 *   training/step, training/rng          batches done, the trainer's generator
 *   training/lstm_c_<d>_<l>, _h_<d>_<l>  the LSTM states carried to the next batch
 *   training/reader_<d>/...              the data reader of direction d
 *   attribute settings of /training: the run's settings as JSON (settings.h, for --restart)
 * Written under a temporary name, fsync'ed and renamed, so a crash never leaves a
 * truncated file under a checkpoint name.
 */
#ifndef ELMO_CHECKPOINT_H
#define ELMO_CHECKPOINT_H

#include <stdint.h>

#include "dataset.h"
#include "replicas.h"
#include "settings.h"
#include "trainer.h"

/* The held-out figures of the best evaluation, written as attributes of best.hdf5. */
typedef struct {
    double perplexity, perplexity_forward, perplexity_backward;
} CheckpointBest;

/* best: NULL for a regular checkpoint; for DIR/best.hdf5 the figures that made it best
 * (root attributes best_step, heldout_perplexity, _forward, _backward). states: every
 * replica's LSTM and generator states as gathered by rank 0 (replicas.h), NULL for the
 * trainer's own (one replica). */
int checkpoint_save(const char *path, const Trainer *t, const ReplicaStates *states, const Vocab *vocab,
                    LmReader *const *readers, const RunSettings *settings, const CheckpointBest *best);
/* Restores parameters, accumulators, step, generator, carried states and readers (of
 * this rank's replica: its generator and its rows of the global batch), and
 * validates them: float datasets of finite values, accumulators > 0, 0 <= step <=
 * max_step (< 0: no bound) and equal to the step of the file name, generator states the
 * generator can have, reader counters in range. An error names the file and what is wrong. */
int checkpoint_load(const char *path, Trainer *t, LmReader *const *readers, long max_step);
/* The Adagrad accumulators of every tensor but the softmax (training/adagrad/<name>): the
 * optimiser state kept when fine-tuning from a checkpoint (train --keep-optimizer). */
int checkpoint_load_accumulators(const char *path, Trainer *t);
/* Reads the run's settings stored in a checkpoint. */
int checkpoint_read_settings(const char *path, RunSettings *settings);
/* Rows of softmax/W in a weight file, 0 when it has none. */
int checkpoint_softmax_rows(const char *path, long *rows);
/* The checkpoint with the highest step in dir ("model.ckpt-<step>.hdf5"): path into out;
 * fails naming dir when there is none. */
int checkpoint_latest(const char *dir, char *out, size_t size, long *step);
/* The steps of dir's checkpoints, newest first: *n of them into *steps (allocated; the
 * caller frees); fails naming dir when there is none. */
int checkpoint_list(const char *dir, long **steps, int *n);
/* "DIR/model.ckpt-<step>.hdf5" into out. */
void checkpoint_path(char *out, size_t size, const char *dir, long step);
/* Removes all but the newest `keep` checkpoints of dir. */
void checkpoint_prune(const char *dir, int keep);

#endif
