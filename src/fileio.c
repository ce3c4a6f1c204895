/* fileio.c - see fileio.h. */
#define _GNU_SOURCE /* O_TMPFILE (Linux) */
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdatomic.h>
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

/* ---------------------------------------------- files removed if the process ends early */

/* One registered file. Entries are chained once and never freed (a released one is
 * reused), and a path is set only when complete and cleared before it is freed, so the
 * signal handler may walk the chain at any moment. */
struct FileRemoval {
    char *volatile path;                   /* NULL: free */
    int set;                               /* 0: a pending temporary, else its FileSet's id */
    int dir;                               /* removed with rmdir, once the files in it are */
    struct FileRemoval *volatile next;     /* the chain the handler walks */
    struct FileRemoval *next_free;
};
static struct FileRemoval *volatile removals;
static struct FileRemoval *free_removals;

static const int caught_signals[3] = {SIGINT, SIGTERM, SIGHUP};
static struct sigaction previous_action[3];

/* Async-signal-safe: it only reads the chain, unlinks and removes directories. Files go
 * first; then the directories, as often as they can nest (a reused entry keeps its old
 * place in the chain, so the chain's order says nothing about their depth). Twice: other
 * threads run on meanwhile, and one may create or rename into a registered name (each
 * is registered before it exists) just after the first sweep passed it. */
static void remove_registered(void) {
    for (int sweep = 0; sweep < 2; sweep++) {
        for (struct FileRemoval *r = removals; r; r = r->next) {
            char *path = r->path;
            if (path && !r->dir) unlink(path);
        }
        for (int depth = 0; depth < 4; depth++)
            for (struct FileRemoval *r = removals; r; r = r->next) {
                char *path = r->path;
                if (path && r->dir) rmdir(path);
            }
    }
}

/* Set by signals_stop_gracefully: the first SIGINT or SIGTERM is only noted in
 * stop_signal, for the program to finish its work and stop; a second one acts at once. */
static volatile sig_atomic_t graceful, stop_signal;

static void on_signal(int sig) {
    int saved_errno = errno;
    if (graceful && !stop_signal && sig != SIGHUP) {
        stop_signal = sig;
        errno = saved_errno;
        return;
    }
    remove_registered();
    for (int i = 0; i < 3; i++)
        if (caught_signals[i] == sig) sigaction(sig, &previous_action[i], NULL);
    /* Blocked until this handler returns, then delivered under the previous disposition
     * (by default: the process ends, with the signal as its status). */
    raise(sig);
    errno = saved_errno;
}

static void install_handlers(void) {
    static int installed;
    if (installed) return;
    installed = 1;
    atexit(remove_registered);
    at_quick_exit(remove_registered);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) sigaddset(&sa.sa_mask, caught_signals[i]); /* one handler at a time */
    for (int i = 0; i < 3; i++) {
        struct sigaction now;
        sigaction(caught_signals[i], NULL, &now);
        if (now.sa_handler == SIG_IGN) continue; /* nohup: stays ignored */
        sigaction(caught_signals[i], &sa, &previous_action[i]);
    }
}

/* Registers a copy of path for removal. Registrations and releases come from one thread
 * at a time (a critical section: shards are written by several); the handler needs no
 * lock, as entries are only ever added whole at the head and paths set or cleared. */
static struct FileRemoval *register_removal(const char *path, int set, int dir) {
    char *copy = xstrdup(path);
    struct FileRemoval *r;
#pragma omp critical(fileio_removals)
    {
        install_handlers();
        r = free_removals;
        if (r) {
            free_removals = r->next_free;
        } else {
            r = xcalloc(1, sizeof *r);
            r->next = removals;
            atomic_signal_fence(memory_order_release); /* a handler sees it whole */
            removals = r;
        }
        r->set = set;
        r->dir = dir;
        atomic_signal_fence(memory_order_release);
        r->path = copy;
    }
    return r;
}

/* Forgets the file (it stays, or is already gone); inside the critical section. */
static void release_locked(struct FileRemoval *r) {
    char *path = r->path;
    r->path = NULL;
    free(path);
    r->next_free = free_removals;
    free_removals = r;
}

static void release_removal(struct FileRemoval *r) {
#pragma omp critical(fileio_removals)
    release_locked(r);
}

/* Keeps (or removes first) every file of set s, and ends it. */
static void fileset_end(FileSet *s, int remove) {
    if (s->id == 0) return;
#pragma omp critical(fileio_removals)
    {
        if (remove) {
            for (struct FileRemoval *r = removals; r; r = r->next)
                if (r->path && r->set == s->id && !r->dir) unlink(r->path);
            for (int depth = 0; depth < 4; depth++)
                for (struct FileRemoval *r = removals; r; r = r->next)
                    if (r->path && r->set == s->id && r->dir) rmdir(r->path);
        }
        for (struct FileRemoval *r = removals; r; r = r->next)
            if (r->path && r->set == s->id) release_locked(r);
    }
    s->id = 0;
}

void fileset_begin(FileSet *s) {
    static int last_id;
    s->id = ++last_id;
}

void fileset_add(FileSet *s, const char *path) {
    CHECK(s->id > 0, "%s: added to a set not begun", path);
    register_removal(path, s->id, 0);
}

void fileset_add_dir(FileSet *s, const char *path) {
    CHECK(s->id > 0, "%s: added to a set not begun", path);
    register_removal(path, s->id, 1);
}

void fileset_discard(FileSet *s) { fileset_end(s, 1); }

void fileset_keep(FileSet *s) { fileset_end(s, 0); }

int file_open_unnamed(const char *dir, int *fd) {
    /* Linux makes it without a name at all; a kill -9 between creating and unlinking a
     * named one (below) would leave it behind. */
    *fd = open(dir, O_TMPFILE | O_RDWR, 0600);
    if (*fd >= 0) return 0;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT)
        return elmo_fail("%s: cannot create a temporary file: %s", dir, strerror(errno));
    /* Elsewhere: named as a temporary of this process, so that if it outlives it the
     * next run removes it (file_remove_stale_temporaries). */
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".tmp.%ld", (long)getpid());
    size_t n = strlen(dir) + strlen(suffix) + 16;
    char *name = xmalloc(n);
    snprintf(name, n, "%s/.spill-XXXXXX%s", dir, suffix);
    sigset_t block, old;
    sigemptyset(&block);
    for (int i = 0; i < 3; i++) sigaddset(&block, caught_signals[i]);
    sigprocmask(SIG_BLOCK, &block, &old);
    *fd = mkstemps(name, (int)strlen(suffix));
    int e = errno;
    if (*fd >= 0) unlink(name);
    sigprocmask(SIG_SETMASK, &old, NULL);
    free(name);
    if (*fd < 0) return elmo_fail("%s: cannot create a temporary file: %s", dir, strerror(e));
    return 0;
}

/* ------------------------------------------------------------------ pending files */

void pending_begin(PendingFile *f, const char *path) {
    size_t n = strlen(path) + 32;
    f->path = xstrdup(path);
    f->tmp = xmalloc(n);
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    f->removal = register_removal(f->tmp, 0, 0);
}

static void pending_release(PendingFile *f) {
    release_removal(f->removal);
    free(f->tmp);
    free(f->path);
    f->tmp = f->path = NULL;
    f->removal = NULL;
}

static int fsync_path(const char *path, int directory) {
    int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (directory && rc < 0 && (errno == EINVAL || errno == EBADF)) rc = 0; /* not supported */
    close(fd);
    return rc;
}

int file_sync_dir(const char *dir) {
    if (fsync_path(dir, 1) < 0) return elmo_fail("%s: cannot sync: %s", dir, strerror(errno));
    return 0;
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

void signals_stop_gracefully(void) {
    graceful = 1;
    install_handlers();
}

int signals_stop_requested(void) { return stop_signal; }

int file_make_dirs(const char *path) {
    char *p = xstrdup(path);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char saved = *s;
        *s = '\0';
        struct stat st;
        if (mkdir(p, 0777) < 0 && errno != EEXIST) {
            rc = elmo_fail("%s: cannot create directory: %s", p, strerror(errno));
            break;
        }
        if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
            rc = elmo_fail("%s: not a directory", p);
            break;
        }
        *s = saved;
        if (!saved) break;
    }
    free(p);
    return rc;
}

/* ------------------------------------------------ temporaries of processes that ended */

/* The pid of a temporary's name "<name>.tmp.<digits>", 0 when it is none. */
static long temporary_pid(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    for (const char *next; (next = strstr(t + 1, ".tmp.")) != NULL;) t = next; /* the last one */
    const char *d = t + 5;
    if (*d < '1' || *d > '9' || strlen(d) > 9) return 0;
    long pid = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9') return 0;
        pid = pid * 10 + (*d - '0');
    }
    return pid;
}

int file_remove_stale_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        return elmo_fail("%s: cannot list: %s", dir, strerror(errno));
    }
    const long self = (long)getpid();
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const long pid = temporary_pid(e->d_name);
        if (pid <= 0 || pid == self) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to signal) */
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *path = xmalloc(n);
        snprintf(path, n, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && unlink(path) == 0) removed++;
        free(path);
    }
    closedir(d);
    if (removed)
        elmo_note("%s: removed %d temporar%s left by processes that no longer exist", dir, removed,
                  removed == 1 ? "y" : "ies");
    return 0;
}

int file_remove_stale_temporaries_beside(const char *path) {
    char *copy = xstrdup(path);
    const int rc = file_remove_stale_temporaries(dirname(copy));
    free(copy);
    return rc;
}
