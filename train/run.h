/* run.h - the loop of a training run, once `elmo train` has set it up: steps, progress
 * lines and metrics, held-out evaluations and best.hdf5, checkpoints (by batches and by
 * minutes), and every way a run ends: done, --max-batches, --patience, a signal, or a
 * non-finite loss (docs/design.md section 6). */
#ifndef ELMO_RUN_H
#define ELMO_RUN_H

#include "dataset.h"
#include "metrics.h"
#include "replicas.h"
#include "settings.h"
#include "trainer.h"

/* The newest checkpoints a run keeps (besides best.hdf5). */
#define RUN_KEPT_CHECKPOINTS 2
/* Exit code of a run stopped because its loss or gradients stopped being finite. */
#define ELMO_EXIT_DIVERGED 3

typedef struct {
    const char *save_dir;
    RunSettings *settings;       /* its best_* fields are updated as the run goes */
    const ElmoOptions *opt;
    const Vocab *vocab;
    Trainer *trainer;            /* at the step to continue from */
    LmReader *readers[2];
    long n_batches, batches_per_epoch;
    long max_batches;            /* in this run, 0: no limit */
    MetricsLog *metrics;         /* rank 0's; NULL on the other replicas */
    ReplicaStates gathered;      /* rank 0's buffers for the replicas' states (train_run's) */
} TrainRun;

/* Runs to the end; returns the process's exit code (0 done or stopped by --max-batches
 * or --patience, 128 + signal when stopped by SIGINT/SIGTERM after a checkpoint,
 * ELMO_EXIT_DIVERGED); dies (exit 2) on an error that names its file. */
int train_run(TrainRun *r);

#endif
