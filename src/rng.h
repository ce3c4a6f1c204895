/* rng.h - a small seeded random number generator (xoshiro256**, seeded by splitmix64).
 * Its whole state is four words, so it can be checkpointed and restored exactly. */
#ifndef ELMO_RNG_H
#define ELMO_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
/* 1 when s can be a state of the generator: any but all-zero (which xoshiro never leaves
 * and never reaches: it would draw 0 forever). */
int rng_state_valid(const uint64_t s[4]);
uint64_t rng_next(Rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(Rng *r);
/* Normal with mean 0 and standard deviation 1 (Box-Muller). */
double rng_normal(Rng *r);

#endif
