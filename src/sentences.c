/* sentences.c - see sentences.h. */
#include "sentences.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "common.h"

int sentence_reader_open(SentenceReader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!r->f) return elmo_fail("%s: cannot open: %s", path, strerror(errno));
    return 0;
}

int sentence_reader_next(SentenceReader *r) {
    errno = 0;
    ssize_t got = getline(&r->line, &r->line_cap, r->f);
    if (got < 0) {
        if (ferror(r->f)) return elmo_fail("%s: read error after line %ld: %s", r->path, r->line_no, strerror(errno));
        return 0;
    }
    r->line_no++;
    size_t len = (size_t)got;
    char where[512];
    snprintf(where, sizeof where, "%s:%ld", r->path, r->line_no);
    if (memchr(r->line, '\0', len)) return elmo_fail("%s: NUL byte in text (binary file?)", where);
    long bad = utf8_invalid_offset(r->line, len);
    if (bad >= 0) return elmo_fail("%s: invalid UTF-8 at byte %ld", where, bad + 1);
    if (text_split(r->line, len, &r->tokens, where) < 0) return -1;
    return 1;
}

void sentence_reader_close(SentenceReader *r) {
    if (r->f && r->f != stdin) fclose(r->f);
    free(r->line);
    token_list_free(&r->tokens);
    memset(r, 0, sizeof *r);
}

void batch_init(SentenceBatch *b, int max_sentences, int C) {
    memset(b, 0, sizeof *b);
    b->C = C;
    b->max_sentences = max_sentences;
    b->n_tokens = xmalloc((size_t)max_sentences * sizeof(int));
    b->line_no = xmalloc((size_t)max_sentences * sizeof(long));
    b->offset = xmalloc((size_t)max_sentences * sizeof(size_t));
}

void batch_clear(SentenceBatch *b) {
    b->n = 0;
    b->used = 0;
}

void batch_add(SentenceBatch *b, char *const *tokens, int n, long line_no) {
    CHECK(b->n < b->max_sentences, "batch full");
    const int C = b->C;
    size_t need = b->used + (size_t)(n + 2) * C;
    if (need > b->cap) {
        b->cap = need * 2;
        b->sent_ids = xrealloc(b->sent_ids, b->cap * sizeof(int32_t));
    }
    int32_t *dst = b->sent_ids + b->used;
    chars_encode_prediction("<S>", C, dst);
    for (int i = 0; i < n; i++) chars_encode_prediction(tokens[i], C, dst + (size_t)(i + 1) * C);
    chars_encode_prediction("</S>", C, dst + (size_t)(n + 1) * C);
    b->offset[b->n] = b->used;
    b->n_tokens[b->n] = n + 2;
    b->line_no[b->n] = line_no;
    b->used = need;
    b->n++;
}

void batch_build(SentenceBatch *b) {
    const int C = b->C;
    b->T = 0;
    for (int i = 0; i < b->n; i++)
        if (b->n_tokens[i] > b->T) b->T = b->n_tokens[i];
    size_t need = (size_t)b->n * b->T * C;
    if (need > b->ids_cap) {
        b->ids_cap = need * 2;
        b->ids = xrealloc(b->ids, b->ids_cap * sizeof(int32_t));
    }
    memset(b->ids, 0, need * sizeof(int32_t));
    for (int i = 0; i < b->n; i++)
        memcpy(b->ids + (size_t)i * b->T * C, b->sent_ids + b->offset[i], (size_t)b->n_tokens[i] * C * sizeof(int32_t));
}

void batch_free(SentenceBatch *b) {
    free(b->n_tokens);
    free(b->line_no);
    free(b->offset);
    free(b->sent_ids);
    free(b->ids);
    memset(b, 0, sizeof *b);
}
