/* arena.c - see arena.h. */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

void *arena_take(Arena *a, size_t n) {
    const size_t at = a->used;
    a->used += (n + 63) / 64 * 64;
    if (!a->base) return NULL;
    CHECK(a->used <= a->size, "arena overrun: the carve function took more on its second run");
    return a->base + at;
}

float *arena_floats(Arena *a, size_t n) { return arena_take(a, n * sizeof(float)); }

int32_t *arena_ints(Arena *a, size_t n) { return arena_take(a, n * sizeof(int32_t)); }

size_t arena_measure(void (*carve)(void *ctx, Arena *a), void *ctx) {
    Arena measuring = {0};
    carve(ctx, &measuring);
    return measuring.used;
}

void arena_build(Arena *a, void (*carve)(void *ctx, Arena *a), void *ctx) {
    const size_t size = arena_measure(carve, ctx);
    /* calloc, not malloc + memset: a large block comes zeroed from the kernel, and pages a
     * run never touches (rows beyond the distinct tokens of a batch) cost no memory */
    a->block = xcalloc(size + 64, 1);
    a->base = (char *)a->block + (64 - (uintptr_t)a->block % 64) % 64;
    a->size = size;
    a->used = 0;
    carve(ctx, a);
    CHECK(a->used == size, "the carve function took %zu bytes, then %zu", size, a->used);
}

void arena_free(Arena *a) {
    free(a->block);
    memset(a, 0, sizeof *a);
}
