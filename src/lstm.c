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

/* c and c_prev may be the same buffer (prediction updates the state in place): each k
 * reads c_prev[k] before it writes c[k], so the loop stays vectorisable. */
void lstm_cell_step(float *gates, float *c_pre, float *c, float *m, const float *c_prev, const LstmDims *d) {
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

void lstm_output_step(float *h, float *out, const float *s, const float *x, int skip, const LstmDims *d) {
    for (int k = 0; k < d->Hs; k++) {
        const float v = d->has_proj_clip ? clipf(s[k], d->proj_clip) : s[k];
        h[k] = v;
        out[k] = skip ? v + x[k] : v;
    }
}

/* Element (b, t) of a sequence buffer. */
static inline float *seq_at(SeqBuf s, int b, int t) { return s.p + (size_t)b * s.row + (size_t)t * s.step; }

void lstm_forward(float *out, const LstmSeq *s, const float *x, const int *lengths, int B, int T, int skip,
                  const LstmParams *p, const LstmDims *d) {
    const int H = d->H, Hs = d->Hs, P = d->P, in = d->in_dim, G = 4 * H;
    /* the input half x W[:in] + B for every position at once; gates are (B, T, 4H) */
    linear_forward(s->gates, x, p->W, p->B, B * T, in, G);
    const float *W_rec = p->W + (size_t)in * G;
    for (int t = 0; t < T; t++) {
        /* h_{t-1}: the initial state at t = 0 */
        const float *h_prev = t == 0 ? s->h0 : seq_at(s->h, 0, t - 1);
        const int ld_prev = t == 0 ? Hs : (int)s->h.row;
        float *z = s->gates + (size_t)t * G;
        gemm_nn(B, G, Hs, h_prev, ld_prev, W_rec, G, 1.0f, z, T * G);
#pragma omp parallel for if ((long)B * H > 32768) schedule(static)
        for (int b = 0; b < B; b++) {
            if (lengths && t >= lengths[b]) continue;
            const float *c_prev = t == 0 ? s->c0 + (size_t)b * H : seq_at(s->c, b, t - 1);
            lstm_cell_step(z + (size_t)b * T * G, seq_at(s->c_pre, b, t), seq_at(s->c, b, t), seq_at(s->m, b, t),
                           c_prev, d);
        }
        if (d->has_proj)
            gemm_nn(B, P, H, seq_at(s->m, 0, t), (int)s->m.row, p->W_P, P, 0.0f, seq_at(s->h_pre, 0, t),
                    (int)s->h_pre.row);
        const SeqBuf state = d->has_proj ? s->h_pre : s->m;
        for (int b = 0; b < B; b++) {
            const size_t pos = (size_t)b * T + t;
            if (lengths && t >= lengths[b]) {
                memset(out + pos * P, 0, (size_t)P * sizeof(float));
                continue;
            }
            lstm_output_step(seq_at(s->h, b, t), out + pos * P, seq_at(state, b, t), x + pos * in, skip, d);
        }
    }
}

void lstm_predict(float *out, float *c, float *h, const LstmPredictWork *w, const float *x, const int *lengths,
                  int B, int T, int skip, const LstmParams *p, const LstmDims *d) {
    /* only the current state is kept (step 0): each step overwrites the one before */
    const LstmSeq s = {
        .gates = w->gates,
        .c_pre = {w->c_pre, (size_t)d->H, 0},
        .c = {c, (size_t)d->H, 0},
        .m = {w->m, (size_t)d->H, 0},
        .h_pre = {w->h_pre, (size_t)d->Hs, 0},
        .h = {h, (size_t)d->Hs, 0},
        .c0 = c,
        .h0 = h,
    };
    lstm_forward(out, &s, x, lengths, B, T, skip, p, d);
}

void lstm_train_forward(float *out, float *c_final, float *h_final, LstmCache *cache, const float *x,
                        const float *c0, const float *h0, int B, int T, int skip, const LstmParams *p,
                        const LstmDims *d) {
    const int H = d->H, Hs = d->Hs;
    memcpy(cache->c0, c0, (size_t)B * H * sizeof(float));
    memcpy(cache->h0, h0, (size_t)B * Hs * sizeof(float));
    /* every step is kept for the backward pass: row b, step t at (b * T + t) * width */
    const LstmSeq s = {
        .gates = cache->gates,
        .c_pre = {cache->c_pre, (size_t)T * H, (size_t)H},
        .c = {cache->c, (size_t)T * H, (size_t)H},
        .m = {cache->m, (size_t)T * H, (size_t)H},
        .h_pre = {cache->h_pre, (size_t)T * Hs, (size_t)Hs},
        .h = {cache->h, (size_t)T * Hs, (size_t)Hs},
        .c0 = cache->c0,
        .h0 = cache->h0,
    };
    lstm_forward(out, &s, x, NULL, B, T, skip, p, d);
    for (int b = 0; b < B; b++) {
        const size_t last = (size_t)b * T + T - 1;
        memcpy(c_final + (size_t)b * H, cache->c + last * H, (size_t)H * sizeof(float));
        memcpy(h_final + (size_t)b * Hs, cache->h + last * Hs, (size_t)Hs * sizeof(float));
    }
}

void lstm_cache_carve(LstmCache *c, Arena *a, int B, int T, const LstmDims *d) {
    const size_t n = (size_t)B * T;
    c->gates = arena_floats(a, n * 4 * d->H);
    c->c_pre = arena_floats(a, n * d->H);
    c->c = arena_floats(a, n * d->H);
    c->m = arena_floats(a, n * d->H);
    c->h_pre = arena_floats(a, n * d->Hs);
    c->h = arena_floats(a, n * d->Hs);
    c->c0 = arena_floats(a, (size_t)B * d->H);
    c->h0 = arena_floats(a, (size_t)B * d->Hs);
}

void lstm_back_work_carve(LstmBackWork *w, Arena *a, int B, int T, const LstmDims *d) {
    const size_t n = (size_t)B * T;
    w->dz = arena_floats(a, n * 4 * d->H);
    w->dh_pre = arena_floats(a, n * d->Hs);
    w->h_prev = arena_floats(a, n * d->Hs);
    w->dh = arena_floats(a, (size_t)B * d->Hs);
    w->dc = arena_floats(a, (size_t)B * d->H);
    w->dm = arena_floats(a, (size_t)B * d->H);
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
