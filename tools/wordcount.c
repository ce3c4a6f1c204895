/* wordcount.c - see wordcount.h.
 *
 * The counts live in the slots themselves, so a token already seen costs two memory
 * accesses (its slot, then its bytes in the arena to confirm), and a whole sentence's
 * slots are prefetched before any of them is needed.
 */
#include "wordcount.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fileio.h"

#define MIN_SLOTS 4096
#define PREFETCH_BATCH 32

/* A fast hash for short strings (word-at-a-time multiply and xor-shift, the splitmix64
 * finalizer at the end). Not collision-resistant against a crafted corpus: linear
 * probing then slows down, the counts stay right. */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0x243F6A8885A308D3ull ^ ((uint64_t)n * 0x9E3779B97F4A7C15ull);
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    /* the last 0-7 bytes without a variable-length memcpy (a library call) */
    uint64_t w = 0;
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        w = (uint64_t)lo | (uint64_t)hi << 32;
    } else if (n > 0) {
        w = (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[n / 2] << 8 |
            (uint64_t)(unsigned char)s[n - 1] << 16;
    }
    h ^= w;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

/* Empty slots, zeroed by writing them: calloc's fresh pages are the shared zero page
 * until written, so the first probe (a read) maps that page and the first insert (a
 * write) must then flush it from the TLB of every core running the process, one
 * interrupt per page; with counting on several threads that cost a fifth of the time. */
static WordSlot *new_slots(size_t n) {
    WordSlot *s = xmalloc(n * sizeof *s);
    memset(s, 0, n * sizeof *s);
    return s;
}

void wordcount_init(WordCount *wc) {
    memset(wc, 0, sizeof *wc);
    wc->n_slots = MIN_SLOTS;
    wc->slots = new_slots(wc->n_slots);
    wc->arena_cap = (size_t)1 << 16;
    wc->arena = xmalloc(wc->arena_cap);
}

void wordcount_free(WordCount *wc) {
    free(wc->slots);
    free(wc->arena);
    memset(wc, 0, sizeof *wc);
}

static void grow_slots(WordCount *wc) {
    WordSlot *old = wc->slots;
    const size_t n_old = wc->n_slots;
    wc->n_slots *= 2;
    wc->slots = new_slots(wc->n_slots);
    const size_t mask = wc->n_slots - 1;
    for (size_t i = 0; i < n_old; i++) {
        if (!old[i].count) continue;
        size_t at = old[i].hash & mask;
        while (wc->slots[at].count) at = (at + 1) & mask;
        wc->slots[at] = old[i];
    }
    free(old);
}

/* memcmp(a, b, n) == 0, inline for the usual few bytes of a token (memcmp is a call). */
static inline int same_bytes(const char *a, const char *b, size_t n) {
    if (n > 16) return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* The slot holding token[0..len), or the empty slot where it would go. */
static WordSlot *find_slot(const WordCount *wc, const char *token, size_t len, uint64_t hash) {
    const size_t mask = wc->n_slots - 1;
    for (size_t at = hash & mask;; at = (at + 1) & mask) {
        WordSlot *s = &wc->slots[at];
        if (!s->count) return s;
        if (s->hash != hash) continue;
        const char *word = wc->arena + s->offset;
        if (word[len] == '\0' && same_bytes(word, token, len)) return s;
    }
}

static void add_hashed(WordCount *wc, const char *token, size_t len, uint64_t hash, uint64_t count) {
    wc->total += count;
    WordSlot *s = find_slot(wc, token, len, hash);
    if (s->count) {
        s->count += count;
        return;
    }
    if (wc->arena_cap - wc->arena_used < len + 1) {
        while (wc->arena_cap - wc->arena_used < len + 1) wc->arena_cap *= 2;
        wc->arena = xrealloc(wc->arena, wc->arena_cap);
    }
    memcpy(wc->arena + wc->arena_used, token, len);
    wc->arena[wc->arena_used + len] = '\0';
    *s = (WordSlot){.hash = hash, .count = count, .offset = wc->arena_used};
    wc->arena_used += len + 1;
    wc->n++;
    if (wc->n * 4 > wc->n_slots * 3) grow_slots(wc);
}

void wordcount_add(WordCount *wc, const char *token, size_t len) {
    add_hashed(wc, token, len, hash_bytes(token, len), 1);
}

/* Counts m tokens (starts and lengths) with their slots, then the bytes those slots
 * point to, prefetched first: the lookups then wait on memory together, not in turn. */
static void add_batch(WordCount *wc, const char *const *start, const size_t *len, int m) {
    uint64_t hash[PREFETCH_BATCH];
    const size_t mask = wc->n_slots - 1;
    for (int i = 0; i < m; i++) {
        hash[i] = hash_bytes(start[i], len[i]);
        __builtin_prefetch(&wc->slots[hash[i] & mask]);
    }
    for (int i = 0; i < m; i++) {
        const WordSlot *s = &wc->slots[hash[i] & mask];
        if (s->count) __builtin_prefetch(wc->arena + s->offset);
    }
    for (int i = 0; i < m; i++) add_hashed(wc, start[i], len[i], hash[i], 1);
}

void wordcount_add_tokens(WordCount *wc, char *const *tokens, int n) {
    const char *start[PREFETCH_BATCH];
    size_t len[PREFETCH_BATCH];
    for (int first = 0; first < n; first += PREFETCH_BATCH) {
        const int m = n - first < PREFETCH_BATCH ? n - first : PREFETCH_BATCH;
        for (int i = 0; i < m; i++) {
            start[i] = tokens[first + i];
            len[i] = strlen(start[i]);
        }
        add_batch(wc, start, len, m);
    }
}

void wordcount_add_line(WordCount *wc, const char *line, size_t n) {
    const char *start[PREFETCH_BATCH];
    size_t len[PREFETCH_BATCH];
    int m = 0;
    const char *word = line, *const end = line + n;
    for (const char *p = line; p < end; p++) {
        if (*p != ' ' && *p != '\n') continue;
        start[m] = word;
        len[m++] = (size_t)(p - word);
        word = p + 1;
        if (m == PREFETCH_BATCH) {
            add_batch(wc, start, len, m);
            m = 0;
        }
    }
    if (m) add_batch(wc, start, len, m);
}

void wordcount_merge(WordCount *into, const WordCount *from) {
    for (size_t i = 0; i < from->n_slots; i++) {
        const WordSlot *s = &from->slots[i];
        if (!s->count) continue;
        const char *word = from->arena + s->offset;
        add_hashed(into, word, strlen(word), s->hash, s->count);
    }
}

uint64_t wordcount_get(const WordCount *wc, const char *token) {
    const size_t len = strlen(token);
    return find_slot(wc, token, len, hash_bytes(token, len))->count;
}

/* ------------------------------------------------------------ the vocabulary file */

static const char *const MARKERS[3] = {"<S>", "</S>", "<UNK>"};

typedef struct {
    uint64_t count;
    const char *word;
} Ranked;

static int by_count_then_bytes(const void *pa, const void *pb) {
    const Ranked *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return strcmp(a->word, b->word);
}

static int is_marker(const char *w) {
    return strcmp(w, MARKERS[0]) == 0 || strcmp(w, MARKERS[1]) == 0 || strcmp(w, MARKERS[2]) == 0;
}

int wordcount_write_vocab(const WordCount *wc, const char *path, uint64_t min_count, long max_size,
                          VocabStats *stats) {
    CHECK(max_size >= 3, "max_size %ld", max_size);
    Ranked *ranked = xmalloc((wc->n ? wc->n : 1) * sizeof *ranked);
    size_t n = 0;
    uint64_t covered = 0;
    for (size_t i = 0; i < wc->n_slots; i++) {
        const WordSlot *s = &wc->slots[i];
        if (!s->count) continue;
        const char *w = wc->arena + s->offset;
        if (is_marker(w)) covered += s->count;
        else if (s->count >= min_count) ranked[n++] = (Ranked){s->count, w};
    }
    qsort(ranked, n, sizeof *ranked, by_count_then_bytes);
    if (n > (size_t)max_size - 3) n = (size_t)max_size - 3;

    PendingFile pending;
    pending_begin(&pending, path);
    FILE *f = fopen(pending.tmp, "wb");
    if (!f) {
        int e = errno;
        pending_abort(&pending);
        free(ranked);
        return elmo_fail("%s: cannot create: %s", path, strerror(e));
    }
    setvbuf(f, NULL, _IOFBF, (size_t)1 << 20);
    for (int i = 0; i < 3; i++) fprintf(f, "%s\n", MARKERS[i]);
    for (size_t i = 0; i < n; i++) {
        fputs(ranked[i].word, f);
        putc('\n', f);
        covered += ranked[i].count;
    }
    free(ranked);
    int failed = ferror(f);
    if (fclose(f) != 0) failed = 1;
    if (failed) {
        int e = errno;
        pending_abort(&pending);
        return elmo_fail("%s: write failed: %s", path, strerror(e));
    }
    if (pending_commit(&pending) < 0) return -1;
    stats->size = (long)n + 3;
    stats->n_train_tokens = wc->total;
    stats->n_covered = covered;
    stats->oov_rate = wc->total ? 1.0 - (double)covered / (double)wc->total : 0.0;
    return 0;
}
