/* test_dataset.c - the training/evaluation data reader (docs/design.md section 6): packing into
 * streams exactly as bilm-tf's _get_batch, shard order, shuffling, .gz shards, exact
 * resume through an HDF5 group, and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "chars.h"
#include "common.h"
#include "dataset.h"
#include "h5io.h"
#include "rng.h"
#include "testutil.h"
#include "vocab.h"

#define C8 8

/* ------------------------------------------------------------------ helpers */

static void write_gz(const char *path, const char *text, size_t len) {
    gzFile f = gzopen(path, "wb");
    CHECK(f, "cannot write %s", path);
    CHECK(gzwrite(f, text, (unsigned)len) == (int)len, "gzwrite");
    CHECK(gzclose(f) == Z_OK, "gzclose");
}

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    CHECK(f, "cannot write %s", path);
    CHECK(fwrite(data, 1, len, f) == len, "fwrite");
    fclose(f);
}

static int batches_equal(const LmBatch *a, const LmBatch *b) {
    size_t n = (size_t)a->B * a->T;
    return memcmp(a->targets, b->targets, n * sizeof(int32_t)) == 0 &&
           memcmp(a->chars, b->chars, n * a->C * sizeof(int32_t)) == 0;
}

/* The vocabulary id of input i, read back from its character ids (the model sees only
 * those): the word they spell, <UNK> when the vocabulary lacks it. */
static int32_t input_id(const LmBatch *b, int i, const Vocab *v) {
    const int32_t *c = b->chars + (size_t)i * b->C;
    char word[64];
    int n = 0;
    if (c[1] == 256 || c[1] == 257) return c[1] == 256 ? v->bos : v->eos;
    for (int k = 1; k < b->C && c[k] < 256; k++) word[n++] = (char)c[k];
    word[n] = '\0';
    const int id = vocab_lookup(v, word);
    return id >= 0 ? id : v->unk;
}

/* Checks a whole batch: the input ids (read back from the characters), the targets, and
 * the char ids of every input against the expected words. */
static void check_batch(const LmBatch *b, const Vocab *v, const int32_t *inputs, const int32_t *targets,
                        const char *const *words) {
    int n = b->B * b->T;
    for (int i = 0; i < n; i++) {
        if (input_id(b, i, v) != inputs[i] || b->targets[i] != targets[i])
            fail_msg("position %d: input %d target %d, expected %d %d", i, input_id(b, i, v), b->targets[i],
                     inputs[i], targets[i]);
        int32_t want[C8];
        chars_encode(words[i], C8, want);
        assert_memory_equal(b->chars + (size_t)i * C8, want, sizeof want);
    }
}

/* ------------------------------------------------------------------ 1. packing */

static const char *const PACK_VOCAB[] = {"<S>", "</S>", "<UNK>", "the", "cat", "sat", "dog"};
static const char PACK_TEXT[] = "the cat sat\na dog\ncat\nthe dog sat the cat\n";

/* Hand-worked: B=2, T=3. Forward sentences (ids):
 *   s1 <S> the cat sat </S> = 0 3 4 5 1      s2 <S> a dog </S> = 0 2 6 1 ("a" is OOV)
 *   s3 <S> cat </S> = 0 4 1                  s4 <S> the dog sat the cat </S> = 0 3 6 5 3 4 1
 * batch 1: row 0 takes s1 (3 of its 4 inputs), row 1 takes s2 (all 3, leaves </S>).
 * batch 2: row 0 finishes s1 (sat -> </S>) then s3; row 1 drops its lone </S>, takes s4.
 * batch 3: row 0 needs a sentence: the shard is done, pass 2 starts with s1 again; row 1
 *          continues s4 (s4 spans batches 2 and 3). */
static void test_packing_forward(void **state) {
    char path[512];
    tmp_path(path, sizeof path, "pack.txt");
    write_text_file(path, PACK_TEXT);
    Vocab v;
    vocab_from_words(&v, PACK_VOCAB, 7);
    LmReader *r;
    assert_int_equal(lm_reader_open(&r, path, &v, C8, 0, LM_TRAIN, 0, 1), 0);
    assert_int_equal(lm_reader_n_shards(r), 1);
    LmBatch b;
    lm_batch_init(&b, 2, 3, C8);

    assert_int_equal(lm_reader_next(r, &b), 1);
    const int32_t in1[] = {0, 3, 4, 0, 2, 6}, tg1[] = {3, 4, 5, 2, 6, 1};
    const char *w1[] = {"<S>", "the", "cat", "<S>", "a", "dog"};
    check_batch(&b, &v, in1, tg1, w1);
    /* literal char ids: the OOV word "a" is spelled (its id is <UNK>), <S> is the marker */
    const int32_t a_chars[C8] = {258, 'a', 259, 260, 260, 260, 260, 260};
    const int32_t bos_chars[C8] = {258, 256, 259, 260, 260, 260, 260, 260};
    assert_memory_equal(b.chars + (1 * 3 + 1) * C8, a_chars, sizeof a_chars);
    assert_memory_equal(b.chars + 0, bos_chars, sizeof bos_chars);
    assert_int_equal(input_id(&b, 1 * 3 + 1, &v), 2);
    assert_int_equal(b.targets[1 * 3 + 0], 2);

    assert_int_equal(lm_reader_next(r, &b), 1);
    const int32_t in2[] = {5, 0, 4, 0, 3, 6}, tg2[] = {1, 4, 1, 3, 6, 5};
    const char *w2[] = {"sat", "<S>", "cat", "<S>", "the", "dog"};
    check_batch(&b, &v, in2, tg2, w2);
    const int32_t sat_chars[C8] = {258, 's', 'a', 't', 259, 260, 260, 260};
    assert_memory_equal(b.chars + 0, sat_chars, sizeof sat_chars);

    assert_int_equal(lm_reader_next(r, &b), 1);
    const int32_t in3[] = {0, 3, 4, 5, 3, 4}, tg3[] = {3, 4, 5, 3, 4, 1};
    const char *w3[] = {"<S>", "the", "cat", "sat", "the", "cat"};
    check_batch(&b, &v, in3, tg3, w3);

    lm_batch_free(&b);
    lm_reader_close(r);
    vocab_free(&v);
}

/* Backward: sentences reversed, </S> first, <S> last:
 *   s1 </S> sat cat the <S> = 1 5 4 3 0   s2 </S> dog a <S> = 1 6 2 0   s3 = 1 4 0
 *   s4 </S> cat the sat dog the <S> = 1 4 3 5 6 3 0 */
static void test_packing_backward(void **state) {
    char path[512];
    tmp_path(path, sizeof path, "pack.txt");
    write_text_file(path, PACK_TEXT);
    Vocab v;
    vocab_from_words(&v, PACK_VOCAB, 7);
    LmReader *r;
    assert_int_equal(lm_reader_open(&r, path, &v, C8, 1, LM_TRAIN, 0, 1), 0);
    LmBatch b;
    lm_batch_init(&b, 2, 3, C8);

    assert_int_equal(lm_reader_next(r, &b), 1);
    const int32_t in1[] = {1, 5, 4, 1, 6, 2}, tg1[] = {5, 4, 3, 6, 2, 0};
    const char *w1[] = {"</S>", "sat", "cat", "</S>", "dog", "a"};
    check_batch(&b, &v, in1, tg1, w1);
    const int32_t eos_chars[C8] = {258, 257, 259, 260, 260, 260, 260, 260};
    const int32_t a_chars[C8] = {258, 'a', 259, 260, 260, 260, 260, 260};
    assert_memory_equal(b.chars + 0, eos_chars, sizeof eos_chars);
    assert_memory_equal(b.chars + (1 * 3 + 2) * C8, a_chars, sizeof a_chars);

    assert_int_equal(lm_reader_next(r, &b), 1);
    const int32_t in2[] = {3, 1, 4, 1, 4, 3}, tg2[] = {0, 4, 0, 4, 3, 5};
    const char *w2[] = {"the", "</S>", "cat", "</S>", "cat", "the"};
    check_batch(&b, &v, in2, tg2, w2);

    assert_int_equal(lm_reader_next(r, &b), 1);
    const int32_t in3[] = {1, 5, 4, 5, 6, 3}, tg3[] = {5, 4, 3, 6, 3, 0};
    const char *w3[] = {"</S>", "sat", "cat", "sat", "dog", "the"};
    check_batch(&b, &v, in3, tg3, w3);

    lm_batch_free(&b);
    lm_reader_close(r);
    vocab_free(&v);
}

/* ------------------------------------------------------------------ 2. evaluation */

static const char *const EVAL_VOCAB[] = {"<S>", "</S>", "<UNK>", "x", "y", "z", "w", "v", "u"};

static void write_eval_shards(char *pattern, size_t size) {
    char path[512];
    write_text_file(tmp_path(path, sizeof path, "eval_b.txt"), "z\nw v u\n");
    write_text_file(tmp_path(path, sizeof path, "eval_a.txt"), "x y"); /* no final newline */
    write_text_file(tmp_path(path, sizeof path, "other.txt"), "not part of the data\n");
    tmp_path(pattern, size, "eval_*.txt");
}

static void test_eval_order_and_end(void **state) {
    char pattern[512];
    write_eval_shards(pattern, sizeof pattern);
    Vocab v;
    vocab_from_words(&v, EVAL_VOCAB, 9);
    LmBatch b;

    /* B=1, T=1: every token but a sentence's last is one batch; eval_a before eval_b. */
    const int32_t fw_in[] = {0, 3, 4, 0, 5, 0, 6, 7, 8}, fw_tg[] = {3, 4, 1, 5, 1, 6, 7, 8, 1};
    const int32_t bw_in[] = {1, 4, 3, 1, 5, 1, 8, 7, 6}, bw_tg[] = {4, 3, 0, 5, 0, 8, 7, 6, 0};
    for (int reverse = 0; reverse < 2; reverse++) {
        LmReader *r;
        assert_int_equal(lm_reader_open(&r, pattern, &v, C8, reverse, LM_EVAL, 1, 7), 0);
        assert_int_equal(lm_reader_n_shards(r), 2);
        lm_batch_init(&b, 1, 1, C8);
        int n = 0, rc;
        while ((rc = lm_reader_next(r, &b)) == 1) {
            assert_true(n < 9);
            assert_int_equal(input_id(&b, 0, &v), reverse ? bw_in[n] : fw_in[n]);
            assert_int_equal(b.targets[0], reverse ? bw_tg[n] : fw_tg[n]);
            n++;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(n, 9); /* all 9 targets, each once */
        assert_int_equal(lm_reader_next(r, &b), 0); /* stays at the end */
        lm_batch_free(&b);
        lm_reader_close(r);
    }

    /* B=2, T=2: batch 1 = [<S> x | <S> z] -> [x y | z </S>]; batch 2 would need a fourth
     * sentence for row 1 and is dropped: 4 of the 9 targets are consumed. */
    LmReader *r;
    assert_int_equal(lm_reader_open(&r, pattern, &v, C8, 0, LM_EVAL, 0, 7), 0);
    lm_batch_init(&b, 2, 2, C8);
    assert_int_equal(lm_reader_next(r, &b), 1);
    const int32_t in[] = {0, 3, 0, 5}, tg[] = {3, 4, 5, 1};
    for (int i = 0; i < 4; i++) assert_int_equal(input_id(&b, i, &v), in[i]);
    assert_memory_equal(b.targets, tg, sizeof tg);
    assert_int_equal(lm_reader_next(r, &b), 0);
    assert_int_equal(lm_reader_next(r, &b), 0);
    lm_batch_free(&b);
    lm_reader_close(r);
    vocab_free(&v);
}

/* ------------------------------------------------------------------ 3. training, shuffled */

#define SH_SHARDS 3
static const int SH_SIZES[SH_SHARDS] = {8, 10, 12};
#define SH_SENTENCES 30

/* Sentence k (k = 0..29) has 1 + k % 4 words "k<k>_<j>"; shard s holds its run of k. Returns
 * a vocabulary of every word and writes the shards; pattern receives the glob. */
static void make_shuffle_corpus(Vocab *v, char *pattern, size_t size, const char *prefix) {
    static char words[200][16];
    const char *list[203] = {"<S>", "</S>", "<UNK>"};
    int nw = 3, k = 0;
    for (int s = 0; s < SH_SHARDS; s++) {
        char text[4096] = "", path[512], name[64];
        for (int i = 0; i < SH_SIZES[s]; i++, k++) {
            for (int j = 0; j <= k % 4; j++) {
                snprintf(words[nw - 3], sizeof words[0], "k%d_%d", k, j);
                list[nw] = words[nw - 3];
                nw++;
                strcat(text, j ? " " : "");
                strcat(text, list[nw - 1]);
            }
            strcat(text, "\n");
        }
        snprintf(name, sizeof name, "%s%d.txt", prefix, s);
        write_text_file(tmp_path(path, sizeof path, name), text);
    }
    vocab_from_words(v, list, nw);
    char glob_name[64];
    snprintf(glob_name, sizeof glob_name, "%s?.txt", prefix);
    tmp_path(pattern, size, glob_name);
}

/* Reads one pass with B=1, T=1 and returns the sentences (their k) in the order seen. */
static void read_one_pass(LmReader *r, const Vocab *v, int *seen) {
    LmBatch b;
    lm_batch_init(&b, 1, 1, C8);
    int total_inputs = 0;
    for (int k = 0; k < SH_SENTENCES; k++) total_inputs += 1 + k % 4 + 1;
    int n = 0, cur_k = -1, cur_j = 0;
    for (int i = 0; i < total_inputs; i++) {
        assert_int_equal(lm_reader_next(r, &b), 1);
        if (input_id(&b, 0, v) == v->bos) {
            assert_true(n < SH_SENTENCES);
            assert_int_equal(cur_k, -1); /* the previous sentence was complete */
            const char *w = v->words[b.targets[0]];
            assert_int_equal(sscanf(w, "k%d_", &cur_k), 1);
            seen[n++] = cur_k;
            cur_j = 0;
        }
        assert_true(cur_k >= 0);
        if (b.targets[0] == v->eos) {
            assert_int_equal(cur_j, 1 + cur_k % 4); /* every word of the sentence seen */
            cur_k = -1;
        } else {
            char want[16];
            snprintf(want, sizeof want, "k%d_%d", cur_k, cur_j++);
            assert_string_equal(v->words[b.targets[0]], want);
        }
    }
    assert_int_equal(n, SH_SENTENCES);
    assert_int_equal(cur_k, -1);
    lm_batch_free(&b);
}

static int shard_of(int k) {
    int s = 0, end = SH_SIZES[0];
    while (k >= end) end += SH_SIZES[++s];
    return s;
}

static void check_pass(const int *seen) {
    int count[SH_SENTENCES] = {0}, in_order = 1;
    for (int i = 0; i < SH_SENTENCES; i++) {
        count[seen[i]]++;
        if (seen[i] != i) in_order = 0;
    }
    for (int k = 0; k < SH_SENTENCES; k++) assert_int_equal(count[k], 1); /* the corpus, once */
    assert_false(in_order);                                              /* shuffled */
    /* a shard's sentences come together (one shard in memory at a time) */
    int changes = 0;
    for (int i = 1; i < SH_SENTENCES; i++) changes += shard_of(seen[i]) != shard_of(seen[i - 1]);
    assert_int_equal(changes, SH_SHARDS - 1);
}

static void test_training_shuffle(void **state) {
    Vocab v;
    char pattern[512];
    make_shuffle_corpus(&v, pattern, sizeof pattern, "shuf");
    LmReader *r;
    assert_int_equal(lm_reader_open(&r, pattern, &v, C8, 0, LM_TRAIN, 1, 42), 0);
    int pass1[SH_SENTENCES], pass2[SH_SENTENCES], pass3[SH_SENTENCES];
    read_one_pass(r, &v, pass1);
    check_pass(pass1);
    read_one_pass(r, &v, pass2); /* training goes on: a second and third pass */
    check_pass(pass2);
    read_one_pass(r, &v, pass3);
    check_pass(pass3);
    assert_true(memcmp(pass1, pass2, sizeof pass1) != 0); /* a new order every pass */
    assert_true(memcmp(pass2, pass3, sizeof pass1) != 0);
    lm_reader_close(r);

    /* Without shuffle: sorted shards, file order, every pass. */
    assert_int_equal(lm_reader_open(&r, pattern, &v, C8, 0, LM_TRAIN, 0, 42), 0);
    for (int p = 0; p < 2; p++) {
        read_one_pass(r, &v, pass1);
        for (int i = 0; i < SH_SENTENCES; i++) assert_int_equal(pass1[i], i);
    }
    lm_reader_close(r);

    /* Same seed: identical batches; another seed: different ones. B=3, T=4 for 60 batches
     * (several passes). */
    LmReader *a, *b, *c;
    assert_int_equal(lm_reader_open(&a, pattern, &v, C8, 1, LM_TRAIN, 1, 5), 0);
    assert_int_equal(lm_reader_open(&b, pattern, &v, C8, 1, LM_TRAIN, 1, 5), 0);
    assert_int_equal(lm_reader_open(&c, pattern, &v, C8, 1, LM_TRAIN, 1, 6), 0);
    LmBatch ba, bb, bc;
    lm_batch_init(&ba, 3, 4, C8);
    lm_batch_init(&bb, 3, 4, C8);
    lm_batch_init(&bc, 3, 4, C8);
    int differ = 0;
    for (int i = 0; i < 60; i++) {
        assert_int_equal(lm_reader_next(a, &ba), 1);
        assert_int_equal(lm_reader_next(b, &bb), 1);
        assert_int_equal(lm_reader_next(c, &bc), 1);
        assert_true(batches_equal(&ba, &bb));
        differ += !batches_equal(&ba, &bc);
    }
    assert_true(differ > 0);
    lm_batch_free(&ba);
    lm_batch_free(&bb);
    lm_batch_free(&bc);
    lm_reader_close(a);
    lm_reader_close(b);
    lm_reader_close(c);
    vocab_free(&v);
}

/* ------------------------------------------------------------------ 4. .gz shards */

static void test_gzip_shards(void **state) {
    /* UTF-8 words, Unicode white space, CRLF, and one 150,000-byte line of 30,000 tokens */
    size_t cap = 400000, len = 0;
    char *text = malloc(cap);
    len += (size_t)sprintf(text + len, "the cat \xc3\xbc" "ber\r\n\xe2\x80\x83 dog\xe3\x80\x80sat the\n");
    for (int i = 0; i < 30000; i++) len += (size_t)sprintf(text + len, "%s ", i % 3 ? "cat" : "w1234");
    len += (size_t)sprintf(text + len, "\nthe end\nlast line without newline");
    char plain[512], gz[512];
    tmp_path(plain, sizeof plain, "gzt.txt");
    tmp_path(gz, sizeof gz, "gzt.txt.gz");
    write_bytes(plain, text, len);
    write_gz(gz, text, len);
    free(text);
    Vocab v;
    vocab_from_words(&v, PACK_VOCAB, 7);
    for (int mode = 0; mode < 2; mode++) {
        LmReader *a, *b;
        LmMode m = mode ? LM_EVAL : LM_TRAIN;
        assert_int_equal(lm_reader_open(&a, plain, &v, C8, mode, m, 1, 3), 0);
        assert_int_equal(lm_reader_open(&b, gz, &v, C8, mode, m, 1, 3), 0);
        LmBatch ba, bb;
        /* one row in evaluation: with two, the other row would run out of sentences while
         * the first still holds most of the long line, and the data would end there */
        lm_batch_init(&ba, 2 - mode, 5, C8);
        lm_batch_init(&bb, 2 - mode, 5, C8);
        int n = 0, ra, rb;
        for (;;) {
            ra = lm_reader_next(a, &ba);
            rb = lm_reader_next(b, &bb);
            assert_int_equal(ra, rb);
            if (ra != 1 || n == 20000) break;
            assert_true(batches_equal(&ba, &bb));
            n++;
        }
        if (m == LM_EVAL) {
            assert_int_equal(ra, 0);
            assert_int_equal(n, (4 + 4 + 30001 + 3 + 5) / 5); /* every target, the long line's included */
        } else {
            assert_int_equal(n, 20000); /* more than two passes */
        }
        lm_batch_free(&ba);
        lm_batch_free(&bb);
        lm_reader_close(a);
        lm_reader_close(b);
    }
    vocab_free(&v);
}

/* ------------------------------------------------------------------ 5. exact resume */

static const char *const RES_VOCAB[] = {"<S>", "</S>", "<UNK>", "a", "b", "c", "d", "e", "f"};

static void make_resume_corpus(char *pattern, size_t size) {
    const int sizes[3] = {5, 7, 9};
    const char *pool[] = {"a", "b", "c", "d", "e", "f", "oov1", "<S>", "\xc3\xa9t\xc3\xa9", "g"};
    Rng g;
    rng_seed(&g, 99);
    for (int s = 0; s < 3; s++) {
        char text[2048] = "", path[512], name[32];
        for (int i = 0; i < sizes[s]; i++) {
            int n = 2 + (int)(rng_next(&g) % 6);
            for (int j = 0; j < n; j++) {
                if (j) strcat(text, " ");
                strcat(text, pool[rng_next(&g) % 10]);
            }
            strcat(text, "\n");
        }
        snprintf(name, sizeof name, "res_%c.txt", 'a' + s);
        write_text_file(tmp_path(path, sizeof path, name), text);
    }
    tmp_path(pattern, size, "res_?.txt");
}

static void save_state(const LmReader *r, const char *path) {
    hid_t f;
    assert_int_equal(h5io_create(path, &f), 0);
    hid_t g = H5Gcreate2(f, "reader_fwd", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    assert_int_equal(lm_reader_save_state(r, g), 0);
    H5Gclose(g);
    assert_int_equal(h5io_close(f, path), 0);
}

static int load_state(LmReader *r, const char *path) {
    hid_t f;
    assert_int_equal(h5io_open_read(path, &f), 0);
    hid_t g = H5Gopen2(f, "reader_fwd", H5P_DEFAULT);
    assert_true(g >= 0);
    int rc = lm_reader_load_state(r, g);
    H5Gclose(g);
    H5Fclose(f);
    return rc;
}

static void test_exact_resume(void **state) {
    char pattern[512], h5[512];
    make_resume_corpus(pattern, sizeof pattern);
    tmp_path(h5, sizeof h5, "reader_state.h5");
    Vocab v;
    vocab_from_words(&v, RES_VOCAB, 9);
    const int B = 3, T = 4, M = 25;
    int interesting = 0;
    for (int reverse = 0; reverse < 2; reverse++)
        for (int K = 0; K <= 24; K++) {
            LmReader *a, *b;
            assert_int_equal(lm_reader_open(&a, pattern, &v, C8, reverse, LM_TRAIN, 1, 1234), 0);
            LmBatch ba, bb;
            lm_batch_init(&ba, B, T, C8);
            lm_batch_init(&bb, B, T, C8);
            int taken = 0; /* sentences taken so far: each starts with an input marker */
            for (int i = 0; i < K; i++) {
                assert_int_equal(lm_reader_next(a, &ba), 1);
                for (int p = 0; p < B * T; p++) taken += input_id(&ba, p, &v) == (reverse ? v.eos : v.bos);
            }
            int partial = 0;
            for (int row = 0; K > 0 && row < B; row++)
                partial |= ba.targets[row * T + T - 1] != (reverse ? v.bos : v.eos);
            /* a stream holds a partial sentence, and the first pass is past its first shard
             * (the biggest has 9 sentences) but not over (21) */
            if (partial && taken > 9 && taken < 21) interesting++;
            save_state(a, h5);
            assert_int_equal(lm_reader_open(&b, pattern, &v, C8, reverse, LM_TRAIN, 1, 777), 0);
            assert_int_equal(load_state(b, h5), 0);
            for (int i = 0; i < M; i++) {
                assert_int_equal(lm_reader_next(a, &ba), 1);
                assert_int_equal(lm_reader_next(b, &bb), 1);
                if (!batches_equal(&ba, &bb)) fail_msg("reverse %d, K %d: batch %d after the resume differs", reverse, K, i);
            }
            lm_batch_free(&ba);
            lm_batch_free(&bb);
            lm_reader_close(a);
            lm_reader_close(b);
        }
    assert_true(interesting > 0);

    /* Evaluation mode resumes too and ends at the same batch. */
    LmReader *a, *b;
    LmBatch ba, bb;
    lm_batch_init(&ba, 2, 3, C8);
    lm_batch_init(&bb, 2, 3, C8);
    assert_int_equal(lm_reader_open(&a, pattern, &v, C8, 0, LM_EVAL, 0, 1), 0);
    for (int i = 0; i < 7; i++) assert_int_equal(lm_reader_next(a, &ba), 1);
    save_state(a, h5);
    assert_int_equal(lm_reader_open(&b, pattern, &v, C8, 0, LM_EVAL, 0, 1), 0);
    assert_int_equal(load_state(b, h5), 0);
    int ra, rb, n = 0;
    do {
        ra = lm_reader_next(a, &ba);
        rb = lm_reader_next(b, &bb);
        assert_int_equal(ra, rb);
        if (ra == 1) assert_true(batches_equal(&ba, &bb));
        n++;
    } while (ra == 1);
    assert_int_equal(ra, 0);
    assert_true(n > 3);
    lm_reader_close(a);
    lm_reader_close(b);

    /* Errors: other settings; a batch of another size; a shard gone. */
    assert_int_equal(lm_reader_open(&a, pattern, &v, C8, 0, LM_TRAIN, 1, 1), 0);
    lm_batch_free(&ba);
    lm_batch_init(&ba, 3, 4, C8);
    assert_int_equal(lm_reader_next(a, &ba), 1);
    save_state(a, h5);
    assert_int_equal(lm_reader_open(&b, pattern, &v, C8, 0, LM_TRAIN, 0, 1), 0);
    assert_int_equal(load_state(b, h5), -1);
    assert_non_null(strstr(elmo_error(), "shuffle"));
    assert_non_null(strstr(elmo_error(), "reader_state.h5"));
    lm_reader_close(b);
    assert_int_equal(lm_reader_open(&b, pattern, &v, C8, 0, LM_TRAIN, 1, 1), 0);
    assert_int_equal(load_state(b, h5), 0);
    assert_int_equal(lm_reader_next(b, &bb), -1); /* bb has 2 rows, the state 3 streams */
    assert_non_null(strstr(elmo_error(), "3 streams"));
    lm_reader_close(b);
    char shard[512], moved[512];
    tmp_path(shard, sizeof shard, "res_b.txt");
    tmp_path(moved, sizeof moved, "res_b.moved");
    assert_int_equal(rename(shard, moved), 0);
    assert_int_equal(lm_reader_open(&b, pattern, &v, C8, 0, LM_TRAIN, 1, 1), 0);
    assert_int_equal(load_state(b, h5), -1);
    assert_non_null(strstr(elmo_error(), "res_b.txt"));
    assert_non_null(strstr(elmo_error(), "no longer exists"));
    lm_reader_close(b);
    assert_int_equal(rename(moved, shard), 0);
    lm_reader_close(a);
    lm_batch_free(&ba);
    lm_batch_free(&bb);
    vocab_free(&v);
}

/* ------------------------------------------------------------------ 6. bad input */

/* Opens a reader over path and reads until an error; checks the message names file:line. */
static void expect_bad(const Vocab *v, const char *name, const char *where) {
    char path[512];
    tmp_path(path, sizeof path, name);
    LmReader *r;
    assert_int_equal(lm_reader_open(&r, path, v, C8, 0, LM_EVAL, 0, 1), 0);
    LmBatch b;
    lm_batch_init(&b, 1, 2, C8);
    assert_int_equal(lm_reader_next(r, &b), -1);
    const char *err = elmo_error();
    if (!strstr(err, path) || !strstr(err, where)) fail_msg("'%s' does not name %s and '%s'", err, path, where);
    assert_null(strchr(err, '\n'));
    lm_batch_free(&b);
    lm_reader_close(r);
}

static void test_bad_input(void **state) {
    Vocab v;
    vocab_from_words(&v, PACK_VOCAB, 7);
    char path[512], pattern[512];
    LmReader *r;

    tmp_path(pattern, sizeof pattern, "nothing_*.txt");
    assert_int_equal(lm_reader_open(&r, pattern, &v, C8, 0, LM_TRAIN, 1, 1), -1);
    assert_non_null(strstr(elmo_error(), "no files match"));
    assert_non_null(strstr(elmo_error(), pattern));

    write_text_file(tmp_path(path, sizeof path, "bad_empty.txt"), "the cat\n\nsat\n");
    expect_bad(&v, "bad_empty.txt", "bad_empty.txt:2:");
    write_text_file(tmp_path(path, sizeof path, "bad_blank.txt"), "the\ncat\n \t\xe3\x80\x80\r\n");
    expect_bad(&v, "bad_blank.txt", "bad_blank.txt:3:");

    char *big = malloc(10100);
    strcpy(big, "ok\nfine line\nthe ");
    size_t n = strlen(big);
    memset(big + n, 'x', 10000);
    strcpy(big + n + 10000, " cat\n");
    write_text_file(tmp_path(path, sizeof path, "bad_token.txt"), big);
    expect_bad(&v, "bad_token.txt", "bad_token.txt:3:");
    free(big);

    write_text_file(tmp_path(path, sizeof path, "bad_utf8.txt"), "ok\nbad \xff here\n");
    expect_bad(&v, "bad_utf8.txt", "bad_utf8.txt:2:");
    write_bytes(tmp_path(path, sizeof path, "bad_nul.txt"), "a b\0c\n", 6);
    expect_bad(&v, "bad_nul.txt", "bad_nul.txt:1:");

    /* a valid gzip header followed by garbage (0xff: a deflate block of invalid type) */
    const unsigned char corrupt[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    write_bytes(tmp_path(path, sizeof path, "bad_corrupt.gz"), corrupt, sizeof corrupt);
    expect_bad(&v, "bad_corrupt.gz", "corrupt");
    /* a truncated .gz */
    char text[4000] = "";
    for (int i = 0; i < 300; i++) strcat(text, i % 7 ? "the cat " : "sat\n");
    tmp_path(path, sizeof path, "bad_truncated.gz");
    write_gz(path, text, strlen(text));
    FILE *f = fopen(path, "rb");
    unsigned char whole[4000];
    size_t got = fread(whole, 1, sizeof whole, f);
    fclose(f);
    write_bytes(path, whole, got / 2);
    expect_bad(&v, "bad_truncated.gz", "truncated");

    /* an unreadable shard */
    tmp_path(pattern, sizeof pattern, "bad_dir*");
    char dir[512];
    mkdir(tmp_path(dir, sizeof dir, "bad_dir.txt"), 0700);
    assert_int_equal(lm_reader_open(&r, pattern, &v, C8, 0, LM_TRAIN, 1, 1), 0);
    LmBatch b;
    lm_batch_init(&b, 1, 1, C8);
    assert_int_equal(lm_reader_next(r, &b), -1);
    assert_non_null(strstr(elmo_error(), "bad_dir.txt"));
    lm_batch_free(&b);
    lm_reader_close(r);

    /* shards that hold no sentence at all: an error, not an endless loop */
    write_text_file(tmp_path(path, sizeof path, "void_1.txt"), "");
    write_text_file(tmp_path(path, sizeof path, "void_2.txt"), "");
    tmp_path(pattern, sizeof pattern, "void_*.txt");
    assert_int_equal(lm_reader_open(&r, pattern, &v, C8, 0, LM_TRAIN, 1, 1), 0);
    lm_batch_init(&b, 1, 1, C8);
    assert_int_equal(lm_reader_next(r, &b), -1);
    assert_non_null(strstr(elmo_error(), pattern));
    lm_reader_close(r);
    assert_int_equal(lm_reader_open(&r, pattern, &v, C8, 0, LM_EVAL, 1, 1), 0);
    assert_int_equal(lm_reader_next(r, &b), 0);
    lm_batch_free(&b);
    lm_reader_close(r);
    vocab_free(&v);

    /* a vocabulary without <UNK> */
    const char *no_unk[] = {"<S>", "</S>", "the"};
    vocab_from_words(&v, no_unk, 3);
    assert_int_equal(lm_reader_open(&r, tmp_path(path, sizeof path, "pack.txt"), &v, C8, 0, LM_TRAIN, 1, 1), -1);
    assert_non_null(strstr(elmo_error(), "<UNK>"));
    vocab_free(&v);
}

/* ------------------------------------------------------------------ speed */

/* Generates ELMO_DATASET_BENCH_MB megabytes (default 2) of sentences of 5..40 words drawn
 * from 10,000 (8,000 in the vocabulary) and reads them with B=128, T=20, C=50. */
static void test_reading_speed(void **state) {
    const char *env = getenv("ELMO_DATASET_BENCH_MB");
    double mb = env ? atof(env) : 2.0;
    size_t want = (size_t)(mb * 1e6);
    char path[512];
    tmp_path(path, sizeof path, "speed.txt");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    Rng g;
    rng_seed(&g, 3);
    size_t written = 0, sentences = 0, tokens = 0;
    while (written < want) {
        int n = 5 + (int)(rng_next(&g) % 36);
        for (int j = 0; j < n; j++) {
            /* roughly Zipfian */
            int w = (int)(10000.0 * rng_uniform(&g) * rng_uniform(&g) * rng_uniform(&g));
            written += (size_t)fprintf(f, j ? " w%d" : "w%d", w);
        }
        written += (size_t)fprintf(f, "\n");
        sentences++;
        tokens += (size_t)n + 2;
    }
    fclose(f);
    char **words = malloc(8003 * sizeof *words);
    words[0] = "<S>";
    words[1] = "</S>";
    words[2] = "<UNK>";
    for (int i = 0; i < 8000; i++) {
        words[3 + i] = malloc(16);
        snprintf(words[3 + i], 16, "w%d", i);
    }
    Vocab v;
    vocab_from_words(&v, (const char *const *)words, 8003);
    for (int i = 0; i < 8000; i++) free(words[3 + i]);
    free(words);

    const int B = 128, T = 20, C = 50;
    LmBatch b;
    lm_batch_init(&b, B, T, C);
    for (int mode = 0; mode < 2; mode++) {
        LmReader *r;
        assert_int_equal(lm_reader_open(&r, path, &v, C, 0, mode ? LM_TRAIN : LM_EVAL, 1, 1), 0);
        double t0 = elmo_now();
        long batches = 0, starts = 0;
        if (mode == 0) {
            int rc;
            while ((rc = lm_reader_next(r, &b)) == 1) {
                batches++;
                for (int p = 0; p < B * T; p++) starts += input_id(&b, p, &v) == v.bos;
            }
            assert_int_equal(rc, 0);
            /* every target but those of the dropped final batch and the streams' leftovers */
            size_t targets = tokens - sentences, used = (size_t)batches * B * T;
            assert_true(used <= targets && used + (size_t)B * (T + 42) >= targets);
        } else {
            long n = batches = (long)((tokens - sentences) / ((size_t)B * T));
            for (long i = 0; i < n; i++) {
                assert_int_equal(lm_reader_next(r, &b), 1);
                for (int p = 0; p < B * T; p++) starts += input_id(&b, p, &v) == v.bos;
            }
        }
        double dt = elmo_now() - t0;
        print_message("%s (%s), %.1f MB: %ld batches of %dx%d, %.0f sentences/s, %.2fM tokens/s, %.0f MB/s\n",
                      mode ? "training, shuffled" : "evaluation", "B=128 T=20 C=50", written / 1e6, batches, B, T,
                      starts / dt, (double)batches * B * T / dt / 1e6, written / 1e6 / dt);
        lm_reader_close(r);
    }
    lm_batch_free(&b);
    vocab_free(&v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packing_forward),
        cmocka_unit_test(test_packing_backward),
        cmocka_unit_test(test_eval_order_and_end),
        cmocka_unit_test(test_training_shuffle),
        cmocka_unit_test(test_gzip_shards),
        cmocka_unit_test(test_exact_resume),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_reading_speed),
    };
    return cmocka_run_group_tests_name("dataset", tests, NULL, NULL);
}
