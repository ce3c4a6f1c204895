/* sentences.h - streaming a file of tokenized sentences (one a line) and turning them
 * into prediction batches (docs/design.md section 8). Memory holds one batch, never the file. */
#ifndef ELMO_SENTENCES_H
#define ELMO_SENTENCES_H

#include <stdint.h>
#include <stdio.h>

#include "text.h"

typedef struct {
    FILE *f;
    const char *path;
    long line_no;            /* 1-based number of the line last read */
    char *line;
    size_t line_cap;
    TokenList tokens;
} SentenceReader;

/* path "-" reads standard input. */
int sentence_reader_open(SentenceReader *r, const char *path);
/* 1: tokens holds the next line's tokens (possibly none); 0: end of input; -1: error
 * (invalid UTF-8, an over-long token, a read error), naming the file and line. */
int sentence_reader_next(SentenceReader *r);
void sentence_reader_close(SentenceReader *r);

/* Up to max_sentences sentences as prediction character ids. */
typedef struct {
    int C, max_sentences;
    int n;                   /* sentences held */
    int *n_tokens;           /* per sentence, <S> and </S> included */
    long *line_no;
    int32_t *sent_ids;       /* all sentences' ids, back to back */
    size_t used, cap;        /* in int32 */
    size_t *offset;          /* per sentence, into sent_ids */
    int32_t *ids;            /* (n, T, C) built by batch_build */
    size_t ids_cap;
    int T;
} SentenceBatch;

void batch_init(SentenceBatch *b, int max_sentences, int C);
void batch_clear(SentenceBatch *b);
/* Appends `<S> tokens </S>` encoded as prediction ids. */
void batch_add(SentenceBatch *b, char *const *tokens, int n, long line_no);
/* Builds ids (n, T, C), T = the longest sentence, padded with all-zero tokens. */
void batch_build(SentenceBatch *b);
void batch_free(SentenceBatch *b);

#endif
