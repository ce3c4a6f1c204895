/* plan.h - the plan of a training run, before anything is allocated: how many tokens the
 * training shards hold (n_train_tokens), the memory training will take at its peak, the
 * size of one checkpoint, and what the machine has (memory, disk).
 *
 * The memory figure is computed by the code that allocates: the model's layout
 * (model_layout), the trainer's carve run on measuring arenas and the softmax's sizes at
 * its first step (trainer_need); only the readers' shards, the vocabulary and the fixed
 * process baseline are estimates (docs/design.md section 12).
 */
#ifndef ELMO_PLAN_H
#define ELMO_PLAN_H

#include <stddef.h>

#include "options.h"

/* What a training process holds besides the buffers counted: the program and its
 * libraries (10.6 MiB resident before anything is allocated), and per thread what
 * OpenBLAS's buffer, the thread's stack and malloc arena and HDF5 (writing a checkpoint)
 * add: 14.7 MiB more for `elmo train` on configs/tiny.json with 2 threads than with 1
 * (Xeon, 2 cores; docs/design.md section 12). */
#define PLAN_BASELINE_BYTES 11e6
#define PLAN_THREAD_BYTES 15e6

/* Tokens of the training shards matching pattern as n_train_tokens counts them: every
 * white-space separated token of every line (Python's str.split), no sentence markers;
 * plain or .gz files (zlib). A streaming pass at reading speed, progress every 3 s on
 * stderr unless quiet. The count is cached in cache_dir/train-tokens.json keyed by the
 * files' names, sizes and modification times (all matching files, in sorted order); a
 * cached count for the same key is returned without reading (*cached = 1). cache_dir NULL:
 * no cache; a cache that cannot be written is a note on stderr (unless quiet), not an
 * error. Errors (no match, unreadable, corrupt gz, invalid UTF-8 or NUL bytes) name the
 * file (and the line where known). */
int plan_count_tokens(const char *pattern, const char *cache_dir, int quiet, long *tokens, int *cached);

typedef struct {
    double params;       /* the parameter buffer, softmax included */
    double optimizer;    /* Adagrad accumulators (the same layout) */
    double gradients;    /* the dense gradient (all but the softmax) */
    double activations;  /* the trainer's per-batch buffers (its arena but the two above) */
    double softmax;      /* the softmax's own buffers: scratch (logits, gathered rows) and the
                          * row-sparse gradients of softmax/W, softmax/b (rows x (P + 1), and a
                          * V-entry index each) at the size the first step grows them to */
    double data;         /* both readers' shards, the two batches, the vocabulary */
    double baseline;     /* PLAN_BASELINE_BYTES + PLAN_THREAD_BYTES per thread */
    double total;        /* the sum of the parts above */
    double checkpoint;   /* bytes of one checkpoint file (weights, softmax, Adagrad, states,
                          * reader state estimate) */
    /* what the data estimate rests on */
    double shard_bytes;  /* the largest shard, uncompressed */
    double line_bytes;   /* mean bytes per line of its first 4 MiB */
    long distinct_tokens; /* most distinct tokens in a step's positions, from that sample */
    double untouched;    /* of the trainer's arena: rows beyond distinct_tokens, allocated but
                          * never touched, so neither in activations nor in total */
} PlanMemory;

/* Peak memory of training with these options (n_tokens_vocab = V), batch B x T, both
 * readers' shards (estimated from the largest shard matching pattern: its size, or for
 * .gz its uncompressed size from the gzip trailer, times the reader's per-byte overhead),
 * and the size of one checkpoint. Uses the same carve/layout code as the real run, with
 * the threads of now (omp_get_max_threads: the char-CNN keeps workspaces per thread).
 * pattern NULL: no shards counted. Fails naming the pattern when nothing matches, or the
 * shard that cannot be read. The trainer's arena is counted whole; rows of its (N, F)
 * buffers beyond a batch's distinct tokens are never touched, so the resident size of a
 * run on real text stays somewhat below it. */
int plan_memory(const ElmoOptions *o, long V, int B, int T, const char *pattern, PlanMemory *out);

/* Memory the machine has available now: MemAvailable of /proc/meminfo (else the physical
 * pages), or less when the cgroup (v2) this process runs in allows less. */
double plan_available_memory(void);
/* Free bytes for a non-root user in the file system of dir (statvfs). -1 on error. */
double plan_free_disk(const char *dir);
/* "1.2 GB", "830 MB", "12 kB", "512 B" (decimal units; two significant digits below 10). */
const char *plan_format_bytes(char *buf, size_t size, double bytes);

#endif
