/* fileio.h - whole-file reads and crash-safe writes.
 *
 * Every result file is written under a temporary name in the same directory and
 * renamed into place after an fsync, so an interrupted or failed run never leaves a
 * truncated file under the final name and never damages an earlier result.
 */
#ifndef ELMO_FILEIO_H
#define ELMO_FILEIO_H

#include <stddef.h>

/* Reads the whole file (at most max_bytes) into a NUL-terminated buffer. */
int file_read_all(const char *path, size_t max_bytes, char **data, size_t *len);
/* Writes data to path atomically. */
int file_write_atomic(const char *path, const void *data, size_t len);

/* A result being written: `tmp` is where to write, `path` where it goes on commit. */
typedef struct {
    char *path;
    char *tmp;
} PendingFile;

/* Chooses the temporary name "<path>.tmp.<pid>" and registers it for removal if the
 * process is interrupted (SIGINT, SIGTERM, SIGHUP) or exits before the commit. */
void pending_begin(PendingFile *f, const char *path);
/* fsyncs the temporary file, renames it to the final path, fsyncs the directory. */
int pending_commit(PendingFile *f);
/* Removes the temporary file (after an error). */
void pending_abort(PendingFile *f);

#endif
