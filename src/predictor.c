/* predictor.c - see predictor.h. */
#include "predictor.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "common.h"
#include "highway.h"
#include "linalg.h"

void predictor_init(Predictor *p, const BilmModel *m, int max_batch) {
    const ElmoOptions *o = m->opt;
    memset(p, 0, sizeof *p);
    p->m = m;
    p->dims = lstm_dims(o);
    p->max_batch = max_batch;
    const int De = o->char_dim;
    p->char_table = xcalloc((size_t)(CHAR_TABLE_ROWS + 1) * De, sizeof(float));
    memcpy(p->char_table + De, m->char_embed, (size_t)CHAR_TABLE_ROWS * De * sizeof(float));
    charcnn_work_init(&p->cnn, o);
    p->lengths = xcalloc((size_t)max_batch, sizeof(int));
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < o->n_layers; l++) {
            p->c[d][l] = xcalloc((size_t)max_batch * p->dims.H, sizeof(float));
            p->h[d][l] = xcalloc((size_t)max_batch * p->dims.Hs, sizeof(float));
        }
    for (int d = 0; d < 2; d++) {
        p->zero_c[d] = xcalloc((size_t)max_batch * p->dims.H, sizeof(float));
        p->zero_h[d] = xcalloc((size_t)max_batch * p->dims.Hs, sizeof(float));
        p->m_ws[d] = xcalloc((size_t)max_batch * p->dims.H, sizeof(float));
        p->cpre_ws[d] = xcalloc((size_t)max_batch * p->dims.H, sizeof(float));
        p->hp_ws[d] = xcalloc((size_t)max_batch * p->dims.Hs, sizeof(float));
    }
}

static void free_position_buffers(Predictor *p) {
    free(p->token_emb);
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < ELMO_MAX_LAYERS; l++) free(p->layer_out[d][l]);
    for (int l = 0; l < ELMO_MAX_LAYERS; l++) free(p->seq_out[l]);
    token_set_free(&p->tokens);
    free(p->feat);
    free(p->feat2);
    free(p->feat3);
    free(p->seq_in);
    free(p->gates[0]);
    free(p->gates[1]);
}

double predictor_bytes(const Predictor *p, long positions) {
    const ElmoOptions *o = p->m->opt;
    const double n = (double)positions, P = o->proj_dim, F = o->total_filters, H = p->dims.H, Hs = p->dims.Hs;
    /* token_emb, layer_out (2L), seq_out (L), seq_in; feat (3); gates (2); token set */
    const double per_position = P * (1 + 2 * o->n_layers + o->n_layers + 1) + 3 * F + 2 * 4 * H + o->max_chars + 3;
    const double states = 2.0 * o->n_layers * p->max_batch * (H + Hs) + 2.0 * 2 * p->max_batch * (3 * H + Hs);
    return 4.0 * (n * per_position + states);
}

/* Sizes the per-position buffers for n = B*T positions (only ever grows). */
static void reserve_positions(Predictor *p, int n) {
    if (n <= p->cap_positions) return;
    const ElmoOptions *o = p->m->opt;
    free_position_buffers(p);
    memset(p->layer_out, 0, sizeof p->layer_out);
    memset(p->seq_out, 0, sizeof p->seq_out);
    const size_t P = (size_t)o->proj_dim, F = (size_t)o->total_filters;
    p->token_emb = xmalloc_aligned(n * P * sizeof(float));
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < o->n_layers; l++) p->layer_out[d][l] = xmalloc_aligned(n * P * sizeof(float));
    for (int l = 0; l < o->n_layers; l++) p->seq_out[l] = xmalloc_aligned(n * P * sizeof(float));
    token_set_init(&p->tokens, n, o->max_chars);
    p->feat = xmalloc_aligned(n * F * sizeof(float));
    p->feat2 = xmalloc_aligned(n * F * sizeof(float));
    p->feat3 = xmalloc_aligned(n * F * sizeof(float));
    p->seq_in = xmalloc_aligned(n * P * sizeof(float));
    for (int d = 0; d < 2; d++) p->gates[d] = xmalloc_aligned((size_t)n * 4 * p->dims.H * sizeof(float));
    p->cap_positions = n;
}

void predictor_free(Predictor *p) {
    free_position_buffers(p);
    free(p->char_table);
    charcnn_work_free(&p->cnn);
    free(p->lengths);
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < ELMO_MAX_LAYERS; l++) {
            free(p->c[d][l]);
            free(p->h[d][l]);
        }
    for (int d = 0; d < 2; d++) {
        free(p->zero_c[d]);
        free(p->zero_h[d]);
        free(p->m_ws[d]);
        free(p->cpre_ws[d]);
        free(p->hp_ws[d]);
    }
    memset(p, 0, sizeof *p);
}

void predictor_reset(Predictor *p) {
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < p->m->opt->n_layers; l++) {
            memset(p->c[d][l], 0, (size_t)p->max_batch * p->dims.H * sizeof(float));
            memset(p->h[d][l], 0, (size_t)p->max_batch * p->dims.Hs * sizeof(float));
        }
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
    reserve_positions(p, B * T);
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
