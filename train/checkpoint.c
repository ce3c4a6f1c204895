/* checkpoint.c - see checkpoint.h. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"
#include "h5io.h"

static int write_u64(hid_t file, const char *path, const char *name, const uint64_t *v, hsize_t n) {
    if (h5io_create_groups(file, name) < 0) return elmo_fail("%s: cannot create the groups of %s", path, name);
    hid_t space = H5Screate_simple(1, &n, NULL);
    hid_t dcpl = h5io_dataset_plist();
    hid_t ds = H5Dcreate2(file, name, H5T_STD_U64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t st = ds >= 0 ? H5Dwrite(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) : -1;
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    return st < 0 ? elmo_fail("%s: cannot write %s (disk full?)", path, name) : 0;
}

static int read_u64(hid_t file, const char *path, const char *name, uint64_t *v, hsize_t n) {
    int rank;
    hsize_t dims[H5IO_MAX_RANK];
    if (h5io_shape(file, path, name, &rank, dims) < 0) return -1;
    if (rank != 1 || dims[0] != n) return elmo_fail("%s: %s has the wrong shape", path, name);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    herr_t st = H5Dread(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(ds);
    return st < 0 ? elmo_fail("%s: cannot read %s", path, name) : 0;
}

static void write_string_attr(hid_t obj, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) + 1);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, type, value);
    H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
}

static int read_string_attr(hid_t obj, const char *name, char *out, size_t size) {
    if (H5Aexists(obj, name) <= 0) return -1;
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
    return st < 0 ? -1 : 0;
}

static void state_name(char *buf, size_t size, char which, int d, int l) {
    snprintf(buf, size, "training/lstm_%c_%d_%d", which, d, l);
}

static int save_to(hid_t file, const char *path, const Trainer *t, LmReader *const *readers,
                   const TrainingArgs *args) {
    const BilmModel *m = t->model;
    char name[160];
    for (int i = 0; i < m->n_entries; i++) {
        const ParamEntry *e = &m->entries[i];
        hsize_t dims[H5IO_MAX_RANK];
        for (int k = 0; k < e->rank; k++) dims[k] = (hsize_t)e->shape[k];
        if (h5io_write_floats(file, path, e->name, e->rank, dims, m->data + e->offset) < 0) return -1;
        snprintf(name, sizeof name, "training/adagrad/%s", e->name);
        if (h5io_write_floats(file, path, name, e->rank, dims, t->accum + e->offset) < 0) return -1;
    }
    const uint64_t step = (uint64_t)t->step;
    if (write_u64(file, path, "training/step", &step, 1) < 0) return -1;
    if (write_u64(file, path, "training/rng", t->rng.s, 4) < 0) return -1;
    for (int d = 0; d < t->n_dirs; d++)
        for (int l = 0; l < t->L; l++) {
            hsize_t dc[2] = {(hsize_t)t->B, (hsize_t)t->dims.H}, dh[2] = {(hsize_t)t->B, (hsize_t)t->dims.Hs};
            state_name(name, sizeof name, 'c', d, l);
            if (h5io_write_floats(file, path, name, 2, dc, t->c_state[d][l]) < 0) return -1;
            state_name(name, sizeof name, 'h', d, l);
            if (h5io_write_floats(file, path, name, 2, dh, t->h_state[d][l]) < 0) return -1;
        }
    hid_t training = H5Gopen2(file, "training", H5P_DEFAULT);
    write_string_attr(training, "train_prefix", args->train_prefix);
    write_string_attr(training, "vocab", args->vocab);
    char number[32];
    snprintf(number, sizeof number, "%llu", (unsigned long long)args->seed);
    write_string_attr(training, "seed", number);
    write_string_attr(training, "shuffle", args->shuffle ? "1" : "0");
    int rc = 0;
    for (int d = 0; d < t->n_dirs && rc == 0; d++) {
        snprintf(name, sizeof name, "reader_%d", d);
        hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
        H5Pset_obj_track_times(gcpl, 0);
        hid_t group = H5Gcreate2(training, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
        H5Pclose(gcpl);
        rc = group >= 0 ? lm_reader_save_state(readers[d], group) : elmo_fail("%s: cannot write %s", path, name);
        if (group >= 0) H5Gclose(group);
    }
    H5Gclose(training);
    return rc;
}

int checkpoint_save(const char *path, const Trainer *t, LmReader *const *readers, const TrainingArgs *args) {
    PendingFile pending;
    pending_begin(&pending, path);
    hid_t file;
    if (h5io_create(pending.tmp, &file) < 0) {
        pending_abort(&pending);
        return elmo_fail("%s: cannot create checkpoint (is the directory writable?)", path);
    }
    int rc = save_to(file, path, t, readers, args);
    if (h5io_close(file, path) < 0) rc = -1;
    if (rc < 0) {
        char *msg = xstrdup(elmo_error());
        pending_abort(&pending);
        elmo_fail("%s", msg);
        free(msg);
        return -1;
    }
    return pending_commit(&pending);
}

int checkpoint_load(const char *path, Trainer *t, LmReader *const *readers) {
    if (model_load(t->model, path) < 0) return -1;
    hid_t file;
    if (h5io_open_read(path, &file) < 0) return -1;
    const BilmModel *m = t->model;
    char name[160];
    int rc = 0;
    for (int i = 0; i < m->n_entries && rc == 0; i++) {
        const ParamEntry *e = &m->entries[i];
        hsize_t dims[H5IO_MAX_RANK];
        for (int k = 0; k < e->rank; k++) dims[k] = (hsize_t)e->shape[k];
        snprintf(name, sizeof name, "training/adagrad/%s", e->name);
        rc = h5io_read_floats(file, path, name, e->rank, dims, t->accum + e->offset);
    }
    uint64_t step = 0;
    if (rc == 0) rc = read_u64(file, path, "training/step", &step, 1);
    if (rc == 0) rc = read_u64(file, path, "training/rng", t->rng.s, 4);
    t->step = (long)step;
    for (int d = 0; d < t->n_dirs && rc == 0; d++)
        for (int l = 0; l < t->L && rc == 0; l++) {
            hsize_t dc[2] = {(hsize_t)t->B, (hsize_t)t->dims.H}, dh[2] = {(hsize_t)t->B, (hsize_t)t->dims.Hs};
            state_name(name, sizeof name, 'c', d, l);
            rc = h5io_read_floats(file, path, name, 2, dc, t->c_state[d][l]);
            state_name(name, sizeof name, 'h', d, l);
            if (rc == 0) rc = h5io_read_floats(file, path, name, 2, dh, t->h_state[d][l]);
        }
    for (int d = 0; d < t->n_dirs && rc == 0; d++) {
        snprintf(name, sizeof name, "training/reader_%d", d);
        hid_t group = h5io_exists(file, name) ? H5Gopen2(file, name, H5P_DEFAULT) : -1;
        rc = group >= 0 ? lm_reader_load_state(readers[d], group) : elmo_fail("%s: missing %s", path, name);
        if (group >= 0) H5Gclose(group);
    }
    H5Fclose(file);
    return rc;
}

int checkpoint_read_args(const char *path, TrainingArgs *args) {
    hid_t file;
    if (h5io_open_read(path, &file) < 0) return -1;
    memset(args, 0, sizeof *args);
    int rc = -1;
    if (h5io_exists(file, "training")) {
        hid_t training = H5Gopen2(file, "training", H5P_DEFAULT);
        char seed[32], shuffle[8];
        rc = read_string_attr(training, "train_prefix", args->train_prefix, sizeof args->train_prefix) |
             read_string_attr(training, "vocab", args->vocab, sizeof args->vocab) |
             read_string_attr(training, "seed", seed, sizeof seed) |
             read_string_attr(training, "shuffle", shuffle, sizeof shuffle);
        args->seed = strtoull(seed, NULL, 10);
        args->shuffle = shuffle[0] == '1';
        H5Gclose(training);
    }
    H5Fclose(file);
    return rc < 0 ? elmo_fail("%s: not a training checkpoint (no training state)", path) : 0;
}

int checkpoint_softmax_rows(const char *path, long *rows) {
    hid_t file;
    if (h5io_open_read(path, &file) < 0) return -1;
    *rows = 0;
    int rc = 0;
    if (h5io_exists(file, "softmax/W")) {
        int rank;
        hsize_t dims[H5IO_MAX_RANK];
        rc = h5io_shape(file, path, "softmax/W", &rank, dims);
        if (rc == 0) *rows = (long)dims[0];
    }
    H5Fclose(file);
    return rc;
}

/* Step of a checkpoint file name, or -1. */
static long checkpoint_step(const char *name) {
    long step;
    char tail[16];
    if (sscanf(name, "model.ckpt-%ld%15s", &step, tail) != 2 || strcmp(tail, ".hdf5") != 0) return -1;
    return step;
}

int checkpoint_latest(const char *dir, char *out, size_t size, long *step) {
    DIR *d = opendir(dir);
    if (!d) return elmo_fail("%s: cannot open directory: %s", dir, strerror(errno));
    long best = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long s = checkpoint_step(e->d_name);
        if (s > best) best = s;
    }
    closedir(d);
    if (best < 0) return elmo_fail("%s: no checkpoint (model.ckpt-<step>.hdf5) in this directory", dir);
    snprintf(out, size, "%s/model.ckpt-%ld.hdf5", dir, best);
    if (step) *step = best;
    return 0;
}

void checkpoint_prune(const char *dir, int keep) {
    long steps[4096];
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 4096) {
        long s = checkpoint_step(e->d_name);
        if (s >= 0) steps[n++] = s;
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
        if (newer >= keep) {
            char path[4096];
            snprintf(path, sizeof path, "%s/model.ckpt-%ld.hdf5", dir, steps[i]);
            unlink(path);
        }
    }
}
