/* test_corpus.c - corpus preparation: the fast text paths and the token-count table
 * against naive twins; then through the program, `elmo shard` (a permutation of the
 * normalised input, balanced shards, held-out part, determinism, --force, bounded memory,
 * interruption), `elmo vocab` (order, cut-offs, counts, the Brown sample's vocabulary,
 * accepted by `elmo train`), `elmo prepare`, and bad input for both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "common.h"
#include "fileio.h"
#include "rng.h"
#include "testutil.h"
#include "text.h"
#include "wordcount.h"

/* ------------------------------------------------------------------ helpers */

typedef struct {
    char **line;
    size_t n, cap;
} Lines;

static void lines_add(Lines *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->line = realloc(l->line, l->cap * sizeof *l->line);
    }
    char *c = malloc(len + 1);
    memcpy(c, s, len);
    c[len] = '\0';
    l->line[l->n++] = c;
}

static void lines_free(Lines *l) {
    for (size_t i = 0; i < l->n; i++) free(l->line[i]);
    free(l->line);
    memset(l, 0, sizeof *l);
}

static int cmp_line(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void lines_sort(Lines *l) {
    if (l->n) qsort(l->line, l->n, sizeof *l->line, cmp_line);
}

/* Appends the lines of a plain or gzip file (each must end with a newline). */
static void read_lines(const char *path, Lines *out) {
    gzFile f = gzopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    int got;
    while ((got = gzread(f, buf + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    assert_int_equal(got, 0);
    gzclose(f);
    assert_true(n == 0 || buf[n - 1] == '\n');
    for (size_t a = 0; a < n;) {
        char *nl = memchr(buf + a, '\n', n - a);
        lines_add(out, buf + a, (size_t)(nl - (buf + a)));
        a = (size_t)(nl - buf) + 1;
    }
    free(buf);
}

/* Runs elmo_program() with args; stdout into out (may be NULL), stderr into err. */
static int run_capture(const char *args, char *out, size_t out_size, char *err, size_t err_size) {
    char o[512], e[512], cmd[8192];
    tmp_path(o, sizeof o, "stdout.txt");
    tmp_path(e, sizeof e, "stderr.txt");
    snprintf(cmd, sizeof cmd, "%s %s >'%s' 2>'%s'", elmo_program(), args, o, e);
    int status = system(cmd);
    const char *paths[2] = {o, e};
    char *bufs[2] = {out, err};
    size_t sizes[2] = {out_size, err_size};
    for (int k = 0; k < 2; k++) {
        if (!bufs[k]) continue;
        FILE *f = fopen(paths[k], "rb");
        size_t n = f ? fread(bufs[k], 1, sizes[k] - 1, f) : 0;
        if (f) fclose(f);
        bufs[k][n] = '\0';
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static void run_ok(const char *args, char *out, size_t out_size) {
    char err[8192];
    int rc = run_capture(args, out, out_size, err, sizeof err);
    if (rc != 0) print_error("elmo %s\nfailed (%d): %s\n", args, rc, err);
    assert_int_equal(rc, 0);
}

/* The value of "key: value" in a command's output. */
static double stat_value(const char *out, const char *key) {
    char k[128];
    snprintf(k, sizeof k, "%s: ", key);
    const char *at = strstr(out, k);
    if (!at) fail_msg("no '%s' in:\n%s", key, out);
    return atof(at + strlen(k));
}

static void make_dir(const char *path) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", path, path);
    assert_int_equal(system(cmd), 0);
}

/* Every file of dir (recursively) as a reader sees it, through the links and without
 * the hidden names of the shard set's machinery: "relative/path" names, sorted. */
static void list_files(const char *dir, const char *rel, Lines *out) {
    char path[2048];
    snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char sub[1024], full[3100];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", dir, sub);
        struct stat st;
        if (stat(full, &st) != 0) continue; /* a link to a part the set does not have */
        if (S_ISDIR(st.st_mode)) list_files(dir, sub, out);
        else lines_add(out, sub, strlen(sub));
    }
    closedir(d);
    if (!*rel) lines_sort(out);
}

static int count_files(const char *dir) {
    Lines l = {0};
    list_files(dir, "", &l);
    int n = (int)l.n;
    lines_free(&l);
    return n;
}

static int files_equal(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (file_read_all(a, 1u << 30, &x, &nx) < 0) return 0;
    if (file_read_all(b, 1u << 30, &y, &ny) < 0) {
        free(x);
        return 0;
    }
    int same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

/* The hidden names of dir besides the switch (.shards) and the generation it leads to,
 * and the temporaries ("*.tmp.*") anywhere below dir: what a finished or cleaned-up run
 * must not leave. Returns how many, printing them. */
static int leftovers(const char *dir) {
    char cmd[2400], link[700], target[256] = "";
    snprintf(link, sizeof link, "%s/.shards", dir);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    snprintf(cmd, sizeof cmd, "cd '%s' && { ls -A | grep '^\\.' | grep -v -x -e '.shards' -e '%s'; "
             "find . -name '*.tmp.*'; } 2>/dev/null", dir, target[0] ? target : ".shards");
    FILE *p = popen(cmd, "r");
    char line[1024];
    int count = 0;
    while (p && fgets(line, sizeof line, p)) {
        print_message("left in %s: %s", dir, line);
        count++;
    }
    if (p) pclose(p);
    return count;
}

/* Same file names with the same bytes in both directories. */
static int dirs_equal(const char *a, const char *b) {
    Lines la = {0}, lb = {0};
    list_files(a, "", &la);
    list_files(b, "", &lb);
    int same = la.n == lb.n && la.n > 0;
    for (size_t i = 0; same && i < la.n; i++) {
        char pa[2048], pb[2048];
        snprintf(pa, sizeof pa, "%s/%s", a, la.line[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, lb.line[i]);
        same = strcmp(la.line[i], lb.line[i]) == 0 && files_equal(pa, pb);
    }
    lines_free(&la);
    lines_free(&lb);
    return same;
}

/* ------------------------------------------------------------ the test corpus */

/* ~20k lines over two files (the second gzip-compressed) with every kind of white space
 * str.split() knows, CRLF ends, empty and blank lines, repeated lines and non-ASCII
 * words. Each distinct sentence carries "s<i>", i its position. */
static char corpus_glob[700];
static Lines expected;          /* the normalised non-empty lines, sorted */
static int n_input_lines, n_dropped, n_normalised;

static const char *const WORDS[] = {"the", "cat", "sat", "on", "a", "mat", "Zed", "na\xc3\xafve", "\xe6\x97\xa5\xe6\x9c\xac",
                                    ",", ".", "dog", "ran", "fast", "caf\xc3\xa9", "apple"};
static const char *const SEPS[] = {" ", " ", " ", " ", "  ", "\t", "\xe3\x80\x80", "\xc2\xa0", " \x1f "};

static void normalise_into(const char *raw, Lines *out) {
    char *copy = strdup(raw);
    TokenList t = {0};
    CHECK(text_split(copy, strlen(copy), &t, "test") == 0, "split");
    if (t.n > 0) {
        char joined[4096] = "";
        for (int i = 0; i < t.n; i++) {
            if (i) strcat(joined, " ");
            strcat(joined, t.tokens[i]);
        }
        lines_add(out, joined, strlen(joined));
        n_normalised += strcmp(joined, raw) != 0;
    } else {
        n_dropped++;
    }
    token_list_free(&t);
    free(copy);
}

static int setup(void **state) {
    char dir[512], path[600], line[4096], prev[4096] = "";
    tmp_path(dir, sizeof dir, "raw");
    make_dir(dir);
    Rng r;
    rng_seed(&r, 77);
    for (int file = 0; file < 2; file++) {
        snprintf(path, sizeof path, "%s/part-%d.txt%s", dir, file, file ? ".gz" : "");
        gzFile gz = file ? gzopen(path, "wb") : NULL;
        FILE *f = file ? NULL : fopen(path, "wb");
        for (int i = 0; i < 10000; i++) {
            int kind = (int)(rng_next(&r) % 100);
            if (kind < 2) snprintf(line, sizeof line, "%s", kind ? " \t " : "");
            else if (kind < 4 && prev[0]) snprintf(line, sizeof line, "%s", prev);
            else {
                int n = 1 + (int)(rng_next(&r) % 12), at = 0;
                if (kind < 8) at += snprintf(line + at, sizeof line - at, " ");
                at += snprintf(line + at, sizeof line - at, "s%d", file * 10000 + i);
                for (int k = 0; k < n; k++)
                    at += snprintf(line + at, sizeof line - at, "%s%s", SEPS[rng_next(&r) % 9],
                                   WORDS[rng_next(&r) % 16]);
                if (kind >= 8 && kind < 10) at += snprintf(line + at, sizeof line - at, "\r");
                if (kind >= 10 && kind < 12) at += snprintf(line + at, sizeof line - at, "  ");
                snprintf(prev, sizeof prev, "%s", line);
            }
            n_input_lines++;
            normalise_into(line, &expected);
            if (gz) gzprintf(gz, "%s\n", line);
            else fprintf(f, "%s\n", line);
        }
        if (gz) gzclose(gz);
        else fclose(f);
    }
    lines_sort(&expected);
    snprintf(corpus_glob, sizeof corpus_glob, "%s/part-*", dir);
    return 0;
}

static int teardown(void **state) {
    lines_free(&expected);
    return 0;
}

/* Sentence number of a line ("s<i> ..."). */
static long sentence_no(const char *line) { return atol(line + 1); }

/* ------------------------------------------------------------------ shard */

static void test_shard_permutation_balance_heldout(void **state) {
    char out[600], args[4096], stdout_text[4096], path[700];
    tmp_path(out, sizeof out, "shard_a");
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 7 --heldout-fraction 0.1 --seed 3",
             corpus_glob, out);
    run_ok(args, stdout_text, sizeof stdout_text);
    assert_int_equal((int)stat_value(stdout_text, "lines"), n_input_lines);
    assert_int_equal((int)stat_value(stdout_text, "dropped_lines"), n_dropped);
    assert_int_equal((int)stat_value(stdout_text, "normalised_lines"), n_normalised);
    assert_true(n_dropped > 100 && n_normalised > 1000);

    Lines all = {0}, held = {0};
    size_t smallest = SIZE_MAX, largest = 0;
    for (int i = 0; i < 7; i++) {
        Lines shard = {0};
        snprintf(path, sizeof path, "%s/train/shard-%05d.txt", out, i);
        read_lines(path, &shard);
        if (shard.n < smallest) smallest = shard.n;
        if (shard.n > largest) largest = shard.n;
        /* shuffled: about half the neighbours in ascending corpus order, not all */
        size_t ascending = 0;
        for (size_t k = 1; k < shard.n; k++) ascending += sentence_no(shard.line[k]) > sentence_no(shard.line[k - 1]);
        assert_true(ascending > shard.n * 4 / 10 && ascending < shard.n * 6 / 10);
        for (size_t k = 0; k < shard.n; k++) lines_add(&all, shard.line[k], strlen(shard.line[k]));
        lines_free(&shard);
    }
    assert_true(largest - smallest <= 1); /* dealt in blocks: balanced to one sentence */
    snprintf(path, sizeof path, "%s/heldout/heldout-00000.txt", out);
    read_lines(path, &held);
    assert_int_equal((int)stat_value(stdout_text, "heldout_sentences"), (int)held.n);
    assert_int_equal((int)stat_value(stdout_text, "heldout_files"), 1);
    /* binomial(n, 0.1): 5 standard deviations */
    const double n_kept = (double)expected.n, sd = sqrt(n_kept * 0.1 * 0.9);
    assert_true(fabs((double)held.n - 0.1 * n_kept) < 5 * sd);
    for (size_t k = 1; k < held.n; k++) assert_true(sentence_no(held.line[k]) >= sentence_no(held.line[k - 1]));
    for (size_t k = 0; k < held.n; k++) lines_add(&all, held.line[k], strlen(held.line[k]));
    /* exactly the normalised non-empty input lines, as a multiset */
    lines_sort(&all);
    assert_int_equal(all.n, expected.n);
    for (size_t k = 0; k < all.n; k++) assert_string_equal(all.line[k], expected.line[k]);
    /* tokens of the training part */
    size_t tokens = 0;
    for (size_t k = 0; k < all.n; k++) {
        for (const char *p = all.line[k]; *p; p++) tokens += *p == ' ';
        tokens++;
    }
    for (size_t k = 0; k < held.n; k++) {
        for (const char *p = held.line[k]; *p; p++) tokens -= *p == ' ';
        tokens--;
    }
    assert_int_equal((size_t)stat_value(stdout_text, "n_train_tokens"), tokens);
    lines_free(&all);
    lines_free(&held);
    assert_int_equal(count_files(out), 8);
    assert_int_equal(leftovers(out), 0); /* no spill or temporary file, no earlier generation */
}

static void test_shard_heldout_lines_exact(void **state) {
    char out[600], args[4096], stdout_text[4096], path[700], err[4096];
    tmp_path(out, sizeof out, "shard_k");
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 3 --heldout-lines 500 --quiet",
             corpus_glob, out);
    run_ok(args, stdout_text, sizeof stdout_text);
    Lines all = {0}, held = {0};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/train/shard-%05d.txt", out, i);
        read_lines(path, &all);
    }
    snprintf(path, sizeof path, "%s/heldout/heldout-00000.txt", out);
    read_lines(path, &held);
    assert_int_equal(held.n, 500);
    assert_int_equal((int)stat_value(stdout_text, "heldout_sentences"), 500);
    /* chosen over the whole corpus, not just its start */
    assert_true(sentence_no(held.line[held.n - 1]) > 15000 && sentence_no(held.line[0]) < 5000);
    for (size_t k = 0; k < held.n; k++) lines_add(&all, held.line[k], strlen(held.line[k]));
    lines_sort(&all);
    assert_int_equal(all.n, expected.n);
    for (size_t k = 0; k < all.n; k++) assert_string_equal(all.line[k], expected.line[k]);
    lines_free(&all);
    lines_free(&held);
    /* more held-out sentences than there are: refused */
    tmp_path(out, sizeof out, "shard_k_all");
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 3 --heldout-lines 100000 --quiet",
             corpus_glob, out);
    assert_int_equal(run_capture(args, NULL, 0, err, sizeof err), 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "no sentence left for training"));
    assert_int_equal(count_files(out), 0);
}

static void test_shard_deterministic(void **state) {
    char a[600], b[600], c[600], args[4096], path[700];
    for (int gzip = 0; gzip <= 1; gzip++) {
        const char *names[3] = {"det_a", "det_b", "det_c"};
        char *dirs[3] = {a, b, c};
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "%s%s", names[k], gzip ? "_gz" : "");
            tmp_path(dirs[k], sizeof a, path);
            snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 4 --heldout-fraction 0.05 "
                     "--seed %d --quiet%s", corpus_glob, dirs[k], k == 2 ? 8 : 7, gzip ? " --gzip" : "");
            run_ok(args, NULL, 0);
        }
        assert_true(dirs_equal(a, b));
        snprintf(path, sizeof path, "%s/train/shard-00000.txt%s", a, gzip ? ".gz" : "");
        char other[700];
        snprintf(other, sizeof other, "%s/train/shard-00000.txt%s", c, gzip ? ".gz" : "");
        assert_true(file_exists(path) && file_exists(other));
        assert_false(files_equal(path, other));
        if (gzip) { /* gzip header: no time stamp, no file name */
            unsigned char h[10];
            FILE *f = fopen(path, "rb");
            assert_int_equal(fread(h, 1, 10, f), 10);
            fclose(f);
            assert_true(h[0] == 0x1f && h[1] == 0x8b && h[3] == 0 && !h[4] && !h[5] && !h[6] && !h[7]);
        }
    }
}

static void test_shard_force(void **state) {
    char out[600], keep[600], args[4096], err[4096], bad[600], cmd[2048];
    tmp_path(out, sizeof out, "force");
    tmp_path(keep, sizeof keep, "force_copy");
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 5 --heldout-fraction 0.1 --quiet",
             corpus_glob, out);
    run_ok(args, NULL, 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", keep, out, keep);
    assert_int_equal(system(cmd), 0);
    /* again without --force: refused, nothing touched */
    assert_int_equal(run_capture(args, NULL, 0, err, sizeof err), 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "already holds shard files"));
    assert_true(dirs_equal(out, keep));
    /* --force with bad input: the earlier shards survive */
    write_text_file(tmp_path(bad, sizeof bad, "force_bad.txt"), "fine line\nbad \xff byte\n");
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 2 --force --quiet", bad, out);
    assert_int_equal(run_capture(args, NULL, 0, err, sizeof err), 2);
    assert_non_null(strstr(err, "force_bad.txt:2"));
    assert_true(dirs_equal(out, keep));
    /* --force with 2 shards and no held-out part: only the new files remain */
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 2 --force --quiet --gzip", corpus_glob,
             out);
    run_ok(args, NULL, 0);
    Lines files = {0};
    list_files(out, "", &files);
    assert_int_equal(files.n, 2);
    assert_string_equal(files.line[0], "train/shard-00000.txt.gz");
    assert_string_equal(files.line[1], "train/shard-00001.txt.gz");
    lines_free(&files);
    /* files of another kind in the directories are not shards: left alone */
    snprintf(cmd, sizeof cmd, "%s/train/README", out);
    write_text_file(cmd, "notes\n");
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 2 --force --quiet", corpus_glob, out);
    run_ok(args, NULL, 0);
    assert_int_equal(count_files(out), 3);
}

/* Peak RSS of `elmo args...` in KB (wait4 gives this child's own figure). */
static pid_t spawn_quiet(char *const argv[]);

static long peak_rss_kb(char *const argv[]) {
    pid_t pid = spawn_quiet(argv);
    int status;
    struct rusage ru;
    assert_int_equal(wait4(pid, &status, 0, &ru), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return ru.ru_maxrss;
}

static char big_input[512];

/* ~50 MB of plain text, made once. */
static const char *make_big_input(void) {
    if (big_input[0]) return big_input;
    tmp_path(big_input, sizeof big_input, "big.txt");
    FILE *f = fopen(big_input, "wb");
    Rng r;
    rng_seed(&r, 5);
    char line[512];
    for (long bytes = 0, i = 0; bytes < 50L << 20; i++) {
        int at = snprintf(line, sizeof line, "w%ld", i % 50000);
        int n = 5 + (int)(rng_next(&r) % 20);
        for (int k = 0; k < n; k++) at += snprintf(line + at, sizeof line - at, " %s", WORDS[rng_next(&r) % 16]);
        line[at++] = '\n';
        fwrite(line, 1, (size_t)at, f);
        bytes += at;
    }
    fclose(f);
    return big_input;
}

/* The first half of the big input (at a line end), made once. */
static const char *make_half_input(void) {
    static char half[600];
    if (half[0]) return half;
    const char *input = make_big_input();
    char *data;
    size_t n;
    assert_int_equal(file_read_all(input, 1u << 30, &data, &n), 0);
    const char *nl = memchr(data + n / 2, '\n', n - n / 2);
    tmp_path(half, sizeof half, "big_half.txt");
    FILE *f = fopen(half, "wb");
    fwrite(data, 1, (size_t)(nl - data) + 1, f);
    fclose(f);
    free(data);
    return half;
}

/* Peak RSS (KB) of shard (20 shards) or vocab on input with OMP_NUM_THREADS=threads. */
static long corpus_rss_kb(const char *command, const char *input, int threads) {
    char out[600], bin[600], env[16];
    snprintf(bin, sizeof bin, "%s", elmo_program());
    tmp_path(out, sizeof out, strcmp(command, "shard") == 0 ? "big_shards" : "big_vocab.txt");
    char *shard_argv[] = {bin, "shard", "--input", (char *)input, "--output-dir", out, "--shards", "20",
                          "--heldout-fraction", "0.01", "--force", NULL};
    char *vocab_argv[] = {bin, "vocab", "--input", (char *)input, "--output", out, NULL};
    snprintf(env, sizeof env, "%d", threads);
    setenv("OMP_NUM_THREADS", env, 1);
    const long kb = peak_rss_kb(strcmp(command, "shard") == 0 ? shard_argv : vocab_argv);
    unsetenv("OMP_NUM_THREADS");
    if (strcmp(command, "shard") == 0) assert_int_equal(count_files(out), 21);
    return kb;
}

/* Memory does not grow with the corpus: one thread holds one shard (vocab: one table of
 * the distinct tokens) and two blocks of input, well under half the input's size; on two
 * threads (two shards or two tables) twice the input costs next to nothing more. */
static void test_memory_bounded(void **state) {
    const char *input = make_big_input(), *half = make_half_input();
    struct stat st;
    assert_int_equal(stat(input, &st), 0);
    const long input_kb = (long)(st.st_size >> 10);
    const long shard_kb = corpus_rss_kb("shard", input, 1), vocab_kb = corpus_rss_kb("vocab", input, 1);
    const long shard2_kb = corpus_rss_kb("shard", input, 2), vocab2_kb = corpus_rss_kb("vocab", input, 2);
    const long shard2_half_kb = corpus_rss_kb("shard", half, 2), vocab2_half_kb = corpus_rss_kb("vocab", half, 2);
    print_message("input %ld MB: peak RSS shard %ld MB, vocab %ld MB (1 thread); 2 threads: shard %ld MB (%ld on "
                  "half the input), vocab %ld MB (%ld)\n", input_kb >> 10, shard_kb >> 10, vocab_kb >> 10,
                  shard2_kb >> 10, shard2_half_kb >> 10, vocab2_kb >> 10, vocab2_half_kb >> 10);
#ifndef __SANITIZE_ADDRESS__ /* its shadow memory and quarantine say nothing of ours */
    /* one shard is 2.5 MB, a block 1 MB; the program itself (BLAS, HDF5, buffers) ~ 15 MB */
    assert_true(shard_kb < input_kb / 2);
    assert_true(vocab_kb < input_kb / 2);
    /* the half's shards are 1.25 MB smaller, two at a time (~3 MB with their line
     * indexes); the tokens are the same: against 25 MB more input */
    assert_true(shard2_kb - shard2_half_kb < input_kb / 6);
    assert_true(vocab2_kb - vocab2_half_kb < input_kb / 20);
#endif
}

static pid_t spawn_quiet(char *const argv[]) {
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* SIGINT at several moments of a run (fractions of an uninterrupted one, so both passes
 * are hit whatever the machine's speed): never a spill or temporary file left, and
 * either no shard or the complete set. */
static void test_interrupted_leaves_nothing(void **state) {
    const char *input = make_big_input();
    char out[600], bin[600];
    snprintf(bin, sizeof bin, "%s", elmo_program());
    tmp_path(out, sizeof out, "interrupted");
    char *argv[] = {bin, "shard", "--input", (char *)input, "--output-dir", out, "--shards", "8",
                    "--quiet", NULL};
    make_dir(out);
    double t0 = elmo_now();
    int status;
    assert_int_equal(waitpid(spawn_quiet(argv), &status, 0) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, 1);
    const double full = elmo_now() - t0;
    const double at[] = {0.1, 0.4, 0.6, 0.8, 0.95};
    for (int k = 0; k < 5; k++) {
        make_dir(out);
        pid_t pid = spawn_quiet(argv);
        const long ns = (long)(at[k] * full * 1e9);
        struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGINT);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        const int n = count_files(out);
        print_message("SIGINT after %.2f s of %.2f: %s, %d files left\n", at[k] * full, full,
                      WIFSIGNALED(status) ? "interrupted" : "finished", n);
        assert_true(n == 0 || n == 8);
        assert_int_equal(leftovers(out), 0);
    }
}

/* The plain half of the test corpus, and its path (input of the runs below). */
static const char *plain_input(void) {
    static char path[700];
    snprintf(path, sizeof path, "%s", corpus_glob);
    snprintf(strrchr(path, '/'), 32, "/part-0.txt");
    return path;
}

/* Starts `elmo <command> --force` on out (5 shards, 10% held out, seed 1) and returns
 * once it is writing shard 3 and shards 0-2 are complete. Its input is a FIFO that we feed
 * only after the temporary name of shard 3 has been made a FIFO too, in the directory
 * the program writes in (its new generation out/.shards.<pid>, or out/train for a
 * program that writes in place), so the run cannot get there first; its write then waits
 * as long as nobody reads. *fifo_fd receives our end. ignore_hup: SIGHUP ignored, as
 * under nohup. */
static pid_t spawn_stuck_at_shard_3(const char *command, const char *out, int ignore_hup, int *fifo_fd) {
    char bin[600], input[600], gen[800], fifo[900];
    snprintf(bin, sizeof bin, "%s", elmo_program());
    tmp_path(input, sizeof input, "stuck_input.fifo");
    unlink(input);
    assert_int_equal(mkfifo(input, 0600), 0);
    char *argv[] = {bin, (char *)command, "--input", input, "--output-dir", (char *)out, "--shards", "5",
                    "--heldout-fraction", "0.1", "--quiet", "--force", NULL};
    pid_t pid = fork();
    if (pid == 0) {
        if (ignore_hup) signal(SIGHUP, SIG_IGN);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    /* the program opens its input once its output directories exist */
    int in = -1;
    for (int tries = 0; in < 0 && tries < 60000; tries++) {
        in = open(input, O_WRONLY | O_NONBLOCK);
        if (in < 0) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) fail_msg("%s ended before reading its input", command);
            struct timespec ts = {0, 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(in >= 0);
    fcntl(in, F_SETFL, 0);
    snprintf(gen, sizeof gen, "%s/.shards.%ld/train", out, (long)pid);
    if (!file_exists(gen)) { /* a program that writes in place */
        snprintf(gen, sizeof gen, "%s/train", out);
        mkdir(gen, 0777);
    }
    snprintf(fifo, sizeof fifo, "%s/shard-00003.txt.tmp.%ld", gen, (long)pid);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    *fifo_fd = open(fifo, O_RDONLY | O_NONBLOCK); /* the writer's open then does not wait */
    assert_true(*fifo_fd >= 0);
    char *text;
    size_t n;
    assert_int_equal(file_read_all(plain_input(), 1u << 30, &text, &n), 0);
    assert_int_equal(write(in, text, n), (ssize_t)n);
    free(text);
    close(in);
    struct pollfd p = {.fd = *fifo_fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 60000), 1); /* its first bytes of shard 3 */
    char done[1000];
    for (int i = 0; i < 3; i++) { /* other threads may still be writing them */
        snprintf(done, sizeof done, "%s/shard-%05d.txt", gen, i);
        for (int tries = 0; !file_exists(done) && tries < 60000; tries++) {
            struct timespec ts = {0, 1000000L};
            nanosleep(&ts, NULL);
        }
        assert_true(file_exists(done));
    }
    return pid;
}

/* A run ended while it writes shard 3 of 5 (the input read, shards 0-2 complete) leaves
 * the output directory as it found it: empty, or holding the earlier set (made with
 * another seed) byte for byte, vocab.txt included for prepare. SIGINT and SIGTERM end it
 * with that signal's status and leave nothing of the run; started with SIGHUP ignored
 * (nohup), a SIGHUP leaves it running; after kill -9 the next run completes the new set
 * and removes what the killed one left. */
static void test_killed_mid_shards_removes_them(void **state) {
    const struct {
        const char *command;
        int sig, ignore_hup, earlier;
    } cases[] = {{"shard", SIGINT, 0, 0},   {"prepare", SIGTERM, 0, 0}, {"shard", SIGINT, 1, 0},
                 {"shard", SIGKILL, 0, 1},  {"prepare", SIGKILL, 0, 1}, {"prepare", SIGTERM, 0, 1},
                 {"shard", SIGKILL, 0, 0}};
    for (int k = 0; k < (int)(sizeof cases / sizeof *cases); k++) {
        const char *command = cases[k].command;
        char out[600], keep[600], ref[600], args[4096], cmd[2048];
        tmp_path(out, sizeof out, "killed_mid_shards");
        tmp_path(keep, sizeof keep, "killed_mid_shards_before");
        tmp_path(ref, sizeof ref, "killed_mid_shards_reference");
        make_dir(out);
        if (cases[k].earlier) {
            snprintf(args, sizeof args, "%s --input '%s' --output-dir '%s' --shards 4 --heldout-fraction 0.1 "
                     "--seed 9 --quiet --force", command, plain_input(), out);
            run_ok(args, NULL, 0);
        }
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", keep, out, keep);
        assert_int_equal(system(cmd), 0);
        int fd, status;
        pid_t pid = spawn_stuck_at_shard_3(command, out, cases[k].ignore_hup, &fd);
        if (cases[k].ignore_hup) {
            kill(pid, SIGHUP);
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
            if (waitpid(pid, &status, WNOHANG) != 0) fail_msg("SIGHUP ended a run that ignores it");
        }
        kill(pid, cases[k].sig);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        close(fd);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != cases[k].sig)
            fail_msg("%s: status %#x, expected death by signal %d", command, status, cases[k].sig);
        const int same = cases[k].earlier ? dirs_equal(out, keep) : count_files(out) == 0;
        if (!same) {
            Lines l = {0};
            list_files(out, "", &l);
            fail_msg("%s: signal %d while writing shard 3: %zu files, not %s (the first %s)", command, cases[k].sig,
                     l.n, cases[k].earlier ? "the earlier set" : "none", l.n ? l.line[0] : "-");
        }
        if (cases[k].sig != SIGKILL) {
            assert_int_equal(leftovers(out), 0);
            continue;
        }
        /* the next run: the complete new set, and nothing of the killed one */
        snprintf(args, sizeof args, "%s --input '%s' --output-dir '%s' --shards 5 --heldout-fraction 0.1 --quiet "
                 "--force", command, plain_input(), out);
        run_ok(args, NULL, 0);
        make_dir(ref);
        snprintf(args, sizeof args, "%s --input '%s' --output-dir '%s' --shards 5 --heldout-fraction 0.1 --quiet",
                 command, plain_input(), ref);
        run_ok(args, NULL, 0);
        assert_true(dirs_equal(out, ref));
        assert_int_equal(leftovers(out), 0);
    }
}

/* True when path is a symbolic link. */
static int is_link(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

/* A directory of the older layout (train/ and heldout/ real directories, vocab.txt a
 * plain file, a note in train/) is taken over by `shard --force`: the links replace the
 * directories, the note is carried into the new set and vocab.txt, not shard's, stays as
 * it was. `prepare --force` then makes vocab.txt part of the set, and a later `shard
 * --force` carries that vocabulary over. No leftover after any of them. */
static void test_older_layout_taken_over(void **state) {
    char made[600], out[600], ref[600], args[4096], cmd[8192], path[700];
    tmp_path(made, sizeof made, "layout_made");
    tmp_path(out, sizeof out, "layout_older");
    tmp_path(ref, sizeof ref, "layout_reference");
    const char *shape = "--shards 3 --heldout-fraction 0.1 --quiet";
    snprintf(args, sizeof args, "prepare --input '%s' --output-dir '%s' %s --seed 9", corpus_glob, made, shape);
    run_ok(args, NULL, 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir '%s' && cp -rL '%s/train' '%s/heldout' '%s/vocab.txt' '%s/' && "
             "echo notes > '%s/train/README'", out, out, made, made, made, out, out);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/train", out);
    assert_false(is_link(path));
    /* shard: the reference is a fresh run with the same note and the old vocabulary */
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' %s --force", corpus_glob, out, shape);
    run_ok(args, NULL, 0);
    make_dir(ref);
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' %s", corpus_glob, ref, shape);
    run_ok(args, NULL, 0);
    snprintf(cmd, sizeof cmd, "echo notes > '%s/train/README' && cp '%s/vocab.txt' '%s/'", ref, made, ref);
    assert_int_equal(system(cmd), 0);
    assert_true(dirs_equal(out, ref));
    assert_true(is_link(path));
    snprintf(path, sizeof path, "%s/vocab.txt", out);
    assert_false(is_link(path));
    assert_int_equal(leftovers(out), 0);
    /* prepare: vocab.txt joins the set */
    snprintf(args, sizeof args, "prepare --input '%s' --output-dir '%s' %s --force --seed 5", corpus_glob, out, shape);
    run_ok(args, NULL, 0);
    make_dir(ref);
    snprintf(args, sizeof args, "prepare --input '%s' --output-dir '%s' %s --seed 5", corpus_glob, ref, shape);
    run_ok(args, NULL, 0);
    snprintf(cmd, sizeof cmd, "echo notes > '%s/train/README'", ref);
    assert_int_equal(system(cmd), 0);
    assert_true(dirs_equal(out, ref));
    assert_true(is_link(path));
    assert_int_equal(leftovers(out), 0);
    /* shard again: prepare's vocabulary is carried over, the shards are new */
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' %s --force", corpus_glob, out, shape);
    run_ok(args, NULL, 0);
    char ref_vocab[700];
    snprintf(ref_vocab, sizeof ref_vocab, "%s/vocab.txt", ref);
    assert_true(files_equal(path, ref_vocab));
    snprintf(path, sizeof path, "%s/train/shard-00000.txt", out);
    snprintf(ref_vocab, sizeof ref_vocab, "%s/train/shard-00000.txt", ref);
    assert_false(files_equal(path, ref_vocab));
    assert_int_equal(count_files(out), 3 + 1 + 1 + 1);
    assert_int_equal(leftovers(out), 0);
}

/* prepare --force that cannot write vocab.txt (a full disk: files limited to 64 kB,
 * more than any shard or spill file needs, less than the vocabulary): exit 2 with one
 * line, the earlier set byte for byte (not new shards beside the old vocabulary), no
 * leftover; once there is room, the new set. */
static void test_full_disk_keeps_earlier_set(void **state) {
    char out[600], keep[600], ref[600], args[4096], cmd[2048], err_path[600], bin[600];
    tmp_path(out, sizeof out, "full_disk_set");
    tmp_path(keep, sizeof keep, "full_disk_set_before");
    tmp_path(ref, sizeof ref, "full_disk_set_reference");
    const char *shape = "--shards 40 --heldout-fraction 0.01 --quiet";
    snprintf(args, sizeof args, "prepare --input '%s' --output-dir '%s' %s --seed 9", corpus_glob, out, shape);
    run_ok(args, NULL, 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", keep, out, keep);
    assert_int_equal(system(cmd), 0);
    const rlim_t limit = 64 << 10;
    struct stat st;
    snprintf(cmd, sizeof cmd, "%s/vocab.txt", out);
    assert_int_equal(stat(cmd, &st), 0);
    assert_true((rlim_t)st.st_size > limit); /* the premise: the vocabulary cannot be written */
    snprintf(cmd, sizeof cmd, "%s/train/shard-00000.txt", out);
    assert_int_equal(stat(cmd, &st), 0);
    assert_true((rlim_t)st.st_size < limit / 2); /* but every shard can */
    snprintf(bin, sizeof bin, "%s", elmo_program());
    tmp_path(err_path, sizeof err_path, "full_disk_set.err");
    char *argv[] = {bin, "prepare", "--input", corpus_glob, "--output-dir", out, "--shards", "40",
                    "--heldout-fraction", "0.01", "--quiet", "--force", NULL};
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {limit, limit};
        signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG */
        setrlimit(RLIMIT_FSIZE, &rl);
        int null = open("/dev/null", O_WRONLY), err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(null, 1);
        dup2(err, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    char *err;
    assert_int_equal(file_read_all(err_path, 1 << 20, &err, NULL), 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 2 || count_lines(err) != 1)
        fail_msg("prepare on a full disk: status %#x, stderr: %s", status, err);
    assert_non_null(strstr(err, "vocab.txt"));
    free(err);
    if (!dirs_equal(out, keep)) fail_msg("prepare on a full disk changed the earlier set");
    assert_int_equal(leftovers(out), 0);
    snprintf(args, sizeof args, "prepare --input '%s' --output-dir '%s' %s --force", corpus_glob, out, shape);
    run_ok(args, NULL, 0);
    snprintf(args, sizeof args, "prepare --input '%s' --output-dir '%s' %s", corpus_glob, ref, shape);
    run_ok(args, NULL, 0);
    assert_true(dirs_equal(out, ref));
    assert_false(dirs_equal(out, keep));
    assert_int_equal(leftovers(out), 0);
}

/* ------------------------------------------------------------------ threads */

/* CRC-32 of the files a reader sees in dir, names and bytes, in name order. */
static unsigned long set_crc(const char *dir) {
    Lines l = {0};
    list_files(dir, "", &l);
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t i = 0; i < l.n; i++) {
        char path[2048], *data;
        size_t n;
        snprintf(path, sizeof path, "%s/%s", dir, l.line[i]);
        assert_int_equal(file_read_all(path, 1u << 30, &data, &n), 0);
        crc = crc32(crc, (const Bytef *)l.line[i], (uInt)strlen(l.line[i]) + 1);
        crc = crc32(crc, (const Bytef *)data, (uInt)n);
        free(data);
    }
    lines_free(&l);
    return crc;
}

/* vocab, shard (plain and gzip, held out by fraction and by count) and prepare on 1, 2
 * and 3 threads (OMP_NUM_THREADS) give the same bytes, and the bytes the sequential
 * version before the parallel one gave (pinned: CRC-32 of the files and of stdout): on
 * the test corpus (two files, one block each) and on the 50 MB one (50 blocks, parsed by
 * the threads at once and handed over in order). */
static void test_threads_same_output(void **state) {
    static const struct {
        const char *command, *options;
        int big;
        unsigned long files, out;
    } cases[] = {
        {"vocab", "--min-count 2", 0, 0x24a92f3cul, 0x0a64ebcaul},
        {"shard", "--shards 7 --heldout-fraction 0.1 --seed 3", 0, 0x20d40f86ul, 0xc88915dbul},
        {"shard", "--shards 3 --heldout-lines 500 --gzip", 0, 0xca4b18beul, 0xa8675ae6ul},
        {"prepare", "--shards 4 --heldout-fraction 0.05 --min-count 2 --seed 5", 0, 0xc40a71a4ul, 0xf3ee7510ul},
        {"vocab", "", 1, 0x02228023ul, 0xf9e5132bul},
        {"prepare", "--shards 20 --heldout-fraction 0.01 --gzip", 1, 0x2d5d590cul, 0x1f6b654dul},
    };
    /* ELMO_PRINT_PINNED=1: print the figures of the program under test instead */
    const int pinned = getenv("ELMO_PRINT_PINNED") == NULL;
    for (int k = 0; k < (int)(sizeof cases / sizeof *cases); k++) {
        unsigned long files = 0, out = 0;
        for (int threads = 1; threads <= 3; threads++) {
            char dir[600], args[4096], text[8192], env[64];
            tmp_path(dir, sizeof dir, "threads");
            make_dir(dir);
            const char *input = cases[k].big ? make_big_input() : corpus_glob;
            if (strcmp(cases[k].command, "vocab") == 0)
                snprintf(args, sizeof args, "vocab --input '%s' --output '%s/vocab.txt' --quiet %s", input, dir,
                         cases[k].options);
            else
                snprintf(args, sizeof args, "%s --input '%s' --output-dir '%s' --quiet %s", cases[k].command, input,
                         dir, cases[k].options);
            snprintf(env, sizeof env, "%d", threads);
            setenv("OMP_NUM_THREADS", env, 1);
            run_ok(args, text, sizeof text);
            unsetenv("OMP_NUM_THREADS");
            const unsigned long f = set_crc(dir), o = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)text,
                                                             (uInt)strlen(text));
            if (threads == 1) {
                files = f;
                out = o;
                if (!pinned) print_message("{\"%s\", \"%s\", %d, 0x%08lxul, 0x%08lxul},\n", cases[k].command,
                                           cases[k].options, cases[k].big, f, o);
            }
            if (f != files || o != out)
                fail_msg("%s %s: %d threads gave other bytes than 1 thread", cases[k].command, cases[k].options,
                         threads);
        }
        if (pinned && (files != cases[k].files || out != cases[k].out))
            fail_msg("%s %s: CRC-32 0x%08lx (files), 0x%08lx (stdout), pinned 0x%08lx, 0x%08lx", cases[k].command,
                     cases[k].options, files, out, cases[k].files, cases[k].out);
    }
}

/* Bad lines in several blocks (a NUL byte at line 6000, invalid UTF-8 at 50000, a long
 * token at 100000; 1 MB blocks of ~20,000 lines): whatever the threads, the first one is
 * named. */
static void test_threads_first_error(void **state) {
    char path[600], args[2048], err[4096];
    tmp_path(path, sizeof path, "three_errors.txt");
    FILE *f = fopen(path, "wb");
    for (int i = 1; i <= 120000; i++) {
        if (i == 6000) fwrite("nul \0 here\n", 1, 11, f);
        else if (i == 50000) fputs("bad \xc3\x28 utf8\n", f);
        else if (i == 100000) {
            for (int k = 0; k < 3000; k++) fputc('x', f);
            fputc('\n', f);
        } else fprintf(f, "line %d of a file with bad lines in several blocks\n", i);
    }
    fclose(f);
    for (int threads = 1; threads <= 3; threads++) {
        char env[16];
        snprintf(env, sizeof env, "%d", threads);
        setenv("OMP_NUM_THREADS", env, 1);
        for (int c = 0; c < 2; c++) {
            char out[700];
            snprintf(out, sizeof out, "%s.out", path);
            snprintf(args, sizeof args, c ? "vocab --input '%s' --output '%s' --quiet"
                                          : "shard --input '%s' --output-dir '%s' --shards 2 --quiet", path, out);
            assert_int_equal(run_elmo(args, err, sizeof err), 2);
            if (!strstr(err, "three_errors.txt:6000: NUL byte"))
                fail_msg("%d threads: %s names another error: %s", threads, c ? "vocab" : "shard", err);
        }
        unsetenv("OMP_NUM_THREADS");
    }
}

/* ------------------------------------------------------------------ vocab */

static void test_vocab_order_cutoffs_counts(void **state) {
    char input[600], gz[600], vocab_path[600], args[4096], out[4096];
    /* the 4, cat 2, dog 2, Zed 2, apple 2, a 1, zebra 1, <UNK> 1 (counted, written once):
     * 15 tokens; the empty and blank lines have none */
    write_text_file(tmp_path(input, sizeof input, "vocab_in.txt"),
                    "the cat the dog\n\na the cat\n \t\n<UNK> dog zebra\r\n");
    tmp_path(gz, sizeof gz, "vocab_in2.gz");
    gzFile f = gzopen(gz, "wb");
    gzputs(f, "Zed apple the\napple Zed");
    gzclose(f);
    tmp_path(vocab_path, sizeof vocab_path, "vocab_out.txt");
    char glob_pattern[700];
    snprintf(glob_pattern, sizeof glob_pattern, "%s/vocab_in*", test_tmpdir());
    struct {
        const char *extra, *expect;
        double oov;
    } cases[] = {
        {"", "<S>\n</S>\n<UNK>\nthe\nZed\napple\ncat\ndog\na\nzebra\n", 0.0},
        {"--min-count 2", "<S>\n</S>\n<UNK>\nthe\nZed\napple\ncat\ndog\n", 2.0 / 15},
        {"--max-size 5", "<S>\n</S>\n<UNK>\nthe\nZed\n", 8.0 / 15},
        {"--min-count 3 --max-size 100", "<S>\n</S>\n<UNK>\nthe\n", 10.0 / 15},
    };
    for (int k = 0; k < 4; k++) {
        snprintf(args, sizeof args, "vocab --input '%s' --output '%s' --quiet %s", glob_pattern, vocab_path,
                 cases[k].extra);
        run_ok(args, out, sizeof out);
        char *text;
        assert_int_equal(file_read_all(vocab_path, 1 << 20, &text, NULL), 0);
        assert_string_equal(text, cases[k].expect);
        free(text);
        assert_int_equal((int)stat_value(out, "n_train_tokens"), 15);
        assert_int_equal((int)stat_value(out, "lines"), 7);
        assert_int_equal((int)stat_value(out, "distinct_tokens"), 8);
        assert_int_equal((int)stat_value(out, "n_tokens_vocab"), count_lines(cases[k].expect));
        assert_true(fabs(stat_value(out, "oov_rate") - cases[k].oov) < 1e-6);
    }
}

/* The bundled Brown sample's vocabulary was made by an awk/sort pipeline
 * (scripts/prepare-brown.sh); `elmo vocab` gives it byte for byte, and its token count. */
static void test_vocab_reproduces_brown(void **state) {
    if (!file_exists("data/brown/vocab.txt") || !file_exists("data/brown/STATS")) skip();
    char out[600], args[1024], stdout_text[4096], *stats;
    tmp_path(out, sizeof out, "brown_vocab.txt");
    snprintf(args, sizeof args, "vocab --input 'data/brown/train/*.txt.gz' --output '%s' --min-count 3 --quiet", out);
    run_ok(args, stdout_text, sizeof stdout_text);
    assert_true(files_equal(out, "data/brown/vocab.txt"));
    assert_int_equal(file_read_all("data/brown/STATS", 1 << 16, &stats, NULL), 0);
    const char *at = strstr(stats, "train tokens: ");
    assert_non_null(at);
    assert_int_equal((long)stat_value(stdout_text, "n_train_tokens"), atol(at + 14));
    free(stats);
}

/* A tiny model as in test_train_cli.c. */
static const char small_options[] =
    "{\"char_cnn\": {\"activation\": \"relu\", \"embedding\": {\"dim\": 4}, \"filters\": [[1, 8], [2, 8], [3, 8]],"
    " \"max_characters_per_token\": 12, \"n_characters\": 261, \"n_highway\": 1}, \"dropout\": 0.1,"
    " \"lstm\": {\"cell_clip\": 3, \"dim\": 16, \"n_layers\": 2, \"proj_clip\": 3, \"projection_dim\": 8,"
    " \"use_skip_connections\": true}, \"n_epochs\": 1, \"n_train_tokens\": 1200, \"batch_size\": 6,"
    " \"unroll_steps\": 10, \"n_negative_samples_batch\": 8}";

/* shard + vocab, then `elmo train` and `elmo eval` on the result; `elmo prepare` gives
 * the same vocabulary and counts in one pass. */
static void test_prepared_corpus_trains(void **state) {
    char dir[600], vocab_path[700], opts[600], args[4096], out[4096], save[600], glob_train[700], glob_held[700];
    tmp_path(dir, sizeof dir, "prepared");
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 3 --heldout-fraction 0.02 --quiet "
             "--gzip", corpus_glob, dir);
    run_ok(args, out, sizeof out);
    const long train_tokens = (long)stat_value(out, "n_train_tokens");
    snprintf(glob_train, sizeof glob_train, "%s/train/*", dir);
    snprintf(glob_held, sizeof glob_held, "%s/heldout/*", dir);
    snprintf(vocab_path, sizeof vocab_path, "%s/vocab.txt", dir);
    snprintf(args, sizeof args, "vocab --input '%s' --output '%s' --min-count 2 --quiet", glob_train, vocab_path);
    run_ok(args, out, sizeof out);
    assert_int_equal((long)stat_value(out, "n_train_tokens"), train_tokens);
    const long vocab_size = (long)stat_value(out, "n_tokens_vocab");
    write_text_file(tmp_path(opts, sizeof opts, "prepared.json"), small_options);
    tmp_path(save, sizeof save, "prepared_save");
    snprintf(args, sizeof args, "train --options '%s' --train-prefix '%s' --vocab '%s' --save-dir '%s' "
             "--n-train-tokens %ld --max-batches 2 --log-every 0", opts, glob_train, vocab_path, save, train_tokens);
    run_ok(args, NULL, 0);
    snprintf(args, sizeof args, "eval --save-dir '%s' --test-prefix '%s' --vocab '%s' --batch-size 4 --quiet", save,
             glob_held, vocab_path);
    run_ok(args, out, sizeof out);
    assert_true(stat_value(out, "perplexity") > 1.0);

    char prepared[600], fragment[200];
    tmp_path(prepared, sizeof prepared, "prepared_one_pass");
    snprintf(args, sizeof args, "prepare --input '%s' --output-dir '%s' --shards 3 --heldout-fraction 0.02 "
             "--min-count 2 --quiet --gzip", corpus_glob, prepared);
    run_ok(args, out, sizeof out);
    snprintf(fragment, sizeof fragment, "{\"n_tokens_vocab\": %ld, \"n_train_tokens\": %ld}\n", vocab_size,
             train_tokens);
    assert_non_null(strstr(out, fragment));
    /* the same seed: the same shards as `elmo shard`, the same vocabulary as `elmo vocab` */
    assert_true(dirs_equal(dir, prepared));
}

/* ------------------------------------------------------------------ bad input */

/* Runs `command --input 'input'` with the output in a fresh directory; expects exit 2,
 * one line on stderr naming culprit, and nothing left in the output directory. */
static void expect_failure(const char *command, const char *input, const char *culprit) {
    char out[600], args[4096], err[4096];
    tmp_path(out, sizeof out, "bad_out");
    make_dir(out);
    if (strcmp(command, "vocab") == 0)
        snprintf(args, sizeof args, "vocab --input '%s' --output '%s/vocab.txt' --quiet", input, out);
    else
        snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 3 --heldout-fraction 0.2 --quiet",
                 input, out);
    int rc = run_capture(args, NULL, 0, err, sizeof err);
    if (rc != 2 || count_lines(err) != 1 || !strstr(err, culprit))
        print_error("%s on %s: rc %d, stderr: %s(expected one line naming %s)\n", command, input, rc, err, culprit);
    assert_int_equal(rc, 2);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, culprit));
    assert_int_equal(count_files(out), 0);
}

/* prepare (and shard) on bad input leave the output directory as they found it: a new
 * one is gone again, an existing one holds nothing new (no empty train/). */
static void test_failed_run_leaves_no_directories(void **state) {
    char dir[600], input[700], args[2048], err[4096];
    tmp_path(input, sizeof input, "bad_for_prepare.txt");
    write_text_file(input, "good line\nbad \xff line\n");
    tmp_path(dir, sizeof dir, "prepare_new");
    snprintf(args, sizeof args, "prepare --input '%s' --output-dir '%s' --shards 2 --heldout-fraction 0.1 --quiet",
             input, dir);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_false(file_exists(dir));
    tmp_path(dir, sizeof dir, "shard_existing");
    make_dir(dir);
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 2 --quiet", input, dir);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    char inside[700];
    snprintf(inside, sizeof inside, "%s/train", dir);
    assert_false(file_exists(inside));
    assert_true(file_exists(dir));
}

static void test_bad_input(void **state) {
    char dir[600], path[700], pattern[700];
    tmp_path(dir, sizeof dir, "bad");
    make_dir(dir);
    const char *commands[2] = {"vocab", "shard"};
    /* a 10 MB line of a single "token" */
    char *big = malloc((10u << 20) + 2);
    memset(big, 'x', 10u << 20);
    strcpy(big + (10u << 20), "\n");
    snprintf(path, sizeof path, "%s/long_token.txt", dir);
    write_text_file(path, big);
    free(big);
    static const unsigned char binary[] = {'o', 'k', '\n', 0x7f, 'E', 'L', 'F', 0, 0, 1, '\n'};
    snprintf(path, sizeof path, "%s/binary.bin", dir);
    FILE *f = fopen(path, "wb");
    fwrite(binary, 1, sizeof binary, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/utf8.txt", dir);
    write_text_file(path, "good line\nstill good\nbad \xc3\x28 here\n");
    /* a .gz file whose first deflate block has the reserved type, and one cut short */
    char text[18 * 1000 + 1];
    for (int i = 0; i < 1000; i++) snprintf(text + i * 18, 19, "line %9d ok\n", i);
    snprintf(path, sizeof path, "%s/corrupt.gz", dir);
    gzFile gz = gzopen(path, "wb");
    gzputs(gz, text);
    gzclose(gz);
    char *data;
    size_t n;
    assert_int_equal(file_read_all(path, 1 << 20, &data, &n), 0);
    snprintf(path, sizeof path, "%s/truncated.gz", dir);
    f = fopen(path, "wb");
    fwrite(data, 1, n / 2, f);
    fclose(f);
    data[10] = (char)0xFF; /* BFINAL 1, BTYPE 11 */
    snprintf(path, sizeof path, "%s/corrupt.gz", dir);
    f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    free(data);
    snprintf(path, sizeof path, "%s/subdir", dir);
    mkdir(path, 0755);

    for (int c = 0; c < 2; c++) {
        const char *cmd = commands[c];
        snprintf(path, sizeof path, "%s/missing.txt", dir);
        expect_failure(cmd, path, "missing.txt: cannot open: No such file");
        snprintf(pattern, sizeof pattern, "%s/nothing-*.txt", dir);
        expect_failure(cmd, pattern, "no files match");
        snprintf(pattern, sizeof pattern, "%s/sub*", dir);
        expect_failure(cmd, pattern, "subdir: is a directory");
        snprintf(path, sizeof path, "%s/binary.bin", dir);
        expect_failure(cmd, path, "binary.bin:2: NUL byte");
        snprintf(path, sizeof path, "%s/utf8.txt", dir);
        expect_failure(cmd, path, "utf8.txt:3: invalid UTF-8");
        snprintf(path, sizeof path, "%s/long_token.txt", dir);
        expect_failure(cmd, path, "long_token.txt:1: token of 10485760 bytes");
        snprintf(path, sizeof path, "%s/corrupt.gz", dir);
        expect_failure(cmd, path, "corrupt.gz: corrupt");
        snprintf(path, sizeof path, "%s/truncated.gz", dir);
        expect_failure(cmd, path, "truncated.gz: corrupt or truncated");
        if (geteuid() != 0) { /* root reads any directory */
            snprintf(path, sizeof path, "%s/locked", dir);
            mkdir(path, 0);
            snprintf(pattern, sizeof pattern, "%s/locked/*", dir);
            expect_failure(cmd, pattern, "locked: cannot read directory");
            rmdir(path);
        }
    }
}

/* A 10 MB line of ordinary tokens is one long sentence: counted and sharded whole. */
static void test_ten_megabyte_line(void **state) {
    char path[600], out[600], args[4096], stdout_text[4096], shard[700];
    const size_t n_tokens = (10u << 20) / 3; /* "ab cd ab ...": 10 MB */
    char *line = malloc(n_tokens * 3 + 2);
    for (size_t i = 0; i < n_tokens; i++) memcpy(line + 3 * i, i % 2 ? "cd " : "ab ", 3);
    line[3 * n_tokens - 1] = '\n';
    line[3 * n_tokens] = '\0';
    write_text_file(tmp_path(path, sizeof path, "long_line.txt"), line);
    tmp_path(out, sizeof out, "long_line_vocab.txt");
    snprintf(args, sizeof args, "vocab --input '%s' --output '%s' --quiet", path, out);
    run_ok(args, stdout_text, sizeof stdout_text);
    assert_int_equal((size_t)stat_value(stdout_text, "n_train_tokens"), n_tokens);
    assert_int_equal((int)stat_value(stdout_text, "lines"), 1);
    tmp_path(out, sizeof out, "long_line_shards");
    snprintf(args, sizeof args, "shard --input '%s' --output-dir '%s' --shards 2 --quiet", path, out);
    run_ok(args, stdout_text, sizeof stdout_text);
    Lines got = {0};
    for (int i = 0; i < 2; i++) {
        snprintf(shard, sizeof shard, "%s/train/shard-%05d.txt", out, i);
        read_lines(shard, &got);
    }
    line[3 * n_tokens - 1] = '\0';
    assert_int_equal(got.n, 1);
    assert_string_equal(got.line[0], line);
    lines_free(&got);
    free(line);
}

/* ------------------------------------------------ fast paths against naive twins */

/* utf8_invalid_offset as it was before its ASCII fast path: byte by byte. */
static long naive_utf8_invalid_offset(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) need = 1, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) need = 2, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) need = 3, cp = c & 0x07, min = 0x10000;
        else return (long)i;
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80) return (long)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (long)i;
        i += need + 1;
    }
    return -1;
}

/* Tokens found byte by byte with text_space_len: their offsets and lengths. */
static int naive_split(const char *line, size_t len, size_t *start, size_t *length) {
    const char *p = line, *end = line + len;
    int n = 0;
    while (p < end) {
        int sp = text_space_len(p, end);
        if (sp) {
            p += sp;
            continue;
        }
        const char *t = p;
        while (p < end && !text_space_len(p, end)) p++;
        start[n] = (size_t)(t - line);
        length[n++] = (size_t)(p - t);
    }
    return n;
}

/* Random lines of every kind of white space, of bytes at the edges of the eight-byte
 * test (0x20, 0x21, 0x7f, 0x80), of tokens longer than eight bytes, and (for the UTF-8
 * check) of invalid sequences: the fast paths agree with the naive twins. */
static void test_text_fast_paths_match_naive(void **state) {
    static const char *const valid[] = {
        "a", "Z", "!", "~", "\x7f", "hello", "abcdefghij", "0123456789abcdefXYZ", " ", "  ", "\t", "\r", "\x0b",
        "\x0c", "\x1c", "\x1f", "\xc2\xa0", "\xc2\x85", "\xe3\x80\x80", "\xe2\x80\x83", "\xe2\x80\x8b",
        "\xe1\x9a\x80", "\xe2\x81\x9f", "\xe2\x80\xaf", "\xc3\xa9", "\xf0\x9f\x98\x80", "!\x20\x7f"};
    static const char *const invalid[] = {"\xff", "\x80", "\xe3\x80", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"};
    const int n_valid = (int)(sizeof valid / sizeof *valid), n_invalid = (int)(sizeof invalid / sizeof *invalid);
    Rng r;
    rng_seed(&r, 11);
    char line[1200], copy[1200];
    size_t start[1200], length[1200];
    TokenList t = {0};
    int checked_splits = 0;
    for (int k = 0; k < 20000; k++) {
        size_t len = 0;
        const int pieces = (int)(rng_next(&r) % 60);
        for (int i = 0; i < pieces; i++) {
            const char *piece = rng_next(&r) % 200 == 0 ? invalid[rng_next(&r) % n_invalid]
                                                         : valid[rng_next(&r) % n_valid];
            memcpy(line + len, piece, strlen(piece));
            len += strlen(piece);
        }
        /* a suffix of the line too: fast paths near the end of the buffer */
        const size_t from = len ? (size_t)(rng_next(&r) % len) : 0;
        assert_int_equal(utf8_invalid_offset(line, len), naive_utf8_invalid_offset(line, len));
        assert_int_equal(utf8_invalid_offset(line + from, len - from),
                         naive_utf8_invalid_offset(line + from, len - from));
        if (naive_utf8_invalid_offset(line, len) >= 0) continue;
        const int n = naive_split(line, len, start, length);
        memcpy(copy, line, len);
        assert_int_equal(text_split(copy, len, &t, "test"), 0);
        assert_int_equal(t.n, n);
        for (int i = 0; i < n; i++) {
            assert_int_equal((size_t)(t.tokens[i] - copy), start[i]);
            assert_int_equal(strlen(t.tokens[i]), length[i]);
        }
        checked_splits++;
    }
    assert_true(checked_splits > 10000);
    token_list_free(&t);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The hash table against sorting: 300k tokens over 60k types (the table doubles several
 * times), one at a time and a sentence at a time. */
static void test_wordcount_matches_sorting(void **state) {
    enum { N = 300000 };
    char **tok = malloc(N * sizeof *tok);
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        char w[40];
        const uint64_t x = rng_next(&r) % 60000, pad = x % 23; /* lengths 1..~28 */
        snprintf(w, sizeof w, "%llu%.*s", (unsigned long long)x, (int)pad, "abcdefghijklmnopqrstuvw");
        tok[i] = strdup(w);
    }
    WordCount one, batched;
    wordcount_init(&one);
    wordcount_init(&batched);
    for (int i = 0; i < N; i++) wordcount_add(&one, tok[i], strlen(tok[i]));
    for (int i = 0; i < N; i += 37) wordcount_add_tokens(&batched, tok + i, N - i < 37 ? N - i : 37);
    qsort(tok, N, sizeof *tok, cmp_str);
    size_t distinct = 0;
    for (int i = 0, j; i < N; i = j) {
        for (j = i; j < N && strcmp(tok[j], tok[i]) == 0; j++) {}
        assert_int_equal(wordcount_get(&one, tok[i]), (uint64_t)(j - i));
        assert_int_equal(wordcount_get(&batched, tok[i]), (uint64_t)(j - i));
        distinct++;
    }
    assert_int_equal(one.n, distinct);
    assert_int_equal(batched.n, distinct);
    assert_int_equal(one.total, N);
    assert_int_equal(wordcount_get(&one, "not a token"), 0);
    wordcount_free(&one);
    wordcount_free(&batched);
    for (int i = 0; i < N; i++) free(tok[i]);
    free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_fast_paths_match_naive),
        cmocka_unit_test(test_wordcount_matches_sorting),
        cmocka_unit_test(test_shard_permutation_balance_heldout),
        cmocka_unit_test(test_shard_heldout_lines_exact),
        cmocka_unit_test(test_shard_deterministic),
        cmocka_unit_test(test_shard_force),
        cmocka_unit_test(test_memory_bounded),
        cmocka_unit_test(test_interrupted_leaves_nothing),
        cmocka_unit_test(test_killed_mid_shards_removes_them),
        cmocka_unit_test(test_full_disk_keeps_earlier_set),
        cmocka_unit_test(test_older_layout_taken_over),
        cmocka_unit_test(test_threads_same_output),
        cmocka_unit_test(test_threads_first_error),
        cmocka_unit_test(test_vocab_order_cutoffs_counts),
        cmocka_unit_test(test_vocab_reproduces_brown),
        cmocka_unit_test(test_prepared_corpus_trains),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_failed_run_leaves_no_directories),
        cmocka_unit_test(test_ten_megabyte_line),
    };
    return cmocka_run_group_tests_name("corpus", tests, setup, teardown);
}
