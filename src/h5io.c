/* h5io.c - see h5io.h. */
#include "h5io.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
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

int h5io_read_floats(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims,
                     float *out) {
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
    int numeric = H5Tget_class(type) == H5T_FLOAT || H5Tget_class(type) == H5T_INTEGER;
    H5Tclose(type);
    herr_t st = numeric ? H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) : -1;
    H5Dclose(ds);
    if (!numeric) return elmo_fail("%s: %s is not a numeric dataset", path, name);
    if (st < 0) return elmo_fail("%s: cannot read %s (damaged or truncated file?)", path, name);
    return 0;
}

int h5io_create_groups(hid_t file, const char *name) {
    char prefix[256];
    size_t n = strlen(name);
    CHECK(n < sizeof prefix, "dataset name too long: %s", name);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0);
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

int h5io_write_floats(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims,
                      const float *data) {
    if (h5io_create_groups(file, name) < 0) return elmo_fail("%s: cannot create the groups of %s", path, name);
    hid_t dcpl = h5io_dataset_plist();
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t st = ds >= 0 ? H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
    if (ds >= 0 && H5Dclose(ds) < 0) st = -1;
    H5Sclose(space);
    H5Pclose(dcpl);
    if (st < 0) return elmo_fail("%s: cannot write dataset %s (disk full?)", path, name);
    return 0;
}
