/* h5io.h - float32 datasets in HDF5 files, with errors that name the file and dataset.
 * The HDF5 library's own error stack printing is silenced: every failure becomes one
 * line through elmo_fail(). */
#ifndef ELMO_H5IO_H
#define ELMO_H5IO_H

#include <hdf5.h>

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
/* Writes a float32 dataset, creating the groups of its path. */
int h5io_write_floats(hid_t file, const char *path, const char *name, int rank, const hsize_t *dims,
                      const float *data);
/* Creates the missing groups on the path of `name` ("a/b/c" -> a, a/b), without
 * timestamps (files written twice with the same content are byte-identical). */
int h5io_create_groups(hid_t file, const char *name);
/* A dataset creation property list without timestamps (caller closes it). */
hid_t h5io_dataset_plist(void);
/* Formats "(a, b, c)" into buf. */
const char *h5io_shape_str(char *buf, size_t size, int rank, const hsize_t *dims);

#endif
