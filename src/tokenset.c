/* tokenset.c - see tokenset.h. */
#include "tokenset.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

void token_set_carve(TokenSet *s, Arena *a, int capacity, int C) {
    memset(s, 0, sizeof *s);
    s->C = C;
    s->capacity = capacity;
    s->ids = arena_ints(a, (size_t)capacity * C);
    s->index_of = arena_ints(a, (size_t)capacity);
    for (s->n_slots = 16; s->n_slots < 2 * (size_t)capacity;) s->n_slots *= 2;
    s->slots = arena_ints(a, s->n_slots);
}

static uint64_t hash_token(const int32_t *ids, int C) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the ids */
    for (int c = 0; c < C; c++) h = (h ^ (uint32_t)ids[c]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int is_padding(const int32_t *tok, int C) {
    for (int c = 0; c < C; c++)
        if (tok[c] != 0) return 0;
    return 1;
}

void token_set_build(TokenSet *s, const int32_t *ids, int N, int skip_padding) {
    const int C = s->C;
    CHECK(N <= s->capacity, "%d positions, the set holds %d", N, s->capacity);
    memset(s->slots, 0xff, s->n_slots * sizeof *s->slots);
    s->n = 0;
    for (int i = 0; i < N; i++) {
        const int32_t *tok = ids + (size_t)i * C;
        if (skip_padding && is_padding(tok, C)) {
            s->index_of[i] = -1;
            continue;
        }
        size_t slot = hash_token(tok, C) & (s->n_slots - 1);
        while (s->slots[slot] >= 0 && memcmp(s->ids + (size_t)s->slots[slot] * C, tok, (size_t)C * sizeof(int32_t)) != 0)
            slot = (slot + 1) & (s->n_slots - 1);
        if (s->slots[slot] < 0) {
            memcpy(s->ids + (size_t)s->n * C, tok, (size_t)C * sizeof(int32_t));
            s->slots[slot] = s->n++;
        }
        s->index_of[i] = s->slots[slot];
    }
}
