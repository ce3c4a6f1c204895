/* remap.c - see remap.h. */
#include "remap.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "common.h"
#include "h5io.h"
#include "predictor.h"

/* tokens embedded per call */
#define EMBED_CHUNK 1024

/* The tokens of the file's softmax rows: its `vocab` dataset, or init_vocab's words. */
static int old_tokens(const char *path, hid_t file, const char *init_vocab, long rows, Vocab *out) {
    if (h5io_exists(file, "vocab")) {
        char **words;
        size_t n;
        if (h5io_read_strings(file, path, "vocab", &words, &n) < 0) return -1;
        int rc = 0;
        if ((long)n != rows) rc = elmo_fail("%s: vocab holds %zu tokens but softmax/W has %ld rows", path, n, rows);
        else vocab_from_words(out, (const char *const *)words, (int)n);
        h5io_free_strings(words, n);
        return rc;
    }
    if (!init_vocab)
        return elmo_fail("%s: its softmax has no stored vocabulary: name the vocabulary it was trained with "
                         "(--init-vocab FILE); rows are never matched by position", path);
    if (vocab_load(out, init_vocab, 0) < 0) return -1;
    if (out->size != rows) {
        vocab_free(out);
        return elmo_fail("%s has %ld tokens but the softmax of %s has %ld rows", init_vocab, (long)out->size, path, rows);
    }
    return 0;
}

/* Token embeddings (n, P) of the given words. */
static void embed_words(float *out, const BilmModel *m, char *const *words, const int *which, long n) {
    const ElmoOptions *o = m->opt;
    const int C = o->max_chars, F = o->total_filters, P = o->proj_dim;
    Predictor pred;
    predictor_init(&pred, m, 1);
    int32_t *ids = xmalloc((size_t)EMBED_CHUNK * C * sizeof(int32_t));
    float *feat[3];
    for (int i = 0; i < 3; i++) feat[i] = xmalloc_aligned((size_t)EMBED_CHUNK * F * sizeof(float));
    for (long start = 0; start < n; start += EMBED_CHUNK) {
        const int k = n - start < EMBED_CHUNK ? (int)(n - start) : EMBED_CHUNK;
        for (int i = 0; i < k; i++) chars_encode_prediction(words[which[start + i]], C, ids + (size_t)i * C);
        predictor_token_embeddings(&pred, out + (size_t)start * P, ids, k, feat[0], feat[1], feat[2]);
    }
    for (int i = 0; i < 3; i++) free(feat[i]);
    free(ids);
    predictor_free(&pred);
}

/* Solves G A = H for A (k x k by k x k, G symmetric positive definite) by Cholesky, in
 * place: H becomes A. Returns -1 when G is not positive definite. */
static int cholesky_solve(double *G, double *H, int k) {
    for (int j = 0; j < k; j++) {
        double d = G[(size_t)j * k + j];
        for (int p = 0; p < j; p++) d -= G[(size_t)j * k + p] * G[(size_t)j * k + p];
        if (!(d > 0)) return -1;
        d = sqrt(d);
        G[(size_t)j * k + j] = d;
        for (int i = j + 1; i < k; i++) {
            double s = G[(size_t)i * k + j];
            for (int p = 0; p < j; p++) s -= G[(size_t)i * k + p] * G[(size_t)j * k + p];
            G[(size_t)i * k + j] = s / d;
        }
    }
    for (int c = 0; c < k; c++) { /* L y = h, then L^T a = y, column by column */
        for (int i = 0; i < k; i++) {
            double s = H[(size_t)i * k + c];
            for (int p = 0; p < i; p++) s -= G[(size_t)i * k + p] * H[(size_t)p * k + c];
            H[(size_t)i * k + c] = s / G[(size_t)i * k + i];
        }
        for (int i = k - 1; i >= 0; i--) {
            double s = H[(size_t)i * k + c];
            for (int p = i + 1; p < k; p++) s -= G[(size_t)p * k + i] * H[(size_t)p * k + c];
            H[(size_t)i * k + c] = s / G[(size_t)i * k + i];
        }
    }
    return 0;
}

/* The rows [e, 1] (n x (P+1)) and [W row, b] in double, for rows[0..n). */
static void design_rows(double *X, double *Y, const float *emb, const float *W, const float *b, const int *rows,
                        long n, int P) {
    const int k = P + 1;
    for (long i = 0; i < n; i++) {
        for (int j = 0; j < P; j++) {
            X[(size_t)i * k + j] = emb[(size_t)i * P + j];
            if (Y) Y[(size_t)i * k + j] = W[(size_t)rows[i] * P + j];
        }
        X[(size_t)i * k + P] = 1.0;
        if (Y) Y[(size_t)i * k + P] = b[rows[i]];
    }
}

/* Predicts the new rows from the kept ones; 0 when fitted, 1 when the fit is not possible. */
static int fit_new_rows(BilmModel *m, const Vocab *vocab, const float *W, const float *b, const int *old_of,
                        SoftmaxRemap *r) {
    const int P = m->opt->proj_dim, k = P + 1, V = vocab->size;
    if (r->added == 0 || r->kept < 2L * k) return 1;
    int *kept_new = xmalloc((size_t)r->kept * sizeof(int)), *kept_old = xmalloc((size_t)r->kept * sizeof(int));
    int *added = xmalloc((size_t)(r->added ? r->added : 1) * sizeof(int));
    long nk = 0, na = 0;
    for (int i = 0; i < V; i++) {
        if (old_of[i] >= 0) {
            kept_new[nk] = i;
            kept_old[nk++] = old_of[i];
        } else {
            added[na++] = i;
        }
    }
    double *G = xcalloc((size_t)k * k, sizeof(double)), *H = xcalloc((size_t)k * k, sizeof(double));
    float *emb = xmalloc_aligned((size_t)EMBED_CHUNK * P * sizeof(float));
    double *X = xmalloc((size_t)EMBED_CHUNK * k * sizeof(double)), *Y = xmalloc((size_t)EMBED_CHUNK * k * sizeof(double));
    double y_norm = 0;
    /* normal equations, accumulated chunk by chunk: G = X^T X, H = X^T Y */
    for (long s = 0; s < nk; s += EMBED_CHUNK) {
        const long n = nk - s < EMBED_CHUNK ? nk - s : EMBED_CHUNK;
        embed_words(emb, m, vocab->words, kept_new + s, n);
        design_rows(X, Y, emb, W, b, kept_old + s, n, P);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, (int)n, 1.0, X, k, X, k, 1.0, G, k);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, (int)n, 1.0, X, k, Y, k, 1.0, H, k);
        for (size_t i = 0; i < (size_t)n * k; i++) y_norm += Y[i] * Y[i];
    }
    int rc = cholesky_solve(G, H, k); /* H is now the map A */
    if (rc == 0) {
        /* the residual over the kept rows, then the new rows */
        double res = 0;
        double *Z = xmalloc((size_t)EMBED_CHUNK * k * sizeof(double));
        for (long s = 0; s < nk; s += EMBED_CHUNK) {
            const long n = nk - s < EMBED_CHUNK ? nk - s : EMBED_CHUNK;
            embed_words(emb, m, vocab->words, kept_new + s, n);
            design_rows(X, Y, emb, W, b, kept_old + s, n, P);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, k, k, 1.0, X, k, H, k, 0.0, Z, k);
            for (size_t i = 0; i < (size_t)n * k; i++) res += (Z[i] - Y[i]) * (Z[i] - Y[i]);
        }
        r->residual = y_norm > 0 ? sqrt(res / y_norm) : 0;
        for (long s = 0; s < na; s += EMBED_CHUNK) {
            const long n = na - s < EMBED_CHUNK ? na - s : EMBED_CHUNK;
            embed_words(emb, m, vocab->words, added + s, n);
            design_rows(X, NULL, emb, NULL, NULL, NULL, n, P);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, k, k, 1.0, X, k, H, k, 0.0, Z, k);
            for (long i = 0; i < n; i++) {
                const int row = added[s + i];
                for (int j = 0; j < P; j++) m->softmax_W[(size_t)row * P + j] = (float)Z[(size_t)i * k + j];
                m->softmax_b[row] = (float)Z[(size_t)i * k + P];
            }
        }
        free(Z);
        r->fitted = 1;
    } else {
        elmo_note("softmax: the kept tokens' embeddings do not determine an affine map; new rows start fresh");
    }
    free(G);
    free(H);
    free(emb);
    free(X);
    free(Y);
    free(kept_new);
    free(kept_old);
    free(added);
    return rc == 0 ? 0 : 1;
}

/* The rows the file holds for the softmax: their tokens (*old), the tensors w_name (rows, P)
 * and b_name (rows) (the softmax, or its Adagrad accumulators), and *rows. */
static int read_old_rows(const char *path, const char *init_vocab, int P, const char *w_name, const char *b_name,
                         Vocab *old, float **W, float **b, long *rows) {
    *W = *b = NULL;
    hid_t file;
    if (h5io_open_read(path, &file) < 0) return -1;
    int rank;
    hsize_t dims[H5IO_MAX_RANK];
    int rc = h5io_shape(file, path, "softmax/W", &rank, dims);
    if (rc == 0 && (rank != 2 || dims[1] != (hsize_t)P)) rc = elmo_fail("%s: softmax/W is not (rows, %d)", path, P);
    if (rc == 0) {
        *rows = (long)dims[0];
        rc = old_tokens(path, file, init_vocab, *rows, old);
    }
    if (rc == 0) {
        *W = xmalloc_aligned((size_t)*rows * P * sizeof(float));
        *b = xmalloc((size_t)*rows * sizeof(float));
        hsize_t wd[2] = {(hsize_t)*rows, (hsize_t)P}, bd[1] = {(hsize_t)*rows};
        rc = h5io_read_weights(file, path, w_name, 2, wd, *W);
        if (rc == 0) rc = h5io_read_weights(file, path, b_name, 1, bd, *b);
    }
    H5Fclose(file);
    return rc;
}

/* For each token of vocab found in old: its row of W (P wide) and b copied into dst_W,
 * dst_b; old_of (may be NULL) receives the old row of each token, -1 for a new one.
 * Returns the tokens kept. */
static long copy_kept_rows(float *dst_W, float *dst_b, const float *W, const float *b, const Vocab *vocab,
                           const Vocab *old, int P, int *old_of) {
    long kept = 0;
    for (int i = 0; i < vocab->size; i++) {
        const int from = vocab_lookup(old, vocab->words[i]);
        if (old_of) old_of[i] = from;
        if (from < 0) continue;
        kept++;
        memcpy(dst_W + (size_t)i * P, W + (size_t)from * P, (size_t)P * sizeof(float));
        dst_b[i] = b[from];
    }
    return kept;
}

int remap_load_softmax(BilmModel *m, const char *path, const Vocab *vocab, const char *init_vocab, SoftmaxRemap *r) {
    memset(r, 0, sizeof *r);
    const int P = m->opt->proj_dim;
    CHECK(m->softmax_vocab == vocab->size, "the model's softmax has %ld rows, the vocabulary %d", m->softmax_vocab,
          vocab->size);
    Vocab old = {0};
    float *W, *b;
    long rows = 0;
    const int rc = read_old_rows(path, init_vocab, P, "softmax/W", "softmax/b", &old, &W, &b, &rows);
    if (rc == 0) {
        int *old_of = xmalloc((size_t)vocab->size * sizeof(int));
        r->kept = copy_kept_rows(m->softmax_W, m->softmax_b, W, b, vocab, &old, P, old_of);
        r->added = vocab->size - r->kept;
        r->dropped = rows - r->kept;
        fit_new_rows(m, vocab, W, b, old_of, r);
        free(old_of);
    }
    free(W);
    free(b);
    if (old.words) vocab_free(&old);
    return rc;
}

int remap_load_softmax_accumulators(const BilmModel *m, const char *path, const Vocab *vocab, const char *init_vocab,
                                    float *acc_W, float *acc_b) {
    const int P = m->opt->proj_dim;
    Vocab old = {0};
    float *W, *b;
    long rows = 0;
    const int rc = read_old_rows(path, init_vocab, P, "training/adagrad/softmax/W", "training/adagrad/softmax/b", &old,
                                 &W, &b, &rows);
    if (rc == 0) copy_kept_rows(acc_W, acc_b, W, b, vocab, &old, P, NULL);
    free(W);
    free(b);
    if (old.words) vocab_free(&old);
    return rc;
}

void remap_softmax_from_embeddings(BilmModel *m, const Vocab *vocab) {
    const int P = m->opt->proj_dim;
    int *all = xmalloc((size_t)vocab->size * sizeof(int));
    for (int i = 0; i < vocab->size; i++) all[i] = i;
    float *emb = xmalloc_aligned((size_t)EMBED_CHUNK * P * sizeof(float));
    for (long s = 0; s < vocab->size; s += EMBED_CHUNK) {
        const long n = vocab->size - s < EMBED_CHUNK ? vocab->size - s : EMBED_CHUNK;
        embed_words(emb, m, vocab->words, all + s, n);
        memcpy(m->softmax_W + (size_t)s * P, emb, (size_t)n * P * sizeof(float));
    }
    memset(m->softmax_b, 0, (size_t)vocab->size * sizeof(float));
    free(emb);
    free(all);
}

int remap_load_model(BilmModel *m, const ElmoOptions *o, const char *path, const Vocab *vocab,
                     const char *init_vocab) {
    model_init_layout(m, o, vocab->size);
    SoftmaxRemap remap;
    if (model_load_bilm(m, path) < 0 || remap_load_softmax(m, path, vocab, init_vocab, &remap) < 0) return -1;
    if (remap.added || remap.dropped) {
        char line[256];
        elmo_note("%s: %s", path, remap_describe(&remap, line, sizeof line));
    }
    return 0;
}

const char *remap_describe(const SoftmaxRemap *r, char *buf, size_t size) {
    char fit[96];
    if (r->added == 0) snprintf(fit, sizeof fit, "none");
    else if (r->fitted) snprintf(fit, sizeof fit, "predicted from their token embeddings, relative residual %.3g", r->residual);
    else snprintf(fit, sizeof fit, "freshly initialised: too few kept tokens for the fit");
    snprintf(buf, size, "softmax rows matched by token: %ld kept, %ld new (%s), %ld dropped", r->kept, r->added, fit,
             r->dropped);
    return buf;
}
