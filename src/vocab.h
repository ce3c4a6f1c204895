/* vocab.h - the vocabulary file: one token a line, its line number is its softmax id
 * (bilm-tf's Vocabulary: each line stripped of white space, "!!!MAXTERMID" skipped). */
#ifndef ELMO_VOCAB_H
#define ELMO_VOCAB_H

#include <stddef.h>

typedef struct {
    char **words;        /* id -> NUL-terminated word */
    int size;            /* V */
    int *slots;          /* open-addressing hash table of ids, -1 = empty */
    size_t n_slots;      /* power of two */
    int bos, eos, unk;   /* ids of <S>, </S>, <UNK>, -1 when absent */
} Vocab;

typedef enum { VOCAB_NEED_BOS_EOS = 1, VOCAB_NEED_UNK = 2 } VocabNeeds;

/* Loads path; fails (naming the file, and the line where it applies) on unreadable or
 * non-UTF-8 files and when a token required by `needs` is missing. */
int vocab_load(Vocab *v, const char *path, int needs);
/* Builds a vocabulary from an array of words (tests, benchmarks). */
void vocab_from_words(Vocab *v, const char *const *words, int n);
/* Id of word, or -1. */
int vocab_lookup(const Vocab *v, const char *word);
void vocab_free(Vocab *v);

#endif
