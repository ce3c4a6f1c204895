/* charcnn.c - see charcnn.h. */
#include "charcnn.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "common.h"
#include "linalg.h"

#define CHARCNN_CHUNK 32

void charcnn_work_carve(CharCnnWork *w, Arena *a, const ElmoOptions *o) {
    const int C = o->max_chars, De = o->char_dim;
    int max_w = 1, max_n = 1;
    for (int k = 0; k < o->n_filter_kinds; k++) {
        if (o->filter_width[k] > max_w) max_w = o->filter_width[k];
        if (o->filter_count[k] > max_n) max_n = o->filter_count[k];
    }
    w->chunk = CHARCNN_CHUNK;
    w->n_threads = omp_get_max_threads();
    w->emb_stride = (size_t)w->chunk * C * De;
    w->unfold_stride = (size_t)w->chunk * C * max_w * De;
    w->conv_stride = (size_t)w->chunk * C * max_n;
    w->emb = arena_floats(a, w->n_threads * w->emb_stride);
    w->unfold = arena_floats(a, w->n_threads * w->unfold_stride);
    w->conv = arena_floats(a, w->n_threads * w->conv_stride);
    w->row_start = arena_ints(a, (size_t)w->n_threads * (w->chunk + 1));
    w->pad_value = arena_floats(a, (size_t)o->total_filters);
    w->weight_floats = 0;
    for (int k = 0; k < o->n_filter_kinds; k++) w->weight_floats += (size_t)o->filter_width[k] * De * o->filter_count[k];
    w->dweights = arena_floats(a, (size_t)w->n_threads * w->weight_floats);
    w->dtable = arena_floats(a, (size_t)w->n_threads * (CHAR_TABLE_ROWS + 1) * De);
}

static inline float activate(ElmoActivation act, float x) {
    return act == ELMO_ACT_RELU ? (x > 0.0f ? x : 0.0f) : tanhf(x);
}

/* Index of the first window made only of padding: the start of the token's trailing
 * run of pad_id (C when the last character is not padding). */
static int padding_start(const int32_t *ids, int C, int pad_id) {
    int q = C;
    while (q > 0 && ids[q - 1] == pad_id) q--;
    return q;
}

/* The convolution of a window of w padding characters, before the bias. */
static void compute_pad_values(float *pad_value, const float *table, int pad_id, const BilmModel *m) {
    const ElmoOptions *o = m->opt;
    const int De = o->char_dim;
    const float *e = table + (size_t)pad_id * De;
    int f0 = 0;
    for (int k = 0; k < o->n_filter_kinds; k++) {
        const ConvParams *cp = &m->conv[k];
        for (int f = 0; f < cp->count; f++) {
            double s = 0;
            for (int j = 0; j < cp->width; j++)
                for (int d = 0; d < De; d++) s += (double)e[d] * cp->W[((size_t)j * De + d) * cp->count + f];
            pad_value[f0 + f] = (float)s;
        }
        f0 += cp->count;
    }
}

/* emb (n_tok, C, De): the table row of every character of the chunk's tokens. */
static void gather_characters(float *emb, const int32_t *ids, int n_tok, const float *table, int C, int De) {
    for (size_t i = 0; i < (size_t)n_tok * C; i++) memcpy(emb + i * De, table + (size_t)ids[i] * De, De * sizeof(float));
}

static void forward_chunk(float *out, int32_t *argmax, const int32_t *ids, int n_tok, const float *table,
                          int pad_id, const BilmModel *m, const CharCnnWork *w, int thread) {
    const ElmoOptions *o = m->opt;
    const int C = o->max_chars, De = o->char_dim, F = o->total_filters;
    float *emb = w->emb + thread * w->emb_stride;
    float *unfold = w->unfold + thread * w->unfold_stride;
    float *conv = w->conv + thread * w->conv_stride;
    int *row_start = w->row_start + (size_t)thread * (w->chunk + 1);
    int pad_start[CHARCNN_CHUNK];

    gather_characters(emb, ids, n_tok, table, C, De);
    for (int i = 0; i < n_tok; i++) pad_start[i] = padding_start(ids + (size_t)i * C, C, pad_id);
    int f0 = 0;
    for (int k = 0; k < o->n_filter_kinds; k++) {
        const ConvParams *cp = &m->conv[k];
        const int width = cp->width, n = cp->count, K = width * De, n_pos = C - width + 1;
        /* unfold the windows that contain at least one real character */
        int rows = 0;
        for (int i = 0; i < n_tok; i++) {
            row_start[i] = rows;
            int count = pad_start[i] < n_pos ? pad_start[i] : n_pos;
            if (count == 0) count = 1; /* an all-padding token still has window 0 */
            memcpy(unfold + (size_t)rows * K, emb + (size_t)i * C * De, (size_t)K * sizeof(float));
            for (int p = 1; p < count; p++)
                memcpy(unfold + (size_t)(rows + p) * K, emb + ((size_t)i * C + p) * De, (size_t)K * sizeof(float));
            rows += count;
        }
        row_start[n_tok] = rows;
        gemm_nn(rows, n, K, unfold, K, cp->W, n, 0.0f, conv, n);
        for (int i = 0; i < n_tok; i++) {
            const int r0 = row_start[i], count = row_start[i + 1] - r0;
            const int has_pad_window = pad_start[i] < n_pos && pad_start[i] >= count;
            float *y = out + (size_t)i * F + f0;
            for (int f = 0; f < n; f++) {
                float best = -FLT_MAX;
                int best_p = 0;
                for (int p = 0; p < count; p++) {
                    float v = conv[(size_t)(r0 + p) * n + f];
                    if (v > best) { best = v; best_p = p; }
                }
                if (has_pad_window && w->pad_value[f0 + f] > best) {
                    best = w->pad_value[f0 + f];
                    best_p = pad_start[i];
                }
                y[f] = activate(o->activation, best + cp->b[f]);
                if (argmax) argmax[(size_t)i * F + f0 + f] = best_p;
            }
        }
        f0 += n;
    }
}

void charcnn_forward(float *out, int32_t *argmax, const int32_t *ids, int N, const float *table, int pad_id,
                     const BilmModel *m, CharCnnWork *w) {
    const int C = m->opt->max_chars, F = m->opt->total_filters;
    compute_pad_values(w->pad_value, table, pad_id, m);
    const int n_chunks = (N + w->chunk - 1) / w->chunk;
#pragma omp parallel for schedule(dynamic, 1) if (n_chunks > 1) num_threads(w->n_threads)
    for (int c = 0; c < n_chunks; c++) {
        const int start = c * w->chunk;
        const int n_tok = N - start < w->chunk ? N - start : w->chunk;
        forward_chunk(out + (size_t)start * F, argmax ? argmax + (size_t)start * F : NULL, ids + (size_t)start * C,
                      n_tok, table, pad_id, m, w, omp_get_thread_num());
    }
}

/* Backward of one chunk of tokens, into this thread's partial gradients. Per filter, the
 * windows up to the last winning one are unfolded again (U); dconv holds each token's
 * gradient at its winning window and zeros elsewhere; then dW += U^T dconv and
 * dU = dconv W^T, whose rows are added back onto the characters of their windows. */
static void backward_chunk(float *dW, float *dtab, const float *dpre, const int32_t *argmax, const int32_t *ids,
                           int n_tok, const float *table, const BilmModel *m, const CharCnnWork *w, int thread) {
    const ElmoOptions *o = m->opt;
    const int C = o->max_chars, De = o->char_dim, F = o->total_filters;
    float *emb = w->emb + thread * w->emb_stride;
    float *unfold = w->unfold + thread * w->unfold_stride;
    float *dconv = w->conv + thread * w->conv_stride;
    int *row_start = w->row_start + (size_t)thread * (w->chunk + 1);
    gather_characters(emb, ids, n_tok, table, C, De);
    int f0 = 0;
    for (int k = 0; k < o->n_filter_kinds; k++) {
        const ConvParams *cp = &m->conv[k];
        const int width = cp->width, n = cp->count, K = width * De;
        int rows = 0;
        for (int i = 0; i < n_tok; i++) {
            row_start[i] = rows;
            int last = 0;
            for (int f = 0; f < n; f++)
                if (argmax[(size_t)i * F + f0 + f] > last) last = argmax[(size_t)i * F + f0 + f];
            for (int p = 0; p <= last; p++)
                memcpy(unfold + (size_t)(rows + p) * K, emb + ((size_t)i * C + p) * De, (size_t)K * sizeof(float));
            rows += last + 1;
        }
        row_start[n_tok] = rows;
        memset(dconv, 0, (size_t)rows * n * sizeof(float));
        for (int i = 0; i < n_tok; i++)
            for (int f = 0; f < n; f++) {
                const size_t at = (size_t)i * F + f0 + f;
                dconv[(size_t)(row_start[i] + argmax[at]) * n + f] = dpre[at];
            }
        gemm_tn(K, n, rows, unfold, K, dconv, n, 1.0f, dW, n);
        gemm_nt(rows, K, n, dconv, n, cp->W, n, 0.0f, unfold, K); /* unfold now holds dU */
        for (int i = 0; i < n_tok; i++) {
            const int32_t *tid = ids + (size_t)i * C;
            for (int p = 0; p < row_start[i + 1] - row_start[i]; p++) {
                const float *du = unfold + (size_t)(row_start[i] + p) * K;
                for (int j = 0; j < width; j++) {
                    float *dt = dtab + (size_t)tid[p + j] * De;
                    for (int c = 0; c < De; c++) dt[c] += du[j * De + c];
                }
            }
        }
        dW += (size_t)K * n;
        f0 += n;
    }
}

void charcnn_backward(BilmModel *grad, float *dtable, float *dpre, const float *dout, const float *out,
                      const int32_t *argmax, const int32_t *ids, int N, const float *table, const BilmModel *m,
                      CharCnnWork *w) {
    const ElmoOptions *o = m->opt;
    const int C = o->max_chars, De = o->char_dim, F = o->total_filters;
    const long NF = (long)N * F;
    /* through the activation: y = act(max + b) */
#pragma omp parallel for simd if (NF > 65536) schedule(static)
    for (long i = 0; i < NF; i++)
        dpre[i] = o->activation == ELMO_ACT_RELU ? (out[i] > 0.0f ? dout[i] : 0.0f) : dout[i] * (1.0f - out[i] * out[i]);
    int f0 = 0;
    for (int k = 0; k < o->n_filter_kinds; k++) {
        add_column_sums(grad->conv[k].b, dpre + f0, N, m->conv[k].count, F);
        f0 += m->conv[k].count;
    }

    /* chunks statically split between threads, each with its own partial gradients, summed
     * in thread order: the same result for the same thread count, bit for bit */
    const size_t table_floats = (size_t)(CHAR_TABLE_ROWS + 1) * De;
    memset(w->dtable, 0, (size_t)w->n_threads * table_floats * sizeof(float));
    memset(w->dweights, 0, (size_t)w->n_threads * w->weight_floats * sizeof(float));
    const int n_chunks = (N + w->chunk - 1) / w->chunk;
#pragma omp parallel for schedule(static) if (n_chunks > 1) num_threads(w->n_threads)
    for (int c = 0; c < n_chunks; c++) {
        const int thread = omp_get_thread_num(), start = c * w->chunk;
        const int n_tok = N - start < w->chunk ? N - start : w->chunk;
        backward_chunk(w->dweights + (size_t)thread * w->weight_floats, w->dtable + (size_t)thread * table_floats,
                       dpre + (size_t)start * F, argmax + (size_t)start * F, ids + (size_t)start * C, n_tok, table, m,
                       w, thread);
    }
    for (int t = 0; t < w->n_threads; t++) {
        const float *dW = w->dweights + (size_t)t * w->weight_floats;
        for (int k = 0; k < o->n_filter_kinds; k++) {
            const size_t size = (size_t)m->conv[k].width * De * m->conv[k].count;
            float *g = grad->conv[k].W;
            for (size_t i = 0; i < size; i++) g[i] += dW[i];
            dW += size;
        }
        const float *dtab = w->dtable + (size_t)t * table_floats;
        for (size_t r = 0; r < (size_t)CHAR_TABLE_ROWS * De; r++) dtable[r] += dtab[r];
    }
}

void charcnn_forward_reference(float *out, int32_t *argmax, const int32_t *ids, int N, const float *table,
                               const BilmModel *m) {
    const ElmoOptions *o = m->opt;
    const int C = o->max_chars, De = o->char_dim, F = o->total_filters;
    for (int i = 0; i < N; i++) {
        int f0 = 0;
        for (int k = 0; k < o->n_filter_kinds; k++) {
            const ConvParams *cp = &m->conv[k];
            for (int f = 0; f < cp->count; f++) {
                double best = -INFINITY;
                int best_p = 0;
                for (int p = 0; p + cp->width <= C; p++) {
                    double s = 0;
                    for (int j = 0; j < cp->width; j++)
                        for (int d = 0; d < De; d++)
                            s += (double)table[(size_t)ids[(size_t)i * C + p + j] * De + d] *
                                 cp->W[((size_t)j * De + d) * cp->count + f];
                    if (s > best) { best = s; best_p = p; }
                }
                out[(size_t)i * F + f0 + f] = activate(o->activation, (float)best + cp->b[f]);
                if (argmax) argmax[(size_t)i * F + f0 + f] = best_p;
            }
            f0 += cp->count;
        }
    }
}
