/* test_runlock.c - one run at a time in a save directory, and no debris: a second
 * `elmo train` (fresh or --restart) on a directory in use is refused naming the running
 * process, a lock left by a process that ended is taken over, temporaries of ended
 * processes are removed (a live process's never), and a fresh run that fails leaves its
 * save directory as it found it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"
#include "testutil.h"

static char train_glob[512], vocab_path[512], options_path[512];

static int setup(void **state) {
    static const char *const words[] = {"the", "cat", "dog", "sat", "on", "a", "mat", "ran"};
    char path[512];
    FILE *f = fopen(tmp_path(path, sizeof path, "train-0.txt"), "w");
    for (int i = 0; i < 60; i++) {
        const int n = 3 + (i * 7) % 6;
        for (int k = 0; k < n; k++) fprintf(f, "%s%s", k ? " " : "", words[(i * 5 + k * 3) % 8]);
        fprintf(f, "\n");
    }
    fclose(f);
    snprintf(train_glob, sizeof train_glob, "%s/train-*.txt", test_tmpdir());
    FILE *v = fopen(tmp_path(vocab_path, sizeof vocab_path, "vocab.txt"), "w");
    fprintf(v, "<S>\n</S>\n<UNK>\n");
    for (int i = 0; i < 8; i++) fprintf(v, "%s\n", words[i]);
    fclose(v);
    write_text_file(tmp_path(options_path, sizeof options_path, "options.json"),
                    "{\"char_cnn\": {\"activation\": \"relu\", \"embedding\": {\"dim\": 4}, \"filters\": [[1, 8], [2, 8]],"
                    " \"max_characters_per_token\": 12, \"n_characters\": 261, \"n_highway\": 1}, \"dropout\": 0.1,"
                    " \"lstm\": {\"cell_clip\": 3, \"dim\": 16, \"n_layers\": 1, \"proj_clip\": 3, \"projection_dim\": 8,"
                    " \"use_skip_connections\": true}, \"batch_size\": 6, \"unroll_steps\": 10,"
                    " \"n_negative_samples_batch\": 8, \"learning_rate\": 0.2, \"n_epochs\": 1}");
    return 0;
}

/* The fresh-run arguments into save (tokens: --n-train-tokens, 0 to count). */
static const char *fresh_args(char *buf, size_t size, const char *save, long tokens) {
    char n[64] = "";
    if (tokens) snprintf(n, sizeof n, " --n-train-tokens %ld", tokens);
    snprintf(buf, size,
             "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' --log-every 0 --threads 1%s",
             options_path, train_glob, vocab_path, save, n);
    return buf;
}

__attribute__((noinline)) static char *read_text(const char *path) {
    char *text = NULL;
    assert_int_equal(file_read_all(path, 1 << 24, &text, NULL), 0);
    return text;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* A slow run holds its save directory: a --restart and a fresh run into it are refused at
 * once, naming its pid; once it has ended, a restart works. */
static void test_second_run_refused(void **state) {
    char save[512], fresh[4096], cmd[16384], base[512];
    tmp_path(save, sizeof save, "busy");
    tmp_path(base, sizeof base, "busy");
    fresh_args(fresh, sizeof fresh, save, 1000000L * 60);
    const char *elmo = elmo_program();
    snprintf(cmd, sizeof cmd,
             "%s %s --checkpoint-every 1000000 2>'%s.a' & pid=$!; echo $pid > '%s.pid'; "
             "for i in $(seq 1200); do grep -q 'to go at' '%s.a' 2>/dev/null && break; sleep 0.05; done; "
             "%s train --restart '%s' --max-batches 1 2>'%s.b'; echo $? > '%s.b.rc'; "
             "%s %s --max-batches 1 2>'%s.c'; echo $? > '%s.c.rc'; "
             "kill -TERM $pid; wait $pid; echo $? > '%s.a.rc'",
             elmo, fresh, base, base, base, elmo, save, base, base, elmo, fresh, base, base, base);
    assert_int_equal(system(cmd), 0);
    char path[600], holder[64];
    snprintf(path, sizeof path, "%s.pid", base);
    char *pid = read_text(path);
    snprintf(holder, sizeof holder, "in use by process %ld on ", atol(pid));
    free(pid);
    const char *which[] = {"b", "c"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s.%s", base, which[i]);
        char *err = read_text(path);
        print_message("second run (%s): %s", i ? "fresh" : "--restart", err);
        assert_non_null(strstr(err, holder));
        assert_non_null(strstr(err, save));
        assert_int_equal(count_lines(err), 1);
        free(err);
        snprintf(path, sizeof path, "%s.%s.rc", base, which[i]);
        char *rc = read_text(path);
        assert_int_equal(atoi(rc), 2);
        free(rc);
    }
    snprintf(path, sizeof path, "%s.a.rc", base);
    char *rc = read_text(path);
    assert_int_equal(atoi(rc), 143); /* stopped by the SIGTERM, with a checkpoint */
    free(rc);
    snprintf(path, sizeof path, "%s/elmo.lock", save);
    assert_false(file_exists(path)); /* removed at its exit */
    char args[4096], err[16384];
    snprintf(args, sizeof args, "train --restart '%s' --max-batches 1", save);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    assert_null(strstr(err, "taken over"));
}

/* A lock file nobody holds (its process ended) is taken over, with a note naming it. */
static void test_stale_lock_taken_over(void **state) {
    char save[512], args[4096], err[16384], lock[600];
    tmp_path(save, sizeof save, "stale");
    assert_int_equal(mkdir(save, 0777), 0);
    snprintf(lock, sizeof lock, "%s/elmo.lock", save);
    write_text_file(lock, "12345 somehost\n");
    assert_int_equal(run_elmo(fresh_args(args, sizeof args, save, 120), err, sizeof err), 0);
    assert_non_null(strstr(err, "lock of process 12345 on somehost, which no longer runs, taken over"));
    write_text_file(lock, "12345 somehost\n");
    snprintf(args, sizeof args, "train --restart '%s' --n-epochs 2 --max-batches 1", save);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    assert_non_null(strstr(err, "lock of process 12345 on somehost, which no longer runs, taken over"));
    assert_false(file_exists(lock));
}

/* A pid no process has. */
static long dead_pid(void) {
    for (long pid = 999999; pid > 1000; pid--)
        if (kill((pid_t)pid, 0) < 0 && errno == ESRCH) return pid;
    fail_msg("no free pid found");
    return 0;
}

/* Temporaries of ended processes go; a live process's stay. */
static void test_stale_temporaries_removed(void **state) {
    char save[512], args[4096], err[16384], dead[600], live[600];
    tmp_path(save, sizeof save, "debris");
    assert_int_equal(run_elmo(fresh_args(args, sizeof args, save, 120), err, sizeof err), 0);
    const long pid = dead_pid();
    snprintf(dead, sizeof dead, "%s/x.hdf5.tmp.%ld", save, pid);
    snprintf(live, sizeof live, "%s/y.tmp.%ld", save, (long)getpid());
    write_text_file(dead, "debris");
    write_text_file(live, "being written");
    snprintf(args, sizeof args, "train --restart '%s' --n-epochs 2 --max-batches 1", save);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    assert_non_null(strstr(err, "removed 1 temporary left by processes that no longer exist"));
    assert_false(file_exists(dead));
    assert_true(file_exists(live));

    /* a command writing an output file: its directory */
    write_text_file(dead, "debris");
    snprintf(args, sizeof args, "vocab --input '%s' --output '%s/vocab.txt' --quiet >/dev/null", train_glob, save);
    assert_int_equal(run_elmo(args, err, sizeof err), 0);
    assert_false(file_exists(dead));
    assert_true(file_exists(live));
    unlink(live);
}

/* A fresh run that fails after writing into its save directory (the weights to start from
 * are missing) leaves it as it found it: a directory it created is gone, an existing empty
 * one stays empty, and one holding files keeps just those. */
static void test_failed_fresh_run_leaves_no_trace(void **state) {
    char save[512], args[4096], err[16384];
    tmp_path(save, sizeof save, "failed_new");
    fresh_args(args, sizeof args, save, 0); /* counting caches the count in the directory */
    strcat(args, " --init-from /nonexistent/weights.hdf5");
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_non_null(strstr(err, "/nonexistent/weights.hdf5"));
    assert_non_null(strstr(err, "plan: ")); /* it got as far as the plan */
    assert_false(file_exists(save));

    tmp_path(save, sizeof save, "failed_empty");
    assert_int_equal(mkdir(save, 0777), 0);
    fresh_args(args, sizeof args, save, 0);
    strcat(args, " --init-from /nonexistent/weights.hdf5");
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_true(file_exists(save));
    assert_int_equal(count_entries(save), 0);

    char mine[600];
    snprintf(mine, sizeof mine, "%s/notes.txt", save);
    write_text_file(mine, "the user's");
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_int_equal(count_entries(save), 1);
    assert_true(file_exists(mine));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_run_refused),
        cmocka_unit_test(test_stale_lock_taken_over),
        cmocka_unit_test(test_stale_temporaries_removed),
        cmocka_unit_test(test_failed_fresh_run_leaves_no_trace),
    };
    return cmocka_run_group_tests_name("runlock", tests, setup, NULL);
}
