/* tfbundle.c - see tfbundle.h. The formats, from TensorFlow's tensor_bundle.proto and
 * LevelDB's table_format.md:
 *   footer (last 48 bytes): metaindex handle, index handle (each offset, size as varint64),
 *     zero padding to 40 bytes, magic 0xdb4775248b80fb57 (fixed64 little-endian);
 *   block: entries { varint shared, varint non_shared, varint value_len, key[non_shared],
 *     value }, restarts (uint32 each), num_restarts (uint32); then a 5-byte trailer:
 *     type (0 none, 1 snappy) and the masked CRC32C of the stored contents + type byte;
 *   the index block maps each data block's last key to its handle.
 */
#include "tfbundle.h"

#include <errno.h>
#include <inttypes.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "crc32c.h"

#define TABLE_MAGIC 0xdb4775248b80fb57ull
#define FOOTER_SIZE 48
#define MAX_BLOCK (256u << 20) /* no sane index block is larger */

struct TfBundle {
    char *prefix;
    char *index_path;
    int num_shards;
    TfTensor *tensors;
    int n, cap;
};

/* ------------------------------------------------------------------- varints, protobuf */

/* Reads a varint64 from [*p, end); 0 on success. */
static int get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        const unsigned char byte = *(*p)++;
        r |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

static uint32_t get_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const unsigned char *p) { return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32; }

/* One protobuf field: its number, wire type, and value (varint / fixed) or bytes. */
typedef struct {
    uint32_t field;
    int wire;
    uint64_t v;
    const unsigned char *bytes;
    size_t len;
} PbField;

/* Next field of a message in [*p, end); 1 when read, 0 at the end, -1 when malformed. */
static int pb_next(const unsigned char **p, const unsigned char *end, PbField *f) {
    if (*p >= end) return 0;
    uint64_t key;
    if (get_varint(p, end, &key) < 0) return -1;
    f->field = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    switch (f->wire) {
    case 0: return get_varint(p, end, &f->v) < 0 ? -1 : 1;
    case 1:
        if (end - *p < 8) return -1;
        f->v = get_le64(*p);
        *p += 8;
        return 1;
    case 5:
        if (end - *p < 4) return -1;
        f->v = get_le32(*p);
        *p += 4;
        return 1;
    case 2: {
        uint64_t len;
        if (get_varint(p, end, &len) < 0 || len > (uint64_t)(end - *p)) return -1;
        f->bytes = *p;
        f->len = (size_t)len;
        *p += len;
        return 1;
    }
    default: return -1;
    }
}

/* TensorShapeProto: dim = 2 { size = 1 }, unknown_rank = 3. */
static int parse_shape(TfTensor *t, const unsigned char *p, const unsigned char *end) {
    PbField f;
    int r;
    t->rank = 0;
    while ((r = pb_next(&p, end, &f)) == 1) {
        if (f.field == 3 && f.wire == 0 && f.v) t->rank = -1;
        if (f.field != 2 || f.wire != 2) continue;
        if (t->rank < 0 || t->rank >= TFB_MAX_RANK) return -1;
        const unsigned char *q = f.bytes, *qend = f.bytes + f.len;
        PbField d;
        int64_t size = 0;
        int rd;
        while ((rd = pb_next(&q, qend, &d)) == 1)
            if (d.field == 1 && d.wire == 0) size = (int64_t)d.v;
        if (rd < 0) return -1;
        t->dims[t->rank++] = size;
    }
    return r;
}

/* BundleEntryProto: dtype 1, shape 2, shard_id 3, offset 4, size 5, crc32c 6 (fixed32),
 * slices 7. */
static int parse_entry(TfTensor *t, const unsigned char *p, size_t len) {
    const unsigned char *end = p + len;
    PbField f;
    int r;
    while ((r = pb_next(&p, end, &f)) == 1) {
        switch (f.field) {
        case 1: t->dtype = (int)f.v; break;
        case 2:
            if (f.wire != 2 || parse_shape(t, f.bytes, f.bytes + f.len) < 0) return -1;
            break;
        case 3: t->shard = (int)f.v; break;
        case 4: t->offset = f.v; break;
        case 5: t->size = f.v; break;
        case 6: t->crc32c = (uint32_t)f.v; break;
        case 7: t->sliced = 1; break;
        default: break;
        }
    }
    return r;
}

/* BundleHeaderProto: num_shards 1, endianness 2 (0 little), version 3. */
static int parse_header(TfBundle *b, const unsigned char *p, size_t len) {
    const unsigned char *end = p + len;
    PbField f;
    int r;
    while ((r = pb_next(&p, end, &f)) == 1) {
        if (f.field == 1 && f.wire == 0) b->num_shards = (int)f.v;
        if (f.field == 2 && f.wire == 0 && f.v != 0)
            return elmo_fail("%s: big-endian bundle: not supported", b->index_path);
    }
    return r < 0 ? elmo_fail("%s: malformed bundle header", b->index_path) : 0;
}

/* ------------------------------------------------------------------------------ table */

typedef struct {
    const unsigned char *data; /* the whole index file */
    size_t size;
    const char *path;
} Table;

/* Reads the block at handle (offset, size): checks its trailer's CRC, decompresses it
 * when needed. *out is allocated. */
static int read_block(const Table *t, uint64_t offset, uint64_t size, unsigned char **out, size_t *out_len) {
    if (offset > t->size || size > t->size - offset || t->size - offset - size < 5 || size > MAX_BLOCK)
        return elmo_fail("%s: block at offset %" PRIu64 " (size %" PRIu64 ") lies outside the file", t->path, offset,
                         size);
    const unsigned char *blk = t->data + offset;
    const unsigned char type = blk[size];
    const uint32_t stored = crc32c_unmask(get_le32(blk + size + 1));
    const uint32_t actual = crc32c_extend(crc32c(blk, size), &type, 1);
    if (stored != actual)
        return elmo_fail("%s: block at offset %" PRIu64 ": CRC mismatch (stored %08x, computed %08x)", t->path,
                         offset, stored, actual);
    if (type == 0) {
        *out = xmalloc(size ? size : 1);
        memcpy(*out, blk, size);
        *out_len = size;
        return 0;
    }
    if (type != 1)
        return elmo_fail("%s: block at offset %" PRIu64 ": unknown compression type %d", t->path, offset, type);
    size_t n;
    if (snappy_uncompressed_length((const char *)blk, size, &n) != SNAPPY_OK || n > MAX_BLOCK)
        return elmo_fail("%s: block at offset %" PRIu64 ": corrupt snappy data", t->path, offset);
    *out = xmalloc(n ? n : 1);
    if (snappy_uncompress((const char *)blk, size, (char *)*out, &n) != SNAPPY_OK) {
        free(*out);
        return elmo_fail("%s: block at offset %" PRIu64 ": corrupt snappy data", t->path, offset);
    }
    *out_len = n;
    return 0;
}

typedef int (*EntryFn)(void *ctx, const char *key, size_t key_len, const unsigned char *value, size_t value_len);

/* Calls fn for every entry of a block, in order, rebuilding the prefix-compressed keys. */
static int block_entries(const Table *t, uint64_t offset, const unsigned char *blk, size_t len, EntryFn fn,
                         void *ctx) {
    if (len < 4) return elmo_fail("%s: block at offset %" PRIu64 ": too short", t->path, offset);
    const uint32_t n_restarts = get_le32(blk + len - 4);
    if (n_restarts > (len - 4) / 4)
        return elmo_fail("%s: block at offset %" PRIu64 ": bad restart count %u", t->path, offset, n_restarts);
    const unsigned char *p = blk, *end = blk + len - 4 - 4 * (size_t)n_restarts;
    char *key = NULL;
    size_t key_len = 0, key_cap = 0;
    int rc = 0;
    while (p < end && rc == 0) {
        uint64_t shared, non_shared, vlen;
        if (get_varint(&p, end, &shared) < 0 || get_varint(&p, end, &non_shared) < 0 ||
            get_varint(&p, end, &vlen) < 0 || shared > key_len || non_shared > (uint64_t)(end - p) ||
            vlen > (uint64_t)(end - p) - non_shared) {
            rc = elmo_fail("%s: block at offset %" PRIu64 ": malformed entry at byte %td", t->path, offset,
                           p - blk);
            break;
        }
        if (shared + non_shared + 1 > key_cap) {
            key_cap = 2 * (shared + non_shared + 1);
            key = xrealloc(key, key_cap);
        }
        memcpy(key + shared, p, non_shared);
        key_len = shared + non_shared;
        key[key_len] = '\0';
        p += non_shared;
        rc = fn(ctx, key, key_len, p, vlen);
        p += vlen;
    }
    free(key);
    return rc;
}

/* An index entry: the handle of a data block, whose entries go to the bundle. */
typedef struct {
    const Table *table;
    TfBundle *b;
    int saw_header;
} IndexCtx;

static int on_data_entry(void *ctx, const char *key, size_t key_len, const unsigned char *value, size_t vlen) {
    IndexCtx *c = ctx;
    TfBundle *b = c->b;
    if (key_len == 0) {
        c->saw_header = 1;
        return parse_header(b, value, vlen);
    }
    if (strlen(key) != key_len) return elmo_fail("%s: tensor name with a NUL byte", b->index_path);
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->tensors = xrealloc(b->tensors, (size_t)b->cap * sizeof *b->tensors);
    }
    TfTensor *t = &b->tensors[b->n];
    memset(t, 0, sizeof *t);
    if (parse_entry(t, value, vlen) < 0) return elmo_fail("%s: tensor %s: malformed BundleEntryProto", b->index_path, key);
    if (b->n > 0 && strcmp(b->tensors[b->n - 1].name, key) >= 0)
        return elmo_fail("%s: tensor %s: keys out of order", b->index_path, key);
    t->name = xstrdup(key);
    b->n++;
    return 0;
}

static int on_index_entry(void *ctx, const char *key, size_t key_len, const unsigned char *value, size_t vlen) {
    IndexCtx *c = ctx;
    const unsigned char *p = value, *end = value + vlen;
    uint64_t off, size;
    if (get_varint(&p, end, &off) < 0 || get_varint(&p, end, &size) < 0)
        return elmo_fail("%s: malformed block handle in the index block", c->table->path);
    unsigned char *blk;
    size_t len;
    if (read_block(c->table, off, size, &blk, &len) < 0) return -1;
    const int rc = block_entries(c->table, off, blk, len, on_data_entry, c);
    free(blk);
    return rc;
}

/* ----------------------------------------------------------------------------- bundle */

static char *shard_path(const TfBundle *b, int shard) {
    const size_t n = strlen(b->prefix) + 64;
    char *s = xmalloc(n);
    snprintf(s, n, "%s.data-%05d-of-%05d", b->prefix, shard, b->num_shards);
    return s;
}

static int read_index(TfBundle *b, const unsigned char *data, size_t size) {
    const Table t = {data, size, b->index_path};
    if (size < FOOTER_SIZE) return elmo_fail("%s: too short for a table (%zu bytes)", b->index_path, size);
    const unsigned char *footer = data + size - FOOTER_SIZE;
    if (get_le64(footer + 40) != TABLE_MAGIC)
        return elmo_fail("%s: bad table magic: not a TensorFlow checkpoint index", b->index_path);
    const unsigned char *p = footer, *end = footer + 40;
    uint64_t meta_off, meta_size, index_off, index_size;
    if (get_varint(&p, end, &meta_off) < 0 || get_varint(&p, end, &meta_size) < 0 ||
        get_varint(&p, end, &index_off) < 0 || get_varint(&p, end, &index_size) < 0)
        return elmo_fail("%s: malformed footer", b->index_path);
    unsigned char *index;
    size_t len;
    if (read_block(&t, index_off, index_size, &index, &len) < 0) return -1;
    IndexCtx ctx = {&t, b, 0};
    const int rc = block_entries(&t, index_off, index, len, on_index_entry, &ctx);
    free(index);
    if (rc < 0) return -1;
    if (!ctx.saw_header) return elmo_fail("%s: no bundle header (the entry with the empty key)", b->index_path);
    if (b->num_shards < 1) return elmo_fail("%s: bundle header: %d shards", b->index_path, b->num_shards);
    return 0;
}

int tfbundle_open(TfBundle **out, const char *prefix) {
    *out = NULL;
    TfBundle *b = xcalloc(1, sizeof *b);
    b->prefix = xstrdup(prefix);
    const size_t n = strlen(prefix) + 8;
    b->index_path = xmalloc(n);
    snprintf(b->index_path, n, "%s.index", prefix);
    int rc = 0;
    FILE *f = fopen(b->index_path, "rb");
    unsigned char *data = NULL;
    long size = 0;
    if (!f) rc = elmo_fail("%s: cannot open: %s", b->index_path, strerror(errno));
    if (rc == 0 && (fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0))
        rc = elmo_fail("%s: cannot seek: %s", b->index_path, strerror(errno));
    if (rc == 0) {
        data = xmalloc((size_t)size + 1);
        if (fread(data, 1, (size_t)size, f) != (size_t)size)
            rc = elmo_fail("%s: read error: %s", b->index_path, strerror(errno));
    }
    if (f) fclose(f);
    if (rc == 0) rc = read_index(b, data, (size_t)size);
    free(data);
    for (int i = 0; rc == 0 && i < b->n; i++) {
        const TfTensor *t = &b->tensors[i];
        if (t->shard < 0 || t->shard >= b->num_shards)
            rc = elmo_fail("%s: tensor %s: shard %d of %d", b->index_path, t->name, t->shard, b->num_shards);
    }
    for (int s = 0; rc == 0 && s < b->num_shards; s++) {
        char *path = shard_path(b, s);
        struct stat st;
        if (stat(path, &st) < 0) rc = elmo_fail("%s: missing data shard: %s", path, strerror(errno));
        free(path);
    }
    if (rc < 0) {
        tfbundle_close(b);
        return -1;
    }
    *out = b;
    return 0;
}

void tfbundle_close(TfBundle *b) {
    if (!b) return;
    for (int i = 0; i < b->n; i++) free(b->tensors[i].name);
    free(b->tensors);
    free(b->prefix);
    free(b->index_path);
    free(b);
}

int tfbundle_count(const TfBundle *b) { return b->n; }

const TfTensor *tfbundle_tensor(const TfBundle *b, int i) { return i >= 0 && i < b->n ? &b->tensors[i] : NULL; }

const TfTensor *tfbundle_find(const TfBundle *b, const char *name) {
    int lo = 0, hi = b->n - 1; /* sorted, as the table is */
    while (lo <= hi) {
        const int mid = lo + (hi - lo) / 2;
        const int c = strcmp(b->tensors[mid].name, name);
        if (c == 0) return &b->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

uint64_t tfbundle_elements(const TfTensor *t) {
    uint64_t n = 1;
    for (int r = 0; r < t->rank; r++) n *= (uint64_t)(t->dims[r] < 0 ? 0 : t->dims[r]);
    return n;
}

const char *tfbundle_dtype_name(int dtype) {
    switch (dtype) {
    case TFB_DT_FLOAT: return "float32";
    case TFB_DT_DOUBLE: return "float64";
    case TFB_DT_INT32: return "int32";
    case TFB_DT_UINT8: return "uint8";
    case TFB_DT_INT16: return "int16";
    case TFB_DT_INT8: return "int8";
    case TFB_DT_STRING: return "string";
    case TFB_DT_INT64: return "int64";
    case TFB_DT_BOOL: return "bool";
    default: {
        static _Thread_local char buf[32];
        snprintf(buf, sizeof buf, "dtype_%d", dtype);
        return buf;
    }
    }
}

const char *tfbundle_shape_str(const TfTensor *t, char *buf, size_t size) {
    if (t->rank < 0) {
        snprintf(buf, size, "(unknown)");
        return buf;
    }
    size_t len = 0;
    len += (size_t)snprintf(buf + len, size - len, "(");
    for (int r = 0; r < t->rank && len < size; r++)
        len += (size_t)snprintf(buf + len, size - len, "%s%" PRId64, r ? ", " : "", t->dims[r]);
    if (len < size) snprintf(buf + len, size - len, ")");
    return buf;
}

static size_t dtype_size(int dtype) {
    switch (dtype) {
    case TFB_DT_FLOAT: case TFB_DT_INT32: return 4;
    case TFB_DT_DOUBLE: case TFB_DT_INT64: return 8;
    case TFB_DT_INT16: return 2;
    case TFB_DT_UINT8: case TFB_DT_INT8: case TFB_DT_BOOL: return 1;
    default: return 0;
    }
}

/* The verified bytes of a numeric tensor (allocated). */
static int read_bytes(TfBundle *b, const TfTensor *t, unsigned char **out) {
    char *path = shard_path(b, t->shard);
    const size_t es = dtype_size(t->dtype);
    int rc = 0;
    if (t->sliced) rc = elmo_fail("%s: tensor %s: a partitioned variable: not supported", b->index_path, t->name);
    else if (es == 0 || t->rank < 0)
        rc = elmo_fail("%s: tensor %s: %s: not a numeric tensor", b->index_path, t->name, tfbundle_dtype_name(t->dtype));
    else if (t->size != tfbundle_elements(t) * es)
        rc = elmo_fail("%s: tensor %s: %" PRIu64 " bytes for %" PRIu64 " elements of %s", b->index_path, t->name,
                       t->size, tfbundle_elements(t), tfbundle_dtype_name(t->dtype));
    unsigned char *data = NULL;
    FILE *f = NULL;
    if (rc == 0 && !(f = fopen(path, "rb"))) rc = elmo_fail("%s: cannot open: %s", path, strerror(errno));
    if (rc == 0) {
        data = xmalloc(t->size ? t->size : 1);
        if (fseeko(f, (off_t)t->offset, SEEK_SET) < 0 || fread(data, 1, t->size, f) != t->size)
            rc = elmo_fail("%s: tensor %s: cannot read %" PRIu64 " bytes at offset %" PRIu64 " (truncated?)", path,
                           t->name, t->size, t->offset);
    }
    if (f) fclose(f);
    if (rc == 0) {
        const uint32_t actual = crc32c(data, t->size), stored = crc32c_unmask(t->crc32c);
        if (actual != stored)
            rc = elmo_fail("%s: tensor %s: CRC mismatch (stored %08x, computed %08x)", path, t->name, stored, actual);
    }
    free(path);
    if (rc < 0) {
        free(data);
        return -1;
    }
    *out = data;
    return 0;
}

int tfbundle_read_floats(TfBundle *b, const char *name, float *out, size_t n) {
    const TfTensor *t = tfbundle_find(b, name);
    if (!t) return elmo_fail("%s: no tensor %s", b->index_path, name);
    if (t->dtype != TFB_DT_FLOAT && t->dtype != TFB_DT_DOUBLE && t->dtype != TFB_DT_INT32 &&
        t->dtype != TFB_DT_INT64)
        return elmo_fail("%s: tensor %s: %s, expected float32", b->index_path, name, tfbundle_dtype_name(t->dtype));
    if (t->rank < 0 || tfbundle_elements(t) != n)
        return elmo_fail("%s: tensor %s: %" PRIu64 " elements, expected %zu", b->index_path, name,
                         tfbundle_elements(t), n);
    unsigned char *d;
    if (read_bytes(b, t, &d) < 0) return -1;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case TFB_DT_FLOAT: {
            uint32_t u = get_le32(d + 4 * i);
            memcpy(&out[i], &u, 4);
            break;
        }
        case TFB_DT_DOUBLE: {
            uint64_t u = get_le64(d + 8 * i);
            double x;
            memcpy(&x, &u, 8);
            out[i] = (float)x;
            break;
        }
        case TFB_DT_INT32: out[i] = (float)(int32_t)get_le32(d + 4 * i); break;
        default: out[i] = (float)(int64_t)get_le64(d + 8 * i); break;
        }
    }
    free(d);
    return 0;
}

int tfbundle_read_int64(TfBundle *b, const char *name, int64_t *out) {
    const TfTensor *t = tfbundle_find(b, name);
    if (!t) return elmo_fail("%s: no tensor %s", b->index_path, name);
    if (t->dtype != TFB_DT_INT64 && t->dtype != TFB_DT_INT32)
        return elmo_fail("%s: tensor %s: %s, expected int64", b->index_path, name, tfbundle_dtype_name(t->dtype));
    if (t->rank < 0 || tfbundle_elements(t) != 1)
        return elmo_fail("%s: tensor %s: not a scalar", b->index_path, name);
    unsigned char *d;
    if (read_bytes(b, t, &d) < 0) return -1;
    *out = t->dtype == TFB_DT_INT64 ? (int64_t)get_le64(d) : (int64_t)(int32_t)get_le32(d);
    free(d);
    return 0;
}
