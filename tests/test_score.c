/* test_score.c - `elmo score`: per-sentence log-probabilities of a trained model against
 * `elmo eval` run one sentence at a time from the zero state, state and batching, and
 * bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fileio.h"
#include "testutil.h"

/* test_train_cli.c's small model: full-size training is not needed, a few batches are. */
static const char small_options[] =
    "{\"char_cnn\": {\"activation\": \"relu\", \"embedding\": {\"dim\": 4}, \"filters\": [[1, 8], [2, 8], [3, 8]],"
    " \"max_characters_per_token\": 12, \"n_characters\": 261, \"n_highway\": 1}, \"dropout\": 0.1,"
    " \"lstm\": {\"cell_clip\": 3, \"dim\": 16, \"n_layers\": 2, \"proj_clip\": 3, \"projection_dim\": 8,"
    " \"use_skip_connections\": true}, \"n_epochs\": 1, \"n_train_tokens\": 1200, \"batch_size\": 6,"
    " \"unroll_steps\": 10, \"n_negative_samples_batch\": 8, \"bidirectional\": true, \"sample_softmax\": true,"
    " \"learning_rate\": 0.2, \"all_clip_norm_val\": 10.0}";

static const char *const words[] = {"the", "cat", "dog", "sat", "on", "a", "mat", "ran", "to", "house", "big", "small"};

/* The sentences scored: an unknown word, a one-word line, a long one. No empty line:
 * eval's reader refuses those (score gives them one target per direction). */
static const char *const sentences[] = {"the cat sat on a mat", "big dog ran to the unseen house", "cat",
                                        "a small dog sat on the big mat and the cat ran to a house"};
#define N_SENTENCES 4

static char save_dir[512], vocab_path[512], input_path[512];

static int setup(void **state) {
    char path[512], dir[600];
    snprintf(dir, sizeof dir, "mkdir -p '%s/corpus'", test_tmpdir());
    CHECK(system(dir) == 0, "mkdir");
    for (int s = 0; s < 3; s++) {
        char name[64];
        snprintf(name, sizeof name, "corpus/shard-%d.txt", s);
        FILE *f = fopen(tmp_path(path, sizeof path, name), "w");
        for (int i = 0; i < 72; i++) {
            int n = 3 + (i * 7 + s) % 6;
            for (int k = 0; k < n; k++) fprintf(f, "%s%s", k ? " " : "", words[(i * 5 + k * 3 + s) % 12]);
            fprintf(f, "%s\n", i % 9 == 0 ? " unseen" : "");
        }
        fclose(f);
    }
    FILE *v = fopen(tmp_path(vocab_path, sizeof vocab_path, "vocab.txt"), "w");
    fprintf(v, "<S>\n</S>\n<UNK>\n");
    for (int i = 0; i < 12; i++) fprintf(v, "%s\n", words[i]);
    fclose(v);
    char opts[512], args[4096], err[4096];
    write_text_file(tmp_path(opts, sizeof opts, "small.json"), small_options);
    tmp_path(save_dir, sizeof save_dir, "save");
    snprintf(args, sizeof args,
             "train --options '%s' --train-prefix '%s/corpus/shard-*.txt' --vocab '%s' --save-dir '%s' "
             "--max-batches 8",
             opts, test_tmpdir(), vocab_path, save_dir);
    int rc = run_elmo(args, err, sizeof err);
    CHECK(rc == 0, "training failed (%d): %s", rc, err);
    char text[1024] = "";
    for (int i = 0; i < N_SENTENCES; i++) {
        strcat(text, sentences[i]);
        strcat(text, "\n");
    }
    write_text_file(tmp_path(input_path, sizeof input_path, "score_in.txt"), text);
    return 0;
}

typedef struct {
    long index;
    int tokens;
    double lp[2], ppl;
} ScoreLine;

typedef struct {
    int n;
    ScoreLine line[16];
    long sentences, tokens;
    double lp[2], ppl;
} ScoreOutput;

/* Runs `elmo score <args>`, parses its stdout; returns its exit status. */
static int run_score(const char *args, ScoreOutput *out, char *err, size_t err_size) {
    char cmd[4096], path[512], errpath[512];
    tmp_path(path, sizeof path, "score_out.txt");
    tmp_path(errpath, sizeof errpath, "score_err.txt");
    snprintf(cmd, sizeof cmd, "%s score %s > '%s' 2> '%s'", elmo_program(), args, path, errpath);
    int status = system(cmd);
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    char *text;
    size_t len;
    err[0] = '\0';
    if (file_read_all(errpath, 1 << 20, &text, &len) == 0) {
        snprintf(err, err_size, "%s", text);
        free(text);
    }
    memset(out, 0, sizeof *out);
    if (rc != 0) return rc;
    CHECK(file_read_all(path, 1 << 20, &text, &len) == 0, "%s", elmo_error());
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            int got = sscanf(line, "# total sentences %ld tokens %ld logprob_forward %lf logprob_backward %lf "
                                   "perplexity %lf",
                             &out->sentences, &out->tokens, &out->lp[0], &out->lp[1], &out->ppl);
            CHECK(got == 5, "summary line: %s", line);
            continue;
        }
        CHECK(out->n < 16, "too many lines");
        ScoreLine *s = &out->line[out->n++];
        CHECK(sscanf(line, "%ld\t%d\t%lf\t%lf\t%lf", &s->index, &s->tokens, &s->lp[0], &s->lp[1], &s->ppl) == 5,
              "line: %s", line);
    }
    free(text);
    return 0;
}

static int n_words(const char *s) {
    int n = 0;
    for (const char *p = s; *p; p++) n += (p == s || p[-1] == ' ') && *p != ' ';
    return n;
}

/* `elmo eval --batch-size 1` over one sentence: its n+1 positions per direction, T = 1,
 * from the zero state: perplexity_d = exp(-logprob_d / (n+1)). */
static void eval_sentence(int i, double lp[2]) {
    char path[512], name[64], cmd[4096], out[512];
    snprintf(name, sizeof name, "one-%d.txt", i);
    char text[512];
    snprintf(text, sizeof text, "%s\n", sentences[i]);
    write_text_file(tmp_path(path, sizeof path, name), text);
    tmp_path(out, sizeof out, "eval_out.txt");
    snprintf(cmd, sizeof cmd, "%s eval --save-dir '%s' --test-prefix '%s' --vocab '%s' --batch-size 1 --quiet > '%s'",
             elmo_program(), save_dir, path, vocab_path, out);
    assert_int_equal(system(cmd), 0);
    char *t;
    assert_int_equal(file_read_all(out, 1 << 16, &t, NULL), 0);
    const char *f = strstr(t, "perplexity_forward: "), *b = strstr(t, "perplexity_backward: ");
    assert_non_null(f);
    assert_non_null(b);
    const int targets = n_words(sentences[i]) + 1;
    lp[0] = -targets * log(atof(f + 20));
    lp[1] = -targets * log(atof(b + 21));
    free(t);
}

static int close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(fabs(a), fabs(b)); }

/* --stateless --batch-size 1 against eval one sentence at a time: every sentence and the
 * file's total, within 1e-4 relative (eval prints 7 digits; the two pipelines, trainer
 * and predictor, differ only in float summation order). */
static void test_matches_eval(void **state) {
    char args[4096], err[4096];
    ScoreOutput s;
    snprintf(args, sizeof args, "--save-dir '%s' --vocab '%s' --input '%s' --stateless --batch-size 1", save_dir,
             vocab_path, input_path);
    int rc = run_score(args, &s, err, sizeof err);
    if (rc != 0) print_error("score failed (%d): %s\n", rc, err);
    assert_int_equal(rc, 0);
    assert_int_equal(s.n, N_SENTENCES);
    assert_int_equal(s.sentences, N_SENTENCES);
    double total[2] = {0, 0}, sum[2] = {0, 0};
    long tokens = 0;
    for (int i = 0; i < N_SENTENCES; i++) {
        double lp[2];
        eval_sentence(i, lp);
        assert_int_equal(s.line[i].index, i);
        assert_int_equal(s.line[i].tokens, n_words(sentences[i]));
        tokens += s.line[i].tokens;
        for (int d = 0; d < 2; d++) {
            if (!close_rel(s.line[i].lp[d], lp[d], 1e-4))
                print_error("sentence %d direction %d: score %.6f, eval %.6f\n", i, d, s.line[i].lp[d], lp[d]);
            assert_true(close_rel(s.line[i].lp[d], lp[d], 1e-4));
            assert_true(s.line[i].lp[d] < 0);
            total[d] += lp[d];
            sum[d] += s.line[i].lp[d];
        }
        const double ppl = exp(-(s.line[i].lp[0] + s.line[i].lp[1]) / (2.0 * (s.line[i].tokens + 1)));
        assert_true(close_rel(s.line[i].ppl, ppl, 1e-5));
    }
    assert_int_equal(s.tokens, tokens);
    for (int d = 0; d < 2; d++) {
        assert_true(close_rel(s.lp[d], total[d], 1e-4));
        assert_true(close_rel(s.lp[d], sum[d], 1e-6));
    }
    assert_true(close_rel(s.ppl, exp(-(s.lp[0] + s.lp[1]) / (2.0 * (tokens + N_SENTENCES))), 1e-5));
}

/* Stateless results do not depend on the batch; the default carries state, which changes
 * every sentence after the first of its row. An empty line: one target per direction. */
static void test_state_and_batches(void **state) {
    char args[4096], err[4096];
    ScoreOutput one, three, carried;
    snprintf(args, sizeof args, "--save-dir '%s' --vocab '%s' --input '%s' --stateless --batch-size 1", save_dir,
             vocab_path, input_path);
    assert_int_equal(run_score(args, &one, err, sizeof err), 0);
    snprintf(args, sizeof args, "--save-dir '%s' --vocab '%s' --input '%s' --stateless --batch-size 3 --threads 2",
             save_dir, vocab_path, input_path);
    assert_int_equal(run_score(args, &three, err, sizeof err), 0);
    snprintf(args, sizeof args, "--save-dir '%s' --vocab '%s' --input '%s' --batch-size 1", save_dir, vocab_path,
             input_path);
    assert_int_equal(run_score(args, &carried, err, sizeof err), 0);
    for (int i = 0; i < N_SENTENCES; i++)
        for (int d = 0; d < 2; d++) {
            assert_true(close_rel(one.line[i].lp[d], three.line[i].lp[d], 1e-5));
            if (i == 0) assert_true(close_rel(one.line[i].lp[d], carried.line[i].lp[d], 1e-6));
            else assert_false(close_rel(one.line[i].lp[d], carried.line[i].lp[d], 1e-4));
        }
    char path[512];
    write_text_file(tmp_path(path, sizeof path, "empty_line.txt"), "the cat\n\n");
    snprintf(args, sizeof args, "--save-dir '%s' --vocab '%s' --input '%s'", save_dir, vocab_path, path);
    ScoreOutput e;
    assert_int_equal(run_score(args, &e, err, sizeof err), 0);
    assert_int_equal(e.n, 2);
    assert_int_equal(e.line[1].tokens, 0);
    assert_true(e.line[1].lp[0] < 0 && e.line[1].lp[1] < 0);
    assert_int_equal(e.tokens, 2);
}

static void expect_score_failure(const char *args, const char *culprit) {
    char err[4096];
    ScoreOutput s;
    int rc = run_score(args, &s, err, sizeof err);
    if (rc != 2 || count_lines(err) != 1 || !strstr(err, culprit))
        print_error("score %s: rc %d, stderr: %s(expected one line naming %s)\n", args, rc, err, culprit);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, culprit));
}

/* A file without softmax, a vocabulary of another size, invalid UTF-8, usage. */
static void test_bad_input(void **state) {
    char args[4096], err[4096], dumped[512], bigger[512], bad[512];
    tmp_path(dumped, sizeof dumped, "released.hdf5");
    snprintf(args, sizeof args, "dump-weights --save-dir '%s' --output '%s'", save_dir, dumped);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    snprintf(args, sizeof args, "--weights '%s' --options '%s/options.json' --vocab '%s' --input '%s'", dumped,
             save_dir, vocab_path, input_path);
    expect_score_failure(args, "no softmax/W");
    char *v;
    assert_int_equal(file_read_all(vocab_path, 1 << 16, &v, NULL), 0);
    char *more = xmalloc(strlen(v) + 16);
    sprintf(more, "%sextra\n", v);
    write_text_file(tmp_path(bigger, sizeof bigger, "bigger_vocab.txt"), more);
    free(more);
    free(v);
    /* another vocabulary: its rows matched by token, the new token's row said */
    snprintf(args, sizeof args, "--save-dir '%s' --vocab '%s' --input '%s'", save_dir, bigger, input_path);
    char remap_err[4096];
    ScoreOutput out;
    assert_int_equal(run_score(args, &out, remap_err, sizeof remap_err), 0);
    assert_non_null(strstr(remap_err, "15 kept, 1 new"));
    write_text_file(tmp_path(bad, sizeof bad, "bad_utf8.txt"), "the cat\nthe \xff\xfe dog\n");
    snprintf(args, sizeof args, "--save-dir '%s' --vocab '%s' --input '%s'", save_dir, vocab_path, bad);
    expect_score_failure(args, "bad_utf8.txt:2");
    snprintf(args, sizeof args, "--vocab '%s' --input '%s'", vocab_path, input_path);
    expect_score_failure(args, "--weights or --save-dir");
    snprintf(args, sizeof args, "--save-dir '%s' --vocab '%s' --input '%s' --batch-size 0", save_dir, vocab_path,
             input_path);
    expect_score_failure(args, "--batch-size");
    assert_int_equal(run_elmo("score --help", err, sizeof err), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_eval),
        cmocka_unit_test(test_state_and_batches),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("score", tests, setup, NULL);
}
