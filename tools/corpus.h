/* corpus.h - reading a raw corpus on every core: every file matching a glob, in sorted
 * name order, plain or gzip-compressed (zlib reads plain files as they are), each line
 * checked (no NUL byte, valid UTF-8, no token over ELMO_MAX_TOKEN_BYTES) and split into
 * tokens as Python's str.split() splits.
 *
 * The files are read in blocks of whole lines of one file (1 MB; more for a longer line),
 * one after the other: reading and decompressing is sequential, one thread at a time.
 * Each thread takes the next block, checks and splits its lines alone, and takes the
 * next: no thread waits for another except to read, or (when the caller must see the
 * blocks in corpus order, as shard's assignment must) for the blocks before its own to
 * be handed over. What a line gives (its tokens counted, or its normalised text) does not
 * depend on the thread that parsed it, so results are the same for any number of
 * threads. Waits block rather than spin, so a machine that is busy elsewhere loses
 * nothing to them. Memory holds a block per thread, never a file.
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

/* Whole lines of one file, and what parsing them gave. */
typedef struct {
    char *data;          /* the lines (the last one of a file may lack its '\n') and one spare byte */
    size_t len, cap;
    const char *path;    /* the file */
    long first_line;     /* 1-based number of its first line in the file */
    long n_lines;
    long seq;            /* its place in the corpus: 0, 1, ... */
    CorpusLine *lines;   /* n_lines of them (with normalise set) */
    size_t lines_cap;
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
    long n_blocks;       /* blocks read */
    const char *tail;    /* bytes after the last block's last line end (same file) */
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

/* Called for each block once it is parsed, in corpus order, one block at a time (on any
 * thread, while the others parse later blocks); nonzero stops the reading (with the
 * error recorded by elmo_fail). */
typedef int (*CorpusBlockFn)(void *ctx, CorpusBlock *b);

/* Reads and parses the whole corpus on omp_get_max_threads() threads. Every line is
 * checked and split; with counts set (a table per thread), the tokens of every line are
 * counted into the table of the thread that parsed it; with normalise set, every line is
 * rewritten in place as its tokens joined by single spaces and a '\n' and recorded in
 * the block's lines. Then on_block(ctx, block), blocks in corpus order, and right after
 * it, on the same thread but in any order and at the same time as other blocks',
 * after_block(ctx, block) (either may be NULL). The block's storage is reused after that.
 * Returns 0 at the end of the corpus, or -1 with the first error in corpus order
 * (file:line for a bad line, the file for a read error or corrupt compressed data, or
 * the callbacks'). */
int corpus_parse(CorpusReader *r, WordCount *counts, int normalise, CorpusBlockFn on_block, CorpusBlockFn after_block,
                 void *ctx);

/* On-disk bytes of the corpus consumed so far (for progress). */
uint64_t corpus_bytes_read(const CorpusReader *r);
void corpus_close(CorpusReader *r);

#endif
