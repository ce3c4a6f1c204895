/* corpus.h - reading a raw corpus on every core: every file matching a glob, in sorted
 * name order, plain or gzip-compressed (zlib reads plain files as they are), each line
 * checked (no NUL byte, valid UTF-8, no token over ELMO_MAX_TOKEN_BYTES) and split into
 * tokens as Python's str.split() splits.
 *
 * The files are read in blocks of whole lines of one file (2 MB, or 1 MB per thread
 * beyond 2; more for a longer line), one after the other: decompression is sequential. Each block is cut at line
 * ends into chunks that all threads (OpenMP) check and split at once, while one of them
 * reads the next block. What a line gives (its tokens counted, or its normalised text)
 * does not depend on the thread that parsed it, and the callers combine the chunks in
 * corpus order, so results are the same for any number of threads. Memory holds two
 * blocks and the per-line records of one, never a file.
 *
 * Every file is checked when the reader opens (exists, is a regular file, can be
 * opened), so a bad name fails before any work is done; an error found while reading
 * names the file and line (a corrupt .gz file: the file), and is the first one in corpus
 * order whichever thread found it.
 */
#ifndef ELMO_CORPUS_H
#define ELMO_CORPUS_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "text.h"
#include "wordcount.h"

/* A line of a block, as corpus_parse leaves it (with normalise set). */
typedef struct {
    size_t start;        /* offset in the block's data */
    uint32_t len;        /* the normalised line, its '\n' included; 0: no token (dropped) */
    int32_t n_tokens;
    int normal;          /* 1 if the line was exactly its tokens joined by single spaces */
} CorpusLine;

/* Lines [begin, end) of a block, parsed by one thread. */
typedef struct {
    size_t begin, end;
    CorpusLine *lines;   /* n_lines of them (with normalise set) */
    size_t n_lines, cap;
    long bad;            /* index of its first bad line, -1 if none */
    char why[600];       /* what is wrong with it (after "file:line") */
} CorpusChunk;

/* Whole lines of one file. */
typedef struct {
    char *data;          /* the lines (the last one of a file may lack its '\n') and one spare byte */
    size_t len;
    const char *path;    /* the file */
    long first_line;     /* 1-based number of its first line in the file */
    long n_lines;
    CorpusChunk *chunks; /* in corpus order */
    int n_chunks, chunks_cap;
} CorpusBlock;

typedef struct {
    uint64_t n_lines;    /* lines read so far, all files */
    uint64_t bytes_total;/* size of all files on disk (compressed size for .gz) */

    /* private */
    char **files;
    int n_files, cur;
    gzFile f;
    uint64_t bytes_done; /* on-disk size of the files finished */
    long file_lines;     /* lines of the current file in the blocks read */
    char *buf[2];        /* the two blocks' storage: one parsed while the other is read */
    size_t cap[2];
    size_t block_bytes;  /* what a block is filled to (more for a longer line) */
    int next;            /* the buffer the next block goes into */
    char *tail;          /* bytes after the last block's last line end (same file) */
    size_t tail_len;
    char pending[700];   /* an error found after the lines of the last block */
    const char *label;   /* progress lines on stderr ("vocab", "shard"); NULL: none */
    double t_start, t_report;
} CorpusReader;

/* Expands pattern (glob(3); a plain file name is a pattern too) and checks every match.
 * Fails naming the pattern when nothing matches, or the file that is a directory, cannot
 * be opened or sits in a directory that cannot be read. With label set, reading prints a
 * progress line every few seconds: "label: lines, MB read of total, MB/s, ETA". */
int corpus_open(CorpusReader *r, const char *pattern, const char *label);

/* Called after each block is parsed, on the calling thread, blocks in corpus order;
 * nonzero stops the reading with that status. */
typedef int (*CorpusBlockFn)(void *ctx, CorpusBlock *b);

/* Reads and parses the whole corpus. Every line is checked and split; with counts set
 * (omp_get_max_threads() tables), the tokens of every line are counted into the table
 * of the thread that parsed it; with normalise set, every line is rewritten in place as
 * its tokens joined by single spaces and a '\n' and recorded in its chunk's lines. Then
 * on_block(ctx, block) if set. Returns 0 at the end of the corpus, or -1 with the first
 * error in corpus order (file:line for a bad line, the file for a read error or corrupt
 * compressed data). */
int corpus_parse(CorpusReader *r, WordCount *counts, int normalise, CorpusBlockFn on_block, void *ctx);

/* On-disk bytes of the corpus consumed so far (for progress). */
uint64_t corpus_bytes_read(const CorpusReader *r);
void corpus_close(CorpusReader *r);

#endif
