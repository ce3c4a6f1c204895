/* softmax.c - see softmax.h.
 *
 * Sampled softmax, one call (N rows, S samples, width P):
 *   gather   W_rows (S, P) = W[ids], b_rows = b[ids], log q(ids)
 *   GEMM     logits (N, S) = x . W_rows^T
 *   rows     bias, accidental hits, -log q, softmax with the true logit as class 0
 *            (in place: logits becomes dlogits of the sampled classes)
 *   GEMM     dx (N, P) = dlogits . W_rows, plus the true class row by row
 *   GEMM     dlogits_W (S, P) = dlogits^T . x, scattered into gW; column sums into gb
 * Layout of work->logits for the sampled softmax: (N, S) sampled logits, then (N) true
 * logits / their dlogits, then (N) per-row losses. For the full softmax: (R, V) logits
 * of a chunk of R rows, then (R) per-row losses.
 */
#include "softmax.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "linalg.h"
#include "mathfn.h"

/* The full softmax computes at most this many logits at once (256 MB). */
#define FULL_CHUNK_FLOATS ((size_t)1 << 26)
/* Rows of W per scatter block in the full softmax backward. */
#define FULL_SCATTER_ROWS 2048

/* ------------------------------------------------------------------ sampler */

/* Slots of the hash set: the smallest power of two >= 2S (at least 16). */
static int table_bits(int S) {
    int bits = 4;
    while (((int64_t)1 << bits) < 2 * (int64_t)S) bits++;
    return bits;
}

void sample_set_init(SampleSet *s, int S, int V) {
    CHECK(S >= 1 && S <= V, "S = %d, V = %d", S, V);
    memset(s, 0, sizeof *s);
    s->S = S;
    s->V = V;
    s->ids = xmalloc((size_t)S * sizeof *s->ids);
    s->expected = xmalloc((size_t)S * sizeof *s->expected);
    s->table = xmalloc(((size_t)1 << table_bits(S)) * sizeof *s->table);
}

void sample_set_free(SampleSet *s) {
    free(s->ids);
    free(s->expected);
    free(s->table);
    memset(s, 0, sizeof *s);
}

void sampler_draw(SampleSet *s, Rng *rng) {
    const int S = s->S, V = s->V;
    CHECK(S >= 1 && S <= V && s->table, "S = %d, V = %d (set not from sample_set_init?)", S, V);
    const int bits = table_bits(S);
    const uint32_t mask = ((uint32_t)1 << bits) - 1;
    int32_t *table = s->table; /* open addressing, linear probing, -1 = empty */
    memset(table, 0xff, ((size_t)1 << bits) * sizeof *table);
    const double log_range = log(V + 1.0);
    long tries = 0;
    int n = 0;
    /* S distinct ids of a log-uniform draw come far sooner; only a broken generator (an
     * all-zero state, refused when a checkpoint is loaded) could go on forever */
    const long max_tries = 1000L * S + 1000000L;
    while (n < S) {
        CHECK(tries < max_tries, "sampler_draw: %d distinct of %d ids not drawn in %ld tries (generator broken?)", S, V,
              tries);
        double u = rng_uniform(rng);
        int32_t k = (int32_t)(((int64_t)floor(exp(u * log_range)) - 1) % V);
        tries++;
        uint32_t h = ((uint32_t)k * 0x9e3779b1u) >> (32 - bits);
        while (table[h] >= 0 && table[h] != k) h = (h + 1) & mask;
        if (table[h] < 0) {
            table[h] = k;
            s->ids[n++] = k;
        }
    }
    s->tries = tries;
    for (int i = 0; i < S; i++) s->expected[i] = sampler_expected_count(s->ids[i], tries, S, V);
}

float sampler_probability(int32_t k, int V) {
    return (float)(log((k + 2.0) / (k + 1.0)) / log(V + 1.0));
}

float sampler_expected_count(int32_t k, long tries, int S, int V) {
    float p = sampler_probability(k, V);
    if (tries == S) return p * (float)S;
    return -expm1f((float)tries * log1pf(-p));
}

/* ------------------------------------------------------------------ helpers */

void softmax_work_free(SoftmaxWork *w) {
    free(w->logits);
    free(w->W_rows);
    free(w->b_rows);
    free(w->dlogits_W);
    memset(w, 0, sizeof *w);
}

size_t softmax_scratch_bytes(SoftmaxScratch s) {
    return (s.logits + 2 * (size_t)s.rows * s.cols + 2 * (size_t)s.rows) * sizeof(float);
}

size_t softmax_work_bytes(const SoftmaxWork *w) {
    return softmax_scratch_bytes((SoftmaxScratch){w->cap_logits, w->cap_rows, w->cap_cols});
}

/* Rows of a chunk of the full softmax (R in softmax_full) and of a scatter block (VB). */
static int full_chunk_rows(int N, int V) {
    const size_t rows = FULL_CHUNK_FLOATS / (size_t)V;
    return rows < 1 ? 1 : rows > (size_t)N ? N : (int)rows;
}

static int full_scatter_rows(int V) { return V < FULL_SCATTER_ROWS ? V : FULL_SCATTER_ROWS; }

SoftmaxScratch softmax_sampled_scratch(int N, int P, int S) {
    return (SoftmaxScratch){(size_t)N * S + 2 * (size_t)N, S, P};
}

SoftmaxScratch softmax_full_scratch(int N, int P, int V, int backward) {
    const int R = full_chunk_rows(N, V);
    return (SoftmaxScratch){(size_t)R * V + R, backward ? full_scatter_rows(V) : 0, backward ? P : 0};
}

static void grow_logits(SoftmaxWork *w, size_t n) {
    if (n <= w->cap_logits) return;
    free(w->logits);
    w->logits = xmalloc_aligned(n * sizeof(float));
    w->cap_logits = n;
}

/* W_rows and dlogits_W for `rows` rows of width `cols`, b_rows for 2 x `rows`. */
static void grow_gather(SoftmaxWork *w, int rows, int cols) {
    if (rows <= w->cap_rows && cols <= w->cap_cols) return;
    int r = rows > w->cap_rows ? rows : w->cap_rows, c = cols > w->cap_cols ? cols : w->cap_cols;
    free(w->W_rows);
    free(w->dlogits_W);
    free(w->b_rows);
    w->W_rows = xmalloc_aligned((size_t)r * c * sizeof(float));
    w->dlogits_W = xmalloc_aligned((size_t)r * c * sizeof(float));
    w->b_rows = xmalloc_aligned((size_t)2 * r * sizeof(float));
    w->cap_rows = r;
    w->cap_cols = c;
}

static inline float dotf(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* l[i] = exp(l[i] - mx) for i < n; returns their sum (the softmax denominator). */
static float exponentiate(float *l, int n, float mx) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < n; i++) {
        const float e = fast_expf(l[i] - mx);
        l[i] = e;
        sum += e;
    }
    return sum;
}

static void check_grads(const SparseGrad *gW, const SparseGrad *gb, int P, int V) {
    CHECK(gW && gb, "gradients needed with dx");
    CHECK(gW->width == P && gW->n_total_rows == V, "gW is (%ld, %d), W is (%d, %d)", gW->n_total_rows,
          gW->width, V, P);
    CHECK(gb->width == 1 && gb->n_total_rows == V, "gb is (%ld, %d), b is (%d)", gb->n_total_rows, gb->width, V);
}

/* ------------------------------------------------------------------ sampled softmax */

double softmax_sampled(float *dx, SparseGrad *gW, SparseGrad *gb, const float *x, const int32_t *targets, int N,
                       const float *W, const float *b, int P, const SampleSet *samples, float scale,
                       SoftmaxWork *work) {
    const int S = samples->S, V = samples->V;
    const long tries = samples->tries;
    const int32_t *ids = samples->ids;
    CHECK(N >= 1 && P >= 1 && S >= 1 && S <= V, "N = %d, P = %d, S = %d, V = %d", N, P, S, V);
    for (int n = 0; n < N; n++) CHECK(targets[n] >= 0 && targets[n] < V, "target %d of %d", targets[n], V);
    if (dx) check_grads(gW, gb, P, V);

    const SoftmaxScratch need = softmax_sampled_scratch(N, P, S);
    grow_gather(work, need.rows, need.cols);
    grow_logits(work, need.logits);
    float *W_rows = work->W_rows, *b_s = work->b_rows, *logq_s = work->b_rows + S;
    float *L = work->logits, *L_true = L + (size_t)N * S, *row_loss = L_true + N;

#pragma omp parallel for schedule(static) if ((long)S * P > 65536)
    for (int i = 0; i < S; i++) {
        CHECK(ids[i] >= 0 && ids[i] < V, "sample %d of %d", ids[i], V);
        memcpy(W_rows + (size_t)i * P, W + (size_t)ids[i] * P, (size_t)P * sizeof(float));
        b_s[i] = b[ids[i]];
        logq_s[i] = logf(samples->expected[i]);
    }

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, S, P, 1.0f, x, P, W_rows, P, 0.0f, L, S);

    /* Per row: the logits in TF's order ((x.w + b) + hit mask) - log q, then softmax. */
    const float g = scale / (float)N;
    const int backward = dx != NULL;
#pragma omp parallel for schedule(static) if ((long)N * S > 32768)
    for (int n = 0; n < N; n++) {
        const int32_t y = targets[n];
        float *l = L + (size_t)n * S;
        float t = dotf(x + (size_t)n * P, W + (size_t)y * P, P) + b[y];
        t = t - logf(sampler_expected_count(y, tries, S, V));
        float mx = t;
#pragma omp simd reduction(max : mx)
        for (int i = 0; i < S; i++) {
            float v = l[i] + b_s[i];
            v = ids[i] == y ? v + -FLT_MAX : v; /* accidental hit: probability 0 */
            v = v - logq_s[i];
            l[i] = v;
            mx = v > mx ? v : mx;
        }
        const float e_true = fast_expf(t - mx);
        const float sum = exponentiate(l, S, mx) + e_true;
        row_loss[n] = (float)((double)mx - (double)t + log((double)sum));
        if (backward) {
            const float r = g / sum;
#pragma omp simd
            for (int i = 0; i < S; i++) l[i] *= r;
            L_true[n] = e_true * r - g;
        }
    }
    double total = 0.0;
    for (int n = 0; n < N; n++) total += row_loss[n];
    if (!backward) return total / N;

    /* dx = dlogits . W_rows + dlogit_true * W[y] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, P, S, 1.0f, L, S, W_rows, P, 0.0f, dx, P);
#pragma omp parallel for schedule(static) if ((long)N * P > 65536)
    for (int n = 0; n < N; n++) {
        float *d = dx + (size_t)n * P;
        const float *w = W + (size_t)targets[n] * P;
        const float c = L_true[n];
#pragma omp simd
        for (int j = 0; j < P; j++) d[j] += c * w[j];
    }

    /* dW of the sampled rows = dlogits^T . x, db = column sums of dlogits */
    float *dW_s = work->dlogits_W, *db_s = b_s;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, P, N, 1.0f, L, S, x, P, 0.0f, dW_s, P);
    memset(db_s, 0, (size_t)S * sizeof(float));
    add_column_sums(db_s, L, N, S, S);

    /* Touch every row first (this may move gW->grad), then add: the ids are distinct, so
     * the parallel adds write distinct rows, and sparse_grad_row only reads held rows. */
    for (int i = 0; i < S; i++) {
        sparse_grad_row(gW, ids[i]);
        sparse_grad_row(gb, ids[i]);
    }
    for (int n = 0; n < N; n++) {
        sparse_grad_row(gW, targets[n]);
        sparse_grad_row(gb, targets[n]);
    }
#pragma omp parallel for schedule(static) if ((long)S * P > 65536)
    for (int i = 0; i < S; i++) {
        float *gw = sparse_grad_row(gW, ids[i]);
        const float *d = dW_s + (size_t)i * P;
#pragma omp simd
        for (int j = 0; j < P; j++) gw[j] += d[j];
        sparse_grad_row(gb, ids[i])[0] += db_s[i];
    }
    /* the true classes (targets repeat: serial) */
    for (int n = 0; n < N; n++) {
        float *gw = sparse_grad_row(gW, targets[n]);
        const float *xn = x + (size_t)n * P;
        const float c = L_true[n];
#pragma omp simd
        for (int j = 0; j < P; j++) gw[j] += c * xn[j];
        sparse_grad_row(gb, targets[n])[0] += c;
    }
    return total / N;
}

/* ------------------------------------------------------------------ full softmax */

double softmax_full(float *dx, SparseGrad *gW, SparseGrad *gb, const float *x, const int32_t *targets, int N,
                    const float *W, const float *b, int P, int V, float scale, SoftmaxWork *work) {
    CHECK(N >= 1 && P >= 1 && V >= 1, "N = %d, P = %d, V = %d", N, P, V);
    for (int n = 0; n < N; n++) CHECK(targets[n] >= 0 && targets[n] < V, "target %d of %d", targets[n], V);
    const int backward = dx != NULL;
    const SoftmaxScratch need = softmax_full_scratch(N, P, V, backward);
    const int R = full_chunk_rows(N, V);
    grow_logits(work, need.logits);
    float *L = work->logits, *row_loss = L + (size_t)R * V;
    const int VB = full_scatter_rows(V);
    if (backward) {
        check_grads(gW, gb, P, V);
        grow_gather(work, need.rows, need.cols);
        for (int v = 0; v < V; v++) { /* every row, in order; may move gW->grad */
            sparse_grad_row(gW, v);
            sparse_grad_row(gb, v);
        }
    }
    const float g = scale / (float)N;
    double total = 0.0;
    for (int n0 = 0; n0 < N; n0 += R) {
        const int rn = N - n0 < R ? N - n0 : R;
        const float *xc = x + (size_t)n0 * P;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rn, V, P, 1.0f, xc, P, W, P, 0.0f, L, V);
#pragma omp parallel for schedule(static) if ((long)rn * V > 32768)
        for (int r = 0; r < rn; r++) {
            float *l = L + (size_t)r * V;
            const int32_t y = targets[n0 + r];
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int v = 0; v < V; v++) {
                float z = l[v] + b[v];
                l[v] = z;
                mx = z > mx ? z : mx;
            }
            const float t = l[y];
            const float sum = exponentiate(l, V, mx);
            row_loss[r] = (float)((double)mx - (double)t + log((double)sum));
            if (backward) {
                const float s = g / sum;
#pragma omp simd
                for (int v = 0; v < V; v++) l[v] *= s;
                l[y] -= g;
            }
        }
        for (int r = 0; r < rn; r++) total += row_loss[r];
        if (!backward) continue;

        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rn, P, V, 1.0f, L, V, W, P, 0.0f,
                    dx + (size_t)n0 * P, P);
        for (int v0 = 0; v0 < V; v0 += VB) {
            const int vn = V - v0 < VB ? V - v0 : VB;
            float *dW_blk = work->dlogits_W, *db_blk = work->b_rows;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, vn, P, rn, 1.0f, L + v0, V, xc, P, 0.0f, dW_blk,
                        P);
            memset(db_blk, 0, (size_t)vn * sizeof(float));
            add_column_sums(db_blk, L + v0, rn, vn, V);
#pragma omp parallel for schedule(static) if ((long)vn * P > 65536)
            for (int j = 0; j < vn; j++) {
                float *gw = sparse_grad_row(gW, v0 + j);
                const float *d = dW_blk + (size_t)j * P;
#pragma omp simd
                for (int k = 0; k < P; k++) gw[k] += d[k];
                sparse_grad_row(gb, v0 + j)[0] += db_blk[j];
            }
        }
    }
    return total / N;
}
