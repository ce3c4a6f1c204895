/* lstm.c - see lstm.h. */
#include "lstm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
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

/* A zeroed buffer of n floats; *bytes counts what was allocated. */
static float *alloc_floats(size_t n, size_t *bytes) {
    *bytes += n * sizeof(float);
    return xcalloc(n, sizeof(float));
}

size_t lstm_cache_init(LstmCache *c, int B, int T, const LstmDims *d) {
    const size_t n = (size_t)B * T;
    size_t bytes = 0;
    c->gates = alloc_floats(n * 4 * d->H, &bytes);
    c->c_pre = alloc_floats(n * d->H, &bytes);
    c->c = alloc_floats(n * d->H, &bytes);
    c->m = alloc_floats(n * d->H, &bytes);
    c->h_pre = alloc_floats(n * d->Hs, &bytes);
    c->h = alloc_floats(n * d->Hs, &bytes);
    c->c0 = alloc_floats((size_t)B * d->H, &bytes);
    c->h0 = alloc_floats((size_t)B * d->Hs, &bytes);
    return bytes;
}

void lstm_cache_free(LstmCache *c) {
    free(c->gates);
    free(c->c_pre);
    free(c->c);
    free(c->m);
    free(c->h_pre);
    free(c->h);
    free(c->c0);
    free(c->h0);
}

size_t lstm_back_work_init(LstmBackWork *w, int B, int T, const LstmDims *d) {
    const size_t n = (size_t)B * T;
    size_t bytes = 0;
    w->dz = alloc_floats(n * 4 * d->H, &bytes);
    w->dh_pre = alloc_floats(n * d->Hs, &bytes);
    w->h_prev = alloc_floats(n * d->Hs, &bytes);
    w->dh = alloc_floats((size_t)B * d->Hs, &bytes);
    w->dc = alloc_floats((size_t)B * d->H, &bytes);
    w->dm = alloc_floats((size_t)B * d->H, &bytes);
    return bytes;
}

void lstm_back_work_free(LstmBackWork *w) {
    free(w->dz);
    free(w->dh_pre);
    free(w->h_prev);
    free(w->dh);
    free(w->dc);
    free(w->dm);
}

/* One position's gates and cell, keeping the activations (training). */
static void cell_step_train(float *restrict gates, float *restrict c_pre, float *restrict c, float *restrict m,
                            const float *restrict c_prev, const LstmDims *d) {
    const int H = d->H;
    const float limit = d->has_cell_clip ? d->cell_clip : INFINITY;
#pragma omp simd
    for (int k = 0; k < H; k++) {
        const float i = fast_sigmoidf(gates[k]), j = fast_tanhf(gates[H + k]);
        const float f = fast_sigmoidf(gates[2 * H + k] + 1.0f), o = fast_sigmoidf(gates[3 * H + k]);
        const float cell = f * c_prev[k] + i * j;
        const float clipped = clipf(cell, limit);
        gates[k] = i;
        gates[H + k] = j;
        gates[2 * H + k] = f;
        gates[3 * H + k] = o;
        c_pre[k] = cell;
        c[k] = clipped;
        m[k] = o * fast_tanhf(clipped);
    }
}

void lstm_train_forward(float *out, float *c_final, float *h_final, LstmCache *cache, const float *x,
                        const float *c0, const float *h0, int B, int T, int skip, const LstmParams *p,
                        const LstmDims *d) {
    const int H = d->H, Hs = d->Hs, P = d->P, in = d->in_dim, G = 4 * H;
    memcpy(cache->c0, c0, (size_t)B * H * sizeof(float));
    memcpy(cache->h0, h0, (size_t)B * Hs * sizeof(float));
    linear_forward(cache->gates, x, p->W, p->B, B * T, in, G);
    const float *W_rec = p->W + (size_t)in * G;
    for (int t = 0; t < T; t++) {
        const float *h_prev = t == 0 ? cache->h0 : cache->h + (size_t)(t - 1) * Hs;
        const int ld_prev = t == 0 ? Hs : T * Hs;
        float *z = cache->gates + (size_t)t * G;
        gemm_nn(B, G, Hs, h_prev, ld_prev, W_rec, G, 1.0f, z, T * G);
#pragma omp parallel for if ((long)B * H > 32768) schedule(static)
        for (int b = 0; b < B; b++) {
            const size_t pos = (size_t)b * T + t;
            const float *c_prev = t == 0 ? cache->c0 + (size_t)b * H : cache->c + (pos - 1) * H;
            cell_step_train(cache->gates + pos * G, cache->c_pre + pos * H, cache->c + pos * H, cache->m + pos * H,
                            c_prev, d);
        }
        if (d->has_proj)
            gemm_nn(B, P, H, cache->m + (size_t)t * H, T * H, p->W_P, P, 0.0f, cache->h_pre + (size_t)t * Hs, T * Hs);
        for (int b = 0; b < B; b++) {
            const size_t pos = (size_t)b * T + t;
            const float *s = d->has_proj ? cache->h_pre + pos * Hs : cache->m + pos * H;
            float *hb = cache->h + pos * Hs, *o = out + pos * P;
            const float *xb = x + pos * in;
            for (int k = 0; k < Hs; k++) {
                const float v = d->has_proj_clip ? clipf(s[k], d->proj_clip) : s[k];
                hb[k] = v;
                o[k] = skip ? v + xb[k] : v;
            }
        }
    }
    for (int b = 0; b < B; b++) {
        const size_t last = (size_t)b * T + T - 1;
        memcpy(c_final + (size_t)b * H, cache->c + last * H, (size_t)H * sizeof(float));
        memcpy(h_final + (size_t)b * Hs, cache->h + last * Hs, (size_t)Hs * sizeof(float));
    }
}

static inline float pass_if_inside(float value, float limit, int clipped) {
    return clipped && (value < -limit || value > limit) ? 0.0f : 1.0f;
}

void lstm_backward(float *dx, LstmParams *grad, const float *dout, const float *x, const LstmCache *cache, int B,
                   int T, int skip, const LstmParams *p, const LstmDims *d, LstmBackWork *w) {
    const int H = d->H, Hs = d->Hs, P = d->P, in = d->in_dim, G = 4 * H;
    const float *W_rec = p->W + (size_t)in * G;
    memset(w->dh, 0, (size_t)B * Hs * sizeof(float));
    memset(w->dc, 0, (size_t)B * H * sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        /* dh = dout_t + (recurrent gradient from step t+1, already in w->dh);
         * h_t = clip(h_pre_t): the gradient passes inside the bounds */
#pragma omp parallel for if ((long)B * H > 32768) schedule(static)
        for (int b = 0; b < B; b++) {
            const size_t pos = (size_t)b * T + t;
            float *dh = w->dh + (size_t)b * Hs, *dhp = w->dh_pre + pos * Hs;
            const float *hp = cache->h_pre + pos * Hs;
            for (int k = 0; k < Hs; k++) {
                const float g = dh[k] + dout[pos * P + k];
                dhp[k] = d->has_proj ? g * pass_if_inside(hp[k], d->proj_clip, d->has_proj_clip) : g;
            }
        }
        /* m_t W_P = h_pre_t */
        const float *dm = w->dh_pre + (size_t)t * Hs;
        int ld_dm = T * Hs;
        if (d->has_proj) {
            gemm_nt(B, H, P, w->dh_pre + (size_t)t * Hs, T * Hs, p->W_P, P, 0.0f, w->dm, H);
            dm = w->dm;
            ld_dm = H;
        }
#pragma omp parallel for if ((long)B * H > 32768) schedule(static)
        for (int b = 0; b < B; b++) {
            const size_t pos = (size_t)b * T + t;
            const float *gt = cache->gates + pos * G;
            const float *c_prev = t == 0 ? cache->c0 + (size_t)b * H : cache->c + (pos - 1) * H;
            const float *cc = cache->c + pos * H, *cp = cache->c_pre + pos * H, *dmb = dm + (size_t)b * ld_dm;
            float *dc = w->dc + (size_t)b * H, *dz = w->dz + pos * G;
            const float limit = d->cell_clip;
            const int clip = d->has_cell_clip;
#pragma omp simd
            for (int k = 0; k < H; k++) {
                const float i = gt[k], j = gt[H + k], f = gt[2 * H + k], o = gt[3 * H + k];
                const float tc = fast_tanhf(cc[k]);
                /* m = o tanh(c); c = clip(c_pre); c_pre = f c_prev + i j */
                float dcell = dc[k] + dmb[k] * o * (1.0f - tc * tc);
                dcell *= pass_if_inside(cp[k], limit, clip);
                dz[k] = dcell * j * i * (1.0f - i);
                dz[H + k] = dcell * i * (1.0f - j * j);
                dz[2 * H + k] = dcell * c_prev[k] * f * (1.0f - f);
                dz[3 * H + k] = dmb[k] * tc * o * (1.0f - o);
                dc[k] = dcell * f;
            }
        }
        /* z_t = x_t W[:in] + h_{t-1} W[in:] + B */
        if (t > 0) gemm_nt(B, Hs, G, w->dz + (size_t)t * G, T * G, W_rec, G, 0.0f, w->dh, Hs);
    }
    /* weight gradients over all B*T positions at once */
    for (int b = 0; b < B; b++) {
        memcpy(w->h_prev + (size_t)b * T * Hs, cache->h0 + (size_t)b * Hs, (size_t)Hs * sizeof(float));
        memcpy(w->h_prev + ((size_t)b * T + 1) * Hs, cache->h + (size_t)b * T * Hs, (size_t)(T - 1) * Hs * sizeof(float));
    }
    const int N = B * T;
    gemm_tn(in, G, N, x, in, w->dz, G, 1.0f, grad->W, G);
    gemm_tn(Hs, G, N, w->h_prev, Hs, w->dz, G, 1.0f, grad->W + (size_t)in * G, G);
    add_column_sums(grad->B, w->dz, N, G, G);
    if (d->has_proj) gemm_tn(H, P, N, cache->m, H, w->dh_pre, Hs, 1.0f, grad->W_P, P);
    gemm_nt(N, in, G, w->dz, G, p->W, G, 0.0f, dx, in);
    if (skip)
        for (size_t i = 0; i < (size_t)N * P; i++) dx[i] += dout[i];
}
