/* test_sparse.c - row-sparse gradients (train/sparse.c): rows held in order of first touch,
 * and the union of several replicas' gradients that MPI training sums (train/replicas.c),
 * here with the replicas simulated in one process and the allreduce a plain sum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "sparse.h"

enum { V = 60, W = 3, REPLICAS = 3 };

static void test_rows_in_order_of_first_touch(void **state) {
    SparseGrad g;
    sparse_grad_init(&g, V, W, 2);
    const int32_t touch[] = {7, 3, 7, 59, 0, 3};
    for (size_t i = 0; i < sizeof touch / sizeof *touch; i++) sparse_grad_row(&g, touch[i])[0] += 1.0f;
    assert_int_equal(g.n, 4);
    const int32_t expected[] = {7, 3, 59, 0};
    for (int i = 0; i < 4; i++) assert_int_equal(g.rows[i], expected[i]);
    assert_true(sparse_grad_row(&g, 7)[0] == 2.0f);
    sparse_grad_clear(&g);
    assert_int_equal(g.n, 0);
    assert_true(sparse_grad_row(&g, 3)[0] == 0.0f); /* zero-filled again */
    sparse_grad_free(&g);
}

static void test_union_of_replicas(void **state) {
    SparseGrad g[REPLICAS];
    double dense[V][W] = {{0}};
    int touched[V] = {0};
    Rng rng;
    rng_seed(&rng, 11);
    int32_t ids[REPLICAS * V];
    size_t n_ids = 0;
    for (int k = 0; k < REPLICAS; k++) {
        sparse_grad_init(&g[k], V, W, 4);
        const int touches = 10 + 15 * k; /* overlapping rows, repeats, in random order */
        for (int i = 0; i < touches; i++) {
            const int32_t row = (int32_t)(rng_next(&rng) % (k == 1 ? 20 : V));
            float *x = sparse_grad_row(&g[k], row);
            for (int c = 0; c < W; c++) {
                const float v = (float)((int)(rng_next(&rng) % 201) - 100) / 64.0f; /* exact in float */
                x[c] += v;
                dense[row][c] += v;
            }
            touched[row] = 1;
        }
        memcpy(ids + n_ids, g[k].rows, (size_t)g[k].n * sizeof *ids); /* the allgather */
        n_ids += (size_t)g[k].n;
    }
    /* the expected union: first occurrence in replica order */
    int32_t expected[V];
    int n_expected = 0, seen[V] = {0};
    for (size_t i = 0; i < n_ids; i++)
        if (!seen[ids[i]]) {
            seen[ids[i]] = 1;
            expected[n_expected++] = ids[i];
        }
    int32_t order[REPLICAS][REPLICAS * V];
    float block[REPLICAS][V * W], sum[V * W];
    int U[REPLICAS];
    for (int k = 0; k < REPLICAS; k++) {
        U[k] = sparse_grad_to_union(&g[k], ids, n_ids, order[k], block[k]);
        assert_int_equal(g[k].n, 0);
        assert_int_equal(U[k], n_expected);
        assert_memory_equal(order[k], expected, (size_t)n_expected * sizeof *expected);
    }
    for (int j = 0; j < U[0] * W; j++) sum[j] = block[0][j] + block[1][j] + block[2][j]; /* the allreduce */
    for (int k = 0; k < REPLICAS; k++) {
        sparse_grad_from_union(&g[k], order[k], U[k], sum, 0.5f);
        assert_int_equal(g[k].n, n_expected);
        assert_memory_equal(g[k].rows, expected, (size_t)n_expected * sizeof *expected);
        for (int32_t row = 0; row < V; row++) {
            if (!touched[row]) {
                assert_int_equal(g[k].slot_of[row], -1);
                continue;
            }
            const float *x = sparse_grad_row(&g[k], row);
            for (int c = 0; c < W; c++) assert_true(x[c] == (float)(0.5 * dense[row][c]));
        }
        assert_int_equal(g[k].n, n_expected); /* no row added by the reads */
    }
    for (int k = 0; k < REPLICAS; k++) sparse_grad_free(&g[k]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_in_order_of_first_touch),
        cmocka_unit_test(test_union_of_replicas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
