/* test_text.c - UTF-8 validation, token splitting, character ids, the vocabulary and
 * prediction batches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "common.h"
#include "sentences.h"
#include "testutil.h"
#include "text.h"
#include "vocab.h"

static void test_utf8_validation(void **state) {
    assert_int_equal(utf8_invalid_offset("plain ascii", 11), -1);
    const char *mixed = "\xc3\xbc" "ber \xe2\x82\xac \xf0\x9f\x98\x80";
    assert_int_equal(utf8_invalid_offset(mixed, strlen(mixed)), -1);
    assert_int_equal(utf8_invalid_offset("ab\xff", 3), 2);            /* invalid byte */
    assert_int_equal(utf8_invalid_offset("ab\xc3", 3), 2);            /* truncated sequence */
    assert_int_equal(utf8_invalid_offset("\xc0\xaf", 2), 0);          /* overlong '/' */
    assert_int_equal(utf8_invalid_offset("\xe0\x80\xaf", 3), 0);      /* overlong */
    assert_int_equal(utf8_invalid_offset("x\xed\xa0\x80", 4), 1);     /* surrogate */
    assert_int_equal(utf8_invalid_offset("\xf4\x90\x80\x80", 4), 0);  /* above U+10FFFF */
    assert_int_equal(utf8_invalid_offset("a\x80", 2), 1);             /* lone continuation */
}

static void test_split_like_python(void **state) {
    /* Python: "  a\tb\xa0c\u3000d\u2003e\x1cf \u200bg\r\n".split()
     *   == ['a', 'b', 'c', 'd', 'e', 'f', '\u200bg']  (U+200B is not white space) */
    char line[] = "  a\tb\xc2\xa0" "c\xe3\x80\x80" "d\xe2\x80\x83" "e\x1c" "f \xe2\x80\x8bg\r\n";
    TokenList t = {0};
    assert_int_equal(text_split(line, strlen(line), &t, "line"), 0);
    assert_int_equal(t.n, 7);
    const char *expect[] = {"a", "b", "c", "d", "e", "f", "\xe2\x80\x8bg"};
    for (int i = 0; i < 7; i++) assert_string_equal(t.tokens[i], expect[i]);
    /* an empty line has no tokens */
    char empty[] = " \t\n";
    assert_int_equal(text_split(empty, strlen(empty), &t, "line"), 0);
    assert_int_equal(t.n, 0);
    /* a token longer than the limit is an error naming the place */
    size_t n = ELMO_MAX_TOKEN_BYTES + 1;
    char *long_line = malloc(n + 1);
    memset(long_line, 'x', n);
    long_line[n] = '\0';
    assert_int_equal(text_split(long_line, n, &t, "input.txt:7"), -1);
    assert_non_null(strstr(elmo_error(), "input.txt:7"));
    free(long_line);
    token_list_free(&t);
}

static void test_char_ids(void **state) {
    int32_t ids[8];
    chars_encode("ab", 8, ids);
    const int32_t ab[8] = {258, 'a', 'b', 259, 260, 260, 260, 260};
    assert_memory_equal(ids, ab, sizeof ab);
    /* truncation to C-2 bytes, even inside a multi-byte character */
    chars_encode("abcdefgh", 8, ids);
    const int32_t trunc[8] = {258, 'a', 'b', 'c', 'd', 'e', 'f', 259};
    assert_memory_equal(ids, trunc, sizeof trunc);
    chars_encode("\xc3\xbc" "ber", 4, ids);
    const int32_t utf[4] = {258, 0xc3, 0xbc, 259};
    assert_memory_equal(ids, utf, sizeof utf);
    chars_encode("<S>", 8, ids);
    const int32_t bos[8] = {258, 256, 259, 260, 260, 260, 260, 260};
    assert_memory_equal(ids, bos, sizeof bos);
    chars_encode("</S>", 8, ids);
    const int32_t eos[8] = {258, 257, 259, 260, 260, 260, 260, 260};
    assert_memory_equal(ids, eos, sizeof eos);
    chars_encode_prediction("a", 5, ids);
    const int32_t shifted[5] = {259, 'a' + 1, 260, 261, 261};
    assert_memory_equal(ids, shifted, sizeof shifted);
}

static void test_vocab(void **state) {
    char path[512];
    tmp_path(path, sizeof path, "vocab.txt");
    write_text_file(path, "<S>\n</S>\n<UNK>\n  the \nof\n!!!MAXTERMID\nand\nof\n");
    Vocab v;
    assert_int_equal(vocab_load(&v, path, VOCAB_NEED_BOS_EOS | VOCAB_NEED_UNK), 0);
    assert_int_equal(v.size, 7); /* MAXTERMID skipped, the repeat kept */
    assert_int_equal(v.bos, 0);
    assert_int_equal(v.eos, 1);
    assert_int_equal(v.unk, 2);
    assert_int_equal(vocab_lookup(&v, "the"), 3);
    assert_int_equal(vocab_lookup(&v, "and"), 5);
    assert_int_equal(vocab_lookup(&v, "of"), 6); /* the last line wins, as a Python dict */
    assert_int_equal(vocab_lookup(&v, "missing"), -1);
    vocab_free(&v);

    write_text_file(path, "the\n<S>\nof\n");
    assert_int_equal(vocab_load(&v, path, VOCAB_NEED_BOS_EOS), -1);
    assert_non_null(strstr(elmo_error(), "</S>"));
    write_text_file(path, "<S>\n</S>\nthe\n");
    assert_int_equal(vocab_load(&v, path, VOCAB_NEED_BOS_EOS), 0);
    vocab_free(&v);
    assert_int_equal(vocab_load(&v, path, VOCAB_NEED_UNK), -1);
    assert_non_null(strstr(elmo_error(), "<UNK>"));
    write_text_file(path, "<S>\n</S>\nbad\xff\n");
    assert_int_equal(vocab_load(&v, path, VOCAB_NEED_BOS_EOS), -1);
    assert_non_null(strstr(elmo_error(), ":3:"));
    assert_int_equal(vocab_load(&v, "/nonexistent/vocab.txt", 0), -1);
    assert_non_null(strstr(elmo_error(), "/nonexistent/vocab.txt"));
}

/* A big vocabulary: every word found at its id. */
static void test_vocab_many_words(void **state) {
    const int n = 100000;
    char **words = malloc(n * sizeof *words);
    for (int i = 0; i < n; i++) {
        words[i] = malloc(16);
        snprintf(words[i], 16, "w%d", i);
    }
    Vocab v;
    vocab_from_words(&v, (const char *const *)words, n);
    for (int i = 0; i < n; i++) assert_int_equal(vocab_lookup(&v, words[i]), i);
    for (int i = 0; i < n; i++) free(words[i]);
    free(words);
    vocab_free(&v);
}

static void test_batch_padding(void **state) {
    SentenceBatch b;
    batch_init(&b, 3, 6);
    char *s1[] = {"a", "b"}, *s2[] = {"c"};
    batch_add(&b, s1, 2, 1);
    batch_add(&b, s2, 1, 2);
    batch_add(&b, NULL, 0, 3);
    batch_build(&b);
    assert_int_equal(b.T, 4);
    assert_int_equal(b.n_tokens[2], 2);
    int32_t expect[6];
    chars_encode_prediction("<S>", 6, expect);
    assert_memory_equal(b.ids, expect, sizeof expect);
    chars_encode_prediction("</S>", 6, expect);
    assert_memory_equal(b.ids + (size_t)(1 * 4 + 2) * 6, expect, sizeof expect); /* row 1: <S> c </S> */
    for (int c = 0; c < 6; c++) assert_int_equal(b.ids[(size_t)(1 * 4 + 3) * 6 + c], 0); /* padding token */
    batch_free(&b);
}

static void test_sentence_reader_errors(void **state) {
    char path[512];
    tmp_path(path, sizeof path, "bad.txt");
    write_text_file(path, "fine line\nbad \xc3( here\n");
    SentenceReader r;
    assert_int_equal(sentence_reader_open(&r, path), 0);
    assert_int_equal(sentence_reader_next(&r), 1);
    assert_int_equal(r.tokens.n, 2);
    assert_int_equal(sentence_reader_next(&r), -1);
    assert_non_null(strstr(elmo_error(), ":2:"));
    sentence_reader_close(&r);
    assert_int_equal(sentence_reader_open(&r, "/nonexistent/in.txt"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_validation),
        cmocka_unit_test(test_split_like_python),
        cmocka_unit_test(test_char_ids),
        cmocka_unit_test(test_vocab),
        cmocka_unit_test(test_vocab_many_words),
        cmocka_unit_test(test_batch_padding),
        cmocka_unit_test(test_sentence_reader_errors),
    };
    return cmocka_run_group_tests_name("text", tests, NULL, NULL);
}
