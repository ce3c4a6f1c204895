/* test_softmax.c - the log-uniform sampler, the sampled and the full softmax against
 * naive double-precision twins, accidental hits, and finite-difference gradients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "softmax.h"
#include "sparse.h"
#include "testutil.h"

/* ------------------------------------------------------------------ helpers */

static double p_ref(int k, int V) { return (log(k + 2.0) - log(k + 1.0)) / log(V + 1.0); }

/* TF's expected count, evaluated independently in double. */
static double q_ref(int k, long tries, int S, int V) {
    double p = p_ref(k, V);
    return tries == S ? p * S : -expm1((double)tries * log1p(-p));
}

static int rel_close(double a, double b, double rel, double abs_floor) {
    return fabs(a - b) <= abs_floor + rel * fabs(b);
}

/* The gradient row of `row` in g, NULL when the row is not held. */
static const float *held_row(const SparseGrad *g, int row) {
    int32_t slot = g->slot_of[row];
    return slot < 0 ? NULL : g->grad + (size_t)slot * g->width;
}

/* A sample set with the given ids and tries (expected counts from the sampler's formula). */
static void make_samples(SampleSet *s, const int32_t *ids, int S, int V, long tries) {
    sample_set_init(s, S, V);
    memcpy(s->ids, ids, (size_t)S * sizeof *ids);
    s->tries = tries;
    for (int i = 0; i < S; i++) s->expected[i] = sampler_expected_count(ids[i], tries, S, V);
}

/* Naive sampled softmax in double: mean loss; gradients of scale * mean into dx (N, P),
 * dW (V, P), db (V) (zeroed here) when dx is not NULL. Accidental hits are left out of
 * the sum, i.e. the column is removed rather than masked. */
static double naive_sampled(double *dx, double *dW, double *db, const float *x, const int32_t *y, int N,
                            const float *W, const float *b, int P, const int32_t *ids, const float *expected,
                            int S, int V, long tries, double scale) {
    double total = 0;
    double *logit = malloc((size_t)(S + 1) * sizeof(double));
    if (dx) {
        memset(dx, 0, (size_t)N * P * sizeof(double));
        memset(dW, 0, (size_t)V * P * sizeof(double));
        memset(db, 0, (size_t)V * sizeof(double));
    }
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * P;
        double mx = -INFINITY;
        for (int c = 0; c <= S; c++) {
            int row = c == 0 ? y[n] : ids[c - 1];
            if (c > 0 && row == y[n]) {
                logit[c] = -INFINITY;
                continue;
            }
            double z = b[row];
            for (int j = 0; j < P; j++) z += (double)xn[j] * W[(size_t)row * P + j];
            z -= log(c == 0 ? q_ref(row, tries, S, V) : (double)expected[c - 1]);
            logit[c] = z;
            if (z > mx) mx = z;
        }
        double sum = 0;
        for (int c = 0; c <= S; c++) sum += exp(logit[c] - mx);
        total += mx + log(sum) - logit[0];
        if (!dx) continue;
        for (int c = 0; c <= S; c++) {
            int row = c == 0 ? y[n] : ids[c - 1];
            double d = scale / N * (exp(logit[c] - mx) / sum - (c == 0));
            for (int j = 0; j < P; j++) {
                dx[(size_t)n * P + j] += d * W[(size_t)row * P + j];
                dW[(size_t)row * P + j] += d * xn[j];
            }
            db[row] += d;
        }
    }
    free(logit);
    return total / N;
}

/* Naive full softmax in double, same conventions. */
static double naive_full(double *dx, double *dW, double *db, const float *x, const int32_t *y, int N,
                         const float *W, const float *b, int P, int V, double scale) {
    double total = 0;
    double *logit = malloc((size_t)V * sizeof(double));
    if (dx) {
        memset(dx, 0, (size_t)N * P * sizeof(double));
        memset(dW, 0, (size_t)V * P * sizeof(double));
        memset(db, 0, (size_t)V * sizeof(double));
    }
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * P;
        double mx = -INFINITY;
        for (int v = 0; v < V; v++) {
            double z = b[v];
            for (int j = 0; j < P; j++) z += (double)xn[j] * W[(size_t)v * P + j];
            logit[v] = z;
            if (z > mx) mx = z;
        }
        double sum = 0;
        for (int v = 0; v < V; v++) sum += exp(logit[v] - mx);
        total += mx + log(sum) - logit[y[n]];
        if (!dx) continue;
        for (int v = 0; v < V; v++) {
            double d = scale / N * (exp(logit[v] - mx) / sum - (v == y[n]));
            for (int j = 0; j < P; j++) {
                dx[(size_t)n * P + j] += d * W[(size_t)v * P + j];
                dW[(size_t)v * P + j] += d * xn[j];
            }
            db[v] += d;
        }
    }
    free(logit);
    return total / N;
}

/* ------------------------------------------------------------------ 1. formulas */

static void test_sampler_probability_and_expected_count(void **state) {
    /* a value worked out by hand: P(0) = log 2 / log 11 for V = 10 */
    assert_float_equal(sampler_probability(0, 10), 0.2890648263, 1e-7);
    const int Vs[2] = {10, 50000};
    for (int vi = 0; vi < 2; vi++) {
        const int V = Vs[vi];
        const int ks[] = {0, 1, 2, 3, 7, V / 2, V - 2, V - 1};
        for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
            const int k = ks[i];
            double p = p_ref(k, V);
            assert_true(rel_close(sampler_probability(k, V), p, 2e-7, 0));
            /* tries == S: P(k) * S */
            for (int S = 1; S <= 8 && S <= V; S += 3)
                assert_true(rel_close(sampler_expected_count(k, S, S, V), p * S, 3e-7, 0));
            /* tries > S: 1 - (1 - P(k))^tries, below 1 and increasing in tries */
            const int S = V < 100 ? 4 : 100;
            float prev = 0.0f;
            const long tries_list[] = {S + 1, S + 7, 3L * S, 10L * S};
            for (int t = 0; t < 4; t++) {
                float q = sampler_expected_count(k, tries_list[t], S, V);
                double ref = q_ref(k, tries_list[t], S, V);
                assert_true(rel_close(q, ref, 1e-5, 1e-12));
                assert_true(q > 0.0f && q <= 1.0f && q >= prev);
                prev = q;
            }
        }
        /* P is a distribution over [0, V) */
        double total = 0;
        for (int k = 0; k < V; k++) total += sampler_probability(k, V);
        assert_true(fabs(total - 1.0) < 1e-5);
    }
    /* V = 1: one draw always gives 0, tries == S == 1, q = P(0) * 1 = 1 */
    SampleSet s;
    sample_set_init(&s, 1, 1);
    Rng rng;
    rng_seed(&rng, 5);
    sampler_draw(&s, &rng);
    assert_int_equal(s.ids[0], 0);
    assert_int_equal(s.tries, 1);
    assert_float_equal(s.expected[0], 1.0f, 1e-7);
    sample_set_free(&s);
}

/* ------------------------------------------------------------------ 2. sampler */

static void test_sampler_draw(void **state) {
    Rng rng, rng2;
    /* distinct ids in range, in draw order, exactly TF's draw formula: replayed here by
     * an independent O(S^2) implementation on the same random stream */
    const int cases[][2] = {{50, 1000}, {300, 50000}, {10, 12}, {20, 20}};
    for (int c = 0; c < 4; c++) {
        const int S = cases[c][0], V = cases[c][1];
        SampleSet s;
        sample_set_init(&s, S, V);
        for (int rep = 0; rep < 3; rep++) {
            rng_seed(&rng, 100 + rep);
            rng_seed(&rng2, 100 + rep);
            sampler_draw(&s, &rng);
            int32_t *mine = malloc((size_t)S * sizeof *mine);
            int n = 0;
            long tries = 0;
            while (n < S) {
                double u = rng_uniform(&rng2);
                int k = (int)(((long long)exp(u * log(V + 1.0)) - 1) % V);
                tries++;
                int seen = 0;
                for (int i = 0; i < n; i++) seen |= mine[i] == k;
                if (!seen) mine[n++] = k;
            }
            assert_int_equal(s.tries, tries);
            assert_true(s.tries >= S);
            for (int i = 0; i < S; i++) {
                assert_int_equal(s.ids[i], mine[i]);
                assert_true(s.ids[i] >= 0 && s.ids[i] < V);
                for (int j = 0; j < i; j++) assert_int_not_equal(s.ids[i], s.ids[j]);
                assert_true(s.expected[i] == sampler_expected_count(s.ids[i], s.tries, S, V));
            }
            if (S == V) { /* every id exactly once */
                int count[20] = {0};
                assert_true(V <= 20);
                for (int i = 0; i < S; i++) count[s.ids[i]]++;
                for (int v = 0; v < V; v++) assert_int_equal(count[v], 1);
            }
            free(mine);
        }
        sample_set_free(&s);
    }

    /* frequencies: with S = 1 each set is one draw, so id k appears with probability
     * P(k); 20000 sets, |freq - P| within 5 binomial standard deviations */
    {
        const int V = 1000, M = 20000;
        SampleSet s;
        sample_set_init(&s, 1, V);
        rng_seed(&rng, 7);
        int count[4] = {0};
        for (int m = 0; m < M; m++) {
            sampler_draw(&s, &rng);
            assert_int_equal(s.tries, 1);
            if (s.ids[0] < 4) count[s.ids[0]]++;
        }
        for (int k = 0; k < 4; k++) {
            double p = p_ref(k, V), freq = (double)count[k] / M;
            print_message("S=1: id %d frequency %.4f, P %.4f\n", k, freq, p);
            assert_true(fabs(freq - p) < 5 * sqrt(p * (1 - p) / M));
        }
        sample_set_free(&s);
    }
    /* with S = 3 of V = 8 the share of sets holding id k is its exact inclusion
     * probability: the sum over the ordered triples (a, b, c) of distinct ids holding k
     * of P(a) P(b) / (1 - P(a)) P(c) / (1 - P(a) - P(b)) (draws with rejection of
     * repeats); 20000 sets, within 5 binomial standard deviations */
    {
        enum { V = 8, S = 3, M = 20000 };
        double incl[V] = {0}, p[V];
        for (int k = 0; k < V; k++) p[k] = p_ref(k, V);
        for (int a = 0; a < V; a++)
            for (int b2 = 0; b2 < V; b2++)
                for (int c = 0; c < V; c++) {
                    if (a == b2 || a == c || b2 == c) continue;
                    double pr = p[a] * p[b2] / (1 - p[a]) * p[c] / (1 - p[a] - p[b2]);
                    incl[a] += pr;
                    incl[b2] += pr;
                    incl[c] += pr;
                }
        SampleSet s;
        sample_set_init(&s, S, V);
        rng_seed(&rng, 8);
        int count[V] = {0};
        for (int m = 0; m < M; m++) {
            sampler_draw(&s, &rng);
            for (int i = 0; i < S; i++) count[s.ids[i]]++;
        }
        for (int k = 0; k < V; k++) {
            double share = (double)count[k] / M;
            print_message("S=3 of 8: id %d in %.4f of the sets, exact %.4f\n", k, share, incl[k]);
            assert_true(fabs(share - incl[k]) < 5 * sqrt(incl[k] * (1 - incl[k]) / M));
        }
        sample_set_free(&s);
    }
}

/* ------------------------------------------------------------------ 3. accidental hits */

static void test_accidental_hit_removed(void **state) {
    const int P = 4, V = 20, S = 5;
    const long tries = 9;
    const int32_t ids[5] = {3, 7, 0, 11, 5}, ids_reduced[4] = {3, 0, 11, 5};
    float x[4], W[20 * 4], b[20];
    fill_uniform(x, P, 1.0f, 31);
    fill_uniform(W, (size_t)V * P, 1.0f, 32);
    fill_uniform(b, V, 0.5f, 33);
    SampleSet full, reduced;
    make_samples(&full, ids, S, V, tries);
    make_samples(&reduced, ids_reduced, S - 1, V, tries);
    /* the same expected counts for the ids both sets hold (tries != S, so S plays no part) */
    for (int i = 0; i < 4; i++) reduced.expected[i] = full.expected[i < 1 ? 0 : i + 1];
    const int32_t target = 7; /* = ids[1]: an accidental hit */
    SoftmaxWork work = {0};
    SparseGrad gW1, gb1, gW2, gb2;
    sparse_grad_init(&gW1, V, P, 4);
    sparse_grad_init(&gb1, V, 1, 4);
    sparse_grad_init(&gW2, V, P, 4);
    sparse_grad_init(&gb2, V, 1, 4);
    float dx1[4], dx2[4];
    const float scale = 1.0f;
    double l1 = softmax_sampled(dx1, &gW1, &gb1, x, &target, 1, W, b, P, &full, scale, &work);
    double l2 = softmax_sampled(dx2, &gW2, &gb2, x, &target, 1, W, b, P, &reduced, scale, &work);
    double ndx[4], ndW[20 * 4], ndb[20];
    double ref = naive_sampled(ndx, ndW, ndb, x, &target, 1, W, b, P, ids_reduced, reduced.expected, S - 1, V,
                               tries, scale);
    print_message("hit: loss %.9f, column removed %.9f, naive %.9f\n", l1, l2, ref);
    assert_true(rel_close(l1, l2, 1e-6, 0));
    assert_true(rel_close(l1, ref, 1e-5, 0));
    for (int j = 0; j < P; j++) {
        assert_true(rel_close(dx1[j], dx2[j], 1e-6, 1e-7));
        assert_true(rel_close(dx1[j], ndx[j], 1e-5, 1e-7));
    }
    /* row 7 is touched (sampled and target) and gets only the true-class gradient:
     * d(true) * x with d(true) = p0 - 1; nothing flows through the sampled column */
    const float *g7 = held_row(&gW1, target);
    assert_non_null(g7);
    const double d_true = ndb[target];
    assert_true(d_true < 0);
    for (int j = 0; j < P; j++) {
        assert_true(fabs(g7[j] - d_true * x[j]) < 1e-6);
        assert_true(fabs(g7[j] - held_row(&gW2, target)[j]) < 1e-7);
    }
    assert_true(fabs(held_row(&gb1, target)[0] - d_true) < 1e-6);
    /* every other row the same as with the column removed */
    for (int i = 0; i < 4; i++) {
        const int r = ids_reduced[i];
        for (int j = 0; j < P; j++) assert_true(fabs(held_row(&gW1, r)[j] - held_row(&gW2, r)[j]) < 1e-7);
        assert_true(fabs(held_row(&gb1, r)[0] - held_row(&gb2, r)[0]) < 1e-7);
    }
    assert_int_equal(gW1.n, 5);
    assert_int_equal(gW2.n, 5);
    sparse_grad_free(&gW1);
    sparse_grad_free(&gb1);
    sparse_grad_free(&gW2);
    sparse_grad_free(&gb2);
    sample_set_free(&full);
    sample_set_free(&reduced);
    softmax_work_free(&work);
}

/* ------------------------------------------------------------------ 4. loss values */

enum { TN = 7, TP = 5, TV = 13, TS = 6 };

typedef struct {
    float x[TN * TP], W[TV * TP], b[TV];
    int32_t y[TN];
    SampleSet s;
} Problem;

static void make_problem(Problem *pr, uint64_t seed) {
    fill_uniform(pr->x, TN * TP, 1.0f, seed);
    fill_uniform(pr->W, TV * TP, 1.0f, seed + 1);
    fill_uniform(pr->b, TV, 0.5f, seed + 2);
    Rng rng;
    rng_seed(&rng, seed + 3);
    sample_set_init(&pr->s, TS, TV);
    sampler_draw(&pr->s, &rng);
    for (int n = 0; n < TN; n++) pr->y[n] = (int32_t)(rng_next(&rng) % TV);
    pr->y[0] = pr->s.ids[1]; /* at least one accidental hit */
    pr->y[3] = pr->s.ids[4];
}

static void test_loss_matches_naive(void **state) {
    SoftmaxWork work = {0};
    for (int seed = 0; seed < 5; seed++) {
        Problem pr;
        make_problem(&pr, 1000 + 10 * seed);
        if (seed == 4) { /* the other branch of the expected count: no repeated draw */
            pr.s.tries = TS;
            for (int i = 0; i < TS; i++) pr.s.expected[i] = sampler_expected_count(pr.s.ids[i], TS, TS, TV);
        }
        double got = softmax_sampled(NULL, NULL, NULL, pr.x, pr.y, TN, pr.W, pr.b, TP, &pr.s, 1.0f, &work);
        double ref = naive_sampled(NULL, NULL, NULL, pr.x, pr.y, TN, pr.W, pr.b, TP, pr.s.ids, pr.s.expected, TS,
                                   TV, pr.s.tries, 1.0);
        double got_full = softmax_full(NULL, NULL, NULL, pr.x, pr.y, TN, pr.W, pr.b, TP, TV, 1.0f, &work);
        double ref_full = naive_full(NULL, NULL, NULL, pr.x, pr.y, TN, pr.W, pr.b, TP, TV, 1.0);
        print_message("seed %d: sampled %.8f (naive %.8f, tries %ld), full %.8f (naive %.8f)\n", seed, got, ref,
                      pr.s.tries, got_full, ref_full);
        assert_true(rel_close(got, ref, 1e-5, 0));
        assert_true(rel_close(got_full, ref_full, 1e-5, 0));
        /* the same with the backward pass on: same loss, and gradients as the naive twin */
        float dx[TN * TP];
        double ndx[TN * TP], ndW[TV * TP], ndb[TV];
        SparseGrad gW, gb;
        sparse_grad_init(&gW, TV, TP, 4);
        sparse_grad_init(&gb, TV, 1, 4);
        double got2 = softmax_sampled(dx, &gW, &gb, pr.x, pr.y, TN, pr.W, pr.b, TP, &pr.s, 0.75f, &work);
        naive_sampled(ndx, ndW, ndb, pr.x, pr.y, TN, pr.W, pr.b, TP, pr.s.ids, pr.s.expected, TS, TV, pr.s.tries,
                      0.75);
        assert_true(got2 == got);
        for (int i = 0; i < TN * TP; i++) assert_true(rel_close(dx[i], ndx[i], 1e-5, 1e-7));
        for (int v = 0; v < TV; v++) {
            const float *gw = held_row(&gW, v), *gbv = held_row(&gb, v);
            assert_true((gw == NULL) == (gbv == NULL));
            if (!gw) continue;
            for (int j = 0; j < TP; j++) assert_true(rel_close(gw[j], ndW[v * TP + j], 1e-5, 1e-7));
            assert_true(rel_close(gbv[0], ndb[v], 1e-5, 1e-7));
        }
        sparse_grad_free(&gW);
        sparse_grad_free(&gb);
        sample_set_free(&pr.s);
    }
    softmax_work_free(&work);
}

/* ------------------------------------------------------------------ 5. gradients */

/* Central differences in double of a float implementation, h = 1e-3.
 * Tolerance: the loss is computed in float; logits of size ~3 carry rounding errors of
 * ~3e-7 and each row's loss is rounded to float (~2e-7 at ~2.5). Only one row changes
 * when x is perturbed and the mean divides by N = 7, so the difference of the two
 * losses is off by up to ~1e-7, i.e. ~5e-5 after dividing by 2h = 2e-3; with W and b
 * every row changes, so up to ~1e-4 (hence the absolute floor 2e-4, scaled by `scale`).
 * The truncation error h^2/6 f''' is ~1e-7 (the logits are linear in each entry and
 * the log-sum-exp has bounded derivatives), far below; 2e-2 relative covers the rest. */
#define FD_H 1e-3f
#define FD_ABS 2e-4
#define FD_REL 2e-2

typedef struct {
    Problem *pr;
    int full;
    float scale;
    SoftmaxWork *work;
} FdCase;

static double fd_loss(const FdCase *c) {
    Problem *pr = c->pr;
    double l = c->full ? softmax_full(NULL, NULL, NULL, pr->x, pr->y, TN, pr->W, pr->b, TP, TV, 1.0f, c->work)
                       : softmax_sampled(NULL, NULL, NULL, pr->x, pr->y, TN, pr->W, pr->b, TP, &pr->s, 1.0f,
                                         c->work);
    return c->scale * l;
}

static double fd_grad(const FdCase *c, float *entry) {
    const float orig = *entry;
    const float plus = orig + FD_H, minus = orig - FD_H;
    *entry = plus;
    double lp = fd_loss(c);
    *entry = minus;
    double lm = fd_loss(c);
    *entry = orig;
    return (lp - lm) / ((double)plus - (double)minus);
}

static double worst; /* largest |fd - analytic| / tolerance seen */

static void check_fd(double fd, double analytic, double scale) {
    double tol = FD_ABS * scale + FD_REL * fabs(analytic);
    double r = fabs(fd - analytic) / tol;
    if (r > worst) worst = r;
    if (r > 1) print_message("fd %.8g analytic %.8g\n", fd, analytic);
    assert_true(r <= 1);
}

static void run_fd(int full) {
    SoftmaxWork work = {0};
    Problem pr;
    make_problem(&pr, full ? 77 : 55);
    const float scale = 1.7f;
    FdCase c = {&pr, full, scale, &work};
    float dx[TN * TP];
    SparseGrad gW, gb;
    sparse_grad_init(&gW, TV, TP, 4);
    sparse_grad_init(&gb, TV, 1, 4);
    if (full) softmax_full(dx, &gW, &gb, pr.x, pr.y, TN, pr.W, pr.b, TP, TV, scale, &work);
    else softmax_sampled(dx, &gW, &gb, pr.x, pr.y, TN, pr.W, pr.b, TP, &pr.s, scale, &work);
    worst = 0;
    for (int i = 0; i < TN * TP; i++) check_fd(fd_grad(&c, &pr.x[i]), dx[i], scale);
    /* touched rows: exactly the targets and the samples (every row for the full softmax) */
    int n_used = 0;
    for (int v = 0; v < TV; v++) {
        int used = full;
        for (int n = 0; n < TN; n++) used |= pr.y[n] == v;
        for (int i = 0; i < TS; i++) used |= pr.s.ids[i] == v;
        n_used += used;
        const float *gw = held_row(&gW, v), *gbv = held_row(&gb, v);
        assert_true((gw != NULL) == used);
        assert_true((gbv != NULL) == used);
        for (int j = 0; j < TP; j++) check_fd(fd_grad(&c, &pr.W[v * TP + j]), gw ? gw[j] : 0.0, scale);
        check_fd(fd_grad(&c, &pr.b[v]), gbv ? gbv[0] : 0.0, scale);
    }
    assert_int_equal(gW.n, n_used);
    print_message("%s: worst |fd - analytic| / tolerance = %.3f over x, W, b (%d rows touched)\n",
                  full ? "full" : "sampled", worst, n_used);
    sparse_grad_free(&gW);
    sparse_grad_free(&gb);
    sample_set_free(&pr.s);
    softmax_work_free(&work);
}

static void test_sampled_gradients_finite_differences(void **state) { run_fd(0); }
static void test_full_gradients_finite_differences(void **state) { run_fd(1); }

/* scale multiplies every gradient and leaves the loss alone; gradients are added. */
static void test_scale_multiplies_gradients(void **state) {
    SoftmaxWork work = {0};
    Problem pr;
    make_problem(&pr, 99);
    for (int full = 0; full <= 1; full++) {
        float dx1[TN * TP], dx2[TN * TP];
        SparseGrad gW1, gb1, gW2, gb2;
        sparse_grad_init(&gW1, TV, TP, 4);
        sparse_grad_init(&gb1, TV, 1, 4);
        sparse_grad_init(&gW2, TV, TP, 4);
        sparse_grad_init(&gb2, TV, 1, 4);
        double l1, l2;
        if (full) {
            l1 = softmax_full(dx1, &gW1, &gb1, pr.x, pr.y, TN, pr.W, pr.b, TP, TV, 1.0f, &work);
            l2 = softmax_full(dx2, &gW2, &gb2, pr.x, pr.y, TN, pr.W, pr.b, TP, TV, 2.5f, &work);
        } else {
            l1 = softmax_sampled(dx1, &gW1, &gb1, pr.x, pr.y, TN, pr.W, pr.b, TP, &pr.s, 1.0f, &work);
            l2 = softmax_sampled(dx2, &gW2, &gb2, pr.x, pr.y, TN, pr.W, pr.b, TP, &pr.s, 2.5f, &work);
        }
        /* float rounding of scale / N and of the products, with cancellation in the
         * sums: 1e-6 relative plus 1e-7 absolute (the gradients are ~1e-2) */
        assert_true(l1 == l2);
        double norm = 0;
        for (int i = 0; i < TN * TP; i++) {
            assert_true(rel_close(dx2[i], 2.5 * dx1[i], 1e-6, 1e-7));
            norm += fabs(dx1[i]);
        }
        assert_true(norm > 1e-3);
        assert_int_equal(gW1.n, gW2.n);
        for (int v = 0; v < TV; v++) {
            const float *a = held_row(&gW1, v), *bb = held_row(&gW2, v);
            assert_true((a == NULL) == (bb == NULL));
            if (!a) continue;
            for (int j = 0; j < TP; j++) assert_true(rel_close(bb[j], 2.5 * a[j], 1e-6, 1e-7));
            assert_true(rel_close(held_row(&gb2, v)[0], 2.5 * held_row(&gb1, v)[0], 1e-6, 1e-7));
        }
        /* a second call with scale 1.5 adds onto the 1.0 one: 2.5 in all */
        if (full) softmax_full(dx1, &gW1, &gb1, pr.x, pr.y, TN, pr.W, pr.b, TP, TV, 1.5f, &work);
        else softmax_sampled(dx1, &gW1, &gb1, pr.x, pr.y, TN, pr.W, pr.b, TP, &pr.s, 1.5f, &work);
        for (int v = 0; v < TV; v++) {
            const float *a = held_row(&gW1, v), *bb = held_row(&gW2, v);
            if (!a) continue;
            for (int j = 0; j < TP; j++) assert_true(rel_close(a[j], bb[j], 1e-6, 1e-7));
            assert_true(rel_close(held_row(&gb1, v)[0], held_row(&gb2, v)[0], 1e-6, 1e-7));
        }
        sparse_grad_free(&gW1);
        sparse_grad_free(&gb1);
        sparse_grad_free(&gW2);
        sparse_grad_free(&gb2);
    }
    sample_set_free(&pr.s);
    softmax_work_free(&work);
}

/* ------------------------------------------------------------------ 6. full softmax */

static void check_full_case(int N, int P, int V, uint64_t seed, int pre_touched, double scale) {
    float *x = malloc((size_t)N * P * sizeof(float)), *W = malloc((size_t)V * P * sizeof(float));
    float *b = malloc((size_t)V * sizeof(float)), *dx = malloc((size_t)N * P * sizeof(float));
    int32_t *y = malloc((size_t)N * sizeof(int32_t));
    double *ndx = malloc((size_t)N * P * sizeof(double)), *ndW = malloc((size_t)V * P * sizeof(double));
    double *ndb = malloc((size_t)V * sizeof(double));
    fill_uniform(x, (size_t)N * P, 1.0f, seed);
    fill_uniform(W, (size_t)V * P, 1.0f, seed + 1);
    fill_uniform(b, V, 0.5f, seed + 2);
    Rng rng;
    rng_seed(&rng, seed + 3);
    for (int n = 0; n < N; n++) y[n] = (int32_t)(rng_next(&rng) % V);
    SparseGrad gW, gb;
    sparse_grad_init(&gW, V, P, 4);
    sparse_grad_init(&gb, V, 1, 4);
    /* rows held before the call, out of order and with values: the call adds to them */
    const int pre[2] = {5 % V, 2 % V};
    if (pre_touched)
        for (int i = 0; i < 2; i++) {
            for (int j = 0; j < P; j++) sparse_grad_row(&gW, pre[i])[j] = 0.25f * (j + 1);
            sparse_grad_row(&gb, pre[i])[0] = -0.5f;
        }
    SoftmaxWork work = {0};
    double got = softmax_full(dx, &gW, &gb, x, y, N, W, b, P, V, (float)scale, &work);
    double fwd = softmax_full(NULL, NULL, NULL, x, y, N, W, b, P, V, 1.0f, &work);
    double ref = naive_full(ndx, ndW, ndb, x, y, N, W, b, P, V, scale);
    print_message("full N=%d V=%d: loss %.8f naive %.8f\n", N, V, got, ref);
    assert_true(rel_close(got, ref, 1e-5, 0));
    assert_true(got == fwd);
    double max_dx = 0, max_dW = 0, max_db = 0;
    for (int i = 0; i < N * P; i++) max_dx = fmax(max_dx, fabs(dx[i] - ndx[i]));
    assert_int_equal(gW.n, V);
    assert_int_equal(gb.n, V);
    for (int v = 0; v < V; v++) {
        if (!pre_touched) {
            assert_int_equal(gW.rows[v], v); /* in order 0..V-1 */
            assert_int_equal(gb.rows[v], v);
        }
        int was = pre_touched && (v == pre[0] || v == pre[1]);
        const float *gw = held_row(&gW, v);
        for (int j = 0; j < P; j++) max_dW = fmax(max_dW, fabs(gw[j] - (ndW[(size_t)v * P + j] + (was ? 0.25 * (j + 1) : 0))));
        max_db = fmax(max_db, fabs(held_row(&gb, v)[0] - (ndb[v] + (was ? -0.5 : 0))));
    }
    print_message("full N=%d V=%d: max abs diff dx %.3g, dW %.3g, db %.3g\n", N, V, max_dx, max_dW, max_db);
    /* gradients are O(scale / N) per term; float GEMMs over V classes */
    assert_true(max_dx < 1e-6 * scale);
    assert_true(max_dW < 1e-6 * scale);
    assert_true(max_db < 1e-6 * scale);
    sparse_grad_free(&gW);
    sparse_grad_free(&gb);
    softmax_work_free(&work);
    free(x); free(W); free(b); free(dx); free(y); free(ndx); free(ndW); free(ndb);
}

static void test_full_matches_naive(void **state) {
    check_full_case(TN, TP, TV, 500, 0, 1.0);
    check_full_case(TN, TP, TV, 600, 1, 3.0);
    check_full_case(33, 17, 2500, 700, 1, 1.0); /* more than one scatter block */
}

/* N x V above the 2^26 logits of one chunk: the rows are processed in two chunks. */
static void test_full_chunked(void **state) { check_full_case(700, 3, 100000, 800, 0, 1.0); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampler_probability_and_expected_count),
        cmocka_unit_test(test_sampler_draw),
        cmocka_unit_test(test_accidental_hit_removed),
        cmocka_unit_test(test_loss_matches_naive),
        cmocka_unit_test(test_sampled_gradients_finite_differences),
        cmocka_unit_test(test_full_gradients_finite_differences),
        cmocka_unit_test(test_scale_multiplies_gradients),
        cmocka_unit_test(test_full_matches_naive),
        cmocka_unit_test(test_full_chunked),
    };
    return cmocka_run_group_tests_name("softmax", tests, NULL, NULL);
}
