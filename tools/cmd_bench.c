/* cmd_bench.c - `elmo bench`: speed of training steps and of prediction on random weights
 * and random data, no files needed besides the options. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "cli.h"
#include "commands.h"
#include "common.h"
#include "dataset.h"
#include "linalg.h"
#include "memfit.h"
#include "predictor.h"
#include "replicas.h"
#include "rng.h"
#include "trainer.h"

static const char bench_help[] =
    "usage: elmo bench --options FILE [--mode train|predict] [--batch-size N] [--unroll-steps T]\n"
    "                  [--vocab-size V] [--samples S] [--threads N] [--steps N] [--warmup N] [--seed N]\n"
    "                  [--directions concurrent|sequential] [--ranks]\n\n"
    "Measures training steps (--mode train, the default) or `embed` (--mode predict) on random\n"
    "weights and random data: random lower-case words of 1 to 12 letters, random targets.\n"
    "Prints the time per phase, GFLOP/s of the matrix work against this machine's measured\n"
    "sgemm speed (the roofline), the memory the step needs next to the RSS seen, and a final\n"
    "line `tokens_per_second: <median>` (a token is one of the batch_size x unroll_steps\n"
    "positions; in training each is processed by both directions).\n\n"
    "  --options FILE     training options (configs/tiny.json, small, medium, original)\n"
    "  --mode M           train or predict\n"
    "  --batch-size N     default: the options' batch_size\n"
    "  --unroll-steps T   default: the options' unroll_steps (predict: tokens per sentence)\n"
    "  --vocab-size V     softmax rows (train; default: the options' n_tokens_vocab, or 50000)\n"
    "  --samples S        negative samples (train; default: n_negative_samples_batch)\n"
    "  --threads N        threads (default: all cores; under MPI shared by the ranks of a machine)\n"
    "  --steps N          measured steps (default 5)\n"
    "  --warmup N         steps before measuring (default 1)\n"
    "  --seed N           seed of the random weights and data (default 1)\n"
    "  --directions D     train: the two LSTM directions side by side (one thread each) or one\n"
    "                     after the other (all threads each); default: side by side with exactly\n"
    "                     2 threads, else one after the other\n"
    "  --ranks            train, under mpirun/srun with an MPI build (make MPI=1): every rank\n"
    "                     steps on its own random rows and the gradients are averaged as in\n"
    "                     `elmo train`; rank 0 reports the job's tokens/s (all ranks' tokens),\n"
    "                     the time and bytes of the gradient exchange per step\n";

typedef struct {
    const char *options_path, *mode, *directions;
    int batch, unroll, vocab, samples, threads, steps, warmup, ranks;
    long seed;
} BenchArgs;

/* Multiply-adds count 2; only the matrix and convolution work (issue #5's count). */
static double embedding_flops(const ElmoOptions *o) {
    double cnn = 0;
    for (int k = 0; k < o->n_filter_kinds; k++)
        cnn += 2.0 * o->char_dim * o->filter_width[k] * o->filter_count[k] * (o->max_chars - o->filter_width[k] + 1);
    const double F = o->total_filters, P = o->proj_dim;
    return cnn + o->n_highway * 4.0 * F * F + (options_use_char_proj(o) ? 2.0 * F * P : 0);
}

static double lstm_flops(const ElmoOptions *o) {
    const double P = o->proj_dim, H = o->lstm_dim, Hs = options_state_dim(o);
    return o->n_layers * (2.0 * (P + Hs) * 4 * H + (options_use_lstm_proj(o) ? 2.0 * H * P : 0));
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* This machine's sgemm speed on an ELMo-sized product, with the threads in use. */
static double measure_sgemm_gflops(void) {
    const int M = 2560, N = 2048, K = 1024;
    float *A = xcalloc((size_t)M * K, sizeof(float)), *B = xcalloc((size_t)K * N, sizeof(float));
    float *C = xmalloc((size_t)M * N * sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 7) * 1e-3f;
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)(i % 5) * 1e-3f;
    gemm_nn(M, N, K, A, K, B, N, 0.0f, C, N);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        const double t0 = elmo_now();
        gemm_nn(M, N, K, A, K, B, N, 0.0f, C, N);
        const double g = 2.0 * M * N * K / (elmo_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(A);
    free(B);
    free(C);
    return best;
}

static void random_word(Rng *rng, char *word) {
    const int len = 1 + (int)(rng_next(rng) % 12);
    for (int k = 0; k < len; k++) word[k] = (char)('a' + rng_next(rng) % 26);
    word[len] = '\0';
}

/* RSS before the model exists (the program, its libraries, OpenBLAS's buffers), and the
 * most seen after any step of the run (the sgemm calibration's own matrices excluded). */
static double baseline_rss, run_peak_rss;

static void sample_rss(void) {
    const double rss = (double)elmo_current_rss();
    if (rss > run_peak_rss) run_peak_rss = rss;
}

static void print_memory(double analytic_bytes) {
    const double rss = run_peak_rss, used = rss - baseline_rss;
    printf("memory: analytic need %.1f MiB, peak RSS %.1f MiB = %.1f MiB baseline (program, libraries, BLAS "
           "buffers) + %.1f MiB (%+.0f%% of the need)\n",
           analytic_bytes / 1048576.0, rss / 1048576.0, baseline_rss / 1048576.0, used / 1048576.0,
           100.0 * (used - analytic_bytes) / analytic_bytes);
}

/* The exchange of --ranks, timed apart from the wait for the slowest rank. */
static double exchange_wait;

static void timed_exchange(Trainer *t, void *ctx) {
    const double t0 = elmo_now();
    replicas_barrier();
    exchange_wait += elmo_now() - t0;
    replicas_average_gradients(t, ctx);
}

static void bench_train(const BenchArgs *a, ElmoOptions *opt, double sgemm) {
    const int B = a->batch ? a->batch : opt->batch_size, T = a->unroll ? a->unroll : opt->unroll_steps;
    const int V = a->vocab ? a->vocab : (opt->n_tokens_vocab ? (int)opt->n_tokens_vocab : 50000);
    if (a->samples) opt->n_negative_samples = a->samples;
    if (opt->sample_softmax && opt->n_negative_samples > V) elmo_die("bench: more samples than vocabulary");
    if (memfit_check(a->options_path, opt, V, B) < 0) elmo_die_last();
    BilmModel model;
    model_init_layout(&model, opt, V);
    model_init_random(&model, (uint64_t)a->seed);
    const Replicas *rep = replicas();
    const int N = rep->size;
    Trainer t;
    trainer_init(&t, &model, B, T, TRAINER_TRAIN, (uint64_t)a->seed + 1 + (uint64_t)rep->rank);
    if (a->directions) t.concurrent_directions = strcmp(a->directions, "concurrent") == 0 && t.n_dirs == 2;
    if (N > 1) t.combine = timed_exchange;
    enum { N_BATCHES = 3 };
    LmBatch batches[N_BATCHES][2];
    Rng rng;
    rng_seed(&rng, (uint64_t)a->seed + 2 + (uint64_t)rep->rank * 1000); /* each rank its own rows */
    char word[16];
    for (int k = 0; k < N_BATCHES; k++)
        for (int d = 0; d < 2; d++) {
            LmBatch *b = &batches[k][d];
            lm_batch_init(b, B, T, opt->max_chars);
            for (int i = 0; i < B * T; i++) {
                random_word(&rng, word);
                chars_encode(word, opt->max_chars, b->chars + (size_t)i * opt->max_chars);
                b->targets[i] = (int32_t)(rng_next(&rng) % (uint64_t)V);
            }
        }
    const double softmax = opt->sample_softmax ? 2.0 * opt->proj_dim * (opt->n_negative_samples + 1)
                                               : 2.0 * opt->proj_dim * V;
    const double flops = 3.0 * (2.0 * embedding_flops(opt) + 2.0 * lstm_flops(opt) + 2.0 * softmax);
    printf("bench train: %s  batch %d x %d, vocabulary %d, %d samples, %d threads, %.1f MFLOP/token, LSTM "
           "directions %s\n",
           a->options_path, B, T, V, opt->n_negative_samples, a->threads, flops / 1e6,
           t.concurrent_directions ? "side by side" : "one after the other");
    if (N > 1) printf("ranks: %d of %d rows each (global batch %d x %d)\n", N, B, N * B, T);
    double *secs = xmalloc((size_t)a->steps * sizeof(double));
    for (int s = 0; s < a->warmup + a->steps; s++) {
        if (s == a->warmup)
            t.time_cnn = t.time_highway_proj = t.time_lstm_forward = t.time_lstm_backward = t.time_softmax =
                t.time_optimizer = t.time_combine = exchange_wait = 0;
        const LmBatch *ptrs[2] = {&batches[s % N_BATCHES][0], &batches[s % N_BATCHES][1]};
        const double t0 = elmo_now();
        const double loss = trainer_step(&t, ptrs);
        const double dt = elmo_now() - t0;
        sample_rss();
        if (s >= a->warmup) {
            secs[s - a->warmup] = dt;
            printf("  step %d: %.3f s, %.0f tokens/s, loss %.3f\n", s - a->warmup + 1, dt, (double)N * B * T / dt, loss);
        }
    }
    const double per = 1.0 / a->steps, med = median(secs, a->steps), tps = (double)N * B * T / med;
    printf("phases per step: char-CNN %.3f s, highway+projection %.3f s, LSTM forward %.3f s, LSTM backward "
           "%.3f s, softmax %.3f s, optimiser %.3f s, data 0 s (pre-generated)\n",
           t.time_cnn * per, t.time_highway_proj * per, t.time_lstm_forward * per, t.time_lstm_backward * per,
           t.time_softmax * per, t.time_optimizer * per);
    if (N > 1) {
        /* what the last step exchanged: the dense gradient, the union of softmax rows */
        const double dense = (double)t.n_dense * sizeof(float);
        const double rows = (double)t.grad_softmax_W.n, sparse = rows * (opt->proj_dim + 1) * sizeof(float);
        const double exchange = (t.time_combine - exchange_wait) * per;
        printf("exchange per step: %.3f s (%.0f%% of the step) after %.3f s waiting for the slowest rank; dense "
               "%.1f MiB, softmax rows %.0f (%.1f MiB)\n",
               exchange, 100.0 * exchange / med, exchange_wait * per, dense / 1048576.0, rows, sparse / 1048576.0);
    }
    printf("GFLOP/s: %.1f, %.0f%% of the roofline (sgemm here: %.1f GFLOP/s -> %.0f tokens/s)\n", tps * flops / 1e9,
           100.0 * tps * flops / 1e9 / sgemm, sgemm, sgemm * 1e9 / flops);
    double data = 0;
    for (int k = 0; k < N_BATCHES; k++) data += (double)batches[k][0].bytes + (double)batches[k][1].bytes;
    print_memory((double)model.n_floats * sizeof(float) + (double)trainer_bytes(&t) + data);
    printf("tokens_per_second: %.1f\n", tps);
    free(secs);
    for (int k = 0; k < N_BATCHES; k++)
        for (int d = 0; d < 2; d++) lm_batch_free(&batches[k][d]);
    trainer_free(&t);
    model_free(&model);
}

static void bench_predict(const BenchArgs *a, ElmoOptions *opt, double sgemm) {
    const int B = a->batch ? a->batch : opt->batch_size, n_words = a->unroll ? a->unroll : opt->unroll_steps;
    const int T = n_words + 2, C = opt->max_chars;
    if (memfit_check(a->options_path, opt, 0, B) < 0) elmo_die_last();
    BilmModel model;
    model_init_layout(&model, opt, 0);
    model_init_random(&model, (uint64_t)a->seed);
    Predictor pred;
    predictor_init(&pred, &model, B);
    /* random sentences: <S> w1 .. wn </S>, all of the same length */
    Rng rng;
    rng_seed(&rng, (uint64_t)a->seed + 1);
    enum { N_BATCHES = 4 };
    const size_t ids_bytes = (size_t)N_BATCHES * B * T * C * sizeof(int32_t);
    int32_t *ids = xmalloc(ids_bytes);
    char word[16];
    for (int s = 0; s < N_BATCHES * B; s++) {
        int32_t *row = ids + (size_t)s * T * C;
        chars_encode_prediction("<S>", C, row);
        for (int t = 1; t <= n_words; t++) {
            random_word(&rng, word);
            chars_encode_prediction(word, C, row + (size_t)t * C);
        }
        chars_encode_prediction("</S>", C, row + (size_t)(T - 1) * C);
    }
    const double flops = embedding_flops(opt) + 2.0 * lstm_flops(opt);
    printf("bench predict: %s  batch %d x %d tokens, %d threads, %.1f MFLOP/token\n", a->options_path, B, n_words,
           a->threads, flops / 1e6);
    double *secs = xmalloc((size_t)a->steps * sizeof(double));
    for (int s = 0; s < a->warmup + a->steps; s++) {
        if (s == a->warmup) pred.time_cnn = pred.time_highway_proj = pred.time_lstm = 0;
        const double t0 = elmo_now();
        predictor_run(&pred, ids + (size_t)(s % N_BATCHES) * B * T * C, B, T, 0);
        const double dt = elmo_now() - t0;
        sample_rss();
        if (s >= a->warmup) {
            secs[s - a->warmup] = dt;
            printf("  step %d: %.3f s, %.0f tokens/s\n", s - a->warmup + 1, dt, B * n_words / dt);
        }
    }
    const double per = 1.0 / a->steps, med = median(secs, a->steps), tps = B * n_words / med;
    printf("phases per step: char-CNN %.3f s, highway+projection %.3f s, LSTM %.3f s\n", pred.time_cnn * per,
           pred.time_highway_proj * per, pred.time_lstm * per);
    printf("GFLOP/s: %.1f, %.0f%% of the roofline (sgemm here: %.1f GFLOP/s -> %.0f tokens/s)\n", tps * flops / 1e9,
           100.0 * tps * flops / 1e9 / sgemm, sgemm, sgemm * 1e9 / flops);
    print_memory((double)pred.arena.size + (double)model.n_floats * sizeof(float) + (double)ids_bytes);
    printf("sentences_per_second: %.1f\n", B / med);
    printf("tokens_per_second: %.1f\n", tps);
    free(secs);
    free(ids);
    predictor_free(&pred);
    model_free(&model);
}

int cmd_bench(int argc, char **argv) {
    BenchArgs a = {.mode = "train", .steps = 5, .warmup = 1, .seed = 1};
    enum { O_OPTIONS = 256, O_MODE, O_BATCH, O_UNROLL, O_VOCAB, O_SAMPLES, O_THREADS, O_STEPS, O_WARMUP, O_SEED,
           O_DIRECTIONS, O_RANKS };
    static const struct option longopts[] = {
        {"options", required_argument, 0, O_OPTIONS},    {"mode", required_argument, 0, O_MODE},
        {"batch-size", required_argument, 0, O_BATCH},   {"unroll-steps", required_argument, 0, O_UNROLL},
        {"vocab-size", required_argument, 0, O_VOCAB},   {"samples", required_argument, 0, O_SAMPLES},
        {"threads", required_argument, 0, O_THREADS},    {"steps", required_argument, 0, O_STEPS},
        {"warmup", required_argument, 0, O_WARMUP},      {"seed", required_argument, 0, O_SEED},
        {"directions", required_argument, 0, O_DIRECTIONS}, {"ranks", no_argument, 0, O_RANKS},
        {"help", no_argument, 0, 'h'},                   {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_OPTIONS: a.options_path = optarg; break;
        case O_MODE: a.mode = optarg; break;
        case O_BATCH: a.batch = (int)cli_int("--batch-size", optarg, 1, 1 << 16); break;
        case O_UNROLL: a.unroll = (int)cli_int("--unroll-steps", optarg, 1, 1 << 16); break;
        case O_VOCAB: a.vocab = (int)cli_int("--vocab-size", optarg, 3, 1 << 30); break;
        case O_SAMPLES: a.samples = (int)cli_int("--samples", optarg, 1, 1 << 30); break;
        case O_THREADS: a.threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case O_STEPS: a.steps = (int)cli_int("--steps", optarg, 1, 1 << 20); break;
        case O_WARMUP: a.warmup = (int)cli_int("--warmup", optarg, 0, 1 << 20); break;
        case O_SEED: a.seed = cli_int("--seed", optarg, 0, 1L << 62); break;
        case O_DIRECTIONS: a.directions = optarg; break;
        case O_RANKS: a.ranks = 1; break;
        case 'h': fputs(bench_help, stdout); return 0;
        default: fputs(bench_help, stderr); return ELMO_EXIT_FAILURE;
        }
    }
    if (optind < argc) elmo_die("bench: unexpected argument '%s'", argv[optind]);
    cli_require("--options", a.options_path, "bench");
    if (strcmp(a.mode, "train") != 0 && strcmp(a.mode, "predict") != 0)
        elmo_die("bench: --mode must be train or predict, not '%s'", a.mode);
    if (a.directions && strcmp(a.directions, "concurrent") != 0 && strcmp(a.directions, "sequential") != 0)
        elmo_die("bench: --directions must be concurrent or sequential, not '%s'", a.directions);
    if (a.ranks) {
        if (!replicas_have_mpi())
            elmo_die("bench: --ranks needs an MPI build of elmo (make MPI=1) started by mpirun or srun");
        if (strcmp(a.mode, "train") != 0) elmo_die("bench: --ranks measures training (--mode train)");
        if (replicas_start()->size == 1) elmo_note("bench: --ranks: one rank (not started by mpirun or srun)");
    }
    a.threads = elmo_set_threads(replicas_threads(a.threads));
    ElmoOptions opt;
    if (options_load(&opt, a.options_path) < 0) elmo_die_last();
    const double sgemm = measure_sgemm_gflops();
    baseline_rss = (double)elmo_current_rss();
    if (strcmp(a.mode, "train") == 0) bench_train(&a, &opt, sgemm);
    else bench_predict(&a, &opt, sgemm);
    options_free(&opt);
    return 0;
}
