/* cmd_bench.c - `elmo bench`: speed of prediction on random weights and random
 * sentences, no files needed besides the options. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "cli.h"
#include "common.h"
#include "predictor.h"
#include "rng.h"

static const char bench_help[] =
    "usage: elmo bench --options FILE [--mode predict] [--batch-size N] [--unroll-steps T]\n"
    "                  [--threads N] [--steps N] [--warmup N] [--seed N]\n\n"
    "Measures `embed` on random weights: each step embeds a batch of N random sentences of T\n"
    "tokens (random lower-case words of 1 to 12 letters), statefully. Prints the time per\n"
    "phase, GFLOP/s of the matrix work and a final line `tokens_per_second: <median>`.\n"
    "Sizes default to the options file's batch_size and unroll_steps (e.g. configs/small.json).\n\n"
    "  --options FILE     model options (configs/tiny.json, small, medium, original)\n"
    "  --mode predict     what to measure (training arrives with `elmo train`)\n"
    "  --batch-size N     sentences per batch (default: options batch_size)\n"
    "  --unroll-steps T   tokens per sentence (default: options unroll_steps)\n"
    "  --threads N        threads (default: all cores)\n"
    "  --steps N          measured batches (default 5)\n"
    "  --warmup N         batches run before measuring (default 1)\n"
    "  --seed N           seed of the random weights and words (default 1)\n";

/* Multiply-adds count 2; only the matrix and convolution work (as issue #5 defines it). */
static double predict_flops_per_token(const ElmoOptions *o) {
    double cnn = 0;
    for (int k = 0; k < o->n_filter_kinds; k++)
        cnn += 2.0 * o->char_dim * o->filter_width[k] * o->filter_count[k] * (o->max_chars - o->filter_width[k] + 1);
    const double F = o->total_filters, P = o->proj_dim, H = o->lstm_dim, Hs = options_state_dim(o);
    double highway = o->n_highway * 4.0 * F * F;
    double proj = options_use_char_proj(o) ? 2.0 * F * P : 0;
    double lstm = o->n_layers * (2.0 * (P + Hs) * 4 * H + (options_use_lstm_proj(o) ? 2.0 * H * P : 0));
    return cnn + highway + proj + 2 * lstm;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench(int argc, char **argv) {
    const char *options_path = NULL, *mode = "predict";
    int batch = 0, steps_per_sentence = 0, threads = 0, steps = 5, warmup = 1;
    long seed = 1;
    static const struct option longopts[] = {
        {"options", required_argument, 0, 'o'}, {"mode", required_argument, 0, 'm'},
        {"batch-size", required_argument, 0, 'b'}, {"unroll-steps", required_argument, 0, 'u'},
        {"threads", required_argument, 0, 't'}, {"steps", required_argument, 0, 's'},
        {"warmup", required_argument, 0, 'w'}, {"seed", required_argument, 0, 'S'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': options_path = optarg; break;
        case 'm': mode = optarg; break;
        case 'b': batch = (int)cli_int("--batch-size", optarg, 1, 1 << 16); break;
        case 'u': steps_per_sentence = (int)cli_int("--unroll-steps", optarg, 1, 1 << 16); break;
        case 't': threads = (int)cli_int("--threads", optarg, 1, 1024); break;
        case 's': steps = (int)cli_int("--steps", optarg, 1, 1 << 20); break;
        case 'w': warmup = (int)cli_int("--warmup", optarg, 0, 1 << 20); break;
        case 'S': seed = cli_int("--seed", optarg, 0, 1L << 62); break;
        case 'h': fputs(bench_help, stdout); return 0;
        default: fputs(bench_help, stderr); return ELMO_EXIT_FAILURE;
        }
    }
    if (optind < argc) elmo_die("bench: unexpected argument '%s'", argv[optind]);
    cli_require("--options", options_path, "bench");
    if (strcmp(mode, "predict") != 0) elmo_die("bench: --mode %s: only 'predict' is available so far", mode);
    threads = elmo_set_threads(threads);

    ElmoOptions opt;
    if (options_load(&opt, options_path, ELMO_FOR_PREDICTION) < 0) elmo_die_last();
    const int B = batch ? batch : opt.batch_size, n_words = steps_per_sentence ? steps_per_sentence : opt.unroll_steps;
    const int T = n_words + 2, C = opt.max_chars;
    BilmModel model;
    model_init_layout(&model, &opt, 0);
    model_init_random(&model, (uint64_t)seed);
    Predictor pred;
    predictor_init(&pred, &model, B);

    /* random sentences: <S> w1 .. wn </S>, all of the same length */
    Rng rng;
    rng_seed(&rng, (uint64_t)seed + 1);
    const int n_batches = 4;
    int32_t *ids = xmalloc((size_t)n_batches * B * T * C * sizeof(int32_t));
    char word[16];
    for (int s = 0; s < n_batches * B; s++) {
        int32_t *row = ids + (size_t)s * T * C;
        chars_encode_prediction("<S>", C, row);
        for (int t = 1; t <= n_words; t++) {
            int len = 1 + (int)(rng_next(&rng) % 12);
            for (int k = 0; k < len; k++) word[k] = (char)('a' + rng_next(&rng) % 26);
            word[len] = '\0';
            chars_encode_prediction(word, C, row + (size_t)t * C);
        }
        chars_encode_prediction("</S>", C, row + (size_t)(T - 1) * C);
    }

    const double flops = predict_flops_per_token(&opt);
    printf("bench predict: %s  batch %d x %d tokens, %d threads, %.1f MFLOP/token\n", options_path, B, n_words,
           threads, flops / 1e6);
    double *secs = xmalloc((size_t)steps * sizeof(double));
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) pred.time_cnn = pred.time_highway_proj = pred.time_lstm = 0;
        double t0 = elmo_now();
        predictor_run(&pred, ids + (size_t)(s % n_batches) * B * T * C, B, T, 0);
        double dt = elmo_now() - t0;
        if (s >= warmup) {
            secs[s - warmup] = dt;
            printf("  step %d: %.3f s, %.0f tokens/s\n", s - warmup + 1, dt, B * n_words / dt);
        }
    }
    qsort(secs, (size_t)steps, sizeof *secs, compare_doubles);
    const double median = steps % 2 ? secs[steps / 2] : 0.5 * (secs[steps / 2 - 1] + secs[steps / 2]);
    const double tokens_per_s = B * n_words / median;
    const double per_step = 1.0 / steps;
    printf("phases per step: char-CNN %.3f s, highway+projection %.3f s, LSTM %.3f s\n",
           pred.time_cnn * per_step, pred.time_highway_proj * per_step, pred.time_lstm * per_step);
    printf("GFLOP/s: %.1f (matrix work only, counted as in issue #5)\n", tokens_per_s * flops / 1e9);
    printf("peak RSS: %.1f MiB\n", elmo_peak_rss() / 1048576.0);
    printf("sentences_per_second: %.1f\n", B / median);
    printf("tokens_per_second: %.1f\n", tokens_per_s);
    free(secs);
    free(ids);
    predictor_free(&pred);
    model_free(&model);
    options_free(&opt);
    return 0;
}
