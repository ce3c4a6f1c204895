/* corpus.c - see corpus.h.
 *
 * A file is read in large blocks into one buffer that grows only when a single line does
 * not fit; complete lines are validated and split in place there. The reader never holds
 * more than one block plus the longest line.
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

#include "common.h"

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
    r->cap = BLOCK_BYTES;
    r->buf = xmalloc(r->cap);
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
    if (now - r->t_report < PROGRESS_SECONDS) return;
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
    r->path = path;
    r->line_no = 0;
    r->start = r->end = r->scanned = 0;
    r->at_eof = 0;
    return 0;
}

/* After end of data or a failed read: the file's error as a message, or 0 if clean. */
static int read_error(CorpusReader *r) {
    int err;
    const char *msg = gzerror(r->f, &err);
    if (err == Z_OK) return 0;
    if (err == Z_ERRNO) return elmo_fail("%s: read error after line %ld: %s", r->path, r->line_no, strerror(errno));
    return elmo_fail("%s: corrupt or truncated compressed data after line %ld (%s)", r->path, r->line_no, msg);
}

static int close_file(CorpusReader *r) {
    struct stat st;
    int rc = gzclose(r->f);
    r->f = NULL;
    if (rc != Z_OK) return elmo_fail("%s: corrupt or truncated compressed data", r->path);
    if (stat(r->path, &st) == 0 && S_ISREG(st.st_mode)) r->bytes_done += (uint64_t)st.st_size;
    return 0;
}

/* Reads the next block after the data held (moving that to the front first). */
static int refill(CorpusReader *r) {
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->scanned -= r->start;
        r->start = 0;
    }
    if (r->cap - r->end < BLOCK_BYTES / 2) { /* a line longer than what is free: grow */
        r->cap *= 2;
        r->buf = xrealloc(r->buf, r->cap);
    }
    size_t room = r->cap - r->end - 1; /* one spare byte: text_split ends the last line with NUL */
    if (room > (1u << 30)) room = 1u << 30;
    int n = gzread(r->f, r->buf + r->end, (unsigned)room);
    if (n < 0) return read_error(r) < 0 ? -1 : elmo_fail("%s: read error", r->path);
    if (n == 0) {
        if (read_error(r) < 0) return -1;
        r->at_eof = 1;
    }
    r->end += (size_t)n;
    return 0;
}

/* Validates and splits line[0..len) (line[len] writable). */
static int take_line(CorpusReader *r, char *line, size_t len) {
    r->line_no++;
    r->n_lines++;
    if (memchr(line, '\0', len)) return elmo_fail("%s:%ld: NUL byte in text (binary file?)", r->path, r->line_no);
    long bad = utf8_invalid_offset(line, len);
    if (bad >= 0) return elmo_fail("%s:%ld: invalid UTF-8 at byte %ld", r->path, r->line_no, bad + 1);
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++) spaces += line[i] == ' ';
    /* Formatting "file:line" for every line would cost more than splitting it; the
     * location is put in front of text_split's message only when it fails. */
    if (text_split(line, len, &r->tokens, "") < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", elmo_error());
        return elmo_fail("%s:%ld%s", r->path, r->line_no, why);
    }
    /* Normal: no separator before the first token or after the last, every gap one byte
     * (the byte two before a token is not a separator: text_split made those NUL), and
     * all of them spaces (spaces only occur in gaps). */
    const int n = r->tokens.n;
    int normal = n > 0 && r->tokens.tokens[0] == line && line[len - 1] != '\0' && spaces == (size_t)n - 1;
    for (int i = 1; normal && i < n; i++) normal = r->tokens.tokens[i][-2] != '\0';
    r->normal = normal;
    r->line = line;
    r->line_len = len;
    if (r->label && (r->n_lines & 4095) == 0) report(r);
    return 1;
}

int corpus_next(CorpusReader *r) {
    for (;;) {
        if (!r->f) {
            if (r->cur + 1 >= r->n_files) return 0;
            if (open_next_file(r) < 0) return -1;
        }
        char *nl = memchr(r->buf + r->scanned, '\n', r->end - r->scanned);
        if (nl) {
            char *line = r->buf + r->start;
            r->start = r->scanned = (size_t)(nl - r->buf) + 1;
            return take_line(r, line, (size_t)(nl - line));
        }
        r->scanned = r->end;
        if (!r->at_eof) {
            if (refill(r) < 0) return -1;
            continue;
        }
        if (r->start < r->end) { /* a last line without a newline */
            char *line = r->buf + r->start;
            size_t len = r->end - r->start;
            r->start = r->scanned = r->end;
            return take_line(r, line, len);
        }
        if (close_file(r) < 0) return -1;
    }
}

void corpus_close(CorpusReader *r) {
    if (r->f) gzclose(r->f);
    for (int i = 0; i < r->n_files; i++) free(r->files[i]);
    free(r->files);
    free(r->buf);
    token_list_free(&r->tokens);
    memset(r, 0, sizeof *r);
}
