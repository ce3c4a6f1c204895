/* shard.c - see shard.h.
 *
 * Random draws, all from one generator seeded with the seed, in this order: for every
 * kept sentence of the corpus in reading order, the held-out draw (heldout_fraction > 0)
 * or the reservoir draw (heldout_lines, once the reservoir is full), then a new dealing
 * order whenever a block of n_shards training sentences begins; after the first pass,
 * the Fisher-Yates shuffle of shard 0, 1, ... in turn. Threads parse the input, write the
 * spill files and the shards (each shard from its own precomputed generator state), but
 * every draw is made on one thread in that order, so any number of threads gives the
 * same files.
 */
#include "shard.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "common.h"
#include "corpus.h"
#include "fileio.h"
#include "rng.h"

/* zlib's fastest level: about 4 times the speed of gzip's default 6 for files ~15%
 * larger (text); at 6 and above compression, not the disk, would bound the run. */
#define GZIP_MODE "wb1"
/* stdio buffers of all spill files together, during the first pass. */
#define SPILL_BUFFERS_BYTES ((size_t)32 << 20)
/* Held-out files are cut (at a line end) once they reach the size of an average
 * training shard, but not below this: evaluation memory is then bounded like training's. */
#define HELDOUT_MIN_FILE_BYTES ((uint64_t)64 << 20)
#define PROGRESS_SECONDS 3.0

static char *join_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = xmalloc(n);
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* ------------------------------------------------------------------- output files */

typedef struct {
    PendingFile pending;
    FILE *f;
    gzFile gz;
} Output;

static int output_open(Output *w, const char *path, int gzip) {
    memset(w, 0, sizeof *w);
    pending_begin(&w->pending, path);
    errno = 0;
    if (gzip) {
        w->gz = gzopen(w->pending.tmp, GZIP_MODE);
        if (w->gz) gzbuffer(w->gz, 1u << 20);
    } else {
        w->f = fopen(w->pending.tmp, "wb");
        if (w->f) setvbuf(w->f, NULL, _IOFBF, 1u << 20);
    }
    if (!w->f && !w->gz) {
        int e = errno;
        pending_abort(&w->pending);
        return elmo_fail("%s: cannot create: %s", path, e ? strerror(e) : "out of memory");
    }
    return 0;
}

static void output_abort(Output *w) {
    if (w->f) fclose(w->f);
    if (w->gz) gzclose(w->gz);
    w->f = NULL;
    w->gz = NULL;
    pending_abort(&w->pending);
}

static int output_fail(Output *w) {
    int e = errno;
    char *path = xstrdup(w->pending.path);
    output_abort(w);
    elmo_fail("%s: write failed: %s", path, e ? strerror(e) : "compression error");
    free(path);
    return -1;
}

static int output_write(Output *w, const char *p, size_t n) {
    errno = 0;
    if (w->gz ? gzwrite(w->gz, p, (unsigned)n) != (int)n : fwrite(p, 1, n, w->f) != n) return output_fail(w);
    return 0;
}

/* Closes, syncs and renames the file into place (in the new generation); it joins the
 * set's files, removed again if the run ends before the commit. */
static int output_commit(Output *w, FileSet *done) {
    errno = 0;
    int bad = w->gz ? gzclose(w->gz) != Z_OK : fclose(w->f) != 0;
    w->f = NULL;
    w->gz = NULL;
    if (bad) return output_fail(w);
    fileset_add(done, w->pending.path);
    return pending_commit(&w->pending);
}

/* -------------------------------------------------------------------- the sharder */

typedef struct {
    FILE *f;             /* unlinked temporary file */
    uint64_t bytes, lines;
} Spill;

typedef struct {
    uint64_t index;      /* among the kept sentences */
    char *text;          /* normalised, with its newline */
    size_t len;
    int n_tokens;
} Held;

/* A sentence on its way to a spill file (text in the parsed block, or a reservoir copy). */
typedef struct {
    const char *text;
    uint32_t len;
    int spill;           /* 0 .. n_shards-1, n_shards: held out */
} Sent;

/* One shard being written (phase 2): its lines, their starts (+ the end) and order. */
typedef struct {
    char *buf;
    size_t cap;
    size_t *starts, *order;
    size_t lines_cap;
} ShardWork;

/* A thread's block of sentences on their way to the spill files, the reservoir texts
 * they replaced (written, and for prepare counted, after the block), and its token table
 * (prepare). Aligned to a cache line pair: side by side, the threads' counters would
 * share lines, and each thread would run at half speed. */
typedef struct {
    _Alignas(128) Sent *sent;
    size_t n_sent, sent_cap;
    char **retired;
    size_t n_retired, retired_cap;
    WordCount count;
} Outbox;

typedef struct {
    const ShardOptions *o;
    ShardStats *st;
    int counting;        /* prepare: the training sentences' tokens are counted */
    int n_threads;
    Rng rng;
    Spill *spill;        /* n_shards training spills, then the held-out one */
    int *deal, deal_next;
    Held *reservoir;
    long n_held, held_cap;
    uint64_t kept;       /* sentences kept so far */
    Outbox *outbox;      /* per thread (the first thread's table is the caller's) */
    ShardSet *set;       /* where the files go; the completed ones join its files */
} Sharder;

/* A temporary file in dir without a name: it lives until it is closed or the process
 * ends, whatever the way. */
static int spill_open(Spill *s, const char *dir, size_t buffer) {
    int fd;
    if (file_open_unnamed(dir, &fd) < 0) return -1;
    s->f = fdopen(fd, "w+b");
    if (!s->f) {
        close(fd);
        return elmo_fail("%s: cannot create a temporary file: %s", dir, strerror(errno));
    }
    setvbuf(s->f, NULL, _IOFBF, buffer);
    s->bytes = s->lines = 0;
    return 0;
}

/* Raises the soft limit on open files to what the spill files need, if allowed: one per
 * shard, the held-out one, and a few for the input, the output and stdio. */
static int ensure_open_files(int n_shards) {
    const rlim_t need = (rlim_t)n_shards + 16;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) return 0;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && need > rl.rlim_max ? rl.rlim_max : need;
    if (rl.rlim_cur < need || setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return elmo_fail("%d shards need %llu files open at once; the limit is %llu (ulimit -n)", n_shards,
                         (unsigned long long)need, (unsigned long long)rl.rlim_max);
    return 0;
}

/* The sentence goes to spill i (at the end of the block). */
static void send(Sharder *s, Outbox *out, int i, const char *text, size_t len) {
    if (out->n_sent == out->sent_cap) {
        out->sent_cap = out->sent_cap ? 2 * out->sent_cap : 4096;
        out->sent = xrealloc(out->sent, out->sent_cap * sizeof *out->sent);
    }
    out->sent[out->n_sent++] = (Sent){.text = text, .len = (uint32_t)len, .spill = i};
    s->spill[i].bytes += len;
    s->spill[i].lines++;
}

/* A sentence (normalised, n_tokens tokens) for the next shard dealt. */
static void to_train(Sharder *s, Outbox *out, const char *text, size_t len, int n_tokens) {
    const int n = s->o->n_shards;
    if (s->deal_next == n) { /* a new block: a fresh dealing order */
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(rng_next(&s->rng) % (uint64_t)(i + 1));
            int t = s->deal[i];
            s->deal[i] = s->deal[j];
            s->deal[j] = t;
        }
        s->deal_next = 0;
    }
    send(s, out, s->deal[s->deal_next++], text, len);
    s->st->train_sentences++;
    s->st->train_tokens += (uint64_t)n_tokens;
}

/* Algorithm R: the first heldout_lines sentences fill the reservoir; sentence i after
 * them replaces a uniformly chosen one with probability heldout_lines / (i + 1). Whatever
 * leaves (or never enters) the reservoir goes to training at once. */
static void to_reservoir(Sharder *s, Outbox *out, const char *text, size_t len, int n_tokens) {
    const uint64_t i = s->kept - 1, k = (uint64_t)s->o->heldout_lines;
    Held *h;
    if (i < k) {
        if (s->n_held == s->held_cap) {
            s->held_cap = s->held_cap ? 2 * s->held_cap : 1024;
            s->reservoir = xrealloc(s->reservoir, (size_t)s->held_cap * sizeof *s->reservoir);
        }
        h = &s->reservoir[s->n_held++];
    } else {
        uint64_t j = rng_next(&s->rng) % (i + 1);
        if (j >= k) {
            to_train(s, out, text, len, n_tokens);
            return;
        }
        h = &s->reservoir[j];
        to_train(s, out, h->text, h->len, h->n_tokens);
        if (out->n_retired == out->retired_cap) { /* its text is written after the block */
            out->retired_cap = out->retired_cap ? 2 * out->retired_cap : 64;
            out->retired = xrealloc(out->retired, out->retired_cap * sizeof *out->retired);
        }
        out->retired[out->n_retired++] = h->text;
    }
    h->text = xmalloc(len);
    memcpy(h->text, text, len);
    h->len = len;
    h->n_tokens = n_tokens;
    h->index = i;
}

/* After each parsed block, blocks in corpus order (one at a time): its kept sentences
 * in order, each held out or dealt (the random draws in the order the top of this file
 * gives), then appended to their spill files. */
static int on_block(void *ctx, CorpusBlock *b) {
    Sharder *s = ctx;
    const ShardOptions *o = s->o;
    Outbox *out = &s->outbox[omp_get_thread_num()];
    for (long i = 0; i < b->n_lines; i++) {
        const CorpusLine *l = &b->lines[i];
        if (l->len == 0) {
            s->st->dropped++;
            continue;
        }
        s->st->normalised += !l->normal;
        s->kept++;
        const char *text = b->data + l->start;
        if (o->heldout_lines > 0) {
            to_reservoir(s, out, text, l->len, l->n_tokens);
        } else if (o->heldout_fraction > 0 && rng_uniform(&s->rng) < o->heldout_fraction) {
            send(s, out, o->n_shards, text, l->len);
            s->st->heldout_sentences++;
        } else {
            to_train(s, out, text, l->len, l->n_tokens);
        }
    }
    for (size_t i = 0; i < out->n_sent; i++) {
        const Sent *e = &out->sent[i];
        if (fwrite_unlocked(e->text, 1, e->len, s->spill[e->spill].f) != e->len)
            return elmo_fail("%s: cannot write temporary data: %s", o->output_dir, strerror(errno));
    }
    return 0;
}

/* Then, on the same thread and beside the other threads: for prepare, the tokens of the
 * block's training sentences counted into this thread's table. */
static int after_block(void *ctx, CorpusBlock *b) {
    Sharder *s = ctx;
    Outbox *out = &s->outbox[omp_get_thread_num()];
    const int n_shards = s->o->n_shards; /* read once: the assignment writes beside it */
    if (s->counting)
        for (size_t i = 0; i < out->n_sent; i++)
            if (out->sent[i].spill < n_shards) wordcount_add_line(&out->count, out->sent[i].text, out->sent[i].len);
    for (size_t i = 0; i < out->n_retired; i++) free(out->retired[i]);
    out->n_retired = 0;
    out->n_sent = 0;
    return 0;
}

static int by_index(const void *pa, const void *pb) {
    const Held *a = pa, *b = pb;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* The reservoir, in corpus order, into the held-out spill. */
static void reservoir_to_spill(Sharder *s) {
    Spill *sp = &s->spill[s->o->n_shards];
    qsort(s->reservoir, (size_t)s->n_held, sizeof *s->reservoir, by_index);
    for (long i = 0; i < s->n_held; i++) {
        fwrite(s->reservoir[i].text, 1, s->reservoir[i].len, sp->f);
        sp->bytes += s->reservoir[i].len;
        sp->lines++;
        free(s->reservoir[i].text);
    }
    s->st->heldout_sentences = (uint64_t)s->n_held;
    s->n_held = 0;
}

/* Phase 1: every line of the corpus, normalised, into the spill files. */
static int first_pass(Sharder *s, CorpusReader *r) {
    const int rc = corpus_parse(r, NULL, 1, on_block, after_block, s);
    s->st->lines = r->n_lines;
    if (rc < 0) return -1;
    if (s->o->heldout_lines > 0) reservoir_to_spill(s);
    if (s->st->train_sentences == 0)
        return elmo_fail("%s: no sentence left for training (%llu lines: %llu empty, %llu held out)", s->o->input,
                         (unsigned long long)s->st->lines, (unsigned long long)s->st->dropped,
                         (unsigned long long)s->st->heldout_sentences);
    for (int i = 0; i <= s->o->n_shards; i++)
        if (fflush(s->spill[i].f) != 0 || ferror(s->spill[i].f))
            return elmo_fail("%s: cannot write temporary data: %s", s->o->output_dir, strerror(errno));
    return 0;
}

/* Reads a spill file whole into w's buffer (and closes it: its space is freed). */
static int load_spill(Sharder *s, ShardWork *w, Spill *sp) {
    if (sp->bytes + 1 > w->cap) {
        free(w->buf);
        w->cap = sp->bytes + 1;
        w->buf = xmalloc(w->cap);
    }
    rewind(sp->f);
    size_t got = fread(w->buf, 1, sp->bytes, sp->f);
    int e = errno;
    fclose(sp->f);
    sp->f = NULL;
    if (got != sp->bytes)
        return elmo_fail("%s: cannot read temporary data back: %s", s->o->output_dir, strerror(e));
    return 0;
}

/* Shard i, shuffled with rng (the generator as it stands before this shard's draws). */
static int write_shard(Sharder *s, ShardWork *w, int i, const Rng *rng, const char *path) {
    Spill *sp = &s->spill[i];
    const uint64_t lines = sp->lines, bytes = sp->bytes;
    if (load_spill(s, w, sp) < 0) return -1;
    if (lines + 1 > w->lines_cap) {
        free(w->starts);
        free(w->order);
        w->lines_cap = lines + 1;
        w->starts = xmalloc(w->lines_cap * sizeof *w->starts);
        w->order = xmalloc(w->lines_cap * sizeof *w->order);
    }
    size_t n = 0, at = 0;
    while (at < bytes) {
        w->order[n] = n;
        w->starts[n++] = at;
        at = (size_t)((char *)memchr(w->buf + at, '\n', bytes - at) - w->buf) + 1;
    }
    CHECK(n == lines, "spill %d: %zu lines, %llu written", i, n, (unsigned long long)lines);
    w->starts[n] = bytes;
    Rng r = *rng; /* a copy of its own: the states of neighbouring shards share cache lines */
    for (size_t k = n; k > 1; k--) {
        size_t j = (size_t)(rng_next(&r) % (uint64_t)k), t = w->order[k - 1];
        w->order[k - 1] = w->order[j];
        w->order[j] = t;
    }
    Output out;
    if (output_open(&out, path, s->o->gzip) < 0) return -1;
    for (size_t k = 0; k < n; k++) {
        const size_t line = w->order[k];
        if (output_write(&out, w->buf + w->starts[line], w->starts[line + 1] - w->starts[line]) < 0) return -1;
    }
    return output_commit(&out, &s->set->files);
}

static char *output_name(const char *dir, const char *prefix, int i, int gzip) {
    char name[64];
    snprintf(name, sizeof name, "%s%05d.txt%s", prefix, i, gzip ? ".gz" : "");
    return join_path(dir, name);
}

/* The held-out spill, in order, cut into files of at most `limit` bytes (at line ends). */
static int write_heldout(Sharder *s, const char *dir, uint64_t limit) {
    FILE *f = s->spill[s->o->n_shards].f;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    Output w;
    int is_open = 0;
    uint64_t bytes = 0;
    rewind(f);
    while ((len = getline(&line, &cap, f)) > 0) {
        if (!is_open) {
            char *path = output_name(dir, "heldout-", s->st->heldout_files, s->o->gzip);
            int rc = output_open(&w, path, s->o->gzip);
            free(path);
            if (rc < 0) goto fail;
            is_open = 1;
            bytes = 0;
        }
        if (output_write(&w, line, (size_t)len) < 0) goto fail; /* w is removed */
        bytes += (uint64_t)len;
        if (bytes >= limit) {
            is_open = 0;
            s->st->heldout_files++;
            if (output_commit(&w, &s->set->files) < 0) goto fail;
        }
    }
    if (ferror(f)) {
        if (is_open) output_abort(&w);
        elmo_fail("%s: cannot read temporary data back: %s", dir, strerror(errno));
        goto fail;
    }
    if (is_open) {
        s->st->heldout_files++;
        if (output_commit(&w, &s->set->files) < 0) goto fail;
    }
    free(line);
    return 0;
fail:
    free(line);
    return -1;
}

/* Phase 2: every shard from its spill file, the threads taking one shard at a time
 * (memory: one shard per thread), then the held-out files. A shard's shuffle takes
 * lines - 1 draws, so the generator's state before each shard is known in advance: the
 * same shuffles as one shard after the other. */
static int second_pass(Sharder *s) {
    const ShardOptions *o = s->o;
    const Spill *held = &s->spill[o->n_shards];
    uint64_t train_bytes = 0;
    Rng *at = xmalloc((size_t)o->n_shards * sizeof *at);
    for (int i = 0; i < o->n_shards; i++) {
        train_bytes += s->spill[i].bytes;
        if (s->spill[i].bytes > s->st->largest_shard_bytes) s->st->largest_shard_bytes = s->spill[i].bytes;
        at[i] = s->rng;
        for (uint64_t k = s->spill[i].lines; k > 1; k--) rng_next(&s->rng);
    }
    uint64_t limit = train_bytes / (uint64_t)o->n_shards + 1;
    if (limit < HELDOUT_MIN_FILE_BYTES) limit = HELDOUT_MIN_FILE_BYTES;
    ShardWork *work = xcalloc((size_t)s->n_threads, sizeof *work);
    int failed_at = o->n_shards, written = 0;
    char failure[700] = "";
    double last = elmo_now();
#pragma omp parallel for schedule(dynamic, 1) num_threads(s->n_threads)
    for (int i = 0; i < o->n_shards; i++) {
        int stop;
#pragma omp atomic read
        stop = failed_at;
        if (stop < o->n_shards) continue; /* a shard failed: the run fails */
        char *path = output_name(s->set->train, "shard-", i, o->gzip);
        const int rc = write_shard(s, &work[omp_get_thread_num()], i, &at[i], path);
        free(path);
#pragma omp critical(shard_progress)
        {
            if (rc < 0 && i < failed_at) { /* the lowest failing shard names the error */
                snprintf(failure, sizeof failure, "%s", elmo_error());
                failed_at = i;
            }
            written++;
            if (!o->quiet && elmo_now() - last >= PROGRESS_SECONDS) {
                last = elmo_now();
                fprintf(stderr, "shard: wrote %d of %d shards\n", written, o->n_shards);
            }
        }
    }
    for (int t = 0; t < s->n_threads; t++) {
        free(work[t].buf);
        free(work[t].starts);
        free(work[t].order);
    }
    free(work);
    free(at);
    if (failed_at < o->n_shards) return elmo_fail("%s", failure);
    if (held->lines == 0) return 0;
    return write_heldout(s, s->set->heldout, limit);
}

int shard_corpus(const ShardOptions *o, WordCount *train_count, ShardStats *st, ShardSet *set) {
    CHECK(o->n_shards >= 1 && o->heldout_fraction >= 0 && o->heldout_fraction < 1 && o->heldout_lines >= 0,
          "bad shard options");
    memset(st, 0, sizeof *st);
    Sharder s = {.o = o, .st = st, .set = set, .n_threads = omp_get_max_threads(), .counting = train_count != NULL};
    s.outbox = aligned_alloc(_Alignof(Outbox), (size_t)s.n_threads * sizeof *s.outbox);
    CHECK(s.outbox, "out of memory");
    memset(s.outbox, 0, (size_t)s.n_threads * sizeof *s.outbox);
    if (train_count) { /* the caller's table and one more per thread, merged after the pass */
        s.outbox[0].count = *train_count;
        for (int t = 1; t < s.n_threads; t++) wordcount_init(&s.outbox[t].count);
    }
    int rc = -1, n_spills = 0;
    CorpusReader reader;
    /* the input's names first: a typo fails before anything is created */
    if (corpus_open(&reader, o->input, o->quiet ? NULL : "shard") < 0) return -1;
    if (shardset_begin(set, o->output_dir, train_count != NULL, o->force) < 0) {
        corpus_close(&reader);
        return -1;
    }
    if (ensure_open_files(o->n_shards) < 0) goto done;
    rng_seed(&s.rng, o->seed);
    s.deal = xmalloc((size_t)o->n_shards * sizeof *s.deal);
    for (int i = 0; i < o->n_shards; i++) s.deal[i] = i;
    s.deal_next = o->n_shards;
    s.spill = xcalloc((size_t)o->n_shards + 1, sizeof *s.spill);
    size_t buffer = SPILL_BUFFERS_BYTES / ((size_t)o->n_shards + 1);
    if (buffer < 1024) buffer = 1024;
    if (buffer > ((size_t)1 << 20)) buffer = (size_t)1 << 20;
    for (; n_spills <= o->n_shards; n_spills++)
        if (spill_open(&s.spill[n_spills], o->output_dir, buffer) < 0) goto done;
    if (first_pass(&s, &reader) < 0) goto done;
    rc = second_pass(&s);
done:
    if (train_count) {
        for (int t = 1; t < s.n_threads; t++) {
            if (rc == 0) wordcount_merge(&s.outbox[0].count, &s.outbox[t].count);
            wordcount_free(&s.outbox[t].count);
        }
        *train_count = s.outbox[0].count;
    }
    if (rc < 0) shardset_abort(set); /* the earlier set stays as it was */
    corpus_close(&reader);
    for (int i = 0; i < n_spills; i++)
        if (s.spill[i].f) fclose(s.spill[i].f);
    for (long i = 0; i < s.n_held; i++) free(s.reservoir[i].text);
    free(s.reservoir);
    free(s.spill);
    free(s.deal);
    for (int t = 0; t < s.n_threads; t++) {
        for (size_t i = 0; i < s.outbox[t].n_retired; i++) free(s.outbox[t].retired[i]);
        free(s.outbox[t].retired);
        free(s.outbox[t].sent);
    }
    free(s.outbox);
    return rc;
}
