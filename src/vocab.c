/* vocab.c - see vocab.h. */
#include "vocab.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "text.h"

static uint64_t hash_word(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static void index_words(Vocab *v) {
    v->n_slots = 16;
    while (v->n_slots < 2 * (size_t)v->size) v->n_slots *= 2;
    v->slots = xmalloc(v->n_slots * sizeof *v->slots);
    memset(v->slots, 0xff, v->n_slots * sizeof *v->slots);
    v->bos = v->eos = v->unk = -1;
    for (int id = 0; id < v->size; id++) {
        size_t i = hash_word(v->words[id]) & (v->n_slots - 1);
        /* A repeated word maps to its last line, as a Python dict built in order does. */
        while (v->slots[i] >= 0 && strcmp(v->words[v->slots[i]], v->words[id]) != 0)
            i = (i + 1) & (v->n_slots - 1);
        v->slots[i] = id;
        if (strcmp(v->words[id], "<S>") == 0) v->bos = id;
        else if (strcmp(v->words[id], "</S>") == 0) v->eos = id;
        else if (strcmp(v->words[id], "<UNK>") == 0) v->unk = id;
    }
}

int vocab_lookup(const Vocab *v, const char *word) {
    size_t i = hash_word(word) & (v->n_slots - 1);
    while (v->slots[i] >= 0) {
        if (strcmp(v->words[v->slots[i]], word) == 0) return v->slots[i];
        i = (i + 1) & (v->n_slots - 1);
    }
    return -1;
}

/* Python's str.strip(): removes leading and trailing white space. */
static char *strip(char *s, size_t *len) {
    char *end = s + *len;
    int n;
    while (s < end && (n = text_space_len(s, end)) > 0) s += n;
    while (end > s) {
        /* white space characters are 1 to 3 bytes long; try each ending here */
        int found = 0;
        for (int k = 1; k <= 3 && end - k >= s; k++)
            if (text_space_len(end - k, end) == k) {
                end -= k;
                found = 1;
                break;
            }
        if (!found) break;
    }
    *end = '\0';
    *len = (size_t)(end - s);
    return s;
}

int vocab_load(Vocab *v, const char *path, int needs) {
    memset(v, 0, sizeof *v);
    FILE *f = fopen(path, "rb");
    if (!f) return elmo_fail("%s: cannot open vocabulary: %s", path, strerror(errno));
    char *line = NULL;
    size_t line_cap = 0, cap = 0;
    ssize_t got;
    long line_no = 0;
    int rc = 0;
    while ((got = getline(&line, &line_cap, f)) >= 0) {
        line_no++;
        size_t len = (size_t)got;
        if (utf8_invalid_offset(line, len) >= 0 || memchr(line, '\0', len)) {
            rc = elmo_fail("%s:%ld: not valid UTF-8 text", path, line_no);
            break;
        }
        char *word = strip(line, &len);
        if (len > ELMO_MAX_TOKEN_BYTES) {
            rc = elmo_fail("%s:%ld: token of %zu bytes (longest accepted: %d)", path, line_no, len,
                           ELMO_MAX_TOKEN_BYTES);
            break;
        }
        if (strcmp(word, "!!!MAXTERMID") == 0) continue;
        if ((size_t)v->size == cap) {
            cap = cap ? 2 * cap : 1024;
            v->words = xrealloc(v->words, cap * sizeof *v->words);
        }
        v->words[v->size++] = xstrdup(word);
    }
    if (rc == 0 && ferror(f)) rc = elmo_fail("%s: read error", path);
    free(line);
    fclose(f);
    if (rc == 0 && v->size == 0) rc = elmo_fail("%s: empty vocabulary", path);
    if (rc < 0) {
        vocab_free(v);
        return -1;
    }
    index_words(v);
    if ((needs & VOCAB_NEED_BOS_EOS) && (v->bos < 0 || v->eos < 0)) {
        vocab_free(v);
        return elmo_fail("%s: the vocabulary must contain the tokens <S> and </S>", path);
    }
    if ((needs & VOCAB_NEED_UNK) && v->unk < 0) {
        vocab_free(v);
        return elmo_fail("%s: the vocabulary must contain the token <UNK>", path);
    }
    return 0;
}

void vocab_from_words(Vocab *v, const char *const *words, int n) {
    memset(v, 0, sizeof *v);
    v->size = n;
    v->words = xmalloc((size_t)(n ? n : 1) * sizeof *v->words);
    for (int i = 0; i < n; i++) v->words[i] = xstrdup(words[i]);
    index_words(v);
}

void vocab_free(Vocab *v) {
    for (int i = 0; i < v->size; i++) free(v->words[i]);
    free(v->words);
    free(v->slots);
    memset(v, 0, sizeof *v);
    v->bos = v->eos = v->unk = -1;
}
