/* test_train_run.c - a training run a user can trust, end to end through `elmo train`:
 * released options train with the defaults listed, the plan counts the shards' tokens,
 * held-out evaluation keeps best.hdf5 and --patience stops, metrics and TensorBoard files
 * are written, a run that cannot fit is refused, a non-finite run stops with exit 3, and
 * SIGTERM checkpoints the batch reached and resumes byte-identical. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"
#include "h5io.h"
#include "testutil.h"

/* A small model: 6 x 10 tokens a batch. */
static const char options_format[] =
    "{\"char_cnn\": {\"activation\": \"relu\", \"embedding\": {\"dim\": 4}, \"filters\": [[1, 8], [2, 8], [3, 8]],"
    " \"max_characters_per_token\": 12, \"n_characters\": 261, \"n_highway\": 1}, \"dropout\": 0.1,"
    " \"lstm\": {\"cell_clip\": 3, \"dim\": 16, \"n_layers\": 2, \"proj_clip\": 3, \"projection_dim\": 8,"
    " \"use_skip_connections\": true}, \"batch_size\": %d, \"unroll_steps\": %d, \"n_negative_samples_batch\": 8,"
    " \"learning_rate\": %g, \"n_epochs\": %d %s}";

static char train_glob[512], heldout_glob[512], vocab_path[512];
static long corpus_tokens;

static const char *const WORDS[] = {"the", "cat", "dog", "sat", "on", "a", "mat", "ran", "to", "house", "big", "small"};

static void write_corpus(const char *name, int lines, int salt) {
    char path[512];
    FILE *f = fopen(tmp_path(path, sizeof path, name), "w");
    for (int i = 0; i < lines; i++) {
        const int n = 3 + (i * 7 + salt) % 6;
        for (int k = 0; k < n; k++) fprintf(f, "%s%s", k ? " " : "", WORDS[(i * 5 + k * 3 + salt) % 12]);
        if (salt == 0) corpus_tokens += n;
        fprintf(f, "\n");
    }
    fclose(f);
}

static int setup(void **state) {
    write_corpus("train-0.txt", 60, 0);
    write_corpus("heldout-0.txt", 30, 1);
    snprintf(train_glob, sizeof train_glob, "%s/train-*.txt", test_tmpdir());
    snprintf(heldout_glob, sizeof heldout_glob, "%s/heldout-*.txt", test_tmpdir());
    FILE *v = fopen(tmp_path(vocab_path, sizeof vocab_path, "vocab.txt"), "w");
    fprintf(v, "<S>\n</S>\n<UNK>\n");
    for (int i = 0; i < 12; i++) fprintf(v, "%s\n", WORDS[i]);
    fclose(v);
    return 0;
}

/* Options of the small model, 6 x 10 tokens a batch unless batch_size is given. */
static const char *options_file(const char *name, double lr, int epochs, const char *extra) {
    static char path[512];
    char text[2048];
    snprintf(text, sizeof text, options_format, 6, 10, lr, epochs, extra);
    write_text_file(tmp_path(path, sizeof path, name), text);
    return path;
}

/* Runs a shell command line with elmo; returns its exit status, stderr into err. */
static int run(const char *args, char *err, size_t size) {
    const int rc = run_elmo(args, err, size);
    return rc;
}

/* noinline: gcc 12 otherwise takes the returned buffer for the local pointer (-Wdangling-pointer) */
__attribute__((noinline)) static char *read_text(const char *path) {
    char *text = NULL;
    const int rc = file_read_all(path, 1 << 26, &text, NULL);
    assert_int_equal(rc, 0);
    return text;
}

/* The options.json of a save directory, parsed. */
static cJSON *saved_options(const char *save) {
    char path[600];
    snprintf(path, sizeof path, "%s/options.json", save);
    char *text = read_text(path);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    return root;
}

static double json_number(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_non_null(v);
    return v->valuedouble;
}

/* The fixture's released options.json (model keys only, n_characters 262) trains from its
 * weights without editing; the defaults it takes are listed and saved explicitly. */
static void test_released_options_train(void **state) {
    char options[512], weights[512];
    if (!fixture_path(options, sizeof options, "bilm-tf/model/options.json") ||
        !fixture_path(weights, sizeof weights, "bilm-tf/model/lm_weights.hdf5"))
        skip();
    char save[512], args[4096], err[16384];
    tmp_path(save, sizeof save, "released");
    /* 128 x 20 tokens a batch: a corpus of 2,560 tokens or more */
    char big[512];
    FILE *f = fopen(tmp_path(big, sizeof big, "big-0.txt"), "w");
    for (int i = 0; i < 700; i++) fprintf(f, "the cat sat on a mat\n");
    fclose(f);
    snprintf(args, sizeof args,
             "train --options '%s' --init-from '%s' --train-prefix '%s/big-*.txt' --vocab '%s' --save-dir '%s' "
             "--max-batches 1 --log-every 0",
             options, weights, test_tmpdir(), vocab_path, save);
    const int rc = run(args, err, sizeof err);
    if (rc != 0) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, "train_elmo.py values assumed: bidirectional true, dropout 0.1, batch_size 128, "
                                "unroll_steps 20, n_negative_samples_batch 8192, sample_softmax true, "
                                "learning_rate 0.2, all_clip_norm_val 10, n_epochs 10"));
    assert_non_null(strstr(err, "4200 training tokens")); /* 700 lines of 6 */
    /* the vocabulary is smaller than the assumed 8192 candidates: full softmax, said */
    assert_non_null(strstr(err, "full softmax"));
    cJSON *o = saved_options(save);
    assert_int_equal((long)json_number(o, "batch_size"), 128);
    assert_int_equal((long)json_number(o, "n_epochs"), 10);
    assert_int_equal((long)json_number(o, "n_train_tokens"), 4200);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "sample_softmax")));
    cJSON_Delete(o);
}

/* Options without n_train_tokens: the plan counts the shards and runs exactly
 * n_epochs * floor(count / (B*T)) batches; a wrong figure is warned about and the count
 * used; --n-train-tokens forces a figure. */
static void test_token_count_plans_batches(void **state) {
    char save[512], args[4096], err[16384];
    const long expected = 3 * (corpus_tokens / 60);
    tmp_path(save, sizeof save, "counted");
    snprintf(args, sizeof args, "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --log-every 0",
             options_file("count.json", 0.2, 3, ""), train_glob, vocab_path, save);
    assert_int_equal(run(args, err, sizeof err), 0);
    char line[1024];
    snprintf(line, sizeof line, "%ld training tokens", corpus_tokens);
    assert_non_null(strstr(err, line));
    snprintf(line, sizeof line, "3 epochs: %ld batches", expected);
    assert_non_null(strstr(err, line));
    snprintf(line, sizeof line, "%s/model.ckpt-%ld.hdf5", save, expected);
    assert_true(file_exists(line));
    cJSON *o = saved_options(save);
    assert_int_equal((long)json_number(o, "n_train_tokens"), corpus_tokens);
    cJSON_Delete(o);

    tmp_path(save, sizeof save, "wrong_count");
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --log-every 0 --max-batches 1",
             options_file("wrong.json", 0.2, 1, ", \"n_train_tokens\": 5000000"), train_glob, vocab_path, save);
    assert_int_equal(run(args, err, sizeof err), 0);
    snprintf(line, sizeof line, "n_train_tokens 5000000, but");
    assert_non_null(strstr(err, line));
    snprintf(line, sizeof line, "holds %ld tokens: using the count", corpus_tokens);
    assert_non_null(strstr(err, line));

    tmp_path(save, sizeof save, "forced_count");
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --log-every 0 --max-batches 1 "
             "--n-train-tokens 600",
             options_file("forced.json", 0.2, 1, ""), train_glob, vocab_path, save);
    assert_int_equal(run(args, err, sizeof err), 0);
    assert_non_null(strstr(err, "1 epoch: 10 batches"));
}

/* The metrics of a run: jsonl records of the plan, of training and of the held-out
 * evaluations; a TensorBoard event file; curves.svg. */
static void check_metrics_files(const char *save, int *n_heldout, long *best_step, double *best) {
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", save);
    char *text = read_text(path);
    int plans = 0, trains = 0;
    *n_heldout = 0;
    *best = INFINITY;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
        assert_true(cJSON_IsString(kind));
        if (strcmp(kind->valuestring, "plan") == 0) plans++;
        if (strcmp(kind->valuestring, "train") == 0) {
            trains++;
            assert_true(json_number(o, "train_sampled_perplexity") > 1.0);
            assert_true(json_number(o, "grad_norm") > 0.0);
        }
        if (strcmp(kind->valuestring, "heldout") == 0) {
            (*n_heldout)++;
            const double p = json_number(o, "heldout_perplexity");
            if (p < *best) {
                *best = p;
                *best_step = (long)json_number(o, "step");
            }
        }
        cJSON_Delete(o);
    }
    free(text);
    assert_true(plans >= 1);
    assert_true(trains >= 1);
    snprintf(path, sizeof path, "ls '%s'/events.out.tfevents.* >/dev/null 2>&1", save);
    assert_int_equal(system(path), 0);
    snprintf(path, sizeof path, "%s/curves.svg", save);
    char *svg = read_text(path);
    assert_non_null(strstr(svg, "<svg"));
    free(svg);
}

static double string_attribute(const char *file_path, const char *name) {
    hid_t file;
    assert_int_equal(h5io_open_read(file_path, &file), 0);
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    char value[64];
    assert_int_equal(h5io_read_string_attr(root, file_path, name, value, sizeof value), 0);
    H5Gclose(root);
    H5Fclose(file);
    return atof(value);
}

/* A held-out curve that goes down, then (a learning rate far too large from a restart on)
 * up: best.hdf5 is the checkpoint of the minimum, --patience stops the run, dump-weights
 * --best exports it. */
static void test_heldout_best_and_patience(void **state) {
    char save[512], args[4096], err[16384];
    tmp_path(save, sizeof save, "heldout_run");
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --log-every 0 "
             "--heldout-prefix '%s' --eval-every 3 --eval-batch-size 4 --max-batches 24 --n-train-tokens 6000",
             options_file("heldout.json", 0.2, 10, ""), train_glob, vocab_path, save, heldout_glob);
    int rc = run(args, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, "heldout: batch 3"));
    int n_heldout;
    long best_step;
    double best;
    check_metrics_files(save, &n_heldout, &best_step, &best);
    assert_int_equal(n_heldout, 8);
    /* now a learning rate far too large: the held-out perplexity rises */
    char options[600];
    snprintf(options, sizeof options, "%s/options.json", save);
    cJSON *o = saved_options(save);
    cJSON_ReplaceItemInObjectCaseSensitive(o, "learning_rate", cJSON_CreateNumber(30.0));
    char *text = cJSON_Print(o);
    write_text_file(options, text);
    free(text);
    cJSON_Delete(o);
    snprintf(args, sizeof args, "train --restart '%s' --patience 2 --max-batches 60", save);
    rc = run(args, err, sizeof err);
    if (rc) print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, "stopping (--patience 2)"));
    check_metrics_files(save, &n_heldout, &best_step, &best);
    char best_path[600];
    snprintf(best_path, sizeof best_path, "%s/best.hdf5", save);
    print_message("best held-out perplexity %.3f at batch %ld of %d evaluations\n", best, best_step, n_heldout);
    assert_true(n_heldout > 8 && n_heldout < 8 + 20); /* stopped early */
    assert_int_equal((long)string_attribute(best_path, "best_step"), best_step);
    assert_true(fabs(string_attribute(best_path, "heldout_perplexity") - best) < 1e-9 * best);
    /* the best checkpoint is exported, and evaluates to its recorded figure */
    char exported[600];
    snprintf(exported, sizeof exported, "%s/export/deep/weights.hdf5", test_tmpdir());
    snprintf(args, sizeof args, "dump-weights --save-dir '%s' --best --output '%s'", save, exported);
    assert_int_equal(run(args, err, sizeof err), 0);
    int rank;
    size_t d1[4], d2[4];
    float *a = read_dataset(exported, "CNN/W_cnn_0", &rank, d1), *b = read_dataset(best_path, "CNN/W_cnn_0", &rank, d2);
    assert_true(max_abs_diff(a, b, d1[0] * d1[1] * d1[2] * d1[3]) == 0.0);
    free(a);
    free(b);
}

/* A run whose memory cannot fit is refused before it starts, with both numbers. */
static void test_memory_refused(void **state) {
    char save[512], args[4096], err[16384];
    tmp_path(save, sizeof save, "too_big");
    char big[512], text[2048];
    snprintf(text, sizeof text, options_format, 100000, 1000, 0.2, 1, "");
    write_text_file(tmp_path(big, sizeof big, "big.json"), text);
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --n-train-tokens 100000000000",
             big, train_glob, vocab_path, save);
    assert_int_equal(run(args, err, sizeof err), 2);
    assert_non_null(strstr(err, "of memory and the machine has"));
    assert_non_null(strstr(err, "--ignore-memory-check"));
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt-1.hdf5", save);
    assert_false(file_exists(ckpt));
}

/* A learning rate that makes the loss non-finite: exit 3, the batch and the first
 * non-finite tensor named, the checkpoint written before it unchanged. */
static void test_nonfinite_stops(void **state) {
    char save[512], args[4096], err[16384];
    tmp_path(save, sizeof save, "diverging");
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --log-every 0 --max-batches 1 "
             "--n-train-tokens 6000",
             options_file("diverge.json", 0.2, 10, ""), train_glob, vocab_path, save);
    assert_int_equal(run(args, err, sizeof err), 0);
    char ckpt[600], copy[600];
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt-1.hdf5", save);
    snprintf(copy, sizeof copy, "%s/diverging-ckpt-1.copy", test_tmpdir());
    snprintf(args, sizeof args, "cp '%s' '%s'", ckpt, copy);
    assert_int_equal(system(args), 0);
    char options[600];
    snprintf(options, sizeof options, "%s/options.json", save);
    cJSON *o = saved_options(save);
    cJSON_ReplaceItemInObjectCaseSensitive(o, "learning_rate", cJSON_CreateNumber(1e6));
    char *text = cJSON_Print(o);
    write_text_file(options, text);
    free(text);
    cJSON_Delete(o);
    snprintf(args, sizeof args, "train --restart '%s' --checkpoint-every 1000", save);
    const int rc = run(args, err, sizeof err);
    if (rc != 3) print_error("rc %d: %s\n", rc, err);
    assert_int_equal(rc, 3);
    assert_non_null(strstr(err, "first non-finite: "));
    assert_non_null(strstr(err, "Stopped without saving"));
    assert_int_equal(count_lines(err) > 0, 1);
    snprintf(args, sizeof args, "cmp -s '%s' '%s'", ckpt, copy);
    assert_int_equal(system(args), 0);
}

/* SIGTERM during a run: exit 143 after a checkpoint of the batch reached; the resumed run
 * ends byte-identical to one never stopped. A second signal ends it at once, files intact. */
static void test_sigterm_checkpoints_and_resumes(void **state) {
    char straight[512], stopped[512], args[4096], err[16384], cmd[8192], errfile[512];
    const char *options = options_file("long.json", 0.2, 1, "");
    tmp_path(straight, sizeof straight, "sig_straight");
    tmp_path(stopped, sizeof stopped, "sig_stopped");
    const long batches = 400;
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --log-every 0 --threads 1 "
             "--n-train-tokens %ld --checkpoint-every 1000000",
             options, train_glob, vocab_path, straight, batches * 60);
    assert_int_equal(run(args, err, sizeof err), 0);
    tmp_path(errfile, sizeof errfile, "sigterm.err");
    snprintf(cmd, sizeof cmd,
             "%s train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --log-every 0 --threads 1 "
             "--n-train-tokens %ld --checkpoint-every 1000000 2>'%s' & pid=$!; "
             "while ! grep -q 'to go at' '%s' 2>/dev/null; do sleep 0.05; done; kill -TERM $pid; wait $pid; "
             "test $? -eq 143",
             elmo_program(), options, train_glob, vocab_path, stopped, batches * 60, errfile, errfile);
    assert_int_equal(system(cmd), 0);
    char *log = read_text(errfile);
    const char *at = strstr(log, "stopped by SIGTERM at batch ");
    assert_non_null(at);
    const long step = atol(at + strlen("stopped by SIGTERM at batch "));
    assert_non_null(strstr(log, "resume with: elmo train --restart"));
    free(log);
    print_message("SIGTERM: checkpoint at batch %ld of %ld\n", step, batches);
    assert_true(step >= 3 && step < batches);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/model.ckpt-%ld.hdf5", stopped, step);
    assert_true(file_exists(a));
    snprintf(args, sizeof args, "train --restart '%s'", stopped);
    assert_int_equal(run(args, err, sizeof err), 0);
    snprintf(a, sizeof a, "%s/model.ckpt-%ld.hdf5", straight, batches);
    snprintf(b, sizeof b, "%s/model.ckpt-%ld.hdf5", stopped, batches);
    snprintf(cmd, sizeof cmd, "cmp '%s' '%s'", a, b);
    assert_int_equal(system(cmd), 0);

    /* two signals: the second ends the process at once; nothing half-written remains */
    char twice[512];
    tmp_path(twice, sizeof twice, "sig_twice");
    snprintf(cmd, sizeof cmd,
             "%s train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --log-every 0 --threads 1 "
             "--n-train-tokens %ld --checkpoint-every 1 2>'%s' & pid=$!; "
             "while ! grep -q 'to go at' '%s' 2>/dev/null; do sleep 0.05; done; kill -TERM $pid; kill -TERM $pid; "
             "wait $pid; echo $? > '%s.rc'",
             elmo_program(), options, train_glob, vocab_path, twice, batches * 60, errfile, errfile, errfile);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '\\.tmp\\.' > '%s.tmps'", twice, errfile);
    assert_int_equal(system(cmd) >= 0, 1);
    char tmps[1024];
    snprintf(tmps, sizeof tmps, "%s.tmps", errfile);
    char *count = read_text(tmps);
    assert_int_equal(atoi(count), 0);
    free(count);
    snprintf(tmps, sizeof tmps, "%s.rc", errfile);
    char *status = read_text(tmps);
    assert_int_equal(atoi(status), 143);
    free(status);
    snprintf(args, sizeof args, "train --restart '%s' --max-batches 1", twice); /* its newest checkpoint is sound */
    assert_int_equal(run(args, err, sizeof err), 0);
}

/* --restart restores every setting of the run, an --n-epochs extension of an earlier
 * restart included; another thread count is said aloud. */
static void test_restart_keeps_settings(void **state) {
    char save[512], args[4096], err[16384];
    tmp_path(save, sizeof save, "settings_run");
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --log-every 0 --threads 1 "
             "--n-train-tokens 600 --checkpoint-every 4",
             options_file("settings.json", 0.2, 1, ""), train_glob, vocab_path, save);
    assert_int_equal(run(args, err, sizeof err), 0);
    assert_non_null(strstr(err, "stopped at batch 10 of 10"));
    snprintf(args, sizeof args, "train --restart '%s' --n-epochs 2 --max-batches 3", save);
    assert_int_equal(run(args, err, sizeof err), 0);
    assert_non_null(strstr(err, "stopped at batch 13 of 20"));
    assert_null(strstr(err, "bit-identical")); /* the run's 1 thread, restored */
    snprintf(args, sizeof args, "train --restart '%s'", save); /* the extension is remembered */
    assert_int_equal(run(args, err, sizeof err), 0);
    assert_non_null(strstr(err, "stopped at batch 20 of 20"));
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt-16.hdf5", save); /* every 4 batches, restored */
    assert_true(file_exists(ckpt));
    cJSON *o = saved_options(save);
    assert_int_equal((long)json_number(o, "n_epochs"), 2);
    cJSON_Delete(o);
    snprintf(args, sizeof args, "train --restart '%s' --threads 2", save);
    assert_int_equal(run(args, err, sizeof err), 0);
    assert_non_null(strstr(err, "2 threads where the run had 1: the result is no longer bit-identical"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_released_options_train),
        cmocka_unit_test(test_token_count_plans_batches),
        cmocka_unit_test(test_heldout_best_and_patience),
        cmocka_unit_test(test_memory_refused),
        cmocka_unit_test(test_nonfinite_stops),
        cmocka_unit_test(test_sigterm_checkpoints_and_resumes),
        cmocka_unit_test(test_restart_keeps_settings),
    };
    return cmocka_run_group_tests_name("train_run", tests, setup, NULL);
}
