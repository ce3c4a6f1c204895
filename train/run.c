/* run.c - see run.h. */
#include "run.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "common.h"
#include "fileio.h"
#include "heldout.h"
#include "replicas.h"
#include "watch.h"

static void format_duration(char *buf, size_t size, double seconds) {
    if (!isfinite(seconds) || seconds < 0) seconds = 0;
    long s = (long)(seconds + 0.5);
    snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

/* What a run accumulates between two log points. */
typedef struct {
    double loss, loss_dir[2], norm;
    long count;
} Window;

typedef struct {
    TrainRun *r;
    double start, last_log, last_checkpoint, last_eval;
    long first_step, run_batches;
    Window window;
    Watch loss_watch, heldout_watch;
    int warmup_reported;
} Loop;

/* Tokens of one update: the global batch of every replica. */
static double tokens_per_batch(const TrainRun *r) {
    return (double)r->opt->batch_size * r->opt->unroll_steps * replicas()->size;
}

/* Writes the checkpoint (or best.hdf5 with its figures): every rank takes part, as rank 0
 * gathers the replicas' states; rank 0 writes. */
static void write_checkpoint(TrainRun *r, const char *path, const CheckpointBest *best) {
    replicas_check_identical(r->trainer->model, r->trainer->step);
    const ReplicaStates *states = NULL;
    if (replicas()->size > 1) {
        replicas_gather_states(r->trainer, &r->gathered);
        states = &r->gathered;
    }
    if (replicas_lead() && checkpoint_save(path, r->trainer, states, r->vocab, r->readers, r->settings, best) < 0)
        elmo_die_last();
}

static void save_checkpoint(Loop *p, double now) {
    TrainRun *r = p->r;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.ckpt-%ld.hdf5", r->save_dir, r->trainer->step);
    write_checkpoint(r, path, NULL);
    if (replicas_lead()) checkpoint_prune(r->save_dir, RUN_KEPT_CHECKPOINTS);
    p->last_checkpoint = now;
}

/* The progress line and the metrics record of a log point. */
static void log_point(Loop *p, double now) {
    TrainRun *r = p->r;
    const Trainer *t = r->trainer;
    const Window *w = &p->window;
    const double per_batch = (now - p->start) / (double)(t->step - p->first_step);
    const double loss = w->loss / w->count, norm = w->norm / w->count;
    const double tps = tokens_per_batch(r) / per_batch, eta = per_batch * (double)(r->n_batches - t->step);
    const int outlier = watch_is_outlier(&p->loss_watch, loss);
    char elapsed[32], remaining[32];
    format_duration(elapsed, sizeof elapsed, now - p->start);
    format_duration(remaining, sizeof remaining, eta);
    const char *kind = r->opt->sample_softmax ? "sampled" : "full softmax";
    fprintf(stderr, "batch %ld/%ld  loss %.4f  perplexity %.2f (training, %s, %s)  grad norm %.3g  %.0f tokens/s"
            "  elapsed %s  ETA %s\n",
            t->step, r->n_batches, loss, exp(loss), kind, r->opt->dropout > 0 ? "dropout on" : "no dropout", norm, tps,
            elapsed, remaining);
    if (outlier) fprintf(stderr, "train: warning: batch %ld: loss %.4f is more than twice its recent median\n", t->step, loss);
    const MetricValue values[] = {
        {"epoch", NULL, (double)t->step / (double)r->batches_per_epoch},
        {"tokens", NULL, (double)t->step * tokens_per_batch(r)},
        {"train_sampled_perplexity", "train/perplexity_sampled", exp(loss)},
        {"train_sampled_loss", NULL, loss},
        {"train_sampled_loss_forward", "train/loss_forward", w->loss_dir[0] / w->count},
        {"train_sampled_loss_backward", t->n_dirs == 2 ? "train/loss_backward" : NULL, w->loss_dir[1] / w->count},
        {"grad_norm", "train/grad_norm", norm},
        {"learning_rate", NULL, r->opt->learning_rate},
        {"tokens_per_second", "train/tokens_per_second", tps},
        {"elapsed", NULL, now - p->start},
        {"eta", NULL, eta},
    };
    const char *flags[] = {"outlier_loss", NULL};
    if (replicas_lead() && metrics_record(r->metrics, "train", t->step, values,
                                          (int)(sizeof values / sizeof *values), outlier ? flags : NULL) < 0)
        elmo_die_last();
    memset(&p->window, 0, sizeof p->window);
    p->last_log = now;
}

/* After the first batches: how long the whole run will take at this speed. */
static void report_duration(Loop *p, double now) {
    TrainRun *r = p->r;
    p->warmup_reported = 1;
    const long done = r->trainer->step - p->first_step;
    const double per_batch = (now - p->start) / (double)done;
    char duration[32];
    format_duration(duration, sizeof duration, per_batch * (double)(r->n_batches - r->trainer->step));
    fprintf(stderr, "plan: %s to go at %.0f tokens/s (measured over the first %ld batches; refined on every progress "
            "line)\n", duration, tokens_per_batch(r) / per_batch, done);
}

/* A held-out evaluation; writes best.hdf5 when it is the best so far. Returns 1 when
 * --patience says to stop. */
static int evaluate(Loop *p, double now) {
    TrainRun *r = p->r;
    RunSettings *s = r->settings;
    Trainer *t = r->trainer;
    HeldoutResult h;
    /* split over the replicas by rows (heldout.h): every rank gets the same figures */
    if (heldout_evaluate(t->model, r->vocab, s->heldout_prefix, s->eval_batch_size, s->eval_tokens, 0, &h) < 0)
        elmo_die_last();
    p->last_eval = now;
    const int best = s->best_perplexity == 0 || h.perplexity < s->best_perplexity;
    const int outlier = watch_is_outlier(&p->heldout_watch, h.perplexity);
    fprintf(stderr, "heldout: batch %ld  perplexity %.3f (forward %.3f, backward %.3f; full softmax from the zero "
            "state, %ld tokens, %.1f s)%s\n",
            t->step, h.perplexity, h.perplexity_forward, h.perplexity_backward, h.tokens, h.seconds,
            best ? "  best so far" : "");
    if (outlier)
        fprintf(stderr, "train: warning: batch %ld: held-out perplexity %.3f is more than twice its recent median\n",
                t->step, h.perplexity);
    char imbalance[512];
    if (heldout_imbalance(&h, imbalance, sizeof imbalance)) fprintf(stderr, "train: warning: %s\n", imbalance);
    if (best) {
        s->best_perplexity = h.perplexity;
        s->best_step = t->step;
        s->evals_since_best = 0;
        char path[4096];
        snprintf(path, sizeof path, "%s/best.hdf5", r->save_dir);
        const CheckpointBest figures = {h.perplexity, h.perplexity_forward, h.perplexity_backward};
        write_checkpoint(r, path, &figures);
    } else {
        s->evals_since_best++;
    }
    const MetricValue values[] = {
        {"epoch", NULL, (double)t->step / (double)r->batches_per_epoch},
        {"tokens", NULL, (double)t->step * tokens_per_batch(r)},
        {"heldout_perplexity", "heldout/perplexity", h.perplexity},
        {"heldout_perplexity_forward", "heldout/perplexity_forward", h.perplexity_forward},
        {"heldout_perplexity_backward", "heldout/perplexity_backward", h.perplexity_backward},
        {"heldout_tokens", NULL, (double)h.tokens},
        {"heldout_seconds", NULL, h.seconds},
        {"best_perplexity", NULL, s->best_perplexity},
    };
    const char *flags[3] = {NULL, NULL, NULL};
    int n_flags = 0;
    if (best) flags[n_flags++] = "best";
    if (outlier) flags[n_flags++] = "outlier_heldout";
    if (replicas_lead() && metrics_record(r->metrics, "heldout", t->step, values,
                                          (int)(sizeof values / sizeof *values), n_flags ? flags : NULL) < 0)
        elmo_die_last();
    return s->patience > 0 && s->evals_since_best >= s->patience;
}

/* A non-finite loss, perplexity or gradient norm: nothing is saved, the last good files
 * stay. */
_Noreturn static void diverged(const TrainRun *r, double loss, double norm) {
    char what[512] = "none: every parameter, activation and gradient is finite, but the perplexity exp(loss) "
                     "overflows";
    trainer_find_nonfinite(r->trainer, what, sizeof what);
    char newest[4096] = "none yet";
    checkpoint_latest(r->save_dir, newest, sizeof newest, NULL);
    /* the replicas' losses are averaged: every rank stops here alike */
    fprintf(stderr,
            "elmo: train: batch %ld: the loss is %g and the gradient norm %g; first non-finite: %s. Stopped without "
            "saving: the newest checkpoint (%s) and best.hdf5 are as they were. Lower learning_rate or "
            "all_clip_norm_val.\n",
            r->trainer->step, loss, norm, what, newest);
    exit(ELMO_EXIT_DIVERGED);
}

/* Parameters compared over the replicas this often (batches), besides every checkpoint. */
#define REPLICA_CHECK_EVERY 100

int train_run(TrainRun *r) {
    RunSettings *s = r->settings;
    Trainer *t = r->trainer;
    const int n_dirs = t->n_dirs;
    const Replicas *rep = replicas();
    const int B = r->opt->batch_size;
    /* every replica packs the global batch (B rows per replica) and keeps its own rows */
    LmBatch global[2], mine[2];
    const LmBatch *batch_ptrs[2] = {&mine[0], &mine[1]};
    for (int d = 0; d < n_dirs; d++) {
        lm_batch_init(&global[d], B * rep->size, r->opt->unroll_steps, r->opt->max_chars);
        mine[d] = lm_batch_rows(&global[d], rep->rank * B, B);
    }
    if (rep->size > 1) {
        replica_states_init(&r->gathered, t, rep->size);
        t->combine = replicas_average_gradients;
    }
    replicas_check_identical(t->model, t->step); /* e.g. ranks started with other seeds */
    Loop p = {.r = r, .first_step = t->step};
    int no_signal = 0;
    double start = elmo_now();
    replicas_agree(&start, &no_signal);
    p.start = p.last_log = p.last_checkpoint = p.last_eval = start;
    const int evaluating = s->heldout_prefix[0] != '\0';
    /* SIGINT/SIGTERM: finish the batch, checkpoint, exit; a second one ends it at once */
    signals_stop_gracefully();
    int code = 0, stop = 0;
    while (!stop && t->step < r->n_batches && (!r->max_batches || p.run_batches < r->max_batches)) {
        for (int d = 0; d < n_dirs; d++)
            if (lm_reader_next(r->readers[d], &global[d]) <= 0) elmo_die_last();
        const int warming = t->step < s->warmup_softmax;
        if (t->softmax_only && !warming)
            fprintf(stderr, "train: softmax warm-up done at batch %ld: all layers train from here\n", t->step);
        t->softmax_only = warming;
        t->lr_scale_dense = (float)s->lr_scale_pretrained;
        const double loss = trainer_step(t, batch_ptrs);
        /* a loss whose perplexity overflows (over ~709 nats) is no model either */
        if (!isfinite(exp(loss)) || !isfinite(t->grad_norm)) diverged(r, loss, t->grad_norm);
        p.run_batches++;
        p.window.loss += loss;
        for (int d = 0; d < n_dirs; d++) p.window.loss_dir[d] += t->loss[d];
        p.window.norm += t->grad_norm;
        p.window.count++;

        /* every decision below is taken alike on every replica: rank 0's clock, any signal */
        double now = elmo_now();
        int signal = signals_stop_requested();
        replicas_agree(&now, &signal);
        const int last = t->step == r->n_batches || p.run_batches == r->max_batches;
        if (now - p.last_log >= s->log_every || last || signal || p.run_batches == 1) log_point(&p, now);
        if (!p.warmup_reported && (p.run_batches == 3 || now - p.start > 10.0) && !last) report_duration(&p, now);
        int checkpoint = t->step % s->checkpoint_every == 0 || last || signal ||
                         (s->checkpoint_minutes > 0 && now - p.last_checkpoint >= 60.0 * s->checkpoint_minutes);
        const int eval_due = evaluating && (last || (s->eval_every && t->step % s->eval_every == 0) ||
                                            (s->eval_minutes > 0 && now - p.last_eval >= 60.0 * s->eval_minutes) ||
                                            (!s->eval_every && s->eval_minutes <= 0 && checkpoint));
        if (eval_due && evaluate(&p, now)) {
            fprintf(stderr, "train: no better held-out perplexity in %d evaluations (best %.3f at batch %ld): "
                    "stopping (--patience %d)\n", s->evals_since_best, s->best_perplexity, s->best_step, s->patience);
            stop = 1;
            checkpoint = 1;
        }
        if (checkpoint) save_checkpoint(&p, now);
        else if (t->step % REPLICA_CHECK_EVERY == 0) replicas_check_identical(t->model, t->step);
        if (signal) {
            fprintf(stderr, "train: stopped by %s at batch %ld of %ld; checkpoint %s/model.ckpt-%ld.hdf5\n"
                    "train: resume with: elmo train --restart %s\n",
                    signal == SIGINT ? "SIGINT" : "SIGTERM", t->step, r->n_batches, r->save_dir, t->step, r->save_dir);
            code = 128 + signal;
            stop = 1;
        }
    }
    if (code == 0)
        fprintf(stderr, "train: stopped at batch %ld of %ld; newest checkpoint %s/model.ckpt-%ld.hdf5%s\n", t->step,
                r->n_batches, r->save_dir, t->step, evaluating && s->best_step ? "; best held-out model best.hdf5" : "");
    for (int d = 0; d < n_dirs; d++) lm_batch_free(&global[d]);
    if (rep->size > 1) replica_states_free(&r->gathered);
    return code;
}
