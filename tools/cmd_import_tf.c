/* cmd_import_tf.c - `elmo import-tf`: a TensorFlow V2 checkpoint of bilm-tf (docs/design.md
 * section 10) as this project's HDF5 file, read by src/tfbundle.c without TensorFlow. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "common.h"
#include "fileio.h"
#include "h5io.h"
#include "model.h"
#include "options.h"
#include "tfbundle.h"
#include "vocab.h"
#include "paths.h"

static const char import_help[] =
    "usage: elmo import-tf --checkpoint PREFIX --list\n"
    "       elmo import-tf --checkpoint PREFIX --options options.json --vocab vocab.txt --output model.hdf5\n"
    "       elmo import-tf --checkpoint PREFIX --raw --output tensors.hdf5\n\n"
    "Reads a TensorFlow V2 checkpoint (PREFIX.index + PREFIX.data-*-of-*), e.g. bilm-tf's\n"
    "model.ckpt-935588, verifying every block's and tensor's CRC32C.\n\n"
    "  --checkpoint PREFIX  the checkpoint (without .index)\n"
    "  --list               print name, dtype and shape of every tensor, sorted by name\n"
    "  --options FILE       the model's options.json: every bilm-tf tensor is checked against it\n"
    "  --vocab FILE         the vocabulary (one word a line): its size is softmax/W's rows;\n"
    "                       written into the output as the string dataset `vocab`\n"
    "  --output FILE        the HDF5 file: every parameter under its weight-file name (the\n"
    "                       layout --init-from and embed read), the Adagrad accumulators as\n"
    "                       training/adagrad/NAME and global_step as training/step when present\n"
    "  --raw                instead every numeric tensor as float32 under its TF name (a tensor\n"
    "                       whose name is also another's folder, as lm/char_embed beside\n"
    "                       lm/char_embed/Adagrad, goes to NAME/.value)\n";

static void list_tensors(const TfBundle *b) {
    for (int i = 0; i < tfbundle_count(b); i++) {
        const TfTensor *t = tfbundle_tensor(b, i);
        char shape[256];
        printf("%s %s %s%s\n", t->name, tfbundle_dtype_name(t->dtype), tfbundle_shape_str(t, shape, sizeof shape),
               t->sliced ? " partitioned" : "");
    }
}

/* Reads a float32 tensor of the bundle into out after checking its dtype and shape
 * against (rank, shape). */
static int read_checked(TfBundle *b, const char *prefix, const TfTensor *t, int rank, const int *shape, float *out,
                        size_t n) {
    if (t->dtype != TFB_DT_FLOAT)
        return elmo_fail("%s.index: tensor %s: dtype %s, expected float32", prefix, t->name,
                         tfbundle_dtype_name(t->dtype));
    int same = t->rank == rank;
    for (int r = 0; same && r < rank; r++) same = t->dims[r] == shape[r];
    if (!same) {
        char got[256], want[256];
        hsize_t d[H5IO_MAX_RANK];
        for (int r = 0; r < rank; r++) d[r] = (hsize_t)shape[r];
        return elmo_fail("%s.index: tensor %s: got %s, expected %s", prefix, t->name,
                         tfbundle_shape_str(t, got, sizeof got), h5io_shape_str(want, sizeof want, rank, d));
    }
    return tfbundle_read_floats(b, t->name, out, n);
}

/* The tensor of a parameter: its TF >= 1.2 name, or "lm/" + its weight-file name (older
 * TF's LSTM names, and the same name for every other tensor). */
static const TfTensor *find_param(const TfBundle *b, const ParamEntry *e) {
    const TfTensor *t = tfbundle_find(b, e->tf_name);
    if (t) return t;
    char old[160];
    snprintf(old, sizeof old, "lm/%s", e->name);
    return tfbundle_find(b, old);
}

static int write_model(TfBundle *b, const char *prefix, const char *options_path, const char *vocab_path,
                       const char *output) {
    ElmoOptions opt;
    if (options_load(&opt, options_path) < 0) return -1;
    Vocab vocab;
    if (vocab_load(&vocab, vocab_path, 0) < 0) {
        options_free(&opt);
        return -1;
    }
    int rc = 0;
    const TfTensor *sw = tfbundle_find(b, "lm/softmax/W");
    if (!sw) rc = elmo_fail("%s.index: no tensor lm/softmax/W (a bilm-tf training checkpoint has one)", prefix);
    else if (sw->rank != 2 || sw->dims[0] != vocab.size)
        rc = elmo_fail("%s: %d words, but lm/softmax/W of %s.index has %" PRId64 " rows", vocab_path, vocab.size,
                       prefix, sw->rank >= 1 ? sw->dims[0] : 0);
    BilmModel m;
    memset(&m, 0, sizeof m);
    float *accum = NULL;
    int have_accum = 0;
    int64_t step = -1;
    if (rc == 0) {
        model_init_layout(&m, &opt, vocab.size);
        for (int i = 0; i < m.n_entries && rc == 0; i++) {
            const ParamEntry *e = &m.entries[i];
            const TfTensor *t = find_param(b, e);
            if (!t) {
                rc = elmo_fail("%s.index: no tensor %s (nor lm/%s)", prefix, e->tf_name, e->name);
                break;
            }
            rc = read_checked(b, prefix, t, e->rank, e->shape, m.data + e->offset, e->size);
            char slot[256];
            snprintf(slot, sizeof slot, "%s/Adagrad", t->name);
            const TfTensor *a = tfbundle_find(b, slot);
            if (rc == 0 && i == 0) have_accum = a != NULL;
            if (rc == 0 && have_accum) {
                if (!a) {
                    rc = elmo_fail("%s.index: no tensor %s (the other Adagrad accumulators are there)", prefix, slot);
                    break;
                }
                if (!accum) accum = xcalloc(m.n_floats, sizeof *accum);
                rc = read_checked(b, prefix, a, e->rank, e->shape, accum + e->offset, e->size);
            }
        }
        if (rc == 0 && tfbundle_find(b, "global_step")) rc = tfbundle_read_int64(b, "global_step", &step);
        if (rc == 0 && step < -1) rc = elmo_fail("%s.index: tensor global_step: negative (%" PRId64 ")", prefix, step);
    }
    if (rc == 0) {
        PendingFile pf;
        pending_begin(&pf, output);
        hid_t file;
        if (h5io_create(pf.tmp, &file) < 0) {
            pending_abort(&pf);
            rc = elmo_fail("%s: cannot create", output);
        } else {
            for (int i = 0; i < m.n_entries && rc == 0; i++) {
                const ParamEntry *e = &m.entries[i];
                hsize_t dims[H5IO_MAX_RANK];
                for (int r = 0; r < e->rank; r++) dims[r] = (hsize_t)e->shape[r];
                rc = h5io_write_floats(file, output, e->name, e->rank, dims, m.data + e->offset);
                if (rc == 0 && accum) {
                    char name[160];
                    snprintf(name, sizeof name, "training/adagrad/%s", e->name);
                    rc = h5io_write_floats(file, output, name, e->rank, dims, accum + e->offset);
                }
            }
            if (rc == 0)
                rc = h5io_write_strings(file, output, "vocab", (const char *const *)vocab.words, (size_t)vocab.size);
            if (rc == 0 && step >= 0) {
                const uint64_t s = (uint64_t)step;
                rc = h5io_write_u64(file, output, "training/step", &s, 1);
            }
            if (h5io_close(file, output) < 0) rc = -1;
            if (rc < 0) pending_abort(&pf);
            else rc = pending_commit(&pf);
        }
    }
    free(accum);
    if (m.entries) model_free(&m);
    vocab_free(&vocab);
    options_free(&opt);
    return rc;
}

/* 1 when another tensor's name starts with name + "/" (so name must be a group). */
static int is_folder(const TfBundle *b, const char *name) {
    const size_t len = strlen(name);
    for (int i = 0; i < tfbundle_count(b); i++) {
        const char *other = tfbundle_tensor(b, i)->name;
        if (strncmp(other, name, len) == 0 && other[len] == '/') return 1;
    }
    return 0;
}

static int write_raw(TfBundle *b, const char *output) {
    PendingFile pf;
    pending_begin(&pf, output);
    hid_t file;
    if (h5io_create(pf.tmp, &file) < 0) {
        pending_abort(&pf);
        return elmo_fail("%s: cannot create", output);
    }
    int rc = 0;
    for (int i = 0; i < tfbundle_count(b) && rc == 0; i++) {
        const TfTensor *t = tfbundle_tensor(b, i);
        if (t->dtype == TFB_DT_STRING || t->dtype == TFB_DT_BOOL || t->sliced) {
            elmo_note("%s: %s tensor%s not written", t->name, tfbundle_dtype_name(t->dtype),
                      t->sliced ? " (partitioned)" : "");
            continue;
        }
        if (t->rank < 0 || t->rank > H5IO_MAX_RANK) {
            rc = elmo_fail("%s: tensor %s: rank %d: not supported", output, t->name, t->rank);
            break;
        }
        const size_t n = (size_t)tfbundle_elements(t);
        float *data = xmalloc((n ? n : 1) * sizeof *data);
        hsize_t dims[H5IO_MAX_RANK];
        for (int r = 0; r < t->rank; r++) dims[r] = (hsize_t)t->dims[r];
        char name[1024];
        snprintf(name, sizeof name, is_folder(b, t->name) ? "%s/.value" : "%s", t->name);
        rc = tfbundle_read_floats(b, t->name, data, n);
        if (rc == 0) rc = h5io_write_floats(file, output, name, t->rank, dims, data);
        free(data);
    }
    if (h5io_close(file, output) < 0) rc = -1;
    if (rc < 0) {
        pending_abort(&pf);
        return -1;
    }
    return pending_commit(&pf);
}

int cmd_import_tf(int argc, char **argv) {
    const char *prefix = NULL, *options_path = NULL, *vocab_path = NULL, *output = NULL;
    int list = 0, raw = 0;
    enum { O_CKPT = 256, O_LIST, O_OPTIONS, O_VOCAB, O_OUT, O_RAW };
    static const struct option longopts[] = {
        {"checkpoint", required_argument, 0, O_CKPT}, {"list", no_argument, 0, O_LIST},
        {"options", required_argument, 0, O_OPTIONS}, {"vocab", required_argument, 0, O_VOCAB},
        {"output", required_argument, 0, O_OUT},      {"raw", no_argument, 0, O_RAW},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_CKPT: prefix = optarg; break;
        case O_LIST: list = 1; break;
        case O_OPTIONS: options_path = optarg; break;
        case O_VOCAB: vocab_path = optarg; break;
        case O_OUT: output = optarg; break;
        case O_RAW: raw = 1; break;
        case 'h': fputs(import_help, stdout); return 0;
        default: fputs(import_help, stderr); return ELMO_EXIT_FAILURE;
        }
    }
    if (optind < argc) elmo_die("import-tf: unexpected argument '%s'", argv[optind]);
    cli_require("--checkpoint", prefix, "import-tf");
    if (list + raw > 1) elmo_die("import-tf: give --list or --raw, not both");
    if (!list) cli_require("--output", output, "import-tf");
    if (!list && !raw) {
        cli_require("--options", options_path, "import-tf");
        cli_require("--vocab", vocab_path, "import-tf");
    }
    if (!list) {
        const size_t n = strlen(prefix) + 16;
        char *index = xmalloc(n), *data = xmalloc(n);
        snprintf(index, n, "%s.index", prefix);
        snprintf(data, n, "%s.data-*", prefix);
        const char *inputs[] = {"--options", options_path, "--vocab", vocab_path, "--checkpoint", index};
        if (paths_refuse_overwrite(output, inputs, 3, "import-tf") < 0 ||
            paths_refuse_glob_overwrite("--output", output, data, "--checkpoint", "import-tf") < 0)
            elmo_die_last();
        free(index);
        free(data);
    }
    TfBundle *b;
    if (tfbundle_open(&b, prefix) < 0) elmo_die_last();
    int rc = 0;
    if (list) list_tensors(b);
    else if (raw) rc = write_raw(b, output);
    else rc = write_model(b, prefix, options_path, vocab_path, output);
    tfbundle_close(b);
    if (rc < 0) elmo_die_last();
    return 0;
}
