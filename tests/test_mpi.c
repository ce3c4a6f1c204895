/* test_mpi.c - data-parallel training over MPI (train/replicas.c), run with `mpirun -np 2`
 * on this machine only (shared memory and loopback), one thread per rank:
 *   (a) dropout 0, full softmax: 2 ranks of B rows take the steps 1 process of 2B rows takes;
 *   (b) sampling and dropout: stopped at a checkpoint and resumed, a 2-rank run ends
 *       byte-identical to an uninterrupted one;
 *   (c) the ranks' parameters are compared, and a job whose ranks disagree is stopped;
 *   (d) a rank killed mid-run ends the job (no hang) and its last checkpoint resumes.
 * Needs $ELMO_MPI_BIN (make test builds it when mpicc is installed) and mpirun; skipped,
 * saying why, without them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model.h"
#include "options.h"
#include "testutil.h"

/* Keeps Open MPI on this machine (docs/design.md section 9). */
#define MPIRUN                                                                                                   \
    "mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader --mca oob_tcp_if_include lo " \
    "--mca btl_tcp_if_include lo -x OMP_NUM_THREADS=1"

static const char *mpi_elmo(void) {
    const char *bin = getenv("ELMO_MPI_BIN");
    return bin && bin[0] && access(bin, X_OK) == 0 && system("command -v mpirun >/dev/null 2>&1") == 0 ? bin : NULL;
}

#define NEED_MPI()                                                                                         \
    do {                                                                                                   \
        if (!mpi_elmo()) {                                                                                 \
            if (getenv("ELMO_REQUIRE_MPI")) fail_msg("ELMO_REQUIRE_MPI=1 but no MPI build or mpirun");     \
            printf("note: no MPI build of elmo ($ELMO_MPI_BIN) or no mpirun: install openmpi-bin and "     \
                   "libopenmpi-dev (scripts/install-deps.sh --mpi)\n");                                     \
            skip();                                                                                        \
        }                                                                                                  \
    } while (0)

static char dir[1024];

/* The shared inputs: a 3000-sentence corpus and options of a small model. */
static void write_inputs(int batch, int dropout_and_sampling) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "zcat data/brown/train/shard-00000.txt.gz | head -3000 > %s/train.txt", dir);
    assert_int_equal(system(cmd), 0);
    char path[4200], text[2048];
    snprintf(path, sizeof path, "%s/options-%d-%d.json", dir, batch, dropout_and_sampling);
    snprintf(text, sizeof text,
             "{\"char_cnn\": {\"activation\": \"relu\", \"embedding\": {\"dim\": 4}, \"filters\": [[1, 8], [2, 8], "
             "[3, 16]], \"max_characters_per_token\": 16, \"n_characters\": 261, \"n_highway\": 1},\n"
             " \"lstm\": {\"cell_clip\": 3, \"dim\": 64, \"n_layers\": 2, \"proj_clip\": 3, \"projection_dim\": 32, "
             "\"use_skip_connections\": true},\n"
             " \"batch_size\": %d, \"unroll_steps\": 10, \"n_epochs\": 1, \"dropout\": %s, \"sample_softmax\": %s, "
             "\"n_negative_samples_batch\": 64}\n",
             batch, dropout_and_sampling ? "0.1" : "0", dropout_and_sampling ? "true" : "false");
    write_text_file(path, text);
}

/* Runs `[mpirun -np ranks] elmo train` with the inputs of write_inputs for `batches`
 * updates; returns its exit status. */
static int train(int ranks, int batch, int dropout_and_sampling, int batches, const char *save, const char *extra) {
    char launcher[1024] = "", cmd[16384];
    if (ranks > 1) snprintf(launcher, sizeof launcher, MPIRUN " -np %d ", ranks);
    snprintf(cmd, sizeof cmd,
             "%s%s train --options %s/options-%d-%d.json --train-prefix %s/train.txt --vocab data/brown/vocab.txt "
             "--save-dir %s/%s --n-train-tokens %d --threads 1 --log-every 0 --seed 5 %s 2>%s/%s.err",
             launcher, ranks > 1 ? mpi_elmo() : elmo_program(), dir, batch, dropout_and_sampling, dir, dir, save,
             batches * batch * ranks * 10, extra, dir, save);
    const int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

static void print_err(const char *save) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "tail -5 %s/%s.err", dir, save);
    if (system(cmd) != 0) printf("(no log)\n");
}

/* Every float tensor of a's checkpoint: parameters, Adagrad accumulators, LSTM states. */
static void for_each_tensor(const char *options, void (*check)(const char *name, void *ctx), void *ctx) {
    ElmoOptions opt;
    assert_int_equal(options_load(&opt, options), 0);
    BilmModel m;
    model_init_layout(&m, &opt, 21170);
    char name[256];
    for (int i = 0; i < m.n_entries; i++) {
        check(m.entries[i].name, ctx);
        snprintf(name, sizeof name, "training/adagrad/%s", m.entries[i].name);
        check(name, ctx);
    }
    for (int d = 0; d < 2; d++)
        for (int l = 0; l < 2; l++)
            for (int which = 0; which < 2; which++) {
                snprintf(name, sizeof name, "training/lstm_%c_%d_%d", which ? 'h' : 'c', d, l);
                check(name, ctx);
            }
    model_free(&m);
    options_free(&opt);
}

typedef struct {
    const char *a, *b;
    double worst;
    char worst_name[256];
    int tensors;
} Compare;

/* max |a - b| relative to max |a| over the tensor */
static void compare_tensor(const char *name, void *ctx) {
    Compare *c = ctx;
    int ra, rb;
    size_t da[8], db[8];
    float *x = read_dataset(c->a, name, &ra, da), *y = read_dataset(c->b, name, &rb, db);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(ra, rb);
    size_t n = 1;
    for (int k = 0; k < ra; k++) {
        assert_int_equal(da[k], db[k]);
        n *= da[k];
    }
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(x[i]));
    const double rel = scale > 0 ? max_abs_diff(x, y, n) / scale : max_abs_diff(x, y, n);
    if (rel > c->worst) {
        c->worst = rel;
        snprintf(c->worst_name, sizeof c->worst_name, "%s", name);
    }
    c->tensors++;
    free(x);
    free(y);
}

static int files_equal(const char *a, const char *b) {
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", a, b);
    return system(cmd) == 0;
}

/* Continues dir/save on 2 ranks to its end, then its checkpoint of `step` must equal
 * dir/reference's byte for byte. */
static void resume_matches(const char *save, const char *reference, int step) {
    char cmd[9000], a[4300], b[4300];
    snprintf(cmd, sizeof cmd, "%s -np 2 %s train --restart %s/%s 2>%s/%s.resumed.err", MPIRUN, mpi_elmo(), dir, save,
             dir, save);
    assert_int_equal(system(cmd), 0);
    snprintf(a, sizeof a, "%s/%s/model.ckpt-%d.hdf5", dir, reference, step);
    snprintf(b, sizeof b, "%s/%s/model.ckpt-%d.hdf5", dir, save, step);
    assert_true(files_equal(a, b));
}

/* (a) */
static void test_two_ranks_take_the_steps_of_one_process(void **state) {
    NEED_MPI();
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    write_inputs(8, 0);
    write_inputs(16, 0);
    if (train(1, 16, 0, 12, "one", "") != 0) print_err("one");
    if (train(2, 8, 0, 12, "two", "") != 0) print_err("two");
    char a[4300], b[4300], options[4300];
    snprintf(a, sizeof a, "%s/one/model.ckpt-12.hdf5", dir);
    snprintf(b, sizeof b, "%s/two/model.ckpt-12.hdf5", dir);
    snprintf(options, sizeof options, "%s/one/options.json", dir);
    assert_true(file_exists(a));
    assert_true(file_exists(b));
    Compare c = {.a = a, .b = b};
    for_each_tensor(options, compare_tensor, &c);
    printf("note: %d tensors after 12 batches, worst max|a-b|/max|a| %.3g (%s)\n", c.tensors, c.worst, c.worst_name);
    assert_true(c.tensors >= 50);
    assert_true(c.worst < 1e-5);
}

/* (b) and (c): sampled softmax, dropout; stopped at batch 5 (--max-batches) and resumed */
static void test_two_ranks_resume_exactly(void **state) {
    NEED_MPI();
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    write_inputs(8, 1);
    assert_int_equal(train(2, 8, 1, 12, "whole", "--checkpoint-every 4"), 0);
    assert_int_equal(train(2, 8, 1, 12, "parts", "--checkpoint-every 4 --max-batches 5"), 0);
    resume_matches("parts", "whole", 12);
    /* a restart with another number of ranks is refused, naming both */
    char cmd[9000], err[4096];
    snprintf(cmd, sizeof cmd, "train --restart %s/parts --max-batches 1", dir);
    assert_int_not_equal(run_elmo(cmd, err, sizeof err), 0);
    assert_non_null(strstr(err, "2 replicas"));
}

/* (c) the ranks started from different parameters (another seed on rank 1): refused */
static void test_ranks_that_disagree_are_stopped(void **state) {
    NEED_MPI();
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    write_inputs(8, 1);
    char cmd[65536];
    const char *args = "train --options %s/options-8-1.json --train-prefix %s/train.txt --vocab data/brown/vocab.txt "
                       "--save-dir %s/drift --n-train-tokens 1920 --threads 1 --log-every 0";
    char a[16384];
    snprintf(a, sizeof a, args, dir, dir, dir);
    snprintf(cmd, sizeof cmd, "timeout 120 %s -np 1 %s %s --seed 5 : -np 1 %s %s --seed 6 2>%s/drift.err", MPIRUN,
             mpi_elmo(), a, mpi_elmo(), a, dir);
    const int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) != 0 && WEXITSTATUS(rc) != 124);
    snprintf(cmd, sizeof cmd, "grep -q 'drifted apart' %s/drift.err", dir);
    if (system(cmd) != 0) print_err("drift");
    assert_int_equal(system(cmd), 0);
}

/* (d) kill -9 of rank 1 after the first checkpoint: the job ends, the checkpoint resumes */
static void test_a_rank_dying_ends_the_job(void **state) {
    NEED_MPI();
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    write_inputs(8, 1);
    assert_int_equal(train(2, 8, 1, 60, "reference", "--checkpoint-every 2"), 0);
    char cmd[16384];
    snprintf(cmd, sizeof cmd,
             "%s -np 2 %s train --options %s/options-8-1.json --train-prefix %s/train.txt --vocab "
             "data/brown/vocab.txt --save-dir %s/killed --n-train-tokens 9600 --threads 1 --log-every 0 --seed 5 "
             "--checkpoint-every 2 2>%s/killed.err & job=$!; "
             "while [ ! -e %s/killed/model.ckpt-2.hdf5 ]; do sleep 0.01; done; "
             "pkill -9 -f 'elmo train.*killed.*--checkpoint-every' -n; "
             "timeout 60 sh -c \"while kill -0 $job 2>/dev/null; do sleep 0.05; done\"; wait $job; echo $? > %s/rc",
             MPIRUN, mpi_elmo(), dir, dir, dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    char path[4300], text[64] = "";
    snprintf(path, sizeof path, "%s/rc", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof text, f));
    fclose(f);
    printf("note: the job ended with status %s", text);
    assert_int_not_equal(atoi(text), 0);
    resume_matches("killed", "reference", 60);
}

int main(void) {
    /* Under AddressSanitizer (.ci/run) the leak check stays off for the MPI jobs: Open MPI
     * keeps its own allocations to the end (hundreds of reports from libmpi, hwloc and its
     * plugins); our code's leaks are checked by the same code in the other suites. */
    const char *asan = getenv("ASAN_OPTIONS");
    if (asan) {
        char options[4096];
        snprintf(options, sizeof options, "%s:detect_leaks=0", asan);
        setenv("ASAN_OPTIONS", options, 1);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_ranks_take_the_steps_of_one_process),
        cmocka_unit_test(test_two_ranks_resume_exactly),
        cmocka_unit_test(test_ranks_that_disagree_are_stopped),
        cmocka_unit_test(test_a_rank_dying_ends_the_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
