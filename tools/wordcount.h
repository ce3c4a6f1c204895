/* wordcount.h - counting the tokens of a corpus, and the vocabulary file they give.
 *
 * An open-addressing hash table (linear probing, doubled when 3/4 full) whose keys live
 * back to back in one growing string arena: no allocation per token, 32-64 bytes plus
 * the token's length (and arena slack) per distinct token, so tens of millions of
 * distinct tokens fit in a few GB. Memory grows with the number of distinct tokens only.
 */
#ifndef ELMO_WORDCOUNT_H
#define ELMO_WORDCOUNT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t hash;
    uint64_t count;      /* 0: the slot is empty */
    size_t offset;       /* of the NUL-terminated token in the arena */
} WordSlot;

typedef struct {
    WordSlot *slots;     /* n_slots, a power of two */
    size_t n_slots;
    size_t n;            /* distinct tokens */
    char *arena;
    size_t arena_used, arena_cap;
    uint64_t total;      /* tokens counted */
} WordCount;

void wordcount_init(WordCount *wc);
/* Counts one occurrence of token[0..len) (no NUL inside). */
void wordcount_add(WordCount *wc, const char *token, size_t len);
/* Counts the n NUL-terminated tokens of a sentence; faster than one at a time once the
 * table outgrows the caches (their slots are fetched from memory together). */
void wordcount_add_tokens(WordCount *wc, char *const *tokens, int n);
/* The same for a normalised line: tokens separated by single spaces, each one ended by a
 * space or a '\n' (the line's last byte), n bytes in all. */
void wordcount_add_line(WordCount *wc, const char *line, size_t n);
/* Adds every count of from into into (per-thread tables merged in a fixed order: the
 * counts, and so the vocabulary, do not depend on which thread counted what). */
void wordcount_merge(WordCount *into, const WordCount *from);
/* The count of token (0 if never seen). */
uint64_t wordcount_get(const WordCount *wc, const char *token);
void wordcount_free(WordCount *wc);

/* What writing a vocabulary gave. */
typedef struct {
    long size;                 /* lines written, the three markers included (n_tokens_vocab) */
    uint64_t n_train_tokens;   /* tokens counted (sentence markers are not tokens) */
    uint64_t n_covered;        /* of those, tokens the vocabulary lists */
    double oov_rate;           /* 1 - n_covered / n_train_tokens (0 for no tokens) */
} VocabStats;

/* Writes the vocabulary atomically to path: <S>, </S>, <UNK>, then every counted token
 * seen at least min_count times, most frequent first, ties in byte order (strcmp), at
 * most max_size lines in all (max_size >= 3). The markers found in the text count as
 * covered but are written once. */
int wordcount_write_vocab(const WordCount *wc, const char *path, uint64_t min_count, long max_size,
                          VocabStats *stats);

#endif
