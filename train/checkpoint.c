/* checkpoint.c - see checkpoint.h. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"
#include "h5io.h"
#include "replicas.h"
#include "rng.h"

static void state_name(char *buf, size_t size, char which, int d, int l) {
    snprintf(buf, size, "training/lstm_%c_%d_%d", which, d, l);
}

static int save_to(hid_t file, const char *path, const Trainer *t, const ReplicaStates *states, const Vocab *vocab,
                   LmReader *const *readers, const RunSettings *settings, const CheckpointBest *best) {
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
    /* the softmax rows' tokens: the vocabulary travels with the model */
    if (h5io_write_strings(file, path, "vocab", (const char *const *)vocab->words, (size_t)vocab->size) < 0) return -1;
    const uint64_t step = (uint64_t)t->step;
    if (h5io_write_u64(file, path, "training/step", &step, 1) < 0) return -1;
    /* every replica's generator and the states of the global batch's rows (replicas.h) */
    const hsize_t rows = (hsize_t)states->n * t->B;
    if (h5io_write_u64(file, path, "training/rng", states->rng, 4 * (size_t)states->n) < 0) return -1;
    for (int d = 0; d < t->n_dirs; d++)
        for (int l = 0; l < t->L; l++) {
            hsize_t dc[2] = {rows, (hsize_t)t->dims.H}, dh[2] = {rows, (hsize_t)t->dims.Hs};
            state_name(name, sizeof name, 'c', d, l);
            if (h5io_write_floats(file, path, name, 2, dc, states->c[d][l]) < 0) return -1;
            state_name(name, sizeof name, 'h', d, l);
            if (h5io_write_floats(file, path, name, 2, dh, states->h[d][l]) < 0) return -1;
        }
    hid_t training = H5Gopen2(file, "training", H5P_DEFAULT);
    char *json = settings_to_json(settings);
    int rc = h5io_write_string_attr(training, path, "settings", json);
    free(json);
    if (rc == 0 && best) {
        hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
        char value[64];
        snprintf(value, sizeof value, "%ld", t->step);
        rc = h5io_write_string_attr(root, path, "best_step", value);
        const char *names[3] = {"heldout_perplexity", "heldout_perplexity_forward", "heldout_perplexity_backward"};
        const double values[3] = {best->perplexity, best->perplexity_forward, best->perplexity_backward};
        for (int k = 0; k < 3 && rc == 0; k++) {
            snprintf(value, sizeof value, "%.17g", values[k]);
            rc = h5io_write_string_attr(root, path, names[k], value);
        }
        H5Gclose(root);
    }
    for (int d = 0; d < t->n_dirs && rc == 0; d++) {
        snprintf(name, sizeof name, "reader_%d", d);
        hid_t group;
        rc = h5io_create_group(training, path, name, &group);
        if (rc == 0) rc = lm_reader_save_state(readers[d], group);
        if (group >= 0) H5Gclose(group);
    }
    H5Gclose(training);
    return rc;
}

int checkpoint_save(const char *path, const Trainer *t, const ReplicaStates *states, const Vocab *vocab,
                    LmReader *const *readers, const RunSettings *settings, const CheckpointBest *best) {
    ReplicaStates own = {.n = 1, .rng = (uint64_t *)t->rng.s};
    if (!states) {
        for (int d = 0; d < t->n_dirs; d++)
            for (int l = 0; l < t->L; l++) {
                own.c[d][l] = t->c_state[d][l];
                own.h[d][l] = t->h_state[d][l];
            }
        states = &own;
    }
    PendingFile pending;
    pending_begin(&pending, path);
    hid_t file;
    if (h5io_create(pending.tmp, &file) < 0) {
        pending_abort(&pending);
        return elmo_fail("%s: cannot create checkpoint (is the directory writable?)", path);
    }
    int rc = save_to(file, path, t, states, vocab, readers, settings, best);
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

/* Step of a checkpoint file name, or -1. */
static long checkpoint_step(const char *name);

int checkpoint_load(const char *path, Trainer *t, LmReader *const *readers, long max_step) {
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
        rc = h5io_read_weights(file, path, name, e->rank, dims, t->accum + e->offset);
        /* Adagrad's sums of squares start at a positive value and only grow */
        for (size_t k = 0; k < e->size && rc == 0; k++)
            if (!(t->accum[e->offset + k] > 0))
                rc = elmo_fail("%s: %s: value %zu is %g, an accumulator must be > 0", path, name, k,
                               (double)t->accum[e->offset + k]);
    }
    uint64_t step = 0;
    const Replicas *rep = replicas();
    ReplicaStates states;
    replica_states_init(&states, t, rep->size);
    if (rc == 0) rc = h5io_read_u64(file, path, "training/step", &step, 1);
    if (rc == 0) rc = h5io_read_u64(file, path, "training/rng", states.rng, 4 * (size_t)rep->size);
    if (rc == 0 && step > (uint64_t)LONG_MAX)
        rc = elmo_fail("%s: training/step %lld is negative", path, (long long)step);
    if (rc == 0 && max_step >= 0 && (long)step > max_step)
        rc = elmo_fail("%s: training/step %llu is beyond the run's %ld batches", path, (unsigned long long)step,
                       max_step);
    const char *base = strrchr(path, '/');
    const long named = checkpoint_step(base ? base + 1 : path);
    if (rc == 0 && named >= 0 && (uint64_t)named != step)
        rc = elmo_fail("%s: training/step is %llu, the file name says %ld", path, (unsigned long long)step, named);
    for (int k = 0; k < rep->size && rc == 0; k++)
        if (!rng_state_valid(states.rng + 4 * k))
            rc = elmo_fail("%s: training/rng: all-zero generator state (not one the generator can have)", path);
    t->step = (long)step;
    const hsize_t rows = (hsize_t)rep->size * t->B;
    for (int d = 0; d < t->n_dirs && rc == 0; d++)
        for (int l = 0; l < t->L && rc == 0; l++) {
            hsize_t dc[2] = {rows, (hsize_t)t->dims.H}, dh[2] = {rows, (hsize_t)t->dims.Hs};
            state_name(name, sizeof name, 'c', d, l);
            rc = h5io_read_weights(file, path, name, 2, dc, states.c[d][l]);
            state_name(name, sizeof name, 'h', d, l);
            if (rc == 0) rc = h5io_read_weights(file, path, name, 2, dh, states.h[d][l]);
        }
    if (rc == 0) replicas_take_states(t, &states, rep->rank);
    replica_states_free(&states);
    for (int d = 0; d < t->n_dirs && rc == 0; d++) {
        snprintf(name, sizeof name, "training/reader_%d", d);
        hid_t group = h5io_exists(file, name) ? H5Gopen2(file, name, H5P_DEFAULT) : -1;
        rc = group >= 0 ? lm_reader_load_state(readers[d], group) : elmo_fail("%s: missing %s", path, name);
        if (group >= 0) H5Gclose(group);
    }
    H5Fclose(file);
    return rc;
}

int checkpoint_load_accumulators(const char *path, Trainer *t) {
    hid_t file;
    if (h5io_open_read(path, &file) < 0) return -1;
    const BilmModel *m = t->model;
    char name[160];
    int rc = 0;
    for (int i = 0; i < m->n_entries && rc == 0; i++) {
        const ParamEntry *e = &m->entries[i];
        if (e->row_sparse) continue;
        hsize_t dims[H5IO_MAX_RANK];
        for (int k = 0; k < e->rank; k++) dims[k] = (hsize_t)e->shape[k];
        snprintf(name, sizeof name, "training/adagrad/%s", e->name);
        rc = h5io_read_weights(file, path, name, e->rank, dims, t->accum + e->offset);
    }
    H5Fclose(file);
    return rc;
}

int checkpoint_read_settings(const char *path, RunSettings *settings) {
    hid_t file;
    if (h5io_open_read(path, &file) < 0) return -1;
    int rc = -1;
    enum { MAX_JSON = 1 << 16 };
    char *json = xmalloc(MAX_JSON);
    if (h5io_exists(file, "training")) {
        hid_t training = H5Gopen2(file, "training", H5P_DEFAULT);
        rc = h5io_read_string_attr(training, path, "settings", json, MAX_JSON);
        H5Gclose(training);
    }
    H5Fclose(file);
    if (rc < 0) {
        free(json);
        return elmo_fail("%s: not a training checkpoint of this version (no training/settings)", path);
    }
    rc = settings_from_json(settings, json, path);
    free(json);
    return rc;
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

static int newest_first(const void *a, const void *b) {
    const long x = *(const long *)a, y = *(const long *)b;
    return (x < y) - (x > y);
}

int checkpoint_list(const char *dir, long **steps, int *n) {
    DIR *d = opendir(dir);
    if (!d) return elmo_fail("%s: cannot open directory: %s", dir, strerror(errno));
    int cap = 16;
    *steps = xmalloc((size_t)cap * sizeof **steps);
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long s = checkpoint_step(e->d_name);
        if (s < 0) continue;
        if (*n == cap) *steps = xrealloc(*steps, (size_t)(cap *= 2) * sizeof **steps);
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    if (*n == 0) {
        free(*steps);
        *steps = NULL;
        return elmo_fail("%s: no checkpoint (model.ckpt-<step>.hdf5) in this directory", dir);
    }
    qsort(*steps, (size_t)*n, sizeof **steps, newest_first);
    return 0;
}

void checkpoint_path(char *out, size_t size, const char *dir, long step) {
    snprintf(out, size, "%s/model.ckpt-%ld.hdf5", dir, step);
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
