/* test_fuzz_corpora.c - every input kept in tests/fuzz/<harness>/ (the seeds, what
 * `make fuzz` found worth keeping, and any crasher once fixed) replayed through its
 * harness on the normal build: none may crash, hang or leak (the sanitizer run of CI
 * checks the latter). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "fuzz/fuzz.h"
#include "testutil.h"

/* Replays every file of tests/fuzz/<name>/; the directory must hold at least one. */
static void replay(const char *name, int (*harness)(const uint8_t *, size_t)) {
    char dir[512];
    snprintf(dir, sizeof dir, "tests/fuzz/%s", name);
    DIR *d = opendir(dir);
    if (!d) fail_msg("%s: no corpus directory", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *data;
        size_t size;
        if (file_read_all(path, 1 << 24, &data, &size) < 0) fail_msg("%s: unreadable", path);
        harness((const uint8_t *)data, size);
        free(data);
        n++;
    }
    closedir(d);
    print_message("%s: %d inputs replayed\n", name, n);
    assert_true(n > 0);
}

static void test_options_corpus(void **state) { replay("options", fuzz_options); }
static void test_text_corpus(void **state) { replay("text", fuzz_text); }
static void test_vocab_corpus(void **state) { replay("vocab", fuzz_vocab); }
static void test_tfbundle_corpus(void **state) { replay("tfbundle", fuzz_tfbundle); }
static void test_shard_corpus(void **state) { replay("shard", fuzz_shard); }
static void test_weights_corpus(void **state) { replay("weights", fuzz_weights); }
static void test_checkpoint_corpus(void **state) { replay("checkpoint", fuzz_checkpoint); }
static void test_tfevents_corpus(void **state) { replay("tfevents", fuzz_tfevents); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_corpus),
        cmocka_unit_test(test_text_corpus),
        cmocka_unit_test(test_vocab_corpus),
        cmocka_unit_test(test_tfbundle_corpus),
        cmocka_unit_test(test_shard_corpus),
        cmocka_unit_test(test_weights_corpus),
        cmocka_unit_test(test_checkpoint_corpus),
        cmocka_unit_test(test_tfevents_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
