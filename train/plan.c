/* plan.c - see plan.h.
 *
 * Token counting streams each file through zlib (which reads plain files as they are) in
 * 1 MiB chunks. A chunk is cut after its last complete UTF-8 sequence (the rest waits for
 * the next chunk), checked for NUL bytes and invalid UTF-8, and its tokens counted: a
 * token starts at every non-space byte that follows white space or the start of the file
 * (the white space of text_space_len, str.split()'s). Bytes 0x21-0x7f are never white
 * space, so runs of them are skipped eight at a time.
 */
#include "plan.h"

#include <errno.h>
#include <glob.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

#include "common.h"
#include "dataset.h"
#include "fileio.h"
#include "model.h"
#include "text.h"
#include "trainer.h"

#define CHUNK_BYTES ((size_t)1 << 20)
/* What plan_memory reads of the largest shard to learn its lines and words. */
#define SAMPLE_BYTES ((size_t)4 << 20)
#define PROGRESS_SECONDS 3.0
#define CACHE_NAME "train-tokens.json"
#define CACHE_VERSION 1

/* ---------------------------------------------------------------- the files */

typedef struct {
    char **names;        /* sorted (glob's order, strcmp) */
    struct stat *st;
    int n;
} FileList;

static void file_list_free(FileList *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    free(l->st);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The files matching pattern, sorted by name, each with its stat. */
static int file_list(FileList *l, const char *pattern) {
    memset(l, 0, sizeof *l);
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        if (rc == 0) globfree(&g);
        return elmo_fail("no files match '%s'", pattern);
    }
    if (rc != 0)
        return elmo_fail("cannot expand '%s': %s", pattern, rc == GLOB_NOSPACE ? "out of memory" : "read error");
    l->n = (int)g.gl_pathc;
    l->names = xcalloc((size_t)l->n, sizeof *l->names);
    l->st = xcalloc((size_t)l->n, sizeof *l->st);
    for (int i = 0; i < l->n; i++) l->names[i] = xstrdup(g.gl_pathv[i]);
    globfree(&g);
    qsort(l->names, (size_t)l->n, sizeof *l->names, cmp_str);
    for (int i = 0; i < l->n; i++) {
        if (stat(l->names[i], &l->st[i]) < 0) {
            elmo_fail("%s: cannot read: %s", l->names[i], strerror(errno));
            file_list_free(l);
            return -1;
        }
        if (!S_ISREG(l->st[i].st_mode)) {
            elmo_fail("%s: not a regular file", l->names[i]);
            file_list_free(l);
            return -1;
        }
    }
    return 0;
}

static int open_text(const char *path, gzFile *f) {
    errno = 0;
    *f = gzopen(path, "rb");
    if (!*f) return elmo_fail("%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    gzbuffer(*f, 1u << 17);
    return 0;
}

/* gzread's error, naming path (after n < 0, or at the end to catch a truncated stream). */
static int read_error(gzFile f, const char *path) {
    int err;
    const char *msg = gzerror(f, &err);
    if (err == Z_OK) return 0;
    if (err == Z_ERRNO) return elmo_fail("%s: read error: %s", path, strerror(errno));
    const size_t n = strlen(path); /* zlib's message starts with the path */
    if (strncmp(msg, path, n) == 0 && strncmp(msg + n, ": ", 2) == 0) msg += n + 2;
    return elmo_fail("%s: corrupt or truncated compressed data (%s)", path, msg);
}

/* ---------------------------------------------------------------- counting */

typedef struct {
    long tokens;
    long lines;          /* newlines seen: the line of the next byte is lines + 1 */
    int in_token;
} Count;

/* 1 for the bytes that may start white space (<= 0x20 or >= 0x80) among 8 (little endian:
 * the lowest flagged byte is exact, see token_end in src/text.c). */
static inline uint64_t maybe_space(uint64_t w) {
    return ((w - 0x2121212121212121ull) | w) & 0x8080808080808080ull;
}

static void count_tokens(Count *c, const char *p, const char *end) {
    long tokens = c->tokens, lines = c->lines;
    int in_token = c->in_token;
    while (p < end) {
        if (in_token) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            while (end - p >= 8) {
                uint64_t w;
                memcpy(&w, p, 8);
                const uint64_t m = maybe_space(w);
                if (m) {
                    p += __builtin_ctzll(m) >> 3;
                    break;
                }
                p += 8;
            }
            if (p == end) break;
#endif
        }
        const unsigned char b = (unsigned char)*p;
        if (b > 0x20 && b < 0x80) {
            if (!in_token) tokens++;
            in_token = 1;
            p++;
            continue;
        }
        const int sp = text_space_len(p, end);
        if (sp) {
            lines += b == '\n';
            in_token = 0;
            p += sp;
        } else {
            if (!in_token) tokens++;
            in_token = 1;
            p++; /* continuation bytes never start white space */
        }
    }
    c->tokens = tokens;
    c->lines = lines;
    c->in_token = in_token;
}

/* Length of buf[0..n) without an incomplete UTF-8 sequence at its end. */
static size_t complete_utf8(const char *buf, size_t n) {
    for (size_t i = 1; i <= 3 && i <= n; i++) {
        const unsigned char b = (unsigned char)buf[n - i];
        if ((b & 0xC0) == 0x80) continue; /* a continuation byte: look further back */
        if (b >= 0xC0) {
            const size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
            if (need > i) return n - i;
        }
        break;
    }
    return n;
}

/* The line of byte `at` of buf, given the newlines before buf; *column: its byte in the
 * line (from 1; within this chunk for a line that began in an earlier one). */
static long line_of(const Count *c, const char *buf, size_t at, size_t *column) {
    long line = c->lines + 1;
    const char *start = buf;
    for (const char *p = buf, *end = buf + at; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; start = ++p) line++;
    *column = (size_t)(buf + at - start) + 1;
    return line;
}

typedef struct {
    int quiet;
    double start, last;
    double total_bytes, done_bytes; /* compressed, over all files */
} Progress;

static void progress(Progress *pr, gzFile f, const Count *c) {
    if (pr->quiet) return;
    const double now = elmo_now();
    if (now - pr->last < PROGRESS_SECONDS) return;
    pr->last = now;
    const double done = pr->done_bytes + (double)gzoffset(f);
    char a[32], b[32];
    fprintf(stderr, "count tokens: %s of %s read (%.0f%%), %ld tokens so far, %.0f s\n",
            plan_format_bytes(a, sizeof a, done), plan_format_bytes(b, sizeof b, pr->total_bytes),
            pr->total_bytes > 0 ? 100.0 * done / pr->total_bytes : 100.0, c->tokens, now - pr->start);
}

static int count_file(const char *path, char *buf, Count *c, Progress *pr) {
    gzFile f;
    if (open_text(path, &f) < 0) return -1;
    c->lines = 0;
    c->in_token = 0;
    size_t kept = 0; /* bytes of an incomplete UTF-8 sequence carried to the next chunk */
    int rc = 0;
    for (;;) {
        const int n = gzread(f, buf + kept, (unsigned)(CHUNK_BYTES - kept));
        if (n < 0) {
            rc = read_error(f, path);
            if (rc == 0) rc = elmo_fail("%s: read error", path);
            break;
        }
        const size_t have = kept + (size_t)n;
        const size_t len = n == 0 ? have : complete_utf8(buf, have);
        const char *nul = memchr(buf, '\0', len);
        const long bad = utf8_invalid_offset(buf, nul ? (size_t)(nul - buf) : len);
        if (bad >= 0 || nul) {
            size_t column;
            const long line = line_of(c, buf, bad >= 0 ? (size_t)bad : (size_t)(nul - buf), &column);
            rc = bad >= 0 ? elmo_fail("%s:%ld: invalid UTF-8 at byte %zu", path, line, column)
                          : elmo_fail("%s:%ld: NUL byte in text (binary file?)", path, line);
            break;
        }
        count_tokens(c, buf, buf + len);
        if (n == 0) break;
        kept = have - len;
        memmove(buf, buf + len, kept);
        progress(pr, f, c);
    }
    if (rc == 0) rc = read_error(f, path);
    pr->done_bytes += (double)gzoffset(f);
    if (gzclose(f) != Z_OK && rc == 0) rc = elmo_fail("%s: corrupt or truncated compressed data", path);
    return rc;
}

/* ---------------------------------------------------------------- the cache */

/* The key of a file list: [[name, size, mtime seconds, mtime nanoseconds], ...]. */
static cJSON *cache_key(const FileList *l) {
    cJSON *key = cJSON_CreateArray();
    for (int i = 0; i < l->n; i++) {
        cJSON *e = cJSON_CreateArray();
        cJSON_AddItemToArray(e, cJSON_CreateString(l->names[i]));
        cJSON_AddItemToArray(e, cJSON_CreateNumber((double)l->st[i].st_size));
        cJSON_AddItemToArray(e, cJSON_CreateNumber((double)l->st[i].st_mtim.tv_sec));
        cJSON_AddItemToArray(e, cJSON_CreateNumber((double)l->st[i].st_mtim.tv_nsec));
        cJSON_AddItemToArray(key, e);
    }
    return key;
}

/* The cached count for key, or -1 (no cache, another key, or a file not ours). */
static long cache_lookup(const char *path, const cJSON *key) {
    char *text;
    size_t len;
    if (access(path, F_OK) != 0 || file_read_all(path, (size_t)1 << 30, &text, &len) < 0) return -1;
    cJSON *doc = cJSON_Parse(text);
    free(text);
    long tokens = -1;
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(doc, "version");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(doc, "files");
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(doc, "tokens");
    if (cJSON_IsNumber(version) && version->valuedouble == CACHE_VERSION && files && cJSON_IsNumber(count) &&
        count->valuedouble >= 0 && count->valuedouble <= 9e18 && cJSON_Compare(files, key, 1))
        tokens = (long)count->valuedouble; /* a count beyond long's range is no cache: counted again */
    cJSON_Delete(doc);
    return tokens;
}

static int cache_store(const char *path, const cJSON *key, long tokens) {
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "version", CACHE_VERSION);
    cJSON_AddNumberToObject(doc, "tokens", (double)tokens);
    cJSON_AddItemToObject(doc, "files", cJSON_Duplicate(key, 1));
    char *text = cJSON_Print(doc);
    cJSON_Delete(doc);
    const size_t len = strlen(text);
    char *with_newline = xmalloc(len + 2);
    memcpy(with_newline, text, len);
    with_newline[len] = '\n';
    free(text);
    const int rc = file_write_atomic(path, with_newline, len + 1);
    free(with_newline);
    return rc;
}

int plan_count_tokens(const char *pattern, const char *cache_dir, int quiet, long *tokens, int *cached) {
    *tokens = 0;
    if (cached) *cached = 0;
    FileList l;
    if (file_list(&l, pattern) < 0) return -1;
    char cache_path[4096] = "";
    cJSON *key = NULL;
    if (cache_dir) {
        snprintf(cache_path, sizeof cache_path, "%s/%s", cache_dir, CACHE_NAME);
        key = cache_key(&l);
        const long hit = cache_lookup(cache_path, key);
        if (hit >= 0) {
            *tokens = hit;
            if (cached) *cached = 1;
            cJSON_Delete(key);
            file_list_free(&l);
            return 0;
        }
    }
    Progress pr = {.quiet = quiet, .start = elmo_now()};
    pr.last = pr.start;
    for (int i = 0; i < l.n; i++) pr.total_bytes += (double)l.st[i].st_size;
    char *buf = xmalloc(CHUNK_BYTES);
    Count c = {0};
    int rc = 0;
    for (int i = 0; i < l.n && rc == 0; i++) rc = count_file(l.names[i], buf, &c, &pr);
    free(buf);
    if (rc == 0) {
        *tokens = c.tokens;
        if (!quiet && elmo_now() - pr.start >= PROGRESS_SECONDS)
            fprintf(stderr, "count tokens: %ld tokens in %d files, %.0f s\n", c.tokens, l.n, elmo_now() - pr.start);
        if (key && cache_store(cache_path, key, c.tokens) < 0 && !quiet)
            elmo_note("%s: the token count is not cached (%s)", cache_path, elmo_error());
    }
    cJSON_Delete(key);
    file_list_free(&l);
    return rc;
}

/* ---------------------------------------------------------------- memory */

/* Bytes of text in path, read through zlib (the slow way, for a gzip file whose trailer
 * cannot be right). */
static int measure_text(const char *path, double *bytes) {
    gzFile f;
    if (open_text(path, &f) < 0) return -1;
    char *buf = xmalloc(CHUNK_BYTES);
    double total = 0;
    int n;
    while ((n = gzread(f, buf, (unsigned)CHUNK_BYTES)) > 0) total += n;
    int rc = read_error(f, path);
    if (n < 0 && rc == 0) rc = elmo_fail("%s: read error", path);
    free(buf);
    gzclose(f);
    *bytes = total;
    return rc;
}

/* Deflate expands by at most 1032 times. */
#define MAX_DEFLATE_RATIO 1032.0

/* Bytes the text of path takes once decompressed. For a gzip file, its trailer's ISIZE
 * (the size modulo 2^32 of the last member: exact for one member under 4 GiB) when that
 * can be the size: no less than the compressed data (stored blocks grow 5 bytes per
 * 64 KiB; header and trailer take 18 and more), no more than deflate reaches. Otherwise
 * (several members, a damaged trailer, some files of 4 GiB and more) the file is read.
 * A plain file: its size. */
static int text_bytes(const char *path, const struct stat *st, double *bytes) {
    *bytes = (double)st->st_size;
    FILE *f = fopen(path, "rb");
    if (!f) return elmo_fail("%s: cannot open: %s", path, strerror(errno));
    unsigned char head[2], tail[4];
    const int is_gz = st->st_size >= 2 && fread(head, 1, 2, f) == 2 && head[0] == 0x1f && head[1] == 0x8b;
    const int have_tail = is_gz && st->st_size >= 18 && fseek(f, -4L, SEEK_END) == 0 && fread(tail, 1, 4, f) == 4;
    fclose(f);
    if (!is_gz) return 0;
    const double csize = (double)st->st_size;
    if (have_tail) {
        const double size = (double)((uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 |
                                     (uint32_t)tail[3] << 24);
        if (size >= csize * 0.999 - 1024 && size <= csize * MAX_DEFLATE_RATIO) {
            *bytes = size;
            return 0;
        }
    }
    return measure_text(path, bytes);
}

/* The next token of [p, end) (white space as text_space_len): its start in *start (end
 * when there is none); returns its end. */
static const char *next_token(const char *p, const char *end, const char **start) {
    int sp;
    while (p < end && (sp = text_space_len(p, end)) > 0) p += sp;
    *start = p;
    while (p < end && !text_space_len(p, end)) p++; /* continuation bytes never start white space */
    return p;
}

/* Distinct tokens among the words of the lines first, first + stride, ... of
 * text[line[i] .. line[i+1]) until N words are taken; table has n_slots (a power of two
 * >= 2N) entries. */
static long distinct_in(const char *text, const size_t *line, long n_lines, long first, long stride, long N,
                        const char **table, uint32_t *lens, size_t n_slots) {
    memset(table, 0, n_slots * sizeof *table);
    long words = 0, distinct = 0;
    for (long i = first; i < n_lines && words < N; i += stride) {
        const char *p = text + line[i], *end = text + line[i + 1], *s;
        while (words < N && (p = next_token(p, end, &s)) > s) {
            const uint32_t len = (uint32_t)(p - s);
            uint64_t h = 1469598103934665603ull; /* FNV-1a */
            for (uint32_t k = 0; k < len; k++) h = (h ^ (unsigned char)s[k]) * 1099511628211ull;
            size_t slot = (size_t)(h ^ h >> 29) & (n_slots - 1);
            while (table[slot] && !(lens[slot] == len && memcmp(table[slot], s, len) == 0))
                slot = (slot + 1) & (n_slots - 1);
            if (!table[slot]) {
                table[slot] = s;
                lens[slot] = len;
                distinct++;
            }
            words++;
        }
    }
    return distinct;
}

/* From the first SAMPLE_BYTES of text of path: the mean bytes per line, and the most
 * distinct tokens among N words of lines spread over the sample (up to 8 such windows,
 * disjoint, each taking every stride-th line), plus the two sentence markers: what a
 * step's batches of N positions hold. *distinct = N when the sample is not valid text. */
static int sample_shard(const char *path, long N, double *line_bytes, long *distinct) {
    gzFile f;
    if (open_text(path, &f) < 0) return -1;
    char *buf = xmalloc(SAMPLE_BYTES);
    size_t len = 0;
    int n = 1;
    while (len < SAMPLE_BYTES && (n = gzread(f, buf + len, (unsigned)(SAMPLE_BYTES - len))) > 0) len += (size_t)n;
    int rc = n < 0 ? read_error(f, path) : 0;
    if (n < 0 && rc == 0) rc = elmo_fail("%s: read error", path);
    gzclose(f);
    *line_bytes = 1.0;
    *distinct = N;
    if (rc < 0 || len == 0) {
        free(buf);
        return rc;
    }
    /* whole lines only (all of it when there is no newline) */
    long n_lines = 0;
    for (const char *p = buf, *end = buf + len; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) n_lines++;
    size_t used = len;
    if (n_lines == 0) n_lines = 1;
    else if (len < SAMPLE_BYTES && buf[len - 1] != '\n') n_lines++;
    else while (buf[used - 1] != '\n') used--;
    *line_bytes = (double)used / (double)n_lines;
    if (memchr(buf, '\0', used) || utf8_invalid_offset(buf, used) >= 0) {
        free(buf);
        return 0;
    }
    size_t *line = xmalloc(((size_t)n_lines + 1) * sizeof *line);
    long words = 0, k = 0;
    line[0] = 0;
    for (size_t i = 0; i < used && k < n_lines; i++)
        if (buf[i] == '\n') line[++k] = i + 1;
    line[n_lines] = used;
    for (const char *p = buf, *end = buf + used, *s; (p = next_token(p, end, &s)) > s;) words++;
    const long stride = words > N ? words / N : 1, windows = stride < 8 ? stride : 8;
    size_t n_slots = 16;
    while (n_slots < 2 * (size_t)N) n_slots *= 2;
    const char **table = xmalloc(n_slots * sizeof *table);
    uint32_t *lens = xmalloc(n_slots * sizeof *lens);
    long most = 0;
    for (long w = 0; w < windows; w++) {
        const long d = distinct_in(buf, line, n_lines, w, stride, N, table, lens, n_slots);
        if (d > most) most = d;
    }
    *distinct = most + 2 < N ? most + 2 : N;
    free(table);
    free(lens);
    free(line);
    free(buf);
    return 0;
}

/* What one reader holds with a shard of `bytes` bytes of text in lines of `line_bytes`
 * (train/dataset.c): the text itself (+1 spare byte), each line's start offset and its
 * place in the shuffled order (a size_t each), and its B streams, each a copy of its
 * sentence with a pointer and an id per token (tokens taken as 6 bytes each). */
static double reader_bytes(double bytes, double line_bytes, int B) {
    const double lines = bytes / line_bytes;
    const double per_line = 2.0 * sizeof(size_t);
    const double stream = 2.0 * line_bytes + line_bytes / 6.0 * (sizeof(char *) + sizeof(int32_t));
    return bytes + 2 + lines * per_line + B * stream;
}

/* The vocabulary of V words (src/vocab.c): a pointer and a copy of each word (a malloc
 * chunk of 32 bytes for the words up to 24 bytes, nearly all of them), and a hash table
 * of 2V to 4V int slots. */
static double vocab_bytes(long V) {
    double slots = 16;
    while (slots < 2.0 * V) slots *= 2;
    return V * (sizeof(char *) + 32.0) + slots * sizeof(int);
}

/* HDF5's bytes per dataset of a checkpoint besides its data (object header, link, the
 * groups' B-trees and heaps shared out): fitted to the checkpoints of configs/tiny.json
 * and small.json (525 and 494). */
#define CHECKPOINT_BYTES_PER_DATASET 512.0
/* Bytes per string of a string dataset (the heap object and its reference). */
#define CHECKPOINT_BYTES_PER_STRING 32.0

/* One checkpoint (train/checkpoint.c): every tensor and its accumulator, step and
 * generator, the carried states, and per reader 10 small datasets, the shards' names and
 * B streams of half a sentence each on average. */
static double checkpoint_bytes(const BilmModel *m, int B, double line_bytes, int n_shards, double name_bytes) {
    const ElmoOptions *o = m->opt;
    const int n_dirs = o->bidirectional ? 2 : 1, L = o->n_layers;
    double data = 0, datasets = 0;
    for (int i = 0; i < m->n_entries; i++) data += 2.0 * (double)m->entries[i].size * sizeof(float);
    datasets += 2.0 * m->n_entries;
    data += 5 * sizeof(uint64_t);
    datasets += 2;
    data += (double)n_dirs * L * B * (o->lstm_dim + options_state_dim(o)) * sizeof(float);
    datasets += 2.0 * n_dirs * L;
    const double strings = 1 + n_shards + B;
    data += n_dirs * (8 * sizeof(int64_t) + 8 * sizeof(uint64_t) + (1 + n_shards) * name_bytes + B * line_bytes / 2 +
                      strings * CHECKPOINT_BYTES_PER_STRING);
    datasets += n_dirs * 13.0;
    return data + datasets * CHECKPOINT_BYTES_PER_DATASET;
}

int plan_memory(const ElmoOptions *o, long V, int B, int T, const char *pattern, PlanMemory *out) {
    memset(out, 0, sizeof *out);
    const int n_dirs = o->bidirectional ? 2 : 1;
    const long N = (long)n_dirs * B * T; /* positions of a step */
    double shard = 0, line_bytes = 100, name_bytes = 0;
    long distinct = 0;
    int n_shards = 0;
    if (pattern) {
        FileList l;
        if (file_list(&l, pattern) < 0) return -1;
        int largest = 0;
        for (int i = 0; i < l.n; i++) {
            double bytes;
            if (text_bytes(l.names[i], &l.st[i], &bytes) < 0) {
                file_list_free(&l);
                return -1;
            }
            if (bytes > shard) {
                shard = bytes;
                largest = i;
            }
            name_bytes += (double)strlen(l.names[i]) / l.n;
        }
        n_shards = l.n;
        const int rc = sample_shard(l.names[largest], N, &line_bytes, &distinct);
        file_list_free(&l);
        if (rc < 0) return -1;
    }
    BilmModel layout;
    model_layout(&layout, o, V);
    TrainerNeed need;
    trainer_need(&need, &layout, B, T, TRAINER_TRAIN, distinct);
    LmBatch batch;
    lm_batch_init(&batch, B, T, o->max_chars);
    const double batch_bytes = (double)batch.bytes;
    lm_batch_free(&batch);

    out->params = (double)layout.n_floats * sizeof(float);
    out->optimizer = (double)need.accumulators;
    out->gradients = (double)need.gradient;
    out->activations = (double)need.activations - (double)need.untouched;
    out->untouched = (double)need.untouched;
    out->softmax = (double)need.softmax_work + (double)need.softmax_grads;
    out->data = (pattern ? n_dirs * reader_bytes(shard, line_bytes, B) : 0) + n_dirs * batch_bytes + vocab_bytes(V);
    out->baseline = PLAN_BASELINE_BYTES + PLAN_THREAD_BYTES * omp_get_max_threads();
    out->total = out->params + out->optimizer + out->gradients + out->activations + out->softmax + out->data +
                 out->baseline;
    out->checkpoint = checkpoint_bytes(&layout, B, line_bytes, n_shards, name_bytes);
    out->shard_bytes = shard;
    out->line_bytes = pattern ? line_bytes : 0;
    out->distinct_tokens = distinct;
    model_free(&layout);
    return 0;
}

/* ---------------------------------------------------------------- the machine */

/* A number from a one-line file (cgroup v2), or -1 ("max", absent, unreadable). */
static double read_number(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    double v = -1;
    char word[64];
    if (fscanf(f, "%63s", word) == 1 && strcmp(word, "max") != 0) v = strtod(word, NULL);
    fclose(f);
    return v;
}

double plan_available_memory(void) {
    double avail = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lf kB", &avail) == 1) {
                avail *= 1024.0;
                break;
            }
        fclose(f);
    }
    if (avail < 0) avail = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    /* the cgroup v2 this process belongs to ("0::/path" in /proc/self/cgroup) */
    f = fopen("/proc/self/cgroup", "r");
    if (f) {
        char line[4096], path[4200];
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "0::", 3) != 0) continue;
            line[strcspn(line, "\n")] = '\0';
            const char *dir = strcmp(line + 3, "/") == 0 ? "" : line + 3;
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", dir);
            const double max = read_number(path);
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", dir);
            const double current = read_number(path);
            if (max >= 0 && current >= 0 && max - current < avail) avail = max > current ? max - current : 0;
        }
        fclose(f);
    }
    return avail;
}

double plan_free_disk(const char *dir) {
    struct statvfs s;
    if (statvfs(dir, &s) < 0) {
        elmo_fail("%s: cannot query the file system: %s", dir, strerror(errno));
        return -1;
    }
    return (double)s.f_bavail * (double)s.f_frsize;
}

const char *plan_format_bytes(char *buf, size_t size, double bytes) {
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    int u = 0;
    double v = bytes;
    while (u < 6 && fabs(v) >= 999.5) { /* what would print as 1000 takes the next unit */
        v /= 1000.0;
        u++;
    }
    if (u == 0) snprintf(buf, size, "%.0f B", v);
    else if (fabs(v) < 9.95) snprintf(buf, size, "%.1f %s", v, units[u]);
    else snprintf(buf, size, "%.0f %s", v, units[u]);
    return buf;
}
