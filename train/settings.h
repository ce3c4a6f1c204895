/* settings.h - every setting of a training run, kept in its checkpoints so that
 * `elmo train --restart DIR` continues the run as it was started (each setting can be
 * overridden on the restart's command line), together with the state of its held-out
 * tracking (the best evaluation so far, for best.hdf5 and --patience). Stored as one JSON
 * text (attribute "settings" of the checkpoint's /training group). */
#ifndef ELMO_SETTINGS_H
#define ELMO_SETTINGS_H

#include <stdint.h>

typedef struct {
    /* the data */
    char train_prefix[1024];
    char vocab[1024];
    char heldout_prefix[1024];   /* "" without held-out evaluation */
    uint64_t seed;
    int shuffle;
    /* the length of training, as settled at the start or extended by a restart */
    long n_epochs, n_train_tokens;
    /* how the run works */
    int threads;
    int replicas;                /* MPI ranks sharing each batch (replicas.h); 1 alone */
    long checkpoint_every;       /* batches */
    double checkpoint_minutes;
    double log_every;            /* seconds */
    long eval_every;             /* batches, 0: none */
    double eval_minutes;         /* 0: none */
    long eval_tokens;            /* per evaluation and direction, 0: all */
    int eval_batch_size;
    int patience;                /* evaluations without improvement before stopping, 0: never */
    /* fine-tuning */
    long warmup_softmax;         /* first batches that update only the softmax */
    double lr_scale_pretrained;  /* the biLM's learning rate factor (softmax: 1) */
    /* held-out tracking */
    double best_perplexity;      /* 0: no evaluation yet */
    long best_step;
    int evals_since_best;
} RunSettings;

/* The defaults of a fresh run. */
void settings_defaults(RunSettings *s);
/* As a JSON text (allocated). */
char *settings_to_json(const RunSettings *s);
/* Parses text (from `where`, for messages); fails naming where and the key. */
int settings_from_json(RunSettings *s, const char *text, const char *where);

#endif
