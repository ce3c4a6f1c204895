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
/* mkdir -p path: creates the directory and its missing parents; fails naming the first
 * component that cannot be created or is not a directory. */
int file_make_dirs(const char *path);
/* Writes data to path atomically. */
int file_write_atomic(const char *path, const void *data, size_t len);
/* fsyncs a directory, so that the names made or renamed in it last. */
int file_sync_dir(const char *dir);

/* ------------------------------------------------ files removed if the process ends early
 *
 * The temporary file of every PendingFile, and the files of a FileSet, are removed if the
 * process ends before they are committed or kept: through exit() or quick_exit(), or by
 * SIGINT, SIGTERM or SIGHUP. The handler (installed with sigaction when the first file is
 * registered) only unlinks the registered files and raises the signal again under the
 * disposition it replaced, so the process ends as it would have without it (its exit
 * status is the signal's). A signal ignored when the first file is registered (nohup)
 * stays ignored. Files may be registered from several threads. */

struct FileRemoval;

/* A result being written: `tmp` is where to write, `path` where it goes on commit. */
typedef struct {
    char *path;
    char *tmp;
    struct FileRemoval *removal; /* private to fileio.c */
} PendingFile;

/* Chooses the temporary name "<path>.tmp.<pid>" and registers it for removal if the
 * process ends before the commit. */
void pending_begin(PendingFile *f, const char *path);
/* fsyncs the temporary file, renames it to the final path, fsyncs the directory. */
int pending_commit(PendingFile *f);
/* Removes the temporary file (after an error). */
void pending_abort(PendingFile *f);

/* Results that are only right as a complete set (the shards of a corpus): the files
 * added to a set are removed if the process ends early, or by fileset_discard, until
 * fileset_keep. */
typedef struct {
    int id;              /* 0: no set */
} FileSet;

void fileset_begin(FileSet *s);
/* Adds path (copied) to the set; before it is renamed into place, so that a signal right
 * after the rename finds it. */
void fileset_add(FileSet *s, const char *path);
/* Adds a directory (copied) made for the set: removed after the files, when empty. */
void fileset_add_dir(FileSet *s, const char *path);
/* Removes the files of the set (then its directories), and ends it. */
void fileset_discard(FileSet *s);
/* Keeps the files of the set, and ends it. */
void fileset_keep(FileSet *s);

/* From now on the first SIGINT or SIGTERM does not end the process: it is only noted,
 * for signals_stop_requested to report (a long run then finishes its step, saves and
 * exits with 128 + the signal). A second one ends the process at once, removing the
 * registered files as above, so no result is left half-written. */
void signals_stop_gracefully(void);
/* The signal noted since signals_stop_gracefully, 0 if none. */
int signals_stop_requested(void);

/* A file in dir without a name (spill data), so nothing of it survives the process
 * however it ends: O_TMPFILE where the file system has it, else created and unlinked at
 * once (signals blocked in between; a name of this process's temporaries, should a
 * kill -9 fall in between). *fd receives it (read and write). */
int file_open_unnamed(const char *dir, int *fd);

/* Removes from dir the temporaries "<name>.tmp.<pid>" (pending_begin's) whose process no
 * longer exists (kill(pid, 0) fails with ESRCH), with one note saying how many; those of a
 * live process, this one's included, are never touched. A dir that does not exist is
 * nothing to clean. The pid is this machine's: on a directory shared between machines a
 * temporary written from another one is taken for stale. */
int file_remove_stale_temporaries(const char *dir);
/* The same for the directory that holds the file path (an output file to be written). */
int file_remove_stale_temporaries_beside(const char *path);

#endif
