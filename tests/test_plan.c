/* test_plan.c - the plan of a training run (train/plan.c): counting the training tokens
 * (plain and gz, chunk boundaries, the cache and what invalidates it, errors), the memory
 * estimate's parts and how they grow, trainer_need against what a trainer holds after
 * its first step, and the byte formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "chars.h"
#include "common.h"
#include "dataset.h"
#include "model.h"
#include "options.h"
#include "plan.h"
#include "rng.h"
#include "testutil.h"
#include "trainer.h"

/* ---------------------------------------------------------------- helpers */

static void write_gz(const char *path, const char *text, size_t len) {
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, text, (unsigned)len), (int)len);
    assert_int_equal(gzclose(f), Z_OK);
}

/* A fresh directory under the test's temporary one. */
static const char *fresh_dir(char *buf, size_t size, const char *name) {
    tmp_path(buf, size, name);
    assert_int_equal(mkdir(buf, 0777), 0);
    return buf;
}

static void set_mtime(const char *path, long seconds) {
    struct timespec ts[2] = {{seconds, 0}, {seconds, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static long count(const char *pattern, const char *cache_dir, int *cached) {
    long tokens = -1;
    int c = -1;
    if (plan_count_tokens(pattern, cache_dir, 1, &tokens, &c) < 0) fail_msg("%s", elmo_error());
    if (cached) *cached = c;
    return tokens;
}

/* The error of a count that must fail: one line, naming `must_name`. */
static void expect_count_error(const char *pattern, const char *must_name, const char *also) {
    long tokens;
    int cached;
    assert_int_equal(plan_count_tokens(pattern, NULL, 1, &tokens, &cached), -1);
    const char *err = elmo_error();
    if (!strstr(err, must_name) || (also && !strstr(err, also)) || strchr(err, '\n'))
        fail_msg("expected one line naming '%s'%s%s, got: %s", must_name, also ? " and " : "", also ? also : "", err);
}

/* ---------------------------------------------------------------- counting */

/* Python's str.split(): ASCII white space of every kind, runs of it, leading and
 * trailing, U+00A0, U+3000 and U+2028 separate; U+200B (zero width space) does not. */
static const char plain_text[] =
    "the cat sat\n"                       /* 3 */
    "  leading and trailing  \n"          /* 3 */
    "tab\tseparated\x0bvt\x0c" "ff\r\n"   /* 4 */
    "\n"                                  /* 0: empty line */
    "caf\xc3\xa9 na\xc3\xafve\n"          /* 2 */
    "a\xc2\xa0" "b\xe3\x80\x80" "c\xe2\x80\xa8" "d\n" /* 4: NBSP, ideographic space, line separator */
    "zero\xe2\x80\x8bwidth\n"             /* 1: U+200B is not white space */
    "\x1c" "x\x1fy\n"                     /* 2: the file/unit separators are */
    "no newline at the end";              /* 5 */
#define PLAIN_TOKENS 24

static const char gz_text[] = "<S> is not special here </S>\nsecond line of five\n"; /* 6 + 4 */
#define GZ_TOKENS 10

static void test_count_plain_and_gz(void **state) {
    char dir[512], path[600], pattern[600];
    fresh_dir(dir, sizeof dir, "count");
    snprintf(path, sizeof path, "%s/shard-0.txt", dir);
    write_text_file(path, plain_text);
    snprintf(path, sizeof path, "%s/shard-1.txt.gz", dir);
    write_gz(path, gz_text, strlen(gz_text));
    snprintf(pattern, sizeof pattern, "%s/shard-0.txt", dir);
    assert_int_equal(count(pattern, NULL, NULL), PLAIN_TOKENS);
    snprintf(pattern, sizeof pattern, "%s/shard-1.txt.gz", dir);
    assert_int_equal(count(pattern, NULL, NULL), GZ_TOKENS);
    snprintf(pattern, sizeof pattern, "%s/shard-*", dir);
    int cached;
    assert_int_equal(count(pattern, NULL, &cached), PLAIN_TOKENS + GZ_TOKENS);
    assert_int_equal(cached, 0);
}

/* Several MiB in which multi-byte letters and separators fall across every offset, so
 * that some straddle the 1 MiB chunks: "w\xc3\xa9" (2 bytes), "\xe3\x80\x80" (U+3000,
 * a separator), words of 1-9 letters. The count is known by construction. */
static void test_count_across_chunks(void **state) {
    const size_t target = (size_t)5 << 20;
    char *text = malloc(target + 64);
    size_t len = 0;
    long tokens = 0;
    Rng r;
    rng_seed(&r, 5);
    while (len < target) {
        const int letters = 1 + (int)(rng_next(&r) % 9);
        for (int k = 0; k < letters; k++) {
            if (rng_next(&r) % 4 == 0) {
                memcpy(text + len, "\xc3\xa9", 2);
                len += 2;
            } else {
                text[len++] = 'a';
            }
        }
        tokens++;
        switch (rng_next(&r) % 4) {
        case 0: memcpy(text + len, "\xe3\x80\x80", 3); len += 3; break;
        case 1: text[len++] = '\n'; break;
        default: text[len++] = ' '; break;
        }
    }
    char dir[512], path[600];
    fresh_dir(dir, sizeof dir, "chunks");
    snprintf(path, sizeof path, "%s/big.txt", dir);
    FILE *f = fopen(path, "wb");
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
    assert_int_equal(count(path, NULL, NULL), tokens);
    snprintf(path, sizeof path, "%s/big.txt.gz", dir);
    write_gz(path, text, len);
    assert_int_equal(count(path, NULL, NULL), tokens);
    free(text);
}

static void test_count_cache(void **state) {
    char dir[512], cache[512], a[600], b[600], c[600], pattern[600];
    fresh_dir(dir, sizeof dir, "cached");
    fresh_dir(cache, sizeof cache, "cache-dir");
    snprintf(a, sizeof a, "%s/s-a.txt", dir);
    snprintf(b, sizeof b, "%s/s-b.txt.gz", dir);
    snprintf(c, sizeof c, "%s/s-c.txt", dir);
    snprintf(pattern, sizeof pattern, "%s/s-*", dir);
    write_text_file(a, "one two three\n");
    write_gz(b, "four five\n", 10);
    set_mtime(a, 1000000000);
    int cached;
    assert_int_equal(count(pattern, cache, &cached), 5);
    assert_int_equal(cached, 0);
    char json[600];
    snprintf(json, sizeof json, "%s/train-tokens.json", cache);
    assert_true(file_exists(json));
    assert_int_equal(count(pattern, cache, &cached), 5);
    assert_int_equal(cached, 1);

    /* same size, same mtime: the cache answers without reading (the old count) */
    write_text_file(a, "one two thre3\n");
    set_mtime(a, 1000000000);
    assert_int_equal(count(pattern, cache, &cached), 5);
    assert_int_equal(cached, 1);
    /* same size, another mtime: counted again */
    write_text_file(a, "one two th ee\n");
    set_mtime(a, 1000000001);
    assert_int_equal(count(pattern, cache, &cached), 6);
    assert_int_equal(cached, 0);
    assert_int_equal(count(pattern, cache, &cached), 6);
    assert_int_equal(cached, 1);
    /* another size, the mtime put back */
    write_text_file(a, "one two th ee x\n");
    set_mtime(a, 1000000001);
    assert_int_equal(count(pattern, cache, &cached), 7);
    assert_int_equal(cached, 0);
    /* a file added */
    write_text_file(c, "six\n");
    assert_int_equal(count(pattern, cache, &cached), 8);
    assert_int_equal(cached, 0);
    assert_int_equal(count(pattern, cache, &cached), 8);
    assert_int_equal(cached, 1);
    /* a file removed */
    assert_int_equal(unlink(c), 0);
    assert_int_equal(count(pattern, cache, &cached), 7);
    assert_int_equal(cached, 0);
    /* a damaged cache is counted again and rewritten */
    write_text_file(json, "{\"tokens\": ");
    assert_int_equal(count(pattern, cache, &cached), 7);
    assert_int_equal(cached, 0);
    assert_int_equal(count(pattern, cache, &cached), 7);
    assert_int_equal(cached, 1);
    /* no cache directory: never cached */
    assert_int_equal(count(pattern, NULL, &cached), 7);
    assert_int_equal(cached, 0);
}

static void test_count_errors(void **state) {
    char dir[512], path[600], pattern[600];
    fresh_dir(dir, sizeof dir, "bad");
    snprintf(pattern, sizeof pattern, "%s/nothing-*.txt", dir);
    expect_count_error(pattern, pattern, "no files match");

    /* a gz file cut short, and one with a damaged body */
    char text[4096];
    size_t len = 0;
    while (len + 20 < sizeof text) len += (size_t)snprintf(text + len, sizeof text - len, "word %zu\n", len);
    snprintf(path, sizeof path, "%s/cut.txt.gz", dir);
    write_gz(path, text, len);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    expect_count_error(path, path, "corrupt");
    snprintf(path, sizeof path, "%s/flipped.txt.gz", dir);
    write_gz(path, text, len);
    FILE *f = fopen(path, "r+b");
    fseek(f, 20, SEEK_SET);
    fputc(0xff, f);
    fputc(0x00, f);
    fputc(0x13, f);
    fclose(f);
    expect_count_error(path, path, NULL); /* zlib's complaint, or what the damage decoded to */

    /* invalid UTF-8 and NUL bytes, by line */
    snprintf(path, sizeof path, "%s/latin1.txt", dir);
    write_text_file(path, "fine\nalso fine\ncaf\xe9\n");
    char where[700];
    snprintf(where, sizeof where, "%s:3:", path);
    expect_count_error(path, where, "invalid UTF-8 at byte 4");
    snprintf(path, sizeof path, "%s/nul.txt", dir);
    f = fopen(path, "wb");
    fwrite("a b\nc\0d\n", 1, 8, f);
    fclose(f);
    snprintf(where, sizeof where, "%s:2:", path);
    expect_count_error(path, where, "NUL");
    /* the pattern with a bad file and a good one: the bad one is named */
    snprintf(pattern, sizeof pattern, "%s/*.txt", dir);
    expect_count_error(pattern, "latin1.txt:3:", NULL);
}

/* ---------------------------------------------------------------- memory */

static const char small_options[] =
    "{\"char_cnn\": {\"embedding\": {\"dim\": 4}, \"filters\": [[1, 8], [2, 16], [3, 32]],"
    " \"max_characters_per_token\": 20, \"n_characters\": 261, \"n_highway\": 1, \"activation\": \"relu\"},"
    " \"lstm\": {\"n_layers\": 2, \"dim\": 32, \"projection_dim\": 16, \"cell_clip\": 3, \"proj_clip\": 3,"
    " \"use_skip_connections\": true}, \"batch_size\": 4, \"unroll_steps\": 5, \"n_epochs\": 1,"
    " \"n_train_tokens\": 1000, \"n_negative_samples_batch\": 30, %s}";

static void parse(ElmoOptions *o, const char *training) {
    char text[2048];
    snprintf(text, sizeof text, small_options, training);
    assert_int_equal(options_parse(o, text, "plan options"), 0);
}

static void check_parts(const PlanMemory *m) {
    const double parts[] = {m->params, m->optimizer, m->gradients, m->activations, m->softmax, m->data, m->baseline};
    double sum = 0;
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        if (!(parts[i] > 0)) fail_msg("part %zu is %g", i, parts[i]);
        sum += parts[i];
    }
    assert_true(fabs(sum - m->total) <= 1e-9 * m->total);
    assert_true(m->checkpoint > 2 * m->params); /* weights and accumulators, and more */
}

static void test_memory_parts(void **state) {
    ElmoOptions o;
    parse(&o, "\"dropout\": 0.1");
    PlanMemory m, bigger_b, bigger_v;
    assert_int_equal(plan_memory(&o, 1000, 4, 5, NULL, &m), 0);
    check_parts(&m);
    /* the parameters: the table's floats */
    BilmModel layout;
    model_layout(&layout, &o, 1000);
    assert_null(layout.data);
    assert_true(m.params == (double)layout.n_floats * sizeof(float));
    assert_true(m.optimizer >= m.params);
    model_free(&layout);

    assert_int_equal(plan_memory(&o, 1000, 8, 5, NULL, &bigger_b), 0);
    check_parts(&bigger_b);
    assert_true(bigger_b.activations > m.activations);
    assert_true(bigger_b.params == m.params);
    assert_int_equal(plan_memory(&o, 5000, 4, 5, NULL, &bigger_v), 0);
    check_parts(&bigger_v);
    assert_true(bigger_v.params > m.params);
    assert_true(bigger_v.softmax > m.softmax);
    assert_true(bigger_v.optimizer > m.optimizer);
    assert_true(bigger_v.checkpoint > m.checkpoint);
    assert_true(bigger_v.activations == m.activations);

    /* with shards: the largest one counts, its text uncompressed (gz from the trailer) */
    char dir[512], path[600], pattern[600];
    fresh_dir(dir, sizeof dir, "memory");
    char *text = malloc(200000);
    size_t len = 0;
    for (int i = 0; len + 40 < 200000; i++) len += (size_t)sprintf(text + len, "w%d x%d y z%d .\n", i % 97, i % 13, i);
    snprintf(path, sizeof path, "%s/a.txt.gz", dir);
    write_gz(path, text, len);
    snprintf(path, sizeof path, "%s/b.txt", dir);
    write_text_file(path, "a small shard\n");
    snprintf(pattern, sizeof pattern, "%s/*", dir);
    PlanMemory with;
    assert_int_equal(plan_memory(&o, 1000, 4, 5, pattern, &with), 0);
    check_parts(&with);
    assert_true(with.shard_bytes == (double)len);
    assert_true(with.data > m.data + 2 * (double)len);    /* both readers hold the shard */
    assert_true(with.line_bytes > 10 && with.line_bytes < 30);
    assert_true(with.distinct_tokens > 2 && with.distinct_tokens <= 2 * 4 * 5);
    assert_true(with.activations + with.untouched == m.activations);
    free(text);

    snprintf(pattern, sizeof pattern, "%s/none-*", dir);
    assert_int_equal(plan_memory(&o, 1000, 4, 5, pattern, &with), -1);
    assert_non_null(strstr(elmo_error(), pattern));
    options_free(&o);
}

/* The shard sizes plan_memory takes: a gz file smaller than its compressed form (its
 * trailer, not 4 GiB more), a plain file, and a truncated gz (named in the error). */
static void test_memory_shard_sizes(void **state) {
    ElmoOptions o;
    parse(&o, "\"dropout\": 0.1");
    char dir[512], path[600];
    PlanMemory m;
    fresh_dir(dir, sizeof dir, "sizes");
    snprintf(path, sizeof path, "%s/small.txt.gz", dir);
    write_gz(path, "a b\n", 4);
    assert_int_equal(plan_memory(&o, 100, 4, 5, path, &m), 0);
    assert_true(m.shard_bytes == 4);
    assert_true(m.line_bytes == 4);
    snprintf(path, sizeof path, "%s/plain.txt", dir);
    write_text_file(path, "one line\nand another\n");
    assert_int_equal(plan_memory(&o, 100, 4, 5, path, &m), 0);
    assert_true(m.shard_bytes == 21);
    assert_true(m.line_bytes == 10.5);
    assert_int_equal(m.distinct_tokens, 4 + 2);
    /* two members (gzip files concatenated): the trailer is the last one's, the file is read */
    char *big = malloc(300000);
    size_t big_len = 0;
    long big_lines = 0;
    for (; big_len + 16 < 300000; big_lines++)
        big_len += (size_t)sprintf(big + big_len, "t%ld u v%ld\n", big_lines % 50, big_lines);
    char first[600], second[600];
    snprintf(first, sizeof first, "%s/first.gz", dir);
    snprintf(second, sizeof second, "%s/second.gz", dir);
    write_gz(first, big, big_len);
    write_gz(second, "x\n", 2);
    free(big);
    snprintf(path, sizeof path, "%s/members.txt.gz", dir);
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "cat '%s' '%s' > '%s'", first, second, path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(plan_memory(&o, 100, 4, 5, path, &m), 0);
    assert_true(m.shard_bytes == (double)big_len + 2);
    assert_int_equal(count(path, NULL, NULL), 3 * big_lines + 1);
    char text[20000];
    size_t len = 0;
    for (int i = 0; len + 12 < sizeof text; i++) len += (size_t)sprintf(text + len, "%d %d\n", i * 7919 % 10007, i);
    snprintf(path, sizeof path, "%s/cut.txt.gz", dir);
    write_gz(path, text, len);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 6), 0); /* most of the trailer */
    assert_int_equal(plan_memory(&o, 100, 4, 5, path, &m), -1);
    if (!strstr(elmo_error(), path) || strchr(elmo_error(), '\n')) fail_msg("got: %s", elmo_error());
    options_free(&o);
}

/* Random words and targets, as in test_train.c. */
static void random_batch(LmBatch *b, int V, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    char word[16];
    for (int i = 0; i < b->B * b->T; i++) {
        int len = 1 + (int)(rng_next(&r) % 9);
        for (int k = 0; k < len; k++) word[k] = (char)('a' + rng_next(&r) % 26);
        word[len] = '\0';
        chars_encode(word, b->C, b->chars + (size_t)i * b->C);
        b->targets[i] = (int32_t)(rng_next(&r) % V);
    }
}

/* trainer_need_bytes is what trainer_bytes reports after the first step (and after more:
 * the first one grows everything), for the sampled and the full softmax and evaluation. */
static void check_need(const char *training, TrainerMode mode) {
    ElmoOptions o;
    parse(&o, training);
    const int V = 300, B = o.batch_size, T = o.unroll_steps;
    BilmModel model;
    model_init_layout(&model, &o, V);
    model_init_random(&model, 1);
    BilmModel layout;
    model_layout(&layout, &o, V);
    const size_t need = trainer_need_bytes(&layout, B, T, mode);
    TrainerNeed parts;
    trainer_need(&parts, &layout, B, T, mode, 0);
    assert_int_equal(parts.untouched, 0);
    Trainer t;
    trainer_init(&t, &model, B, T, mode, 2);
    assert_int_equal(parts.gradient + parts.accumulators + parts.activations, t.arena.size);
    LmBatch batches[2];
    const LmBatch *ptrs[2] = {&batches[0], &batches[1]};
    for (int d = 0; d < 2; d++) lm_batch_init(&batches[d], B, T, o.max_chars);
    for (int step = 0; step < 3; step++) {
        for (int d = 0; d < 2; d++) random_batch(&batches[d], V, 10 * step + d);
        if (mode == TRAINER_TRAIN) trainer_step(&t, ptrs);
        else trainer_eval_batch(&t, ptrs);
        if (trainer_bytes(&t) != need)
            fail_msg("%s: after step %d the trainer holds %zu bytes, trainer_need_bytes says %zu", training, step + 1,
                     trainer_bytes(&t), need);
    }
    /* fewer distinct tokens than positions: their rows are set apart */
    TrainerNeed fewer;
    trainer_need(&fewer, &layout, B, T, mode, 3);
    assert_true(fewer.untouched > 0 && fewer.untouched < fewer.activations);
    TrainerNeed most, all;
    const long N = (long)t.n_dirs * B * T;
    trainer_need(&most, &layout, B, T, mode, N - 1);
    trainer_need(&all, &layout, B, T, mode, N);
    assert_true(most.untouched > 0 && most.untouched < fewer.untouched);
    assert_int_equal(all.untouched, 0);
    for (int d = 0; d < 2; d++) lm_batch_free(&batches[d]);
    trainer_free(&t);
    model_free(&layout);
    model_free(&model);
    options_free(&o);
}

static void test_need_is_what_a_step_holds(void **state) {
    check_need("\"dropout\": 0.1", TRAINER_TRAIN);
    check_need("\"dropout\": 0, \"sample_softmax\": false", TRAINER_TRAIN);
    check_need("\"bidirectional\": false, \"dropout\": 0.2", TRAINER_TRAIN);
    check_need("\"dropout\": 0.1", TRAINER_EVAL);
}

/* ---------------------------------------------------------------- the machine, formatting */

static void test_machine(void **state) {
    assert_true(plan_available_memory() > 1e6);
    assert_true(plan_free_disk(test_tmpdir()) > 0);
    assert_true(plan_free_disk("/no/such/dir") == -1);
    assert_non_null(strstr(elmo_error(), "/no/such/dir"));
}

static void test_format_bytes(void **state) {
    static const struct {
        double bytes;
        const char *text;
    } cases[] = {
        {0, "0 B"},          {999, "999 B"},       {999.6, "1.0 kB"},   {1000, "1.0 kB"},
        {1234, "1.2 kB"},    {12e3, "12 kB"},      {9.96e3, "10 kB"},   {830e6, "830 MB"},
        {999.4e6, "999 MB"}, {999.6e6, "1.0 GB"}, {1.2e9, "1.2 GB"},   {1.26e12, "1.3 TB"},
        {45.6e9, "46 GB"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *got = plan_format_bytes(buf, sizeof buf, cases[i].bytes);
        assert_ptr_equal(got, buf);
        if (strcmp(got, cases[i].text) != 0)
            fail_msg("%g bytes: got '%s', expected '%s'", cases[i].bytes, got, cases[i].text);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_plain_and_gz),
        cmocka_unit_test(test_count_across_chunks),
        cmocka_unit_test(test_count_cache),
        cmocka_unit_test(test_count_errors),
        cmocka_unit_test(test_memory_parts),
        cmocka_unit_test(test_memory_shard_sizes),
        cmocka_unit_test(test_need_is_what_a_step_holds),
        cmocka_unit_test(test_machine),
        cmocka_unit_test(test_format_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
