/* tokenset.h - the distinct tokens of a batch. The char-CNN, highway and projection
 * depend on a token's characters only, so a batch runs them once per distinct token
 * (real text repeats "the", ",", "." many times) and every position takes its token's
 * result; in training, a token's gradient is the sum over its positions. */
#ifndef ELMO_TOKENSET_H
#define ELMO_TOKENSET_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

typedef struct {
    int C;                 /* character ids per token */
    int capacity;          /* positions it can take */
    int n;                 /* distinct tokens found */
    int32_t *ids;          /* (n, C) the distinct tokens, in order of first appearance */
    int32_t *index_of;     /* (positions) index into ids; -1 for an all-zero (padding) token */
    int32_t *slots;        /* open-addressing hash table of indexes, -1 = empty */
    size_t n_slots;
} TokenSet;

/* Takes its buffers for `capacity` positions from the arena (see arena.h). */
void token_set_carve(TokenSet *s, Arena *a, int capacity, int C);
/* Finds the distinct tokens among ids (N, C), N <= capacity. With skip_padding, all-zero
 * tokens (prediction padding) get index -1 and are not collected. */
void token_set_build(TokenSet *s, const int32_t *ids, int N, int skip_padding);

#endif
