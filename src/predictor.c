/* predictor.c - see predictor.h. */
#include "predictor.h"

#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "common.h"
#include "highway.h"
#include "linalg.h"

/* Every buffer of the predictor for p->cap_positions positions (see arena.h: run twice,
 * measuring then handing out). */
static void carve(void *ctx, Arena *a) {
    Predictor *p = ctx;
    const ElmoOptions *o = p->m->opt;
    const size_t n = (size_t)p->cap_positions, rows = (size_t)p->max_batch, P = (size_t)o->proj_dim;
    const size_t F = (size_t)o->total_filters, H = (size_t)p->dims.H, Hs = (size_t)p->dims.Hs;
    p->char_table = arena_floats(a, (size_t)(CHAR_TABLE_ROWS + 1) * o->char_dim);
    charcnn_work_carve(&p->cnn, a, o);
    p->lengths = arena_ints(a, rows);
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < o->n_layers; l++) {
            p->c[d][l] = arena_floats(a, rows * H);
            p->h[d][l] = arena_floats(a, rows * Hs);
        }
    for (int d = 0; d < 2; d++) {
        p->zero_c[d] = arena_floats(a, rows * H);
        p->zero_h[d] = arena_floats(a, rows * Hs);
        p->m_ws[d] = arena_floats(a, rows * H);
        p->cpre_ws[d] = arena_floats(a, rows * H);
        p->hp_ws[d] = arena_floats(a, rows * Hs);
        p->gates[d] = arena_floats(a, n * 4 * H);
    }
    p->token_emb = arena_floats(a, n * P);
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < o->n_layers; l++) p->layer_out[d][l] = arena_floats(a, n * P);
    for (int l = 0; l < o->n_layers; l++) p->seq_out[l] = arena_floats(a, n * P);
    p->seq_in = arena_floats(a, n * P);
    token_set_carve(&p->tokens, a, (int)n, o->max_chars);
    p->feat = arena_floats(a, n * F);
    p->feat2 = arena_floats(a, n * F);
    p->feat3 = arena_floats(a, n * F);
}

/* Buffers for `positions` positions (B*T); the stored states are kept (set aside while
 * the old arena is freed, so that the two never coexist). */
static void build(Predictor *p, int positions) {
    const ElmoOptions *o = p->m->opt;
    const size_t c_floats = (size_t)p->max_batch * p->dims.H, h_floats = (size_t)p->max_batch * p->dims.Hs;
    const size_t per_layer = c_floats + h_floats;
    float *states = NULL;
    if (p->arena.base) {
        states = xmalloc(2 * (size_t)o->n_layers * per_layer * sizeof(float));
        for (int d = 0; d < 2; d++)
            for (int l = 0; l < o->n_layers; l++) {
                float *s = states + ((size_t)d * o->n_layers + l) * per_layer;
                memcpy(s, p->c[d][l], c_floats * sizeof(float));
                memcpy(s + c_floats, p->h[d][l], h_floats * sizeof(float));
            }
        arena_free(&p->arena);
    }
    p->cap_positions = positions;
    arena_build(&p->arena, carve, p);
    memcpy(p->char_table + o->char_dim, p->m->char_embed, (size_t)CHAR_TABLE_ROWS * o->char_dim * sizeof(float));
    if (!states) return;
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < o->n_layers; l++) {
            const float *s = states + ((size_t)d * o->n_layers + l) * per_layer;
            memcpy(p->c[d][l], s, c_floats * sizeof(float));
            memcpy(p->h[d][l], s + c_floats, h_floats * sizeof(float));
        }
    free(states);
}

void predictor_init(Predictor *p, const BilmModel *m, int max_batch) {
    memset(p, 0, sizeof *p);
    p->m = m;
    p->dims = lstm_dims(m->opt);
    p->max_batch = max_batch;
    build(p, 1);
}

double predictor_bytes(const Predictor *p, long positions) {
    Predictor sized = *p;
    sized.cap_positions = (int)(positions < 1 ? 1 : positions > INT_MAX ? INT_MAX : positions);
    return (double)arena_measure(carve, &sized);
}

void predictor_free(Predictor *p) {
    arena_free(&p->arena);
    memset(p, 0, sizeof *p);
}

void predictor_token_embeddings(Predictor *p, float *out, const int32_t *ids, int N, float *feat, float *feat2,
                                float *feat3) {
    const BilmModel *m = p->m;
    const ElmoOptions *o = m->opt;
    const int F = o->total_filters;
    double t0 = elmo_now();
    charcnn_forward(feat, NULL, ids, N, p->char_table, CHAR_PAD + 1, m, &p->cnn);
    double t1 = elmo_now();
    for (int i = 0; i < o->n_highway; i++) highway_forward(feat, feat2, feat3, feat, &m->highway[i], N, F);
    if (m->W_proj) linear_forward(out, feat, m->W_proj, m->b_proj, N, F, o->proj_dim);
    else memcpy(out, feat, (size_t)N * F * sizeof(float));
    p->time_cnn += t1 - t0;
    p->time_highway_proj += elmo_now() - t1;
}

/* dst[b, t] = src[b, len_b - 1 - t] for t < len_b (tf.reverse_sequence); the rest is
 * copied unchanged. */
static void reverse_rows(float *dst, const float *src, const int *lengths, int B, int T, int width) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int from = t < lengths[b] ? lengths[b] - 1 - t : t;
            memcpy(dst + ((size_t)b * T + t) * width, src + ((size_t)b * T + from) * width, (size_t)width * sizeof(float));
        }
}

/* The L LSTM layers of direction d (0 forward, 1 backward) over the token embeddings. */
static void run_direction(Predictor *p, int d, int B, int T, int stateless) {
    const BilmModel *m = p->m;
    const ElmoOptions *o = m->opt;
    const int P = o->proj_dim, L = o->n_layers;
    const float *x = p->token_emb;
    const LstmPredictWork work = {p->gates[d], p->cpre_ws[d], p->m_ws[d], p->hp_ws[d]};
    if (d == 1) {
        reverse_rows(p->seq_in, p->token_emb, p->lengths, B, T, P);
        x = p->seq_in;
    }
    for (int l = 0; l < L; l++) {
        float *c = stateless ? p->zero_c[d] : p->c[d][l];
        float *h = stateless ? p->zero_h[d] : p->h[d][l];
        if (stateless) {
            memset(c, 0, (size_t)B * p->dims.H * sizeof(float));
            memset(h, 0, (size_t)B * p->dims.Hs * sizeof(float));
        }
        float *out = d == 0 ? p->layer_out[0][l] : p->seq_out[l];
        lstm_predict(out, c, h, &work, x, p->lengths, B, T,
                     o->use_skip_connections && l > 0, &m->lstm[d][l], &p->dims);
        x = out;
    }
    if (d == 1)
        for (int l = 0; l < L; l++) reverse_rows(p->layer_out[1][l], p->seq_out[l], p->lengths, B, T, P);
}

void predictor_run(Predictor *p, const int32_t *ids, int B, int T, int stateless) {
    const BilmModel *m = p->m;
    const ElmoOptions *o = m->opt;
    const int P = o->proj_dim;
    CHECK(B >= 1 && B <= p->max_batch, "batch of %d rows, predictor holds %d", B, p->max_batch);
    if (B * T > p->cap_positions) build(p, B * T);
    p->B = B;
    p->T = T;

    /* padding costs no CNN work, and a word repeated in the batch is embedded once */
    token_set_build(&p->tokens, ids, B * T, 1);
    for (int b = 0; b < B; b++) {
        p->lengths[b] = 0;
        for (int t = 0; t < T; t++) p->lengths[b] += p->tokens.index_of[b * T + t] >= 0;
    }
    float *compact = p->seq_in; /* (distinct tokens, P) scratch before the scatter */
    predictor_token_embeddings(p, compact, p->tokens.ids, p->tokens.n, p->feat, p->feat2, p->feat3);
    for (int i = 0; i < B * T; i++) {
        float *e = p->token_emb + (size_t)i * P;
        const int u = p->tokens.index_of[i];
        if (u < 0) memset(e, 0, (size_t)P * sizeof(float));
        else memcpy(e, compact + (size_t)u * P, (size_t)P * sizeof(float));
    }

    double t0 = elmo_now();
#pragma omp parallel for num_threads(2) schedule(static, 1) if (omp_get_max_threads() > 1)
    for (int d = 0; d < 2; d++) run_direction(p, d, B, T, stateless);
    p->time_lstm += elmo_now() - t0;
}

void predictor_sentence_output(const Predictor *p, int b, float *out) {
    const int P = p->m->opt->proj_dim, L = p->m->opt->n_layers, T = p->T;
    const int n = p->lengths[b] - 2;
    for (int l = 0; l <= L; l++)
        for (int i = 0; i < n; i++) {
            const size_t pos = (size_t)b * T + i + 1; /* skip <S> */
            float *o = out + ((size_t)l * n + i) * 2 * P;
            const float *fwd = l == 0 ? p->token_emb + pos * P : p->layer_out[0][l - 1] + pos * P;
            const float *bwd = l == 0 ? p->token_emb + pos * P : p->layer_out[1][l - 1] + pos * P;
            memcpy(o, fwd, (size_t)P * sizeof(float));
            memcpy(o + P, bwd, (size_t)P * sizeof(float));
        }
}
