/* lstm.c - see lstm.h. */
#include "lstm.h"

#include <math.h>
#include <string.h>

#include "linalg.h"
#include "mathfn.h"

LstmDims lstm_dims(const ElmoOptions *o) {
    LstmDims d = {
        .H = o->lstm_dim,
        .Hs = options_state_dim(o),
        .P = o->proj_dim,
        .in_dim = o->proj_dim,
        .has_proj = options_use_lstm_proj(o),
        .has_cell_clip = o->has_cell_clip,
        .has_proj_clip = o->has_proj_clip && options_use_lstm_proj(o), /* TF: only with num_proj */
        .cell_clip = o->cell_clip,
        .proj_clip = o->proj_clip,
    };
    return d;
}

static inline float clipf(float x, float limit) {
    x = x > limit ? limit : x;
    return x < -limit ? -limit : x;
}

void lstm_cell_step(float *restrict c, float *restrict m, const float *restrict z, const LstmDims *d) {
    const int H = d->H;
    const float *zi = z, *zj = z + H, *zf = z + 2 * H, *zo = z + 3 * H;
    const float limit = d->has_cell_clip ? d->cell_clip : INFINITY;
#pragma omp simd
    for (int k = 0; k < H; k++) {
        float cell = fast_sigmoidf(zf[k] + 1.0f) * c[k] + fast_sigmoidf(zi[k]) * fast_tanhf(zj[k]);
        cell = clipf(cell, limit);
        c[k] = cell;
        m[k] = fast_sigmoidf(zo[k]) * fast_tanhf(cell);
    }
}

void lstm_predict(float *out, float *c, float *h, float *gates, float *m, float *hp, const float *x,
                  const int *lengths, int B, int T, int skip, const LstmParams *p, const LstmDims *d) {
    const int H = d->H, Hs = d->Hs, P = d->P, in = d->in_dim, G = 4 * H;
    /* input half for every position at once */
    linear_forward(gates, x, p->W, p->B, B * T, in, G);
    const float *W_rec = p->W + (size_t)in * G;
    for (int t = 0; t < T; t++) {
        float *z = gates + (size_t)t * G; /* row b at z + b*T*G */
        gemm_nn(B, G, Hs, h, Hs, W_rec, G, 1.0f, z, T * G);
#pragma omp parallel for if ((long)B * H > 32768) schedule(static)
        for (int b = 0; b < B; b++)
            if (t < lengths[b]) lstm_cell_step(c + (size_t)b * H, m + (size_t)b * H, z + (size_t)b * T * G, d);
        const float *state = m;
        if (d->has_proj) {
            gemm_nn(B, P, H, m, H, p->W_P, P, 0.0f, hp, P);
            state = hp;
        }
        for (int b = 0; b < B; b++) {
            float *o = out + ((size_t)b * T + t) * P;
            if (t >= lengths[b]) {
                memset(o, 0, (size_t)P * sizeof *o);
                continue;
            }
            const float *s = state + (size_t)b * Hs;
            float *hb = h + (size_t)b * Hs;
            const float *xb = x + ((size_t)b * T + t) * in;
            for (int k = 0; k < Hs; k++) {
                float v = d->has_proj_clip ? clipf(s[k], d->proj_clip) : s[k];
                hb[k] = v;
                o[k] = skip ? v + xb[k] : v;
            }
        }
    }
}
