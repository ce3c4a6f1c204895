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

int sparse_grad_to_union(SparseGrad *g, const int32_t *ids, size_t n_ids, int32_t *order, float *block) {
    const int w = g->width;
    /* slot_of marks the rows already in the union: -2 when g does not hold the row,
     * -(slot + 3) when it does (so the slot survives); every mark is reset to -1 below */
    int U = 0;
    for (size_t i = 0; i < n_ids; i++) {
        const int32_t row = ids[i];
        CHECK(row >= 0 && row < g->n_total_rows, "row %d of %ld", row, g->n_total_rows);
        const int32_t mark = g->slot_of[row];
        if (mark >= -1) {
            order[U++] = row;
            g->slot_of[row] = mark >= 0 ? -(mark + 3) : -2;
        }
    }
    for (int j = 0; j < U; j++) {
        const int32_t mark = g->slot_of[order[j]];
        float *dst = block + (size_t)j * w;
        if (mark <= -3) memcpy(dst, g->grad + (size_t)(-mark - 3) * w, (size_t)w * sizeof *dst);
        else memset(dst, 0, (size_t)w * sizeof *dst);
        g->slot_of[order[j]] = -1;
    }
    /* a row g held but ids lacked would stay marked: ids must include g's own rows */
    for (int i = 0; i < g->n; i++) CHECK(g->slot_of[g->rows[i]] == -1, "row %d of this replica not in the union", g->rows[i]);
    g->n = 0;
    return U;
}

void sparse_grad_from_union(SparseGrad *g, const int32_t *order, int U, const float *block, float scale) {
    CHECK(g->n == 0, "the gradient must be empty");
    for (int j = 0; j < U; j++) {
        float *row = sparse_grad_row(g, order[j]);
        const float *sum = block + (size_t)j * g->width;
        for (int k = 0; k < g->width; k++) row[k] = sum[k] * scale;
    }
}

size_t sparse_grad_bytes(const SparseGrad *g) { return bytes_at(g->n_total_rows, g->width, g->cap); }

size_t sparse_grad_need_bytes(long n_total_rows, int width, int cap, long rows) {
    int c = initial_cap(cap);
    while (c < rows) c = grown_cap(c);
    return bytes_at(n_total_rows, width, c);
}
