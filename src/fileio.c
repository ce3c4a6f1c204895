/* fileio.c - see fileio.h. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

int file_read_all(const char *path, size_t max_bytes, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return elmo_fail("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max_bytes) {
                fclose(f);
                free(buf);
                return elmo_fail("%s: file larger than %zu bytes", path, max_bytes);
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return elmo_fail("%s: read error", path);
    }
    buf[n] = '\0';
    *data = buf;
    if (len) *len = n;
    return 0;
}

/* Temporary files to remove if the process dies before committing them. */
#define MAX_PENDING 8
static char *volatile pending_paths[MAX_PENDING];

static void remove_pending(void) {
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending_paths[i]) unlink(pending_paths[i]);
}

static void on_signal(int sig) {
    remove_pending();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void register_pending(char *tmp) {
    static int installed;
    if (!installed) {
        installed = 1;
        atexit(remove_pending);
        at_quick_exit(remove_pending);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGHUP, on_signal);
    }
    for (int i = 0; i < MAX_PENDING; i++)
        if (!pending_paths[i]) {
            pending_paths[i] = tmp;
            return;
        }
    CHECK(0, "more than %d files pending", MAX_PENDING);
}

static void unregister_pending(const char *tmp) {
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending_paths[i] == tmp) pending_paths[i] = NULL;
}

void pending_begin(PendingFile *f, const char *path) {
    size_t n = strlen(path) + 32;
    f->path = xstrdup(path);
    f->tmp = xmalloc(n);
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    register_pending(f->tmp);
}

static void pending_release(PendingFile *f) {
    unregister_pending(f->tmp);
    free(f->tmp);
    free(f->path);
    f->tmp = f->path = NULL;
}

static int fsync_path(const char *path, int directory) {
    int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (directory && rc < 0 && (errno == EINVAL || errno == EBADF)) rc = 0; /* not supported */
    close(fd);
    return rc;
}

int pending_commit(PendingFile *f) {
    if (fsync_path(f->tmp, 0) < 0) {
        int e = errno;
        pending_abort(f);
        return elmo_fail("%s: cannot sync: %s", f->path, strerror(e));
    }
    if (rename(f->tmp, f->path) < 0) {
        int e = errno;
        char *path = xstrdup(f->path);
        pending_abort(f);
        elmo_fail("%s: cannot rename into place: %s", path, strerror(e));
        free(path);
        return -1;
    }
    char *dir_copy = xstrdup(f->path);
    fsync_path(dirname(dir_copy), 1);
    free(dir_copy);
    pending_release(f);
    return 0;
}

void pending_abort(PendingFile *f) {
    if (!f->tmp) return;
    unlink(f->tmp);
    pending_release(f);
}

int file_write_atomic(const char *path, const void *data, size_t len) {
    PendingFile f;
    pending_begin(&f, path);
    FILE *out = fopen(f.tmp, "wb");
    if (!out) {
        int e = errno;
        pending_abort(&f);
        return elmo_fail("%s: cannot create: %s", path, strerror(e));
    }
    size_t written = fwrite(data, 1, len, out);
    int close_rc = fclose(out);
    if (written != len || close_rc != 0) {
        int e = errno;
        pending_abort(&f);
        return elmo_fail("%s: write failed: %s", path, strerror(e));
    }
    return pending_commit(&f);
}
