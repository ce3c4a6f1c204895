/* naive.c - see naive.h. */
#include "naive.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static double clip(double x, double limit) { return fmin(limit, fmax(-limit, x)); }

void naive_token_embedding(double *out, const int32_t *ids, const BilmModel *m) {
    const ElmoOptions *o = m->opt;
    const int C = o->max_chars, De = o->char_dim, F = o->total_filters, P = o->proj_dim;
    double *x = calloc((size_t)F, sizeof(double)), *y = calloc((size_t)F, sizeof(double));
    int f0 = 0;
    for (int k = 0; k < o->n_filter_kinds; k++) {
        const int w = o->filter_width[k], n = o->filter_count[k];
        for (int f = 0; f < n; f++) {
            double best = -INFINITY;
            for (int p = 0; p + w <= C; p++) {
                double s = m->conv[k].b[f];
                for (int j = 0; j < w; j++)
                    for (int e = 0; e < De; e++)
                        s += (double)m->char_embed[(size_t)ids[p + j] * De + e] * m->conv[k].W[((size_t)j * De + e) * n + f];
                best = fmax(best, s);
            }
            x[f0 + f] = o->activation == ELMO_ACT_RELU ? fmax(best, 0.0) : tanh(best);
        }
        f0 += n;
    }
    for (int i = 0; i < o->n_highway; i++) {
        const HighwayParams *h = &m->highway[i];
        for (int f = 0; f < F; f++) {
            double g = h->b_carry[f], t = h->b_transform[f];
            for (int k = 0; k < F; k++) {
                g += x[k] * h->W_carry[(size_t)k * F + f];
                t += x[k] * h->W_transform[(size_t)k * F + f];
            }
            g = sigmoid(g);
            t = fmax(t, 0.0);
            y[f] = g * t + (1.0 - g) * x[f];
        }
        memcpy(x, y, (size_t)F * sizeof(double));
    }
    for (int p = 0; p < P; p++) {
        if (!m->W_proj) {
            out[p] = x[p];
            continue;
        }
        double s = m->b_proj[p];
        for (int k = 0; k < F; k++) s += x[k] * m->W_proj[(size_t)k * P + p];
        out[p] = s;
    }
    free(x);
    free(y);
}

void naive_lstm(double *out, double *c, double *h, const double *x, const int *lengths, int B, int T, int skip,
                const LstmParams *p, const LstmDims *d, int *cell_clipped, int *proj_clipped) {
    const int H = d->H, Hs = d->Hs, P = d->P, in = d->in_dim, G = 4 * H;
    double *z = malloc((size_t)G * sizeof(double)), *m = malloc((size_t)H * sizeof(double));
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            double *ob = out + ((size_t)b * T + t) * P;
            if (lengths && t >= lengths[b]) {
                for (int k = 0; k < P; k++) ob[k] = 0;
                continue;
            }
            const double *xt = x + ((size_t)b * T + t) * in;
            double *cb = c + (size_t)b * H, *hb = h + (size_t)b * Hs;
            for (int g = 0; g < G; g++) {
                double s = p->B[g];
                for (int k = 0; k < in; k++) s += xt[k] * p->W[(size_t)k * G + g];
                for (int k = 0; k < Hs; k++) s += hb[k] * p->W[(size_t)(in + k) * G + g];
                z[g] = s;
            }
            /* gates in the order i, j, f, o; forget bias 1 */
            for (int k = 0; k < H; k++) {
                double cell = sigmoid(z[2 * H + k] + 1.0) * cb[k] + sigmoid(z[k]) * tanh(z[H + k]);
                if (d->has_cell_clip) {
                    if (cell_clipped) *cell_clipped += fabs(cell) > d->cell_clip;
                    cell = clip(cell, d->cell_clip);
                }
                cb[k] = cell;
                m[k] = sigmoid(z[3 * H + k]) * tanh(cell);
            }
            for (int k = 0; k < Hs; k++) {
                double v = m[k];
                if (d->has_proj) {
                    v = 0;
                    for (int j = 0; j < H; j++) v += m[j] * p->W_P[(size_t)j * P + k];
                    if (d->has_proj_clip) {
                        if (proj_clipped) *proj_clipped += fabs(v) > d->proj_clip;
                        v = clip(v, d->proj_clip);
                    }
                }
                hb[k] = v;
                ob[k] = skip ? v + xt[k] : v;
            }
        }
    free(z);
    free(m);
}
