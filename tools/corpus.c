/* corpus.c - see corpus.h.
 *
 * A thread reads a block into its own buffer (under the lock: one reader at a time),
 * starting with the bytes after the last block's last line end, which are the start of a
 * line that block holds only in part (its owner never touches them). A buffer grows only
 * when a single line does not fit. Everything parsing leaves is the block's own; the
 * token tables are the threads'. The lock and the hand-over use a mutex and a condition
 * variable, not OpenMP's barriers and locks, whose waits spin (GOMP_SPINCOUNT): on a
 * machine where another process holds a core, spinning threads starve the working ones
 * (2 threads took 60% longer than 1 that way), while a blocked thread costs nothing.
 */
#include "corpus.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <omp.h>

#include "common.h"

/* A block: some milliseconds of work, so that taking one (a lock, a hand-over) costs
 * nothing beside it, and a small corpus still makes many (the threads end within a block
 * of each other). */
#define BLOCK_BYTES ((size_t)1 << 20)
#define PROGRESS_SECONDS 3.0

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* glob(3) reports unreadable directories through a callback without a user pointer. */
static _Thread_local char glob_err_path[512];
static _Thread_local int glob_err_errno;

static int on_glob_error(const char *path, int err) {
    if (!glob_err_path[0]) {
        snprintf(glob_err_path, sizeof glob_err_path, "%s", path);
        glob_err_errno = err;
    }
    return 1; /* stop: a corpus with a silently skipped directory would be wrong */
}

/* Checks one match: a file (or a pipe) that can be opened; adds its size to the total. */
static int check_file(CorpusReader *r, const char *path) {
    struct stat st;
    if (stat(path, &st) < 0) return elmo_fail("%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return elmo_fail("%s: is a directory, not a corpus file", path);
    if (S_ISREG(st.st_mode)) {
        /* Opening a pipe here would consume its writer; regular files are tried now so
         * that an unreadable one fails before hours of work on the others. */
        int fd = open(path, O_RDONLY);
        if (fd < 0) return elmo_fail("%s: cannot open: %s", path, strerror(errno));
        close(fd);
        r->bytes_total += (uint64_t)st.st_size;
    }
    return 0;
}

int corpus_open(CorpusReader *r, const char *pattern, const char *label) {
    memset(r, 0, sizeof *r);
    glob_err_path[0] = '\0';
    glob_t g;
    int rc = glob(pattern, GLOB_ERR, on_glob_error, &g);
    if (rc == GLOB_ABORTED) {
        globfree(&g);
        return elmo_fail("%s: cannot read directory: %s", glob_err_path[0] ? glob_err_path : pattern,
                         strerror(glob_err_errno));
    }
    if (rc == GLOB_NOMATCH) {
        globfree(&g);
        if (!strpbrk(pattern, "*?[")) return elmo_fail("%s: cannot open: %s", pattern, strerror(ENOENT));
        return elmo_fail("no files match '%s'", pattern);
    }
    if (rc != 0) {
        globfree(&g);
        return elmo_fail("cannot expand '%s': out of memory", pattern);
    }
    r->n_files = (int)g.gl_pathc;
    r->files = xmalloc((size_t)r->n_files * sizeof *r->files);
    for (int i = 0; i < r->n_files; i++) r->files[i] = xstrdup(g.gl_pathv[i]);
    globfree(&g);
    /* byte order, whatever the locale: the same corpus is read in the same order */
    qsort(r->files, (size_t)r->n_files, sizeof *r->files, cmp_str);
    for (int i = 0; i < r->n_files; i++)
        if (check_file(r, r->files[i]) < 0) {
            corpus_close(r);
            return -1;
        }
    r->cur = -1;
    r->label = label;
    r->t_start = r->t_report = elmo_now();
    return 0;
}

uint64_t corpus_bytes_read(const CorpusReader *r) {
    z_off_t in_file = r->f ? gzoffset(r->f) : 0;
    return r->bytes_done + (in_file > 0 ? (uint64_t)in_file : 0);
}

static void report(CorpusReader *r) {
    double now = elmo_now();
    if (!r->label || now - r->t_report < PROGRESS_SECONDS) return;
    r->t_report = now;
    double mb = corpus_bytes_read(r) / 1e6, total = r->bytes_total / 1e6, rate = mb / (now - r->t_start);
    if (total > 0 && mb <= total && rate > 0)
        fprintf(stderr, "%s: %llu lines, %.0f of %.0f MB (%.0f%%), %.1f MB/s, ETA %.0f s\n", r->label,
                (unsigned long long)r->n_lines, mb, total, 100.0 * mb / total, rate, (total - mb) / rate);
    else
        fprintf(stderr, "%s: %llu lines, %.0f MB, %.1f MB/s\n", r->label, (unsigned long long)r->n_lines, mb, rate);
}

static int open_next_file(CorpusReader *r) {
    const char *path = r->files[++r->cur];
    errno = 0;
    r->f = gzopen(path, "rb");
    if (!r->f) return elmo_fail("%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    gzbuffer(r->f, 1u << 17);
    r->file_lines = 0;
    r->tail_len = 0;
    return 0;
}

/* After end of data or a failed read: the file's error as a message (naming the line
 * after which it was found), or 0 if clean. */
static int read_error(CorpusReader *r, long line) {
    int err;
    const char *path = r->files[r->cur], *msg = gzerror(r->f, &err);
    if (err == Z_OK) return 0;
    if (err == Z_ERRNO) return elmo_fail("%s: read error after line %ld: %s", path, line, strerror(errno));
    return elmo_fail("%s: corrupt or truncated compressed data after line %ld (%s)", path, line, msg);
}

static int close_file(CorpusReader *r) {
    struct stat st;
    const char *path = r->files[r->cur];
    int rc = gzclose(r->f);
    r->f = NULL;
    if (rc != Z_OK) return elmo_fail("%s: corrupt or truncated compressed data", path);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) r->bytes_done += (uint64_t)st.st_size;
    return 0;
}

static long count_newlines(const char *s, size_t n) {
    long lines = 0;
    for (size_t i = 0; i < n; i++) lines += s[i] == '\n'; /* vectorised */
    return lines;
}

/* The next block of whole lines of one file into b's storage: 1, 0 at the end of the
 * corpus, -1 on an error. An error found after some whole lines is kept and returned by
 * the next call, so that those lines (and their errors, which come first) are seen
 * before it. */
static int read_block(CorpusReader *r, CorpusBlock *b) {
    if (r->pending[0]) return elmo_fail("%s", r->pending);
    for (;;) {
        if (!r->f) {
            if (r->cur + 1 >= r->n_files) return 0;
            if (open_next_file(r) < 0) return -1;
        }
        size_t filled = r->tail_len, target = filled + BLOCK_BYTES, last = 0; /* last: after the last '\n' */
        int at_eof = 0, failed = 0;
        /* the tail may lie in b's own storage (this thread read the last block too) */
        if (b->cap < target + 1) {
            char *grown = xmalloc(target + 1);
            if (filled) memcpy(grown, r->tail, filled);
            free(b->data);
            b->data = grown;
            b->cap = target + 1;
        } else if (filled) {
            memmove(b->data, r->tail, filled);
        }
        r->tail_len = 0;
        char *buf = b->data;
        for (size_t scanned = 0;;) {
            while (filled < target && !at_eof && !failed) {
                size_t room = target - filled; /* the spare byte stays: text_split ends the last line with NUL */
                if (room > (1u << 30)) room = 1u << 30;
                int n = gzread(r->f, buf + filled, (unsigned)room);
                if (n > 0) filled += (size_t)n;
                else if (n < 0 || read_error(r, 0) < 0) failed = 1;
                else at_eof = 1;
            }
            for (size_t i = filled; i > scanned && !last; i--)
                if (buf[i - 1] == '\n') last = i;
            if (last || at_eof || failed) break;
            /* one line longer than the block: a larger buffer, the line so far kept */
            scanned = filled;
            target = filled + BLOCK_BYTES;
            b->cap = target + 1;
            buf = b->data = xrealloc(b->data, b->cap);
        }
        const size_t len = at_eof ? filled : last;
        long lines = count_newlines(buf, len);
        if (at_eof && len > 0 && buf[len - 1] != '\n') lines++; /* a last line without a newline */
        if (failed) { /* the message, naming the last whole line before the error */
            if (read_error(r, r->file_lines + lines) == 0)
                elmo_fail("%s: read error after line %ld", r->files[r->cur], r->file_lines + lines);
            if (len == 0) return -1;
            snprintf(r->pending, sizeof r->pending, "%s", elmo_error());
        } else if (!at_eof) {
            r->tail = buf + len;
            r->tail_len = filled - len;
        }
        b->len = len;
        b->path = r->files[r->cur];
        b->first_line = r->file_lines + 1;
        b->n_lines = lines;
        r->file_lines += lines;
        r->n_lines += (uint64_t)lines;
        if (at_eof && close_file(r) < 0) {
            if (len == 0) return -1;
            snprintf(r->pending, sizeof r->pending, "%s", elmo_error());
        }
        report(r);
        if (len == 0) continue; /* an empty file, or one that ended at a block's end */
        b->seq = r->n_blocks++;
        return 1;
    }
}

/* ------------------------------------------------------------------------ parsing */

/* Validates and splits line[0..len) (line[len] writable) into t; *normal as in
 * CorpusLine. On an error, -1 with why = what follows "file:line" in the message. */
static int parse_line(char *line, size_t len, TokenList *t, int *normal, char *why, size_t why_size) {
    if (len >= UINT32_MAX) { /* CorpusLine keeps 32 bits */
        snprintf(why, why_size, ": line of %zu bytes (longest accepted: 4 GB)", len);
        return -1;
    }
    if (memchr(line, '\0', len)) {
        snprintf(why, why_size, ": NUL byte in text (binary file?)");
        return -1;
    }
    long bad = utf8_invalid_offset(line, len);
    if (bad >= 0) {
        snprintf(why, why_size, ": invalid UTF-8 at byte %ld", bad + 1);
        return -1;
    }
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++) spaces += line[i] == ' ';
    /* Formatting "file:line" for every line would cost more than splitting it; the
     * location is put in front of text_split's message only when it fails. */
    if (text_split(line, len, t, "") < 0) {
        snprintf(why, why_size, "%s", elmo_error());
        return -1;
    }
    /* Normal: no separator before the first token or after the last, every gap one byte
     * (the byte two before a token is not a separator: text_split made those NUL), and
     * all of them spaces (spaces only occur in gaps). */
    const int n = t->n;
    int is_normal = n > 0 && t->tokens[0] == line && line[len - 1] != '\0' && spaces == (size_t)n - 1;
    for (int i = 1; is_normal && i < n; i++) is_normal = t->tokens[i][-2] != '\0';
    *normal = is_normal;
    return 0;
}

/* The split line (starting at line) rewritten in place as its tokens joined by single
 * spaces and a '\n'; returns that length (0 for no token). It is never longer than the
 * line and its newline: every token was followed by at least one separator byte or the
 * line's end. */
static size_t normalise_in_place(char *line, size_t len, const TokenList *t, int normal) {
    if (t->n == 0) return 0;
    if (normal) { /* most lines: the separators (now NUL) spaces again */
        for (size_t i = 0; i < len; i++)
            if (!line[i]) line[i] = ' ';
        line[len] = '\n';
        return len + 1;
    }
    char *p = line;
    for (int i = 0; i < t->n; i++) {
        const size_t l = strlen(t->tokens[i]);
        memmove(p, t->tokens[i], l);
        p += l;
        *p++ = ' ';
    }
    p[-1] = '\n';
    return (size_t)(p - line);
}

/* Every line of the block: 0, or -1 with why (after "file:line") and *bad_line set. */
static int parse_block(CorpusBlock *b, TokenList *t, WordCount *count, int normalise, long *bad_line, char *why,
                       size_t why_size) {
    char *p = b->data, *const end = b->data + b->len;
    long n = 0;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        const size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        int normal;
        if (parse_line(p, len, t, &normal, why, why_size) < 0) {
            *bad_line = b->first_line + n;
            return -1;
        }
        if (count) wordcount_add_tokens(count, t->tokens, t->n);
        if (normalise) {
            if ((size_t)n == b->lines_cap) {
                b->lines_cap = b->lines_cap ? 2 * b->lines_cap : 4096;
                b->lines = xrealloc(b->lines, b->lines_cap * sizeof *b->lines);
            }
            b->lines[n] = (CorpusLine){.start = (size_t)(p - b->data),
                                       .len = (uint32_t)normalise_in_place(p, len, t, normal),
                                       .n_tokens = t->n, .normal = normal};
        }
        n++;
        p = nl ? nl + 1 : end;
    }
    CHECK(n == b->n_lines, "%s: %ld lines parsed, %ld read", b->path, n, b->n_lines);
    return 0;
}

/* What the threads share while they parse. */
typedef struct {
    pthread_mutex_t lock;  /* the reader, and all below */
    pthread_cond_t turn;   /* a block was handed over, or the run failed */
    long handed;           /* blocks handed to on_block: the seq of the next one */
    int read_all;          /* the reader reached the end: take no more blocks */
    long error_seq;        /* the block of the first error in corpus order (LONG_MAX: none) */
    char error[700];
} Parsing;

/* Records an error found in block seq (the lock held): the first in corpus order wins,
 * and every thread stops taking blocks. */
static void parsing_failed(Parsing *p, long seq, const char *message) {
    if (seq < p->error_seq) {
        p->error_seq = seq;
        snprintf(p->error, sizeof p->error, "%s", message);
    }
    pthread_cond_broadcast(&p->turn);
}

/* One thread's share: blocks taken in turn until the end or an error. */
static void parse_blocks(CorpusReader *r, Parsing *p, CorpusBlock *b, TokenList *t, WordCount *count, int normalise,
                         CorpusBlockFn on_block, CorpusBlockFn after_block, void *ctx) {
    char why[600], message[700];
    for (;;) {
        pthread_mutex_lock(&p->lock);
        int rc = p->read_all || p->error_seq != LONG_MAX ? 0 : read_block(r, b);
        if (rc < 0) parsing_failed(p, r->n_blocks, elmo_error());
        if (rc == 0) p->read_all = 1;
        pthread_mutex_unlock(&p->lock);
        if (rc <= 0) return;
        long bad_line;
        if (parse_block(b, t, count, normalise, &bad_line, why, sizeof why) < 0) {
            snprintf(message, sizeof message, "%s:%ld%s", b->path, bad_line, why);
            pthread_mutex_lock(&p->lock);
            parsing_failed(p, b->seq, message);
            pthread_mutex_unlock(&p->lock);
            return;
        }
        if (!on_block) continue;
        /* the blocks before this one first */
        pthread_mutex_lock(&p->lock);
        while (p->handed != b->seq && p->error_seq == LONG_MAX) pthread_cond_wait(&p->turn, &p->lock);
        const int go = p->error_seq == LONG_MAX;
        pthread_mutex_unlock(&p->lock);
        if (!go) return;
        rc = on_block(ctx, b);
        pthread_mutex_lock(&p->lock);
        if (rc != 0) parsing_failed(p, b->seq, elmo_error());
        p->handed++;
        pthread_cond_broadcast(&p->turn);
        pthread_mutex_unlock(&p->lock);
        if (rc == 0 && after_block) rc = after_block(ctx, b);
        if (rc != 0) {
            if (after_block) {
                pthread_mutex_lock(&p->lock);
                parsing_failed(p, b->seq, elmo_error());
                pthread_mutex_unlock(&p->lock);
            }
            return;
        }
    }
}

int corpus_parse(CorpusReader *r, WordCount *counts, int normalise, CorpusBlockFn on_block, CorpusBlockFn after_block,
                 void *ctx) {
    const int n_threads = omp_get_max_threads();
    Parsing p = {.handed = 0, .error_seq = LONG_MAX};
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.turn, NULL);
#pragma omp parallel num_threads(n_threads)
    {
        /* Each thread's block, token list and table on its own stack: side by side in an
         * array, their counters (a table's total grows with every token) would share cache
         * lines between threads, and 2 threads ran at half speed each. */
        const int t = omp_get_thread_num();
        CorpusBlock block;
        TokenList tokens;
        WordCount count;
        memset(&block, 0, sizeof block);
        memset(&tokens, 0, sizeof tokens);
        if (counts) count = counts[t];
        parse_blocks(r, &p, &block, &tokens, counts ? &count : NULL, normalise, on_block, after_block, ctx);
        if (counts) counts[t] = count;
        free(block.data);
        free(block.lines);
        token_list_free(&tokens);
    }
    pthread_mutex_destroy(&p.lock);
    pthread_cond_destroy(&p.turn);
    if (p.error_seq != LONG_MAX) return elmo_fail("%s", p.error);
    return 0;
}

void corpus_close(CorpusReader *r) {
    if (r->f) gzclose(r->f);
    for (int i = 0; i < r->n_files; i++) free(r->files[i]);
    free(r->files);
    memset(r, 0, sizeof *r);
}
