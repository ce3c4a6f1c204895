/* corpus.c - see corpus.h.
 *
 * Two buffers take turns: while the threads parse the lines of one, one thread fills the
 * other, starting with the bytes after the first one's last line end (the start of a line
 * it holds only in part). A buffer grows only when a single line does not fit. Chunks are
 * taken by the threads in any order (dynamic schedule), so everything a chunk leaves is
 * its own: a token table per thread, line records per chunk, the first error per chunk.
 */
#include "corpus.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <omp.h>

#include "common.h"

/* A chunk: many per block, so that threads finishing early find more, and the last one
 * keeps the others waiting little (a chunk takes well under a millisecond). */
#define CHUNK_BYTES ((size_t)64 << 10)
/* A block: 16 chunks per thread, at least 2 MB; a parallel region per block then costs
 * nothing (microseconds against milliseconds), and memory holds two of them. */
#define BLOCK_MIN_BYTES ((size_t)2 << 20)
#define CHUNKS_PER_THREAD 16
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

/* The next block of whole lines of one file into the buffer r->next: 1, 0 at the end of
 * the corpus, -1 on an error. An error found after some whole lines is kept and
 * returned by the next call, so that those lines (and their errors, which come first)
 * are seen before it. */
static int read_block(CorpusReader *r, CorpusBlock *b) {
    if (r->pending[0]) return elmo_fail("%s", r->pending);
    for (;;) {
        if (!r->f) {
            if (r->cur + 1 >= r->n_files) return 0;
            if (open_next_file(r) < 0) return -1;
        }
        const int k = r->next;
        size_t filled = r->tail_len, target = filled + r->block_bytes, last = 0; /* last: after the last '\n' */
        int at_eof = 0, failed = 0;
        if (r->cap[k] < target + 1) {
            free(r->buf[k]);
            r->cap[k] = target + 1;
            r->buf[k] = xmalloc(r->cap[k]);
        }
        char *buf = r->buf[k];
        if (filled) memcpy(buf, r->tail, filled);
        r->tail_len = 0;
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
            target = filled + r->block_bytes;
            r->cap[k] = target + 1;
            buf = r->buf[k] = xrealloc(r->buf[k], r->cap[k]);
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
        b->data = buf;
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
        r->next = 1 - k;
        return 1;
    }
}

/* ------------------------------------------------------------------------ parsing */

/* Cuts the block at line ends into chunks of about CHUNK_BYTES. */
static void split_chunks(CorpusBlock *b) {
    b->n_chunks = 0;
    for (size_t at = 0; at < b->len;) {
        size_t end = at + CHUNK_BYTES;
        if (end >= b->len) {
            end = b->len;
        } else {
            const char *nl = memchr(b->data + end - 1, '\n', b->len - (end - 1));
            end = nl ? (size_t)(nl - b->data) + 1 : b->len;
        }
        if (b->n_chunks == b->chunks_cap) {
            const int old = b->chunks_cap;
            b->chunks_cap = old ? 2 * old : 64;
            b->chunks = xrealloc(b->chunks, (size_t)b->chunks_cap * sizeof *b->chunks);
            memset(b->chunks + old, 0, (size_t)(b->chunks_cap - old) * sizeof *b->chunks);
        }
        CorpusChunk *c = &b->chunks[b->n_chunks++];
        c->begin = at;
        c->end = end;
        at = end;
    }
}

/* Validates and splits line[0..len) (line[len] writable) into t; *normal as in
 * CorpusLine. On an error, -1 with why = what follows "file:line" in the message. */
static int parse_line(char *line, size_t len, TokenList *t, int *normal, char *why, size_t why_size) {
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

static void parse_chunk(CorpusBlock *b, CorpusChunk *c, TokenList *t, WordCount *count, int normalise) {
    c->n_lines = 0;
    c->bad = -1;
    char *p = b->data + c->begin, *const end = b->data + c->end;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        const size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        int normal;
        if (parse_line(p, len, t, &normal, c->why, sizeof c->why) < 0) {
            c->bad = (long)c->n_lines;
            return;
        }
        if (count) wordcount_add_tokens(count, t->tokens, t->n);
        if (normalise) {
            if (c->n_lines == c->cap) {
                c->cap = c->cap ? 2 * c->cap : 1024;
                c->lines = xrealloc(c->lines, c->cap * sizeof *c->lines);
            }
            c->lines[c->n_lines] = (CorpusLine){.start = (size_t)(p - b->data),
                                                .len = (uint32_t)normalise_in_place(p, len, t, normal),
                                                .n_tokens = t->n, .normal = normal};
        }
        c->n_lines++;
        p = nl ? nl + 1 : end;
    }
}

/* The first bad line of the block, in corpus order, as the error; 0 if none. */
static int block_error(const CorpusBlock *b) {
    long line = b->first_line;
    for (int i = 0; i < b->n_chunks; i++) {
        const CorpusChunk *c = &b->chunks[i];
        if (c->bad >= 0) return elmo_fail("%s:%ld%s", b->path, line + c->bad, c->why);
        line += (long)c->n_lines;
    }
    CHECK(line == b->first_line + b->n_lines, "%s: %ld lines parsed, %ld read", b->path, line - b->first_line,
          b->n_lines);
    return 0;
}

static void block_free(CorpusBlock *b) {
    for (int i = 0; i < b->chunks_cap; i++) free(b->chunks[i].lines);
    free(b->chunks);
}

int corpus_parse(CorpusReader *r, WordCount *counts, int normalise, CorpusBlockFn on_block, void *ctx) {
    const int n_threads = omp_get_max_threads();
    r->block_bytes = (size_t)n_threads * CHUNKS_PER_THREAD * CHUNK_BYTES;
    if (r->block_bytes < BLOCK_MIN_BYTES) r->block_bytes = BLOCK_MIN_BYTES;
    TokenList *tokens = xcalloc((size_t)n_threads, sizeof *tokens);
    CorpusBlock blocks[2];
    memset(blocks, 0, sizeof blocks);
    int cur = 0, rc = read_block(r, &blocks[0]);
    char read_failure[sizeof r->pending];
    while (rc == 1) {
        CorpusBlock *b = &blocks[cur], *next = &blocks[1 - cur];
        split_chunks(b);
        int next_rc = 0;
#pragma omp parallel num_threads(n_threads)
        {
            /* one thread reads the next block (its own buffer), then joins the others */
#pragma omp single nowait
            {
                next_rc = read_block(r, next);
                if (next_rc < 0) snprintf(read_failure, sizeof read_failure, "%s", elmo_error());
            }
            const int t = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1) nowait
            for (int i = 0; i < b->n_chunks; i++) parse_chunk(b, &b->chunks[i], &tokens[t], counts ? &counts[t] : NULL,
                                                            normalise);
        }
        if (block_error(b) < 0 || (on_block && on_block(ctx, b) != 0)) {
            rc = -1;
            break;
        }
        if (next_rc < 0) elmo_fail("%s", read_failure);
        rc = next_rc;
        cur = 1 - cur;
    }
    for (int t = 0; t < n_threads; t++) token_list_free(&tokens[t]);
    free(tokens);
    block_free(&blocks[0]);
    block_free(&blocks[1]);
    return rc < 0 ? -1 : 0;
}

void corpus_close(CorpusReader *r) {
    if (r->f) gzclose(r->f);
    for (int i = 0; i < r->n_files; i++) free(r->files[i]);
    free(r->files);
    free(r->buf[0]);
    free(r->buf[1]);
    memset(r, 0, sizeof *r);
}
