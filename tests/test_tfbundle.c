/* test_tfbundle.c - the TensorFlow checkpoint reader (src/tfbundle.c) and `elmo import-tf`:
 * the real bundles of fixtures/tf-bundle, corruptions of them (each a one-line error naming
 * the file), and bundles written here by a small writer (a LevelDB table of many small
 * blocks, restart points every 16 keys, some blocks snappy-compressed, several data
 * shards) holding a bilm-tf checkpoint of both naming generations, imported and compared
 * tensor by tensor with the HDF5 output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "crc32c.h"
#include "h5io.h"
#include "model.h"
#include "options.h"
#include "testutil.h"
#include "tfbundle.h"
#include "vocab.h"

/* ------------------------------------------------------------------------- helpers */

static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fclose(f);
    return n;
}

/* XORs the byte at offset (negative: from the end) with 0x40. */
static void flip_byte(const char *path, long offset) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    if (offset < 0) offset += file_size(path);
    fseek(f, offset, SEEK_SET);
    const int c = fgetc(f);
    fseek(f, offset, SEEK_SET);
    fputc(c ^ 0x40, f);
    assert_int_equal(fclose(f), 0);
}

/* The error must be one line and contain `want`. */
static void assert_one_line_naming(const char *err, const char *want) {
    if (!strstr(err, want)) print_error("error '%s' does not name '%s'\n", err, want);
    assert_non_null(strstr(err, want));
    const char *nl = strchr(err, '\n');
    assert_true(nl == NULL || nl[1] == '\0');
}

/* -------------------------------------------------------------------- CRC32C, fixtures */

static void test_crc32c_known_answer(void **state) {
    assert_int_equal(crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c("", 0), 0);
    /* extending in pieces is the same as at once */
    assert_int_equal(crc32c_extend(crc32c("1234", 4), "56789", 5), 0xE3069283u);
    /* 32 zero bytes: the iSCSI test vector of RFC 3720 */
    const unsigned char zeros[32] = {0};
    assert_int_equal(crc32c(zeros, 32), 0x8A9136AAu);
    assert_int_equal(crc32c_unmask(crc32c_mask(0x12345678u)), 0x12345678u);
}

typedef struct {
    const char *name;
    int dtype, rank;
    float value;
} Expected;

static void check_bundle(const char *folder, const Expected *want, int n) {
    char rel[256], buf[4096];
    snprintf(rel, sizeof rel, "tf-bundle/%s/variables.index", folder);
    if (!fixture_path(buf, sizeof buf, rel)) {
        if (fixtures_required()) fail_msg("missing fixture %s", rel);
        skip();
    }
    buf[strlen(buf) - strlen(".index")] = '\0';
    TfBundle *b;
    if (tfbundle_open(&b, buf) < 0) fail_msg("%s", elmo_error());
    assert_int_equal(tfbundle_count(b), n);
    for (int i = 0; i < n; i++) {
        const TfTensor *t = tfbundle_tensor(b, i);
        assert_string_equal(t->name, want[i].name);
        assert_ptr_equal(tfbundle_find(b, want[i].name), t);
        assert_int_equal(t->dtype, want[i].dtype);
        assert_int_equal(t->rank, want[i].rank);
        for (int r = 0; r < t->rank; r++) assert_int_equal(t->dims[r], 1);
        if (t->dtype == TFB_DT_STRING) {
            float x;
            assert_int_equal(tfbundle_read_floats(b, t->name, &x, 1), -1); /* listed, not read */
            continue;
        }
        float x = -99;
        if (tfbundle_read_floats(b, t->name, &x, 1) < 0) fail_msg("%s", elmo_error());
        assert_true(x == want[i].value);
    }
    assert_null(tfbundle_find(b, "no/such/tensor"));
    tfbundle_close(b);
}

static void test_fixture_half_plus_two_cpu(void **state) { /* snappy-compressed index blocks */
    const Expected e[] = {{"a", 1, 0, 0.5f}, {"a2", 1, 0, 0.5f}, {"b", 1, 0, 2.0f}, {"c", 1, 0, 3.0f}, {"c2", 1, 0, 3.0f}};
    check_bundle("half_plus_two_cpu", e, 5);
}

static void test_fixture_half_plus_three(void **state) {
    const Expected e[] = {{"a", 1, 0, 0.5f}, {"b", 1, 0, 3.0f}, {"c", 1, 0, 3.0f}};
    check_bundle("half_plus_three", e, 3);
}

static void test_fixture_half_plus_two_mkl(void **state) {
    const Expected e[] = {{"a", 1, 0, 0.5f},
                          {"b", 1, 0, 2.0f},
                          {"c", 1, 0, 3.0f},
                          {"conv2d/bias", 1, 1, 0.0f},
                          {"conv2d/kernel", 1, 4, -0.52239597f},
                          {"conv2d_1/bias", 1, 1, 0.0f},
                          {"conv2d_1/kernel", 1, 4, -1.045112f},
                          {"conv2d_2/bias", 1, 1, 0.0f},
                          {"conv2d_2/kernel", 1, 4, 1.5779432f}};
    check_bundle("half_plus_two_mkl", e, 9);
}

static void test_fixture_counter(void **state) {
    const Expected e[] = {{"counter", 1, 0, 0.0f}};
    check_bundle("counter", e, 1);
}

static void test_fixture_tf2(void **state) { /* snappy, and a DT_STRING tensor */
    const Expected e[] = {{"_CHECKPOINTABLE_OBJECT_GRAPH", TFB_DT_STRING, 0, 0},
                          {"a/.ATTRIBUTES/VARIABLE_VALUE", 1, 0, 0.5f},
                          {"b/.ATTRIBUTES/VARIABLE_VALUE", 1, 0, 2.0f},
                          {"c/.ATTRIBUTES/VARIABLE_VALUE", 1, 0, 3.0f}};
    check_bundle("half_plus_two_tf2_cpu", e, 4);
}

/* A copy of fixture `folder` in the temp dir under `name`; its prefix into prefix. */
static int copy_fixture(const char *folder, const char *name, char *prefix, size_t size) {
    char rel[256], src[4096], dst[4096];
    snprintf(rel, sizeof rel, "tf-bundle/%s/variables.index", folder);
    if (!fixture_path(src, sizeof src, rel)) return -1;
    tmp_path(prefix, size, name);
    snprintf(dst, sizeof dst, "%s.index", prefix);
    copy_file(src, dst);
    snprintf(rel, sizeof rel, "tf-bundle/%s/variables.data-00000-of-00001", folder);
    assert_non_null(fixture_path(src, sizeof src, rel));
    snprintf(dst, sizeof dst, "%s.data-00000-of-00001", prefix);
    copy_file(src, dst);
    return 0;
}

static void skip_without_fixtures(void) {
    if (fixtures_required()) fail_msg("missing fixture tf-bundle");
    skip();
}

/* `elmo import-tf --list` fails with exit 2 and one line naming `want`, and tfbundle_open
 * (or a read of every tensor) too. */
static void assert_bundle_fails(const char *prefix, const char *want) {
    char args[8192], err[4096];
    snprintf(args, sizeof args, "import-tf --checkpoint '%s' --raw --output '%s.out.hdf5'", prefix, prefix);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_one_line_naming(err, want);
    char out[4096];
    snprintf(out, sizeof out, "%s.out.hdf5", prefix);
    assert_false(file_exists(out));
}

static void test_corrupt_magic(void **state) {
    char prefix[4096], index[4200];
    if (copy_fixture("half_plus_three", "magic", prefix, sizeof prefix) < 0) skip_without_fixtures();
    snprintf(index, sizeof index, "%s.index", prefix);
    flip_byte(index, -1);
    assert_bundle_fails(prefix, "magic.index: bad table magic");
    TfBundle *b;
    assert_int_equal(tfbundle_open(&b, prefix), -1);
    assert_null(b);
}

static void test_corrupt_block(void **state) {
    const char *folders[] = {"half_plus_three", "half_plus_two_cpu"}; /* plain and snappy */
    for (int k = 0; k < 2; k++) {
        char prefix[4096], index[4200], name[32];
        snprintf(name, sizeof name, "block%d", k);
        if (copy_fixture(folders[k], name, prefix, sizeof prefix) < 0) skip_without_fixtures();
        snprintf(index, sizeof index, "%s.index", prefix);
        flip_byte(index, 3); /* inside the first data block */
        char want[128];
        snprintf(want, sizeof want, "%s.index: block at offset 0: CRC mismatch", name);
        assert_bundle_fails(prefix, want);
    }
}

static void test_corrupt_tensor(void **state) {
    char prefix[4096], data[4200];
    if (copy_fixture("half_plus_three", "tensor", prefix, sizeof prefix) < 0) skip_without_fixtures();
    snprintf(data, sizeof data, "%s.data-00000-of-00001", prefix);
    flip_byte(data, 5); /* the second float: b */
    assert_bundle_fails(prefix, "tensor.data-00000-of-00001: tensor b: CRC mismatch");
    TfBundle *b;
    assert_int_equal(tfbundle_open(&b, prefix), 0); /* the index is fine */
    float x;
    assert_int_equal(tfbundle_read_floats(b, "a", &x, 1), 0);
    assert_true(x == 0.5f);
    assert_int_equal(tfbundle_read_floats(b, "b", &x, 1), -1);
    assert_int_equal(tfbundle_read_floats(b, "a", &x, 2), -1); /* wrong element count */
    tfbundle_close(b);
}

static void test_missing_shard(void **state) {
    char prefix[4096], data[4200];
    if (copy_fixture("half_plus_three", "noshard", prefix, sizeof prefix) < 0) skip_without_fixtures();
    snprintf(data, sizeof data, "%s.data-00000-of-00001", prefix);
    assert_int_equal(unlink(data), 0);
    assert_bundle_fails(prefix, "noshard.data-00000-of-00001: missing data shard");
}

/* ------------------------------------------------------------------- a bundle writer */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} Buf;

static void put(Buf *b, const void *data, size_t n) {
    if (n == 0) return;
    if (b->n + n > b->cap) {
        b->cap = 2 * (b->n + n) + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_varint(Buf *b, uint64_t v) {
    unsigned char c[10];
    int n = 0;
    do {
        c[n++] = (unsigned char)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(b, c, (size_t)n);
}

static void put_le32(Buf *b, uint32_t v) {
    const unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                                (unsigned char)(v >> 24)};
    put(b, c, 4);
}

static void put_le64(Buf *b, uint64_t v) {
    put_le32(b, (uint32_t)v);
    put_le32(b, (uint32_t)(v >> 32));
}

static void pb_varint(Buf *b, int field, uint64_t v) {
    put_varint(b, (uint64_t)field << 3);
    put_varint(b, v);
}

static void pb_bytes(Buf *b, int field, const Buf *m) {
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, m->n);
    put(b, m->p, m->n);
}

/* A tensor to write. */
typedef struct {
    char name[160];
    int dtype, rank;
    int64_t dims[4];
    unsigned char *bytes;
    size_t size;
} WTensor;

typedef struct {
    WTensor *t;
    int n, cap;
} WBundle;

static WTensor *add_tensor(WBundle *w, const char *name, int dtype, int rank, const int64_t *dims, const void *data,
                           size_t size) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->t = realloc(w->t, (size_t)w->cap * sizeof *w->t);
    }
    WTensor *t = &w->t[w->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->rank = rank;
    for (int r = 0; r < rank; r++) t->dims[r] = dims[r];
    t->bytes = malloc(size ? size : 1);
    memcpy(t->bytes, data, size);
    t->size = size;
    return t;
}

static void add_floats(WBundle *w, const char *name, int rank, const int *shape, const float *x) {
    int64_t dims[4];
    size_t n = 1;
    for (int r = 0; r < rank; r++) n *= (size_t)(dims[r] = shape[r]);
    add_tensor(w, name, TFB_DT_FLOAT, rank, dims, x, n * sizeof(float)); /* little-endian host */
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const WTensor *)a)->name, ((const WTensor *)b)->name);
}

/* A LevelDB block builder: prefix-compressed keys, a restart point every `interval`. */
typedef struct {
    Buf data;
    uint32_t restarts[4096];
    int n_restarts, since_restart, n_entries;
    char last[256];
} BlockBuilder;

static void block_add(BlockBuilder *bb, int interval, const char *key, const Buf *value) {
    size_t shared = 0;
    if (bb->since_restart == interval || bb->n_entries == 0) {
        bb->restarts[bb->n_restarts++] = (uint32_t)bb->data.n;
        bb->since_restart = 0;
    } else {
        while (bb->last[shared] && bb->last[shared] == key[shared]) shared++;
    }
    const size_t len = strlen(key);
    put_varint(&bb->data, shared);
    put_varint(&bb->data, len - shared);
    put_varint(&bb->data, value->n);
    put(&bb->data, key + shared, len - shared);
    put(&bb->data, value->p, value->n);
    snprintf(bb->last, sizeof bb->last, "%s", key);
    bb->since_restart++;
    bb->n_entries++;
}

/* Appends the finished block (compressed when `snappy` and it helps) with its trailer to
 * the file; its handle into handle; resets the builder. */
static int n_snappy_blocks; /* blocks written compressed so far */

static void block_finish(BlockBuilder *bb, Buf *file, int snappy, Buf *handle) {
    if (bb->n_restarts == 0) bb->restarts[bb->n_restarts++] = 0;
    for (int i = 0; i < bb->n_restarts; i++) put_le32(&bb->data, bb->restarts[i]);
    put_le32(&bb->data, (uint32_t)bb->n_restarts);
    unsigned char type = 0;
    const unsigned char *contents = bb->data.p;
    size_t len = bb->data.n;
    size_t clen = snappy_max_compressed_length(len);
    char *c = malloc(clen);
    if (snappy && snappy_compress((const char *)bb->data.p, len, c, &clen) == SNAPPY_OK && clen < len) {
        type = 1;
        n_snappy_blocks++;
        contents = (const unsigned char *)c;
        len = clen;
    }
    handle->n = 0;
    put_varint(handle, file->n);
    put_varint(handle, len);
    put(file, contents, len);
    put(file, &type, 1);
    put_le32(file, crc32c_mask(crc32c_extend(crc32c(contents, len), &type, 1)));
    free(c);
    free(bb->data.p);
    memset(bb, 0, sizeof *bb);
}

static void write_file(const char *path, const Buf *b) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->p, 1, b->n, f), b->n);
    assert_int_equal(fclose(f), 0);
}

/* Writes the bundle at prefix: n_shards data files (tensors dealt round-robin), an index
 * of data blocks of at most block_bytes, restart points every 16 keys, every other block
 * snappy-compressed. Frees the tensors. Returns the number of data blocks. */
static int write_bundle(WBundle *w, const char *prefix, int n_shards, size_t block_bytes) {
    qsort(w->t, (size_t)w->n, sizeof *w->t, cmp_tensor);
    Buf shards[8] = {{0}};
    assert_true(n_shards <= 8);
    BlockBuilder *bb = calloc(1, sizeof *bb), *index = calloc(1, sizeof *index);
    Buf file = {0}, value = {0}, handle = {0};
    /* "" -> BundleHeaderProto { num_shards 1, endianness 2, version 3 { producer 1 } } */
    Buf version = {0};
    pb_varint(&version, 1, 1);
    pb_varint(&value, 1, (uint64_t)n_shards);
    pb_varint(&value, 2, 0);
    pb_bytes(&value, 3, &version);
    block_add(bb, 16, "", &value);
    int n_blocks = 0, k = 0;
    for (int i = 0; i < w->n; i++) {
        const WTensor *t = &w->t[i];
        const int s = i % n_shards;
        Buf shape = {0}, dim = {0};
        for (int r = 0; r < t->rank; r++) {
            dim.n = 0;
            pb_varint(&dim, 1, (uint64_t)t->dims[r]);
            pb_bytes(&shape, 2, &dim);
        }
        value.n = 0;
        pb_varint(&value, 1, (uint64_t)t->dtype);
        pb_bytes(&value, 2, &shape);
        if (s) pb_varint(&value, 3, (uint64_t)s);
        if (shards[s].n) pb_varint(&value, 4, shards[s].n);
        pb_varint(&value, 5, t->size);
        put_varint(&value, 6 << 3 | 5);
        put_le32(&value, crc32c_mask(crc32c(t->bytes, t->size)));
        put(&shards[s], t->bytes, t->size);
        free(shape.p);
        free(dim.p);
        block_add(bb, 16, t->name, &value);
        if (bb->data.n >= block_bytes || i == w->n - 1) {
            char last[256];
            snprintf(last, sizeof last, "%s", bb->last);
            block_finish(bb, &file, (k++ % 2) == 1, &handle);
            block_add(index, 1, last, &handle);
            n_blocks++;
        }
        free(t->bytes);
    }
    Buf meta_handle = {0}, index_handle = {0};
    block_finish(bb, &file, 0, &meta_handle); /* an empty metaindex block */
    block_finish(index, &file, 1, &index_handle);
    Buf footer = {0};
    put(&footer, meta_handle.p, meta_handle.n);
    put(&footer, index_handle.p, index_handle.n);
    const unsigned char zero[40] = {0};
    put(&footer, zero, 40 - footer.n);
    put_le64(&footer, 0xdb4775248b80fb57ull);
    put(&file, footer.p, footer.n);
    char path[4200];
    snprintf(path, sizeof path, "%s.index", prefix);
    write_file(path, &file);
    for (int s = 0; s < n_shards; s++) {
        snprintf(path, sizeof path, "%s.data-%05d-of-%05d", prefix, s, n_shards);
        write_file(path, &shards[s]);
        free(shards[s].p);
    }
    free(file.p);
    free(value.p);
    free(handle.p);
    free(version.p);
    free(meta_handle.p);
    free(index_handle.p);
    free(footer.p);
    free(bb);
    free(index);
    free(w->t);
    w->t = NULL;
    w->n = w->cap = 0;
    return n_blocks;
}

/* A table of many tensors and blocks read back through the library. */
static void test_writer_many_blocks(void **state) {
    WBundle w = {0};
    enum { N = 600 };
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof name, "layer_%03d/sub/w%d", i, i % 7);
        float x[3] = {(float)i, -(float)i, 0.25f * (float)i};
        const int shape[1] = {3};
        add_floats(&w, name, 1, shape, x);
    }
    const int64_t step = 123456789012345LL;
    add_tensor(&w, "global_step", TFB_DT_INT64, 0, NULL, &step, 8);
    const double d[2] = {1.5, -2.25};
    const int64_t dd[1] = {2};
    add_tensor(&w, "doubles", TFB_DT_DOUBLE, 1, dd, d, sizeof d);
    add_tensor(&w, "names", TFB_DT_STRING, 0, NULL, "\x03" "abc", 4);
    char prefix[4096];
    tmp_path(prefix, sizeof prefix, "many");
    const int before = n_snappy_blocks;
    const int n_blocks = write_bundle(&w, prefix, 3, 2000); /* ~60 keys a block: 4 restarts */
    assert_true(n_blocks > 8);
    assert_true(n_snappy_blocks - before >= n_blocks / 2 - 1);
    TfBundle *b;
    if (tfbundle_open(&b, prefix) < 0) fail_msg("%s", elmo_error());
    assert_int_equal(tfbundle_count(b), N + 3);
    for (int i = 1; i < tfbundle_count(b); i++)
        assert_true(strcmp(tfbundle_tensor(b, i - 1)->name, tfbundle_tensor(b, i)->name) < 0);
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof name, "layer_%03d/sub/w%d", i, i % 7);
        float x[3];
        if (tfbundle_read_floats(b, name, x, 3) < 0) fail_msg("%s", elmo_error());
        assert_true(x[0] == (float)i && x[1] == -(float)i && x[2] == 0.25f * (float)i);
    }
    int64_t s;
    assert_int_equal(tfbundle_read_int64(b, "global_step", &s), 0);
    assert_true(s == step);
    float f[2];
    assert_int_equal(tfbundle_read_floats(b, "doubles", f, 2), 0);
    assert_true(f[0] == 1.5f && f[1] == -2.25f);
    assert_int_equal(tfbundle_find(b, "names")->dtype, TFB_DT_STRING);
    assert_int_equal(tfbundle_read_floats(b, "names", f, 1), -1);
    tfbundle_close(b);
}

/* ------------------------------------------------------- a bilm-tf checkpoint, imported */

static const char options_text[] =
    "{\"lstm\": {\"cell_clip\": 3, \"use_skip_connections\": true, \"n_layers\": 2, \"proj_clip\": 3,"
    " \"projection_dim\": 8, \"dim\": 16}, \"char_cnn\": {\"embedding\": {\"dim\": 4}, \"filters\": [[1, 4],"
    " [2, 8], [3, 8]], \"n_highway\": 1, \"n_characters\": 262, \"max_characters_per_token\": 16,"
    " \"activation\": \"relu\"}}";
static const char *const words[] = {"<S>", "</S>", "<UNK>", "the", "cat", "sat", "on", "mat", "a", "dog"};
enum { V = 10 };

typedef enum { GEN_NEW, GEN_OLD } Generation;

typedef struct {
    int shape_bug;   /* the first LSTM kernel one row short */
    int double_bias; /* lm/CNN/b_cnn_0 written as DT_DOUBLE */
} Faults;

/* Writes the bundle of a model of options_text with random weights and Adagrad slots;
 * m keeps the values written (the caller frees it). */
static void write_elmo_bundle(const char *prefix, Generation gen, Faults faults, BilmModel *m, float **accum,
                              ElmoOptions *opt) {
    char path[4096];
    write_text_file(tmp_path(path, sizeof path, "options.json"), options_text);
    assert_int_equal(options_load(opt, path), 0);
    model_init_layout(m, opt, V);
    fill_uniform(m->data, m->n_floats, 0.5f, 11);
    *accum = calloc(m->n_floats, sizeof **accum);
    fill_uniform(*accum, m->n_floats, 1.0f, 12);
    WBundle w = {0};
    for (int i = 0; i < m->n_entries; i++) {
        const ParamEntry *e = &m->entries[i];
        char name[200], slot[220];
        if (gen == GEN_NEW) snprintf(name, sizeof name, "%s", e->tf_name);
        else snprintf(name, sizeof name, "lm/%s", e->name);
        int shape[4];
        memcpy(shape, e->shape, sizeof shape);
        if (faults.shape_bug && e->kind == PARAM_LSTM_W) { /* the first LSTM kernel only */
            faults.shape_bug = 0;
            shape[0]--;
        }
        if (faults.double_bias && strcmp(e->name, "CNN/b_cnn_0") == 0) {
            double *d = malloc(e->size * sizeof *d);
            for (size_t j = 0; j < e->size; j++) d[j] = m->data[e->offset + j];
            const int64_t dims[1] = {e->shape[0]};
            add_tensor(&w, name, TFB_DT_DOUBLE, 1, dims, d, e->size * sizeof *d);
            free(d);
        } else {
            add_floats(&w, name, e->rank, shape, m->data + e->offset);
        }
        snprintf(slot, sizeof slot, "%s/Adagrad", name);
        add_floats(&w, slot, e->rank, e->shape, *accum + e->offset);
    }
    const int64_t step = 935588;
    add_tensor(&w, "global_step", TFB_DT_INT64, 0, NULL, &step, 8);
    const float ppl = 42.0f;
    add_tensor(&w, "train_perplexity", TFB_DT_FLOAT, 0, NULL, &ppl, 4);
    assert_true(write_bundle(&w, prefix, 3, 256) > 4);
}

static void check_import(Generation gen) {
    char prefix[1024], opts[1024], vocab[1024], out[2048], text[2048], emb[2048], args[20000], err[4096];
    tmp_path(prefix, sizeof prefix, gen == GEN_NEW ? "new/model.ckpt-935588" : "old/model.ckpt-935588");
    char dir[1024];
    tmp_path(dir, sizeof dir, gen == GEN_NEW ? "new" : "old");
    snprintf(args, sizeof args, "mkdir -p '%s'", dir);
    assert_int_equal(system(args), 0);
    BilmModel m;
    float *accum;
    ElmoOptions opt;
    const Faults none = {0, 0};
    write_elmo_bundle(prefix, gen, none, &m, &accum, &opt);
    tmp_path(opts, sizeof opts, "options.json");
    tmp_path(vocab, sizeof vocab, "vocab.txt");
    char vtext[256] = "";
    for (int i = 0; i < V; i++) strcat(strcat(vtext, words[i]), "\n");
    write_text_file(vocab, vtext);
    snprintf(out, sizeof out, "%s/model.hdf5", dir);

    /* --list: every tensor, sorted */
    snprintf(args, sizeof args, "%s import-tf --checkpoint '%s' --list > '%s/list.txt'", elmo_program(), prefix,
             dir);
    assert_int_equal(system(args), 0);
    char list[2048], *ltext;
    size_t llen;
    snprintf(list, sizeof list, "%s/list.txt", dir);
    FILE *lf = fopen(list, "rb");
    assert_non_null(lf);
    ltext = calloc(1, 1 << 16);
    llen = fread(ltext, 1, (1 << 16) - 1, lf);
    fclose(lf);
    assert_true(llen > 0);
    assert_int_equal(count_lines(ltext), 2 * m.n_entries + 2);
    assert_non_null(strstr(ltext, "global_step int64 ()\n"));
    assert_non_null(strstr(ltext, "lm/char_embed float32 (261, 4)\n"));
    free(ltext);

    snprintf(args, sizeof args, "import-tf --checkpoint '%s' --options '%s' --vocab '%s' --output '%s'", prefix, opts,
             vocab, out);
    if (run_elmo(args, err, sizeof err) != 0) fail_msg("import-tf: %s", err);
    for (int i = 0; i < m.n_entries; i++) {
        const ParamEntry *e = &m.entries[i];
        const char *names[2] = {e->name, NULL};
        char slot[200];
        snprintf(slot, sizeof slot, "training/adagrad/%s", e->name);
        names[1] = slot;
        for (int k = 0; k < 2; k++) {
            int rank;
            size_t dims[8];
            float *x = read_dataset(out, names[k], &rank, dims);
            if (!x) fail_msg("%s: no dataset %s", out, names[k]);
            assert_int_equal(rank, e->rank);
            for (int r = 0; r < rank; r++) assert_int_equal(dims[r], e->shape[r]);
            const float *want = (k == 0 ? m.data : accum) + e->offset;
            if (memcmp(x, want, e->size * sizeof *x) != 0) fail_msg("%s: values differ", names[k]);
            free(x);
        }
    }
    hid_t f;
    assert_int_equal(h5io_open_read(out, &f), 0);
    uint64_t step = 0;
    assert_int_equal(h5io_read_u64(f, out, "training/step", &step, 1), 0);
    assert_int_equal(step, 935588);
    char **vs;
    size_t nv;
    assert_int_equal(h5io_read_strings(f, out, "vocab", &vs, &nv), 0);
    assert_int_equal(nv, V);
    for (int i = 0; i < V; i++) assert_string_equal(vs[i], words[i]);
    h5io_free_strings(vs, nv);
    assert_false(h5io_exists(f, "train_perplexity"));
    h5io_close(f, out);

    /* embed reads the imported file */
    snprintf(text, sizeof text, "%s/text.txt", dir);
    write_text_file(text, "the cat sat\non a mat\n");
    snprintf(emb, sizeof emb, "%s/emb.hdf5", dir);
    snprintf(args, sizeof args, "embed --options '%s' --weights '%s' --vocab '%s' --input '%s' --output '%s' --quiet",
             opts, out, vocab, text, emb);
    if (run_elmo(args, err, sizeof err) != 0) fail_msg("embed: %s", err);
    int rank;
    size_t dims[8];
    float *x = read_dataset(emb, "0", &rank, dims);
    assert_non_null(x);
    assert_int_equal(rank, 3);
    assert_int_equal(dims[0], 3);
    assert_int_equal(dims[1], 3);
    assert_int_equal(dims[2], 16);
    free(x);

    /* train --init-from --keep-optimizer continues bilm-tf's Adagrad state on new text */
    char corpus[2048], save[2048];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    write_text_file(corpus, "the cat sat on a mat\na mat sat on the cat\n");
    snprintf(save, sizeof save, "%s/tuned", dir);
    snprintf(args, sizeof args,
             "train --options '%s' --init-from '%s' --keep-optimizer --train-prefix '%s' --vocab '%s' --save-dir '%s' "
             "--n-train-tokens 2560 --max-batches 1 --warmup-softmax 0",
             opts, out, corpus, vocab, save);
    if (run_elmo(args, err, sizeof err) != 0) fail_msg("train --keep-optimizer: %s", err);
    assert_non_null(strstr(err, "Adagrad accumulators kept"));
    char tuned[2300];
    snprintf(tuned, sizeof tuned, "%s/model.ckpt-1.hdf5", save);
    {
        int r;
        size_t d[8];
        float *acc = read_dataset(tuned, "training/adagrad/char_embed", &r, d);
        assert_non_null(acc);
        /* acc += g^2 from the imported value; the rows of characters the corpus lacks have
         * g = 0 and keep the imported value exactly (a fresh start would give 1) */
        int kept = 0;
        for (size_t i = 0; i < m.entries[0].size; i++) {
            const float imported = accum[m.entries[0].offset + i];
            assert_true(acc[i] >= imported);
            kept += acc[i] == imported && imported != 1.0f;
        }
        assert_true(kept > 0);
        free(acc);
    }

    /* --raw: every numeric tensor under its TF name; a tensor that is also a folder as
     * NAME/.value */
    snprintf(args, sizeof args, "import-tf --checkpoint '%s' --raw --output '%s/raw.hdf5'", prefix, dir);
    if (run_elmo(args, err, sizeof err) != 0) fail_msg("import-tf --raw: %s", err);
    char raw[2048];
    snprintf(raw, sizeof raw, "%s/raw.hdf5", dir);
    const ParamEntry *e = &m.entries[m.n_entries - 3]; /* an LSTM tensor, or W_P */
    char name[256];
    snprintf(name, sizeof name, "%s%s/Adagrad", gen == GEN_NEW ? "" : "lm/", gen == GEN_NEW ? e->tf_name : e->name);
    x = read_dataset(raw, name, &rank, dims);
    if (!x) fail_msg("%s: no %s", raw, name);
    assert_memory_equal(x, accum + e->offset, e->size * sizeof *x);
    free(x);
    x = read_dataset(raw, "lm/char_embed/.value", &rank, dims);
    assert_non_null(x);
    assert_memory_equal(x, m.data + m.entries[0].offset, m.entries[0].size * sizeof *x);
    free(x);

    free(accum);
    model_free(&m);
    options_free(&opt);
}

static void test_import_tf12_names(void **state) { check_import(GEN_NEW); }
static void test_import_old_names(void **state) { check_import(GEN_OLD); }

/* A bundle with a fault, imported: exit 2, one line naming `want`, no output. */
static void check_import_fails(const char *name, Faults faults, int vocab_size, const char *want) {
    char prefix[1024], opts[1024], vocab[2048], out[2048], args[20000], err[4096];
    tmp_path(prefix, sizeof prefix, name);
    BilmModel m;
    float *accum;
    ElmoOptions opt;
    write_elmo_bundle(prefix, GEN_NEW, faults, &m, &accum, &opt);
    tmp_path(opts, sizeof opts, "options.json");
    snprintf(vocab, sizeof vocab, "%s.vocab", prefix);
    char vtext[256] = "";
    for (int i = 0; i < vocab_size; i++) strcat(strcat(vtext, words[i]), "\n");
    write_text_file(vocab, vtext);
    snprintf(out, sizeof out, "%s.hdf5", prefix);
    snprintf(args, sizeof args, "import-tf --checkpoint '%s' --options '%s' --vocab '%s' --output '%s'", prefix, opts,
             vocab, out);
    assert_int_equal(run_elmo(args, err, sizeof err), 2);
    assert_one_line_naming(err, want);
    assert_false(file_exists(out));
    free(accum);
    model_free(&m);
    options_free(&opt);
}

static void test_import_wrong_shape(void **state) {
    const Faults f = {1, 0};
    check_import_fails("shape", f, V,
                       "shape.index: tensor lm/RNN_0/rnn/multi_rnn_cell/cell_0/lstm_cell/kernel: got (15, 64), "
                       "expected (16, 64)");
}

static void test_import_wrong_dtype(void **state) {
    const Faults f = {0, 1};
    check_import_fails("dtype", f, V, "dtype.index: tensor lm/CNN/b_cnn_0: dtype float64, expected float32");
}

static void test_import_wrong_vocab(void **state) {
    const Faults f = {0, 0};
    check_import_fails("vocab9", f, V - 1, "vocab9.vocab: 9 words, but lm/softmax/W");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_answer),
        cmocka_unit_test(test_fixture_half_plus_two_cpu),
        cmocka_unit_test(test_fixture_half_plus_three),
        cmocka_unit_test(test_fixture_half_plus_two_mkl),
        cmocka_unit_test(test_fixture_counter),
        cmocka_unit_test(test_fixture_tf2),
        cmocka_unit_test(test_corrupt_magic),
        cmocka_unit_test(test_corrupt_block),
        cmocka_unit_test(test_corrupt_tensor),
        cmocka_unit_test(test_missing_shard),
        cmocka_unit_test(test_writer_many_blocks),
        cmocka_unit_test(test_import_tf12_names),
        cmocka_unit_test(test_import_old_names),
        cmocka_unit_test(test_import_wrong_shape),
        cmocka_unit_test(test_import_wrong_dtype),
        cmocka_unit_test(test_import_wrong_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
