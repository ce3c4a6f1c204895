/* shardset.h - the files of `elmo shard` and `elmo prepare` replaced as one set, so that
 * a process killed at any moment (kill -9 included) leaves DIR with either the complete
 * earlier set or the complete new one, never a mix or a part.
 *
 * The set is train/ and heldout/ (and vocab.txt for prepare), two directories that no
 * single rename can replace together. So the names readers use are fixed symbolic links
 * through one switch, and a set lives in a directory of its own, a generation:
 *
 *   DIR/train     -> .shards/train         made once, never changed
 *   DIR/heldout   -> .shards/heldout
 *   DIR/vocab.txt -> .shards/vocab.txt     (once prepare has run)
 *   DIR/.shards   -> .shards.<pid>         the switch: the current generation
 *   DIR/.shards.<pid>/train/shard-00000.txt ..., heldout/heldout-00000.txt ..., vocab.txt
 *
 * The globs of `--train-prefix` and `--test-prefix` over DIR/train/ and DIR/heldout/ give
 * the same names as ever. A new set is written into a new generation (invisible until the switch), synced,
 * and becomes the set when a new link is renamed over DIR/.shards: one atomic step.
 * Afterwards the earlier generation is removed. What a kill leaves at each step, and how
 * a directory of the older layout (train/ and heldout/ real directories) is taken over
 * without a moment where it is incomplete: shardset.c and docs/design.md section 6.
 *
 * Leftovers of killed runs (a generation never switched to, a switch link not yet renamed,
 * an earlier generation not yet removed) carry the pid of the process that made them in
 * their names; shardset_begin removes those of processes that no longer exist.
 */
#ifndef ELMO_SHARDSET_H
#define ELMO_SHARDSET_H

#include "fileio.h"

typedef struct {
    char *dir;                 /* DIR */
    char *gen;                 /* DIR/.shards.<pid>[.<k>]: the new set is written here */
    char *train, *heldout;     /* gen/train, gen/heldout (both made by shardset_begin) */
    char *vocab;               /* gen/vocab.txt: prepare writes it there before the commit */
    int with_vocab;            /* vocab.txt belongs to the set (prepare) */
    int made_dir;              /* DIR did not exist: an abort removes it again (when empty) */
    FileSet files;             /* the generation's files and directories until the commit */
} ShardSet;

/* Prepares DIR (created if needed) for a new set: removes the leftovers of runs that no
 * longer exist, refuses a DIR whose current set holds shard files unless force (and
 * names like train/ that are neither the links above nor directories of the older
 * layout), and makes the empty generation with its train/ and heldout/. */
int shardset_begin(ShardSet *s, const char *dir, int with_vocab, int force);
/* Registers a file about to be written into the generation: removed if the process ends
 * before the commit (signals, exit). */
void shardset_add(ShardSet *s, const char *path);
/* Makes the generation the set: carries over the files of the current set that are not
 * shards (notes in train/, vocab.txt for shard), syncs, switches, removes the earlier
 * generation. On failure DIR holds the earlier set (and the new one is removed). Frees s. */
int shardset_commit(ShardSet *s);
/* Removes the generation, and DIR when shardset_begin made it and it is empty. Frees s. */
void shardset_abort(ShardSet *s);

#endif
