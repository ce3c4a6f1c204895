/* shard.h - a raw corpus as training shards and a held-out part, in bounded memory.
 *
 * Every line of the corpus (corpus.h) is read once. White space is normalised (tokens
 * joined by single spaces) and lines without a token are dropped. Each sentence goes to
 * the held-out part (with probability heldout_fraction, or as one of exactly
 * heldout_lines chosen uniformly by reservoir sampling) or to a training shard; shards
 * are dealt in blocks of n_shards sentences, one to each shard in a fresh random order
 * per block, so they are balanced to within one sentence. Each shard is shuffled.
 *
 * Output: DIR/train/shard-00000.txt ... (N files) and DIR/heldout/heldout-00000.txt ...
 * (".txt.gz" with gzip): held-out sentences in corpus order, split into files no larger
 * than an average training shard, so evaluation memory stays bounded like training's.
 *
 * Memory: one shard per thread (plus the heldout_lines reservoir, and two blocks of
 * input). The first pass appends each sentence to its shard's spill file in DIR; the
 * second loads a spill file per thread at a time, shuffles it and writes the shard.
 * Every thread works (corpus.h); the output does not depend on how many. Spill files are unlinked as
 * soon as they are created, so nothing of them survives the process however it ends.
 * The files go into a new generation beside the current set (shardset.h), which the
 * caller then switches to in one step (shardset_commit) or removes (shardset_abort): a
 * run that fails, is interrupted or is killed leaves the earlier set as it was.
 *
 * The same corpus, seed and options give byte-identical files (gzip without a time
 * stamp or name); another seed gives another assignment and order.
 */
#ifndef ELMO_SHARD_H
#define ELMO_SHARD_H

#include <stdint.h>

#include "shardset.h"
#include "wordcount.h"

typedef struct {
    const char *input;         /* glob of the corpus files */
    const char *output_dir;
    int n_shards;
    double heldout_fraction;   /* in [0, 1); used when heldout_lines is 0 */
    long heldout_lines;        /* > 0: exactly this many held-out sentences */
    uint64_t seed;
    int gzip;
    int force;                 /* replace the shard set DIR already holds */
    int quiet;                 /* no progress lines on stderr */
} ShardOptions;

typedef struct {
    uint64_t lines;            /* read */
    uint64_t dropped;          /* without a token */
    uint64_t normalised;       /* kept, with their white space changed */
    uint64_t train_sentences, heldout_sentences;
    uint64_t train_tokens;     /* tokens of the training sentences: n_train_tokens */
    int heldout_files;
    uint64_t largest_shard_bytes;
} ShardStats;

/* Shards the corpus into a new generation of DIR's shard set, left in *set for the caller
 * to commit (after adding vocab.txt: prepare) or abort. When train_count is not NULL,
 * every training sentence's tokens are also counted into it (one pass for shards and
 * vocabulary: `elmo prepare`; the set then includes vocab.txt). Fails (one line naming
 * the file, line or directory at fault) on bad input, when DIR already holds shard files
 * and force is 0, or when the corpus has no sentence for training; DIR is then as it was. */
int shard_corpus(const ShardOptions *o, WordCount *train_count, ShardStats *stats, ShardSet *set);

#endif
