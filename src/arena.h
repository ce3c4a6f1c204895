/* arena.h - many buffers in one allocation, sized by the code that hands them out.
 *
 * An object that owns buffers writes ONE carve function that takes each buffer from an
 * Arena. arena_build runs it twice: first on a measuring arena (which hands out NULL and
 * only adds up the sizes), then, after one allocation of exactly that size, for real.
 * The memory an object reports (Arena.size) is therefore what it allocated, never a
 * formula kept beside the allocations. Buffers are zeroed and 64-byte aligned.
 */
#ifndef ELMO_ARENA_H
#define ELMO_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *block;  /* the allocation */
    char *base;   /* its first 64-byte boundary; NULL while measuring */
    size_t used;  /* bytes handed out so far */
    size_t size;  /* bytes allocated (after arena_build) */
} Arena;

/* Runs carve(ctx, a) on a measuring arena, allocates what it took, runs it again on the
 * allocation. The arena must be empty (zeroed or freed). */
void arena_build(Arena *a, void (*carve)(void *ctx, Arena *a), void *ctx);
/* The bytes carve(ctx, .) would take, without allocating anything. */
size_t arena_measure(void (*carve)(void *ctx, Arena *a), void *ctx);
/* n bytes (rounded up to 64); NULL while measuring. */
void *arena_take(Arena *a, size_t n);
float *arena_floats(Arena *a, size_t n);
int32_t *arena_ints(Arena *a, size_t n);
void arena_free(Arena *a);

#endif
