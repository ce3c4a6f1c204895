/* tfbundle.h - a reader of TensorFlow's V2 checkpoints ("tensor bundles") without TensorFlow.
 *
 * A bundle PREFIX is PREFIX.index, a LevelDB-format table (footer, index block, data blocks
 * of prefix-compressed keys with restart points, each block followed by a compression byte
 * and a masked CRC32C; blocks may be snappy-compressed), and the data shards
 * PREFIX.data-%05d-of-%05d holding the tensors' raw little-endian bytes. The table maps
 * "" to the BundleHeaderProto (num_shards, endianness) and every tensor name to a
 * BundleEntryProto (dtype, shape, shard, offset, size, masked CRC32C of the bytes).
 * docs/design.md section 10 names the tensors of a bilm-tf checkpoint.
 */
#ifndef ELMO_TFBUNDLE_H
#define ELMO_TFBUNDLE_H

#include <stddef.h>
#include <stdint.h>

#define TFB_MAX_RANK 8

/* TensorFlow's DataType values (types.proto). */
enum {
    TFB_DT_FLOAT = 1, TFB_DT_DOUBLE = 2, TFB_DT_INT32 = 3, TFB_DT_UINT8 = 4, TFB_DT_INT16 = 5,
    TFB_DT_INT8 = 6, TFB_DT_STRING = 7, TFB_DT_INT64 = 9, TFB_DT_BOOL = 10
};

/* One tensor of the bundle, as its index entry describes it. */
typedef struct {
    char *name;
    int dtype;              /* TFB_DT_* (others are listed but not read) */
    int rank;               /* -1 when the shape is unknown */
    int64_t dims[TFB_MAX_RANK];
    int shard;
    uint64_t offset, size;  /* bytes within the shard */
    uint32_t crc32c;        /* masked CRC32C of the bytes, as stored */
    int sliced;             /* a partitioned variable (not read) */
} TfTensor;

typedef struct TfBundle TfBundle;

/* Opens PREFIX.index, verifies its footer and every block's CRC, parses every entry and
 * checks that every data shard exists. */
int tfbundle_open(TfBundle **b, const char *prefix);
void tfbundle_close(TfBundle *b);
/* The tensors, sorted by name as the table is. */
int tfbundle_count(const TfBundle *b);
const TfTensor *tfbundle_tensor(const TfBundle *b, int i);
/* The tensor named name, or NULL. */
const TfTensor *tfbundle_find(const TfBundle *b, const char *name);
/* Number of elements of a tensor (1 for a scalar). */
uint64_t tfbundle_elements(const TfTensor *t);
/* "float32", "int64", ... ("dtype_N" for others). */
const char *tfbundle_dtype_name(int dtype);
/* "(a, b, c)" into buf. */
const char *tfbundle_shape_str(const TfTensor *t, char *buf, size_t size);

/* Reads the n elements of a float, double or integer tensor as float32, after verifying
 * its CRC; fails when n differs from its element count. */
int tfbundle_read_floats(TfBundle *b, const char *name, float *out, size_t n);
/* Reads an int64 or int32 scalar (e.g. global_step). */
int tfbundle_read_int64(TfBundle *b, const char *name, int64_t *out);


#endif
