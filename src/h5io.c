/* h5io.c - see h5io.h. */
#include "h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static void silence_hdf5(void) {
    static int done;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = 1;
    }
}

int h5io_open_read(const char *path, hid_t *file) {
    silence_hdf5();
    if (access(path, R_OK) != 0) return elmo_fail("%s: cannot open: %s", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0) return elmo_fail("%s: not an HDF5 file (or truncated)", path);
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) return elmo_fail("%s: cannot open as HDF5 (damaged or truncated file?)", path);
    return 0;
}

int h5io_create(const char *path, hid_t *file) {
    silence_hdf5();
    /* The HDF5 1.8 file format (readable by every HDF5 since 2008, h5py included): its
     * indexed groups keep writing many datasets (one per sentence) fast and small. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_obj_track_times(fcpl, 0); /* the root group without timestamps */
    *file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (*file < 0) return elmo_fail("%s: cannot create HDF5 file: %s", path, strerror(errno));
    return 0;
}

int h5io_reopen(hid_t *file, const char *path) {
    if (H5Fclose(*file) < 0) return elmo_fail("%s: error closing HDF5 file (disk full?)", path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    *file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (*file < 0) return elmo_fail("%s: cannot reopen HDF5 file", path);
    return 0;
}

int h5io_close(hid_t file, const char *path) {
    if (H5Fclose(file) < 0) return elmo_fail("%s: error closing HDF5 file (disk full?)", path);
    return 0;
}

int h5io_exists(hid_t file, const char *name) {
    /* H5Lexists fails on a path whose parent group is missing: check each prefix. */
    char prefix[256];
    size_t n = strlen(name);
    CHECK(n < sizeof prefix, "dataset name too long: %s", name);
    for (size_t i = 1; i <= n; i++) {
        if (i < n && name[i] != '/') continue;
        memcpy(prefix, name, i);
        prefix[i] = '\0';
        if (H5Lexists(file, prefix, H5P_DEFAULT) <= 0) return 0;
    }
    return H5Oexists_by_name(file, name, H5P_DEFAULT) > 0;
}

const char *h5io_shape_str(char *buf, size_t size, int rank, const hsize_t *dims) {
    size_t off = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < rank && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    if (off < size) snprintf(buf + off, size - off, ")");
    return buf;
}

int h5io_shape(hid_t file, const char *path, const char *name, int *rank, hsize_t *dims) {
    if (!h5io_exists(file, name)) return elmo_fail("%s: missing dataset %s", path, name);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) return elmo_fail("%s: %s is not a dataset", path, name);
    hid_t space = H5Dget_space(ds);
    int r = H5Sget_simple_extent_ndims(space);
    int rc = 0;
    if (r < 0 || r > H5IO_MAX_RANK) rc = elmo_fail("%s: %s has an unsupported rank", path, name);
    else {
        *rank = r;
        H5Sget_simple_extent_dims(space, dims, NULL);
    }
    H5Sclose(space);
    H5Dclose(ds);
    return rc;
}

/* The shape check and the read; strict: float datasets only, every value finite. */
static int read_floats(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims, float *out,
                       int strict) {
    int got_rank;
    hsize_t got[H5IO_MAX_RANK];
    if (h5io_shape(file, path, name, &got_rank, got) < 0) return -1;
    int same = got_rank == rank;
    for (int i = 0; same && i < rank; i++) same = got[i] == dims[i];
    if (!same) {
        char a[96], b[96];
        return elmo_fail("%s: %s: got %s, expected %s", path, name, h5io_shape_str(a, sizeof a, got_rank, got),
                         h5io_shape_str(b, sizeof b, rank, dims));
    }
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t type = H5Dget_type(ds);
    const H5T_class_t cls = H5Tget_class(type);
    H5Tclose(type);
    const int numeric = cls == H5T_FLOAT || (!strict && cls == H5T_INTEGER);
    herr_t st = numeric ? H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) : -1;
    H5Dclose(ds);
    if (!numeric)
        return elmo_fail("%s: %s is %s dataset, expected floats", path, name,
                         cls == H5T_INTEGER ? "an integer" : cls == H5T_STRING ? "a string" : "a non-numeric");
    if (st < 0) return elmo_fail("%s: cannot read %s (damaged or truncated file?)", path, name);
    if (strict) {
        size_t n = 1;
        for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
        for (size_t i = 0; i < n; i++)
            if (!isfinite(out[i]))
                return elmo_fail("%s: %s: value %zu is %s", path, name, i,
                                 isnan(out[i]) ? "nan" : out[i] > 0 ? "inf" : "-inf");
    }
    return 0;
}

int h5io_read_floats(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims,
                     float *out) {
    return read_floats(file, path, name, rank, dims, out, 0);
}

int h5io_read_weights(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims,
                      float *out) {
    return read_floats(file, path, name, rank, dims, out, 1);
}

/* A group creation property list without timestamps (caller closes it). */
static hid_t group_plist(void) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0);
    return gcpl;
}

int h5io_create_groups(hid_t file, const char *name) {
    char prefix[256];
    size_t n = strlen(name);
    CHECK(n < sizeof prefix, "dataset name too long: %s", name);
    hid_t gcpl = group_plist();
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++) {
        if (name[i] != '/') continue;
        memcpy(prefix, name, i);
        prefix[i] = '\0';
        if (H5Lexists(file, prefix, H5P_DEFAULT) > 0) continue;
        hid_t g = H5Gcreate2(file, prefix, H5P_DEFAULT, gcpl, H5P_DEFAULT);
        if (g < 0) rc = -1;
        else H5Gclose(g);
    }
    H5Pclose(gcpl);
    return rc;
}

hid_t h5io_dataset_plist(void) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    return dcpl;
}

/* IEEE half precision (1 sign, 5 exponent, 10 mantissa bits, bias 15), little-endian:
 * HDF5 1.10 has no predefined H5T_IEEE_F16, so it is derived from F32LE; h5py and numpy
 * read it as float16 ('<f2'). The caller closes it. */
static hid_t half_type(void) {
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0) return -1;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

int h5io_write_floats(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims,
                      const float *data) {
    return h5io_write_floats_as(file, path, name, rank, dims, data, 0);
}

int h5io_write_floats_as(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims,
                         const float *data, int half) {
    if (h5io_create_groups(file, name) < 0) return elmo_fail("%s: cannot create the groups of %s", path, name);
    hid_t dcpl = h5io_dataset_plist();
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t type = half ? half_type() : H5Tcopy(H5T_IEEE_F32LE);
    hid_t ds = type < 0 ? -1 : H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t st = ds >= 0 ? H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
    if (ds >= 0 && H5Dclose(ds) < 0) st = -1;
    if (type >= 0) H5Tclose(type);
    H5Sclose(space);
    H5Pclose(dcpl);
    if (st < 0) return elmo_fail("%s: cannot write dataset %s (disk full?)", path, name);
    return 0;
}

/* ------------------------------------------------------- integer and string datasets */

/* Creates dataset name of shape (n) (rank 0 when scalar) of file_type, and writes data
 * (mem_type) into it, after creating the groups of its path and deleting a dataset
 * already there. */
static int write_dataset(hid_t loc, const char *path, const char *name, hid_t file_type, hid_t mem_type,
                         int scalar, hsize_t n, const void *data) {
    if (h5io_create_groups(loc, name) < 0) return elmo_fail("%s: cannot create the groups of %s", path, name);
    if (H5Lexists(loc, name, H5P_DEFAULT) > 0 && H5Ldelete(loc, name, H5P_DEFAULT) < 0)
        return elmo_fail("%s: cannot replace %s", path, name);
    hid_t space = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t dcpl = h5io_dataset_plist();
    hid_t ds = space < 0 ? -1 : H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int ok = ds >= 0 && (n == 0 || H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    if (ds >= 0 && H5Dclose(ds) < 0) ok = 0;
    H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (!ok) return elmo_fail("%s: cannot write %s (disk full?)", path, name);
    return 0;
}

/* Opens dataset name, checks it holds n elements (n < 0: any; *got receives the count). */
static hid_t open_dataset(hid_t loc, const char *path, const char *name, long long n, size_t *got) {
    if (!h5io_exists(loc, name)) {
        elmo_fail("%s: missing dataset %s", path, name);
        return -1;
    }
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) {
        elmo_fail("%s: %s is not a dataset", path, name);
        return -1;
    }
    hid_t space = H5Dget_space(ds);
    hssize_t count = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    if (space >= 0) H5Sclose(space);
    if (count < 0 || (n >= 0 && count != n)) {
        H5Dclose(ds);
        elmo_fail("%s: %s holds %lld values, expected %lld", path, name, (long long)count, n);
        return -1;
    }
    if (got) *got = (size_t)count;
    return ds;
}

static int read_integers(hid_t loc, const char *path, const char *name, hid_t mem_type, hsize_t n, void *out) {
    hid_t ds = open_dataset(loc, path, name, (long long)n, NULL);
    if (ds < 0) return -1;
    hid_t ft = H5Dget_type(ds);
    int is_int = ft >= 0 && H5Tget_class(ft) == H5T_INTEGER;
    if (ft >= 0) H5Tclose(ft);
    int ok = is_int && H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
    H5Dclose(ds);
    if (!ok) return elmo_fail("%s: cannot read %s as integers", path, name);
    return 0;
}

int h5io_write_u64(hid_t loc, const char *path, const char *name, const uint64_t *v, hsize_t n) {
    return write_dataset(loc, path, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 0, n, v);
}

int h5io_read_u64(hid_t loc, const char *path, const char *name, uint64_t *v, hsize_t n) {
    return read_integers(loc, path, name, H5T_NATIVE_UINT64, n, v);
}

int h5io_write_i64(hid_t loc, const char *path, const char *name, int64_t v) {
    return write_dataset(loc, path, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, 1, &v);
}

int h5io_read_i64(hid_t loc, const char *path, const char *name, int64_t *v) {
    return read_integers(loc, path, name, H5T_NATIVE_INT64, 1, v);
}

static hid_t vlen_string_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

int h5io_write_strings(hid_t loc, const char *path, const char *name, const char *const *s, size_t n) {
    hid_t t = vlen_string_type();
    int rc = write_dataset(loc, path, name, t, t, 0, n, s);
    H5Tclose(t);
    return rc;
}

/* HDF5 1.10 trusts the global heap collections that hold variable-length data: a free
 * space object of size 0 makes its decoder loop forever, and an index or a length that
 * does not match its object reads or writes past it (fuzz_checkpoint found the first).
 * So before a read the dataset's heap IDs are checked against their collections, each
 * walked as H5HG's decoder walks it (HDF5 file format specification, "Global Heap"):
 *   collection = "GCOL" | version 1 | 3 reserved | size (sizeof_size bytes) | objects
 *   object     = index (2) | references (2) | reserved (4) | length (sizeof_size)
 *                | data, padded to 8 bytes (index 0, the free space: length is all of it)
 *   a string   = length (4) | collection address (sizeof_addr) | object index (4)
 * Every string must be empty (address 0) or name an object of its collection of exactly
 * its length. Only contiguous storage is checked, the layout this program and h5py
 * write; any other is refused. */
typedef struct {
    int fd;
    uint64_t base, file_size, at; /* the userblock; `at`: the collection of `len` */
    size_t sizeof_addr, sizeof_size;
    int64_t *len;                 /* by object index, -1 absent */
    size_t n_len;
} HeapCheck;

static uint64_t decode_le(const uint8_t *p, size_t bytes) {
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int read_at(const HeapCheck *h, uint64_t addr, void *buf, size_t n) {
    if (addr > h->file_size - h->base || n > h->file_size - h->base - addr) return -1;
    return pread(h->fd, buf, n, (off_t)(h->base + addr)) == (ssize_t)n ? 0 : -1;
}

/* Walks the collection at addr into h->len; -1 when HDF5 could not decode it safely. */
static int walk_collection(HeapCheck *h, uint64_t addr) {
    const size_t head = 8 + h->sizeof_size, obj_head = 8 + h->sizeof_size;
    uint8_t top[24];
    if (read_at(h, addr, top, head) < 0 || memcmp(top, "GCOL", 4) != 0 || top[4] != 1) return -1;
    const uint64_t size = decode_le(top + 8, h->sizeof_size);
    if (size < head || size > h->file_size) return -1;
    uint8_t *c = xmalloc((size_t)size);
    int rc = read_at(h, addr, c, (size_t)size);
    for (size_t i = 0; i < h->n_len; i++) h->len[i] = -1;
    uint64_t p = head;
    while (rc == 0 && p < size) {
        if (size - p < obj_head) break; /* a tail too small for an object: free space */
        const unsigned idx = (unsigned)decode_le(c + p, 2);
        const uint64_t len = decode_le(c + p + 8, h->sizeof_size);
        if (len > size) {
            rc = -1;
            break;
        }
        const uint64_t need = idx > 0 ? obj_head + ((len + 7) & ~(uint64_t)7) : len;
        if (need == 0 || need > size - p) {
            rc = -1;
            break;
        }
        if (idx >= h->n_len) {
            h->len = xrealloc(h->len, (idx + 1) * sizeof *h->len);
            for (size_t i = h->n_len; i <= idx; i++) h->len[i] = -1;
            h->n_len = idx + 1;
        }
        if (idx > 0) h->len[idx] = (int64_t)len;
        p += need;
    }
    free(c);
    h->at = rc == 0 ? addr : 0;
    return rc;
}

static int check_string_heap(hid_t ds, const char *path, const char *name, size_t count) {
    hid_t dcpl = H5Dget_create_plist(ds);
    const H5D_layout_t layout = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
    if (dcpl >= 0) H5Pclose(dcpl);
    const haddr_t offset = H5Dget_offset(ds);
    if (layout != H5D_CONTIGUOUS || offset == HADDR_UNDEF)
        return elmo_fail("%s: %s: strings not stored contiguously (not a file this program writes)", path, name);
    HeapCheck h = {.fd = -1};
    hid_t file = H5Iget_file_id(ds);
    hid_t fcpl = file >= 0 ? H5Fget_create_plist(file) : -1;
    hsize_t userblock = 0;
    int ok = fcpl >= 0 && H5Pget_sizes(fcpl, &h.sizeof_addr, &h.sizeof_size) >= 0 &&
             H5Pget_userblock(fcpl, &userblock) >= 0 && h.sizeof_addr <= 8 && h.sizeof_size <= 8;
    if (fcpl >= 0) H5Pclose(fcpl);
    char file_name[4096];
    ok = ok && H5Fget_name(file, file_name, sizeof file_name) > 0;
    if (file >= 0) H5Fclose(file);
    struct stat st;
    if (ok && (h.fd = open(file_name, O_RDONLY | O_CLOEXEC)) >= 0 && fstat(h.fd, &st) == 0) {
        h.file_size = (uint64_t)st.st_size;
        h.base = userblock;
    } else {
        ok = 0;
    }
    const size_t item = 4 + h.sizeof_addr + 4;
    uint8_t *ids = NULL;
    if (ok && (H5Dget_storage_size(ds) != count * item || h.base > h.file_size)) ok = 0;
    if (ok) {
        ids = xmalloc(count * item);
        ok = read_at(&h, offset, ids, count * item) == 0;
    }
    size_t bad = 0;
    for (size_t i = 0; ok && i < count; i++) {
        const uint8_t *id = ids + i * item;
        const uint64_t len = decode_le(id, 4), addr = decode_le(id + 4, h.sizeof_addr);
        const uint64_t idx = decode_le(id + 4 + h.sizeof_addr, 4);
        if (addr == 0) continue; /* a null string: HDF5 reads no heap */
        if (addr != h.at && walk_collection(&h, addr) < 0) ok = 0;
        else if (idx == 0 || idx >= h.n_len || h.len[idx] < 0 || (uint64_t)h.len[idx] != len) ok = 0;
        if (!ok) bad = i;
    }
    free(ids);
    free(h.len);
    if (h.fd >= 0) close(h.fd);
    if (!ok) return elmo_fail("%s: %s: string %zu: its heap is damaged (damaged or truncated file?)", path, name, bad);
    return 0;
}

int h5io_read_strings(hid_t loc, const char *path, const char *name, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    size_t count;
    hid_t ds = open_dataset(loc, path, name, -1, &count);
    if (ds < 0) return -1;
    hid_t ft = H5Dget_type(ds);
    int ok = ft >= 0 && H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) > 0;
    if (ft >= 0) H5Tclose(ft);
    if (!ok) {
        H5Dclose(ds);
        return elmo_fail("%s: %s is not a dataset of variable-length strings", path, name);
    }
    if (count > 0 && check_string_heap(ds, path, name, count) < 0) {
        H5Dclose(ds);
        return -1;
    }
    char **tmp = xcalloc(count ? count : 1, sizeof *tmp);
    if (count > 0) {
        hid_t t = vlen_string_type();
        hid_t space = H5Dget_space(ds);
        ok = H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) >= 0;
        if (ok) {
            char **copy = xmalloc(count * sizeof *copy);
            for (size_t i = 0; i < count; i++) copy[i] = xstrdup(tmp[i] ? tmp[i] : "");
            *out = copy;
            *n = count;
#if H5_VERSION_GE(1, 12, 0)
            H5Treclaim(t, space, H5P_DEFAULT, tmp);
#else
            H5Dvlen_reclaim(t, space, H5P_DEFAULT, tmp);
#endif
        }
        H5Sclose(space);
        H5Tclose(t);
    }
    free(tmp);
    H5Dclose(ds);
    if (!ok) return elmo_fail("%s: cannot read %s", path, name);
    return 0;
}

void h5io_free_strings(char **s, size_t n) {
    for (size_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* ---------------------------------------------------------- attributes and groups */

int h5io_write_string_attr(hid_t obj, const char *path, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) + 1);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = attr >= 0 ? H5Awrite(attr, type, value) : -1;
    if (attr >= 0 && H5Aclose(attr) < 0) st = -1;
    H5Sclose(space);
    H5Tclose(type);
    if (st < 0) return elmo_fail("%s: cannot write attribute %s (disk full?)", path, name);
    return 0;
}

int h5io_read_string_attr(hid_t obj, const char *path, const char *name, char *out, size_t size) {
    if (H5Aexists(obj, name) <= 0) return elmo_fail("%s: missing attribute %s", path, name);
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t type = H5Aget_type(attr);
    size_t n = H5Tget_size(type);
    char *buf = xcalloc(n + 1, 1);
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, n);
    herr_t st = H5Aread(attr, mem, buf);
    snprintf(out, size, "%s", buf);
    free(buf);
    H5Tclose(mem);
    H5Tclose(type);
    H5Aclose(attr);
    if (st < 0) return elmo_fail("%s: cannot read attribute %s", path, name);
    return 0;
}

int h5io_create_group(hid_t loc, const char *path, const char *name, hid_t *group) {
    hid_t gcpl = group_plist();
    *group = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (*group < 0) return elmo_fail("%s: cannot create group %s", path, name);
    return 0;
}

const char *h5io_describe(hid_t obj, const char *what, char *buf, size_t size) {
    silence_hdf5();
    char file[512] = "?", name[512] = "?";
    if (H5Fget_name(obj, file, sizeof file) < 0) snprintf(file, sizeof file, "?");
    if (H5Iget_name(obj, name, sizeof name) < 0) snprintf(name, sizeof name, "?");
    snprintf(buf, size, "%s: %s %s", file, what, name);
    return buf;
}
