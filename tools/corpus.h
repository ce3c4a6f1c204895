/* corpus.h - streaming the lines of a raw corpus: every file matching a glob, in sorted
 * name order, plain or gzip-compressed (zlib reads plain files as they are), each line
 * checked (no NUL byte, valid UTF-8, no token over ELMO_MAX_TOKEN_BYTES) and split into
 * tokens as Python's str.split() splits. Memory holds the longest line, never a file.
 *
 * Every file is checked when the reader opens (exists, is a regular file, can be
 * opened), so a bad name fails before any work is done; errors found while reading name
 * the file and line (a corrupt .gz file: the file).
 */
#ifndef ELMO_CORPUS_H
#define ELMO_CORPUS_H

#include <stdint.h>
#include <zlib.h>

#include "text.h"

typedef struct {
    /* The line just read by corpus_next (valid until the next call). */
    TokenList tokens;    /* its tokens, NUL-terminated, pointing into the line buffer */
    char *line;          /* the line (its white space now NUL bytes) and its length */
    size_t line_len;
    int normal;          /* 1 if the line was exactly its tokens joined by single spaces */
    const char *path;    /* where it came from: file and 1-based line number */
    long line_no;

    uint64_t n_lines;    /* lines read so far, all files */
    uint64_t bytes_total;/* size of all files on disk (compressed size for .gz) */

    /* private */
    char **files;
    int n_files, cur;
    gzFile f;
    uint64_t bytes_done; /* on-disk size of the files finished */
    char *buf;           /* buf[start..end) is read and not yet returned */
    size_t cap, start, end, scanned;
    int at_eof;
    const char *label;   /* progress lines on stderr ("vocab", "shard"); NULL: none */
    double t_start, t_report;
} CorpusReader;

/* Expands pattern (glob(3); a plain file name is a pattern too) and checks every match.
 * Fails naming the pattern when nothing matches, or the file that is a directory, cannot
 * be opened or sits in a directory that cannot be read. With label set, corpus_next
 * prints a progress line every few seconds: "label: lines, MB read of total, MB/s, ETA". */
int corpus_open(CorpusReader *r, const char *pattern, const char *label);
/* 1: the next line is in tokens (possibly none: an empty line); 0: end of the corpus;
 * -1: error naming file:line (NUL byte, invalid UTF-8, over-long token) or the file (read
 * error, corrupt or truncated compressed data). */
int corpus_next(CorpusReader *r);
/* On-disk bytes of the corpus consumed so far (for progress). */
uint64_t corpus_bytes_read(const CorpusReader *r);
void corpus_close(CorpusReader *r);

#endif
