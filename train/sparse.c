/* sparse.c - see sparse.h. */
#include "sparse.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

/* The capacity after a full one grows. */
static int grown_cap(int cap) { return 2 * cap; }

/* The capacity sparse_grad_init starts with. */
static int initial_cap(int cap) { return cap > 16 ? cap : 16; }

/* What a gradient of this capacity holds. */
static size_t bytes_at(long n_total_rows, int width, int cap) {
    return (size_t)cap * sizeof(int32_t) + (size_t)cap * width * sizeof(float) + (size_t)n_total_rows * sizeof(int32_t);
}

void sparse_grad_init(SparseGrad *g, long n_total_rows, int width, int cap) {
    memset(g, 0, sizeof *g);
    g->width = width;
    g->n_total_rows = n_total_rows;
    g->cap = initial_cap(cap);
    g->rows = xmalloc((size_t)g->cap * sizeof *g->rows);
    g->grad = xmalloc((size_t)g->cap * width * sizeof *g->grad);
    g->slot_of = xmalloc((size_t)n_total_rows * sizeof *g->slot_of);
    memset(g->slot_of, 0xff, (size_t)n_total_rows * sizeof *g->slot_of);
}

float *sparse_grad_row(SparseGrad *g, int32_t row) {
    CHECK(row >= 0 && row < g->n_total_rows, "row %d of %ld", row, g->n_total_rows);
    int32_t slot = g->slot_of[row];
    if (slot < 0) {
        if (g->n == g->cap) {
            g->cap = grown_cap(g->cap);
            g->rows = xrealloc(g->rows, (size_t)g->cap * sizeof *g->rows);
            g->grad = xrealloc(g->grad, (size_t)g->cap * g->width * sizeof *g->grad);
        }
        slot = g->n++;
        g->slot_of[row] = slot;
        g->rows[slot] = row;
        memset(g->grad + (size_t)slot * g->width, 0, (size_t)g->width * sizeof *g->grad);
    }
    return g->grad + (size_t)slot * g->width;
}

void sparse_grad_clear(SparseGrad *g) {
    for (int i = 0; i < g->n; i++) g->slot_of[g->rows[i]] = -1;
    g->n = 0;
}

void sparse_grad_free(SparseGrad *g) {
    free(g->rows);
    free(g->grad);
    free(g->slot_of);
    memset(g, 0, sizeof *g);
}

size_t sparse_grad_bytes(const SparseGrad *g) { return bytes_at(g->n_total_rows, g->width, g->cap); }

size_t sparse_grad_need_bytes(long n_total_rows, int width, int cap, long rows) {
    int c = initial_cap(cap);
    while (c < rows) c = grown_cap(c);
    return bytes_at(n_total_rows, width, c);
}
