/* dataset.c - see dataset.h.
 *
 * A shard is read whole (through zlib, which reads plain files as they are) into one
 * buffer, validated line by line and split in place (white space becomes NUL bytes), with
 * an array of line offsets; a sentence is encoded only when a stream takes it. A stream
 * keeps a copy of its sentence's words, so the shard buffer can be replaced while
 * streams still hold partial sentences of the previous shard.
 *
 * Random draws, all from the reader's Rng, in this order: the shard order of a pass
 * (Fisher-Yates over the sorted shard indices) when a pass begins, then the sentence
 * order of each shard (Fisher-Yates over its lines) right after it is loaded. The state
 * keeps the Rng as it was just before the current shard was shuffled, so a reload
 * replays that shuffle and ends with the Rng exactly where it was.
 */
#include "dataset.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "chars.h"
#include "common.h"
#include "h5io.h"
#include "rng.h"
#include "text.h"

/* Marker tokens; a stream's token pointing at one of these is a sentence marker. */
static const char BOS_WORD[] = "<S>";
static const char EOS_WORD[] = "</S>";

#define STATE_VERSION 1

void lm_batch_init(LmBatch *b, int B, int T, int C) {
    CHECK(B > 0 && T > 0 && C >= 3, "bad batch shape (%d, %d, %d)", B, T, C);
    b->B = B;
    b->T = T;
    b->C = C;
    const size_t positions = (size_t)B * T;
    b->chars = xcalloc(positions * C, sizeof(int32_t));
    b->targets = xcalloc(positions, sizeof(int32_t));
    b->bytes = (positions * C + positions) * sizeof(int32_t);
}

LmBatch lm_batch_rows(const LmBatch *b, int first, int rows) {
    CHECK(first >= 0 && rows > 0 && first + rows <= b->B, "rows %d..%d of a batch of %d", first, first + rows, b->B);
    const size_t skipped = (size_t)first * b->T;
    return (LmBatch){.B = rows, .T = b->T, .C = b->C, .chars = b->chars + skipped * b->C, .targets = b->targets + skipped};
}

void lm_batch_free(LmBatch *b) {
    free(b->chars);
    free(b->targets);
    memset(b, 0, sizeof *b);
}

typedef struct {
    char *text;          /* the words of the sentence, NUL-separated */
    size_t text_cap;
    const char **tok;    /* tokens in stream order, markers included */
    int32_t *ids;        /* their vocabulary ids */
    int n, pos, cap;     /* tokens, first token left, allocated */
} Stream;

struct LmReader {
    char *pattern;
    const Vocab *vocab;
    int C, reverse, shuffle;
    LmMode mode;
    Rng rng;
    char **shards;       /* sorted with strcmp */
    int n_shards;

    int *order;          /* shard indices of this pass; order[order_next..order_len) are left */
    int order_len, order_next, order_cap;
    long pass;           /* passes begun */
    int ended;           /* evaluation data exhausted */
    int barren;          /* shards loaded in a row without a sentence */

    int cur;             /* shard loaded (index into shards), -1: none */
    char *buf;           /* its text (+1 spare byte) */
    size_t buf_size, buf_cap;
    size_t *line_start;  /* n_lines + 1: line i is buf[line_start[i] .. line_start[i+1] - 1) */
    size_t n_lines, lines_cap;
    size_t *perm;        /* sentence order when shuffled */
    size_t perm_cap;
    int shuffled;
    size_t next_line;    /* sentences of the shard taken */
    Rng rng_at_load;     /* the Rng right before the shard was shuffled */

    Stream *streams;
    int n_streams;       /* 0 until the first batch (or a loaded state) */
    TokenList split;
};

/* ---------------------------------------------------------------- opening */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int lm_reader_open(LmReader **out, const char *pattern, const Vocab *vocab, int max_chars, int reverse,
                   LmMode mode, int shuffle, uint64_t seed) {
    *out = NULL;
    CHECK(max_chars >= 3, "max_chars %d", max_chars);
    if (vocab->bos < 0 || vocab->eos < 0 || vocab->unk < 0)
        return elmo_fail("training data '%s': the vocabulary must contain <S>, </S> and <UNK> (missing: %s)",
                         pattern, vocab->unk < 0 ? "<UNK>" : vocab->bos < 0 ? "<S>" : "</S>");
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        if (rc == 0) globfree(&g);
        return elmo_fail("no files match '%s'", pattern);
    }
    if (rc != 0) return elmo_fail("cannot expand '%s': %s", pattern, rc == GLOB_NOSPACE ? "out of memory" : "read error");
    LmReader *r = xcalloc(1, sizeof *r);
    r->pattern = xstrdup(pattern);
    r->vocab = vocab;
    r->C = max_chars;
    r->reverse = reverse != 0;
    r->shuffle = shuffle != 0;
    r->mode = mode;
    rng_seed(&r->rng, seed);
    r->n_shards = (int)g.gl_pathc;
    r->shards = xmalloc((size_t)r->n_shards * sizeof *r->shards);
    for (int i = 0; i < r->n_shards; i++) r->shards[i] = xstrdup(g.gl_pathv[i]);
    globfree(&g);
    qsort(r->shards, (size_t)r->n_shards, sizeof *r->shards, cmp_str);
    r->order_cap = r->n_shards;
    r->order = xmalloc((size_t)r->order_cap * sizeof *r->order);
    r->cur = -1;
    *out = r;
    return 0;
}

int lm_reader_n_shards(const LmReader *r) { return r->n_shards; }

static void free_streams(LmReader *r) {
    for (int i = 0; i < r->n_streams; i++) {
        free(r->streams[i].text);
        free(r->streams[i].tok);
        free(r->streams[i].ids);
    }
    free(r->streams);
    r->streams = NULL;
    r->n_streams = 0;
}

void lm_reader_close(LmReader *r) {
    if (!r) return;
    for (int i = 0; i < r->n_shards; i++) free(r->shards[i]);
    free(r->shards);
    free(r->pattern);
    free(r->order);
    free(r->buf);
    free(r->line_start);
    free(r->perm);
    free_streams(r);
    token_list_free(&r->split);
    free(r);
}

/* ---------------------------------------------------------------- shards */

/* Reads the whole file into r->buf (plain or gzip), leaving one spare byte after it. */
static int read_file(LmReader *r, const char *path) {
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) return elmo_fail("%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 1u << 17);
    struct stat st;
    size_t want = (size_t)1 << 16;
    if (stat(path, &st) == 0 && st.st_size > 0 && (size_t)st.st_size + 2 > want) want = (size_t)st.st_size + 2;
    if (r->buf_cap < want) {
        free(r->buf);
        r->buf = xmalloc(want);
        r->buf_cap = want;
    }
    size_t size = 0;
    for (;;) {
        if (r->buf_cap - size < 2) {
            r->buf_cap *= 2;
            r->buf = xrealloc(r->buf, r->buf_cap);
        }
        size_t room = r->buf_cap - size - 1;
        if (room > (1u << 30)) room = 1u << 30;
        int n = gzread(f, r->buf + size, (unsigned)room);
        if (n < 0) {
            int err;
            const char *msg = gzerror(f, &err);
            if (err == Z_ERRNO) elmo_fail("%s: read error: %s", path, strerror(errno));
            else elmo_fail("%s: corrupt compressed data (%s)", path, msg);
            gzclose(f);
            return -1;
        }
        if (n == 0) break;
        size += (size_t)n;
    }
    int err;
    const char *msg = gzerror(f, &err);
    if (err != Z_OK) {
        elmo_fail("%s: corrupt or truncated compressed data (%s)", path, msg);
        gzclose(f);
        return -1;
    }
    if (gzclose(f) != Z_OK) return elmo_fail("%s: corrupt or truncated compressed data", path);
    r->buf_size = size;
    return 0;
}

/* Loads shard idx: reads, validates and splits every line, shuffles the sentence order
 * (training mode with shuffle). */
static int load_shard(LmReader *r, int idx) {
    const char *path = r->shards[idx];
    r->cur = -1;
    r->n_lines = 0;
    r->next_line = 0;
    r->shuffled = 0;
    if (read_file(r, path) < 0) return -1;
    char *buf = r->buf;
    size_t size = r->buf_size, off = 0;
    char where[4200];
    while (off < size) {
        char *nl = memchr(buf + off, '\n', size - off);
        size_t end = nl ? (size_t)(nl - buf) : size, len = end - off;
        long line_no = (long)r->n_lines + 1;
        char *line = buf + off;
        if (memchr(line, '\0', len)) return elmo_fail("%s:%ld: NUL byte in text (binary file?)", path, line_no);
        long bad = utf8_invalid_offset(line, len);
        if (bad >= 0) return elmo_fail("%s:%ld: invalid UTF-8 at byte %ld", path, line_no, bad + 1);
        snprintf(where, sizeof where, "%s:%ld", path, line_no);
        if (text_split(line, len, &r->split, where) < 0) return -1;
        if (r->split.n == 0)
            return elmo_fail("%s:%ld: empty line (every line must be a sentence of at least one token)", path,
                             line_no);
        if (r->n_lines + 2 > r->lines_cap) {
            r->lines_cap = r->lines_cap ? 2 * r->lines_cap : 4096;
            r->line_start = xrealloc(r->line_start, r->lines_cap * sizeof *r->line_start);
        }
        r->line_start[r->n_lines++] = off;
        off = end + 1;
    }
    if (r->n_lines + 1 > r->lines_cap) {
        r->lines_cap = r->n_lines + 1;
        r->line_start = xrealloc(r->line_start, r->lines_cap * sizeof *r->line_start);
    }
    r->line_start[r->n_lines] = off; /* size + 1 when the last line has no newline */
    r->rng_at_load = r->rng;
    if (r->shuffle && r->mode == LM_TRAIN && r->n_lines > 1) {
        if (r->perm_cap < r->n_lines) {
            free(r->perm);
            r->perm_cap = r->n_lines;
            r->perm = xmalloc(r->perm_cap * sizeof *r->perm);
        }
        for (size_t i = 0; i < r->n_lines; i++) r->perm[i] = i;
        for (size_t i = r->n_lines - 1; i > 0; i--) {
            size_t j = (size_t)(rng_next(&r->rng) % (uint64_t)(i + 1));
            size_t t = r->perm[i];
            r->perm[i] = r->perm[j];
            r->perm[j] = t;
        }
        r->shuffled = 1;
    }
    r->cur = idx;
    r->barren = r->n_lines ? 0 : r->barren + 1;
    return 0;
}

static void new_pass(LmReader *r) {
    for (int i = 0; i < r->n_shards; i++) r->order[i] = i;
    if (r->mode == LM_TRAIN && r->shuffle)
        for (int i = r->n_shards - 1; i > 0; i--) {
            int j = (int)(rng_next(&r->rng) % (uint64_t)(i + 1));
            int t = r->order[i];
            r->order[i] = r->order[j];
            r->order[j] = t;
        }
    r->order_len = r->n_shards;
    r->order_next = 0;
    r->pass++;
}

/* ---------------------------------------------------------------- streams */

static void stream_reserve(Stream *s, int n) {
    if (n <= s->cap) return;
    s->cap = n > 2 * s->cap ? n : 2 * s->cap;
    s->tok = xrealloc(s->tok, (size_t)s->cap * sizeof *s->tok);
    s->ids = xrealloc(s->ids, (size_t)s->cap * sizeof *s->ids);
}

/* Copies text[0..len) (words separated by NUL bytes) into the stream. */
static void stream_copy_text(Stream *s, const char *text, size_t len) {
    if (s->text_cap < len + 1) {
        s->text_cap = len + 1 > 2 * s->text_cap ? len + 1 : 2 * s->text_cap;
        free(s->text);
        s->text = xmalloc(s->text_cap);
    }
    memcpy(s->text, text, len);
    s->text[len] = '\0';
}

/* Appends the NUL-separated words of s->text[0..len) to the tokens from index n on. */
static int stream_collect_words(Stream *s, size_t len, int n) {
    const char *p = s->text, *end = s->text + len;
    while (p < end) {
        if (!*p) {
            p++;
            continue;
        }
        stream_reserve(s, n + 2);
        s->tok[n++] = p;
        p += strlen(p) + 1;
    }
    return n;
}

static void stream_lookup(const LmReader *r, Stream *s) {
    const Vocab *v = r->vocab;
    for (int i = 0; i < s->n; i++) {
        const char *w = s->tok[i];
        int id;
        if (w == BOS_WORD) id = v->bos;
        else if (w == EOS_WORD) id = v->eos;
        else {
            id = vocab_lookup(v, w);
            if (id < 0) id = v->unk;
        }
        s->ids[i] = id;
    }
}

/* The stream takes a sentence: line[0..len) of the shard, already split (NUL-separated). */
static void stream_take_line(const LmReader *r, Stream *s, const char *line, size_t len) {
    stream_copy_text(s, line, len);
    stream_reserve(s, 2);
    int n = stream_collect_words(s, len, 1); /* tok[1..n) are the words */
    stream_reserve(s, n + 1);
    if (r->reverse) {
        for (int i = 1, j = n - 1; i < j; i++, j--) {
            const char *t = s->tok[i];
            s->tok[i] = s->tok[j];
            s->tok[j] = t;
        }
        s->tok[0] = EOS_WORD;
        s->tok[n] = BOS_WORD;
    } else {
        s->tok[0] = BOS_WORD;
        s->tok[n] = EOS_WORD;
    }
    s->n = n + 1;
    s->pos = 0;
    stream_lookup(r, s);
}

/* Gives stream s the next sentence: 1, or 0 at the end of the data (evaluation), -1. */
static int next_sentence(LmReader *r, Stream *s) {
    while (r->cur < 0 || r->next_line == r->n_lines) {
        if (r->order_next == r->order_len) {
            if (r->mode == LM_EVAL && r->pass > 0) return 0;
            new_pass(r);
        }
        if (r->mode == LM_TRAIN && r->barren >= r->n_shards && r->barren > 0)
            return elmo_fail("no sentences in the files matching '%s' (all empty)", r->pattern);
        if (load_shard(r, r->order[r->order_next++]) < 0) return -1;
    }
    size_t li = r->shuffled ? r->perm[r->next_line] : r->next_line;
    r->next_line++;
    size_t a = r->line_start[li], e = r->line_start[li + 1] - 1;
    stream_take_line(r, s, r->buf + a, e - a);
    return 1;
}

int lm_reader_next(LmReader *r, LmBatch *batch) {
    const int B = batch->B, T = batch->T, C = batch->C;
    CHECK(C == r->C, "batch has C = %d, the reader was opened with max_chars = %d", C, r->C);
    if (r->ended) return 0;
    if (!r->streams) {
        r->n_streams = B;
        r->streams = xcalloc((size_t)B, sizeof *r->streams);
    } else if (r->n_streams != B) {
        return elmo_fail("training data '%s': the reader holds %d streams but the batch has %d rows "
                         "(batch size changed since the state was saved?)",
                         r->pattern, r->n_streams, B);
    }
    for (int b = 0; b < B; b++) {
        Stream *s = &r->streams[b];
        int t = 0;
        while (t < T) {
            if (s->n - s->pos <= 1) {
                int rc = next_sentence(r, s);
                if (rc < 0) return -1;
                if (rc == 0) {
                    r->ended = 1;
                    return 0;
                }
            }
            int how = s->n - s->pos - 1;
            if (how > T - t) how = T - t;
            size_t at = (size_t)b * T + t;
            const int32_t *ids = s->ids + s->pos;
            const char *const *tok = s->tok + s->pos;
            for (int k = 0; k < how; k++) {
                batch->targets[at + k] = ids[k + 1];
                int32_t *dst = batch->chars + (at + k) * C;
                if (tok[k] == BOS_WORD) chars_encode_marker(CHAR_BOS, C, dst);
                else if (tok[k] == EOS_WORD) chars_encode_marker(CHAR_EOS, C, dst);
                else chars_encode(tok[k], C, dst);
            }
            t += how;
            s->pos += how;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- state */

/* A stream's tokens left, joined by single spaces (markers as <S> and </S>). */
static char *stream_text(const Stream *s) {
    size_t len = 1;
    for (int i = s->pos; i < s->n; i++) len += strlen(s->tok[i]) + 1;
    char *out = xmalloc(len), *p = out;
    for (int i = s->pos; i < s->n; i++) {
        if (i > s->pos) *p++ = ' ';
        size_t l = strlen(s->tok[i]);
        memcpy(p, s->tok[i], l);
        p += l;
    }
    *p = '\0';
    return out;
}

int lm_reader_save_state(const LmReader *r, hid_t group) {
    char where[1100];
    h5io_describe(group, "reader state", where, sizeof where);
    const char *cur = r->cur >= 0 ? r->shards[r->cur] : NULL;
    int n_left = r->order_len - r->order_next;
    const char **left = xmalloc((size_t)(n_left ? n_left : 1) * sizeof *left);
    for (int i = 0; i < n_left; i++) left[i] = r->shards[r->order[r->order_next + i]];
    char **texts = xmalloc((size_t)(r->n_streams ? r->n_streams : 1) * sizeof *texts);
    for (int i = 0; i < r->n_streams; i++) texts[i] = stream_text(&r->streams[i]);
    int rc = 0;
    if (rc == 0) rc = h5io_write_i64(group, where, "version", STATE_VERSION);
    if (rc == 0) rc = h5io_write_i64(group, where, "reverse", r->reverse);
    if (rc == 0) rc = h5io_write_i64(group, where, "shuffle", r->shuffle);
    if (rc == 0) rc = h5io_write_i64(group, where, "mode", r->mode == LM_EVAL);
    if (rc == 0) rc = h5io_write_i64(group, where, "pass", r->pass);
    if (rc == 0) rc = h5io_write_i64(group, where, "ended", r->ended);
    if (rc == 0) rc = h5io_write_u64(group, where, "rng_state", r->rng.s, 4);
    if (rc == 0)
        rc = h5io_write_u64(group, where, "rng_state_before_shard_shuffle",
                            (r->cur >= 0 ? &r->rng_at_load : &r->rng)->s, 4);
    if (rc == 0) rc = h5io_write_strings(group, where, "current_shard", &cur, cur ? 1 : 0);
    if (rc == 0) rc = h5io_write_i64(group, where, "shard_sentences", (int64_t)(r->cur >= 0 ? r->n_lines : 0));
    if (rc == 0) rc = h5io_write_i64(group, where, "shard_position", (int64_t)(r->cur >= 0 ? r->next_line : 0));
    if (rc == 0) rc = h5io_write_strings(group, where, "remaining_shards", left, (size_t)n_left);
    if (rc == 0) rc = h5io_write_strings(group, where, "streams", (const char *const *)texts, (size_t)r->n_streams);
    for (int i = 0; i < r->n_streams; i++) free(texts[i]);
    free(texts);
    free(left);
    return rc;
}

/* Index of the shard named name, or -1 after an error saying why it is not there. */
static int find_shard(const LmReader *r, const char *where, const char *name) {
    const char *key = name;
    const char **hit = bsearch(&key, r->shards, (size_t)r->n_shards, sizeof *r->shards, cmp_str);
    if (hit) return (int)((char **)hit - r->shards);
    if (access(name, F_OK) != 0)
        return elmo_fail("%s: shard %s of the saved state no longer exists", where, name);
    return elmo_fail("%s: shard %s of the saved state no longer matches '%s'", where, name, r->pattern);
}

static int check_setting(const char *where, const char *name, int64_t saved, int64_t have) {
    if (saved == have) return 0;
    return elmo_fail("%s: saved with %s = %lld, this reader has %s = %lld", where, name, (long long)saved,
                     name, (long long)have);
}

int lm_reader_load_state(LmReader *r, hid_t group) {
    char where[1100];
    h5io_describe(group, "reader state", where, sizeof where);
    int64_t version, reverse, shuffle, mode, pass, ended, n_sent, position;
    uint64_t rng_now[4], rng_before[4];
    if (h5io_read_i64(group, where, "version", &version) < 0) return -1;
    if (version != STATE_VERSION)
        return elmo_fail("%s: state version %lld, this program reads version %d", where, (long long)version,
                         STATE_VERSION);
    if (h5io_read_i64(group, where, "reverse", &reverse) < 0 || h5io_read_i64(group, where, "shuffle", &shuffle) < 0 ||
        h5io_read_i64(group, where, "mode", &mode) < 0 || h5io_read_i64(group, where, "pass", &pass) < 0 ||
        h5io_read_i64(group, where, "ended", &ended) < 0 ||
        h5io_read_i64(group, where, "shard_sentences", &n_sent) < 0 ||
        h5io_read_i64(group, where, "shard_position", &position) < 0 ||
        h5io_read_u64(group, where, "rng_state", rng_now, 4) < 0 ||
        h5io_read_u64(group, where, "rng_state_before_shard_shuffle", rng_before, 4) < 0)
        return -1;
    if (check_setting(where, "reverse", reverse, r->reverse) < 0 ||
        check_setting(where, "shuffle", shuffle, r->shuffle) < 0 ||
        check_setting(where, "mode (1 = evaluation)", mode, r->mode == LM_EVAL) < 0)
        return -1;
    if (pass < 0 || position < 0 || n_sent < 0 || position > n_sent || (ended != 0 && ended != 1))
        return elmo_fail("%s: inconsistent counters (pass %lld, position %lld of %lld, ended %lld)", where,
                         (long long)pass, (long long)position, (long long)n_sent, (long long)ended);
    if (!rng_state_valid(rng_now) || !rng_state_valid(rng_before))
        return elmo_fail("%s: %s: all-zero generator state (not one the generator can have)", where,
                         rng_state_valid(rng_now) ? "rng_state_before_shard_shuffle" : "rng_state");

    char **cur = NULL, **left = NULL, **texts = NULL;
    size_t n_cur = 0, n_left = 0, n_texts = 0;
    int rc = -1, cur_idx = -1;
    int *order = NULL;
    if (h5io_read_strings(group, where, "current_shard", &cur, &n_cur) < 0 ||
        h5io_read_strings(group, where, "remaining_shards", &left, &n_left) < 0 ||
        h5io_read_strings(group, where, "streams", &texts, &n_texts) < 0)
        goto done;
    if (n_cur > 1) {
        elmo_fail("%s: current_shard holds %zu names", where, n_cur);
        goto done;
    }
    if (n_cur == 1 && (cur_idx = find_shard(r, where, cur[0])) < 0) goto done;
    if (n_cur == 0 && (n_sent != 0 || position != 0)) {
        elmo_fail("%s: no current shard, yet position %lld of %lld", where, (long long)position, (long long)n_sent);
        goto done;
    }
    if (n_texts > (size_t)INT_MAX || n_left > (size_t)INT_MAX) {
        elmo_fail("%s: %zu streams, %zu remaining shards: not a state this program writes", where, n_texts, n_left);
        goto done;
    }
    order = xmalloc((n_left ? n_left : 1) * sizeof *order);
    for (size_t i = 0; i < n_left; i++)
        if ((order[i] = find_shard(r, where, left[i])) < 0) goto done;

    /* The current shard: replay its shuffle from the Rng it started from. */
    r->cur = -1;
    r->n_lines = r->next_line = 0;
    r->shuffled = 0;
    if (cur_idx >= 0) {
        memcpy(r->rng.s, rng_before, sizeof r->rng.s);
        if (load_shard(r, cur_idx) < 0) goto done;
        if ((int64_t)r->n_lines != n_sent || memcmp(r->rng.s, rng_now, sizeof rng_now) != 0) {
            elmo_fail("%s: shard %s has %zu sentences, %lld when the state was saved (file changed?)", where,
                      cur[0], r->n_lines, (long long)n_sent);
            r->cur = -1;
            goto done;
        }
        r->next_line = (size_t)position;
    } else {
        memcpy(r->rng.s, rng_now, sizeof r->rng.s);
    }
    if ((int)n_left > r->order_cap) {
        r->order_cap = (int)n_left;
        r->order = xrealloc(r->order, (size_t)r->order_cap * sizeof *r->order);
    }
    memcpy(r->order, order, n_left * sizeof *order);
    r->order_len = (int)n_left;
    r->order_next = 0;
    r->pass = (long)pass;
    r->ended = ended != 0;
    r->barren = 0;

    /* The streams: their words, encoded again. */
    free_streams(r);
    if (n_texts > 0) {
        r->n_streams = (int)n_texts;
        r->streams = xcalloc(n_texts, sizeof *r->streams);
        for (size_t i = 0; i < n_texts; i++) {
            Stream *s = &r->streams[i];
            size_t len = strlen(texts[i]);
            stream_copy_text(s, texts[i], len);
            char stream_where[1200];
            snprintf(stream_where, sizeof stream_where, "%s: stream %zu", where, i);
            if (utf8_invalid_offset(s->text, len) >= 0) {
                elmo_fail("%s: not valid UTF-8", stream_where);
                goto done;
            }
            if (text_split(s->text, len, &r->split, stream_where) < 0) goto done;
            s->n = stream_collect_words(s, len, 0);
            s->pos = 0;
            stream_lookup(r, s);
        }
    }
    rc = 0;
done:
    h5io_free_strings(cur, n_cur);
    h5io_free_strings(left, n_left);
    h5io_free_strings(texts, n_texts);
    free(order);
    return rc;
}
