/* dataset.h - the training/evaluation data of docs/design.md section 6, one reader per direction.
 *
 * Files matching a glob ("shards"), one sentence a line, tokens separated by white space,
 * plain or gzip-compressed (read transparently). A sentence becomes `<S> w1 .. wn </S>`
 * (forward) or `</S> wn .. w1 <S>` (backward). B independent streams are packed into
 * windows of T steps exactly as bilm-tf's _get_batch: row i is filled completely before
 * row i+1; each window of a stream takes its next T tokens as inputs and the T tokens
 * after them as targets; a stream that runs out takes the next sentence (a sentence's
 * final token is a target, never an input); partial sentences carry over to the next
 * batch. Targets are vocabulary ids (words not in the vocabulary: <UNK>); the character
 * ids always encode the real word (training ids, 0..260, no shift).
 *
 * Training mode: shards in a random order, a new order after every pass, forever;
 * sentences of a shard shuffled when it is loaded (both unless shuffle = 0: sorted shard
 * names, file order). Evaluation mode: every shard once in sorted-name order, sentences
 * in file order; the final incomplete batch is dropped.
 * Memory holds one shard at a time, whatever the corpus size.
 */
#ifndef ELMO_DATASET_H
#define ELMO_DATASET_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "vocab.h"

typedef struct {
    int B, T, C;
    int32_t *chars;      /* (B, T, C) training character ids of the inputs */
    int32_t *targets;    /* (B, T) vocabulary ids of the next tokens */
    size_t bytes;        /* allocated by lm_batch_init */
} LmBatch;

void lm_batch_init(LmBatch *b, int B, int T, int C);
void lm_batch_free(LmBatch *b);
/* Rows [first, first + rows) of b, as a batch of their own sharing b's memory (a
 * replica's share of the global batch); never freed. */
LmBatch lm_batch_rows(const LmBatch *b, int first, int rows);

typedef struct LmReader LmReader;

typedef enum { LM_TRAIN, LM_EVAL } LmMode;

/* Opens a reader over the files matching pattern (glob(3)); fails naming the pattern when
 * nothing matches. reverse = 1 for the backward direction. The vocabulary must contain
 * <S>, </S> and <UNK> and outlive the reader. seed drives shard order and shuffling. */
int lm_reader_open(LmReader **r, const char *pattern, const Vocab *vocab, int max_chars, int reverse, LmMode mode,
                   int shuffle, uint64_t seed);
/* Fills the next batch: 1 = filled, 0 = no more data (evaluation mode), -1 = error naming
 * file:line (invalid UTF-8, an empty line, a token over ELMO_MAX_TOKEN_BYTES, a corrupt
 * .gz file, a read error). */
int lm_reader_next(LmReader *r, LmBatch *batch);
/* Number of shard files matched. */
int lm_reader_n_shards(const LmReader *r);
/* Saves / restores everything needed to continue exactly where the reader is (shard order
 * left in this pass, current shard and position, the generator's state, the partial
 * sentence of every stream) as datasets and attributes inside the HDF5 group `group`. */
int lm_reader_save_state(const LmReader *r, hid_t group);
int lm_reader_load_state(LmReader *r, hid_t group);
void lm_reader_close(LmReader *r);

#endif
