/* h5io.h - the project's HDF5 layer: float32, integer and string datasets, string
 * attributes and groups, with errors that name the file and dataset. Nothing is written
 * with a timestamp, so the same content gives byte-identical files. The HDF5 library's
 * own error stack printing is silenced: every failure becomes one line through
 * elmo_fail(). Every function taking `path` uses it only in its messages (the file's
 * name, or h5io_describe's for an object inside one); `loc` is a file or a group. */
#ifndef ELMO_H5IO_H
#define ELMO_H5IO_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#define H5IO_MAX_RANK 4

/* Opens an existing HDF5 file for reading. */
int h5io_open_read(const char *path, hid_t *file);
/* Creates (truncates) a file for writing. */
int h5io_create(const char *path, hid_t *file);
/* Closes and reopens a file being written: HDF5 keeps metadata of every object written
 * in memory until the file is closed, so long writers reopen now and then. */
int h5io_reopen(hid_t *file, const char *path);
/* Closes the file; fails if the library reports an error (e.g. the disk is full). */
int h5io_close(hid_t file, const char *path);

/* 1 when the dataset exists, 0 when not. */
int h5io_exists(hid_t file, const char *name);
/* Rank and dimensions of a dataset. */
int h5io_shape(hid_t file, const char *path, const char *name, int *rank, hsize_t *dims);
/* Reads a whole dataset as float32 after checking its shape against (rank, dims). */
int h5io_read_floats(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims,
                     float *out);
/* The same for weights and training state: a float dataset only (an integer or string
 * one is an error naming it), every value finite ("w.hdf5: CNN/W_cnn_0: value 17 is nan",
 * checked in one pass over what was read). */
int h5io_read_weights(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims,
                      float *out);
/* Writes a float32 dataset, creating the groups of its path. */
int h5io_write_floats(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims,
                      const float *data);
/* The same, stored as IEEE float16 ('<f2', what numpy calls float16) when half = 1: HDF5
 * converts from float, rounding to nearest; beyond 65504 becomes infinite. */
int h5io_write_floats_as(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims,
                         const float *data, int half);
/* Creates the missing groups on the path of `name` ("a/b/c" -> a, a/b), without
 * timestamps (files written twice with the same content are byte-identical). */
int h5io_create_groups(hid_t file, const char *name);
/* A dataset creation property list without timestamps (caller closes it). */
hid_t h5io_dataset_plist(void);
/* Integer datasets: n uint64 values of shape (n), or one int64 as a scalar (rank 0).
 * A write creates the groups of the name's path and replaces a dataset already there; a
 * read checks the dataset holds integers, n of them. */
int h5io_write_u64(hid_t loc, const char *path, const char *name, const uint64_t *v, hsize_t n);
int h5io_read_u64(hid_t loc, const char *path, const char *name, uint64_t *v, hsize_t n);
int h5io_write_i64(hid_t loc, const char *path, const char *name, int64_t v);
int h5io_read_i64(hid_t loc, const char *path, const char *name, int64_t *v);
/* A dataset of n variable-length UTF-8 strings, shape (n) (written like the integers). */
int h5io_write_strings(hid_t loc, const char *path, const char *name, const char *const *s, size_t n);
/* Reads one into *out: *n strings of its own (xstrdup), freed with h5io_free_strings. */
int h5io_read_strings(hid_t loc, const char *path, const char *name, char ***out, size_t *n);
void h5io_free_strings(char **s, size_t n);
/* A fixed-length string attribute of obj. A read truncates to size - 1 bytes. */
int h5io_write_string_attr(hid_t obj, const char *path, const char *name, const char *value);
int h5io_read_string_attr(hid_t obj, const char *path, const char *name, char *out, size_t size);
/* Creates the group name in loc, without timestamps; the caller closes *group. */
int h5io_create_group(hid_t loc, const char *path, const char *name, hid_t *group);
/* "FILE: <what> OBJECT" for an object of a file ("run.hdf5: reader state
 * /training/reader_0"), to pass as `path` when only the object is at hand. */
const char *h5io_describe(hid_t obj, const char *what, char *buf, size_t size);

/* Formats "(a, b, c)" into buf. */
const char *h5io_shape_str(char *buf, size_t size, int rank, const hsize_t *dims);

#endif
