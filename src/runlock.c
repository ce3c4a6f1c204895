/* runlock.c - see runlock.h. */
#include "runlock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static int held_fd = -1;
static char *held_path;
static pid_t held_by; /* the process that took it (a forked child does not remove it) */

void runlock_release(void) {
    if (held_fd < 0 || getpid() != held_by) return;
    /* only the file still at the path is ours: unlinked while held, so that a process
     * that opened it meanwhile sees another inode and starts over */
    struct stat a, b;
    if (fstat(held_fd, &a) == 0 && stat(held_path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        unlink(held_path);
    close(held_fd);
    held_fd = -1;
    free(held_path);
    held_path = NULL;
}

/* The "pid host" of the lock file fd into text (empty when it has none yet). */
static void read_holder(int fd, char *text, size_t size) {
    ssize_t n = pread(fd, text, size - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    text[strcspn(text, "\n")] = '\0';
}

int runlock_take(const char *dir) {
    CHECK(held_fd < 0, "%s: a second run lock in one process", dir);
    size_t n = strlen(dir) + 16;
    char *path = xmalloc(n);
    snprintf(path, n, "%s/elmo.lock", dir);
    for (int attempt = 0;; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) {
            const int e = errno;
            free(path);
            return elmo_fail("%s: cannot create the lock file elmo.lock: %s", dir, strerror(e));
        }
        char holder[256];
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            const int e = errno;
            read_holder(fd, holder, sizeof holder);
            close(fd);
            free(path);
            if (e != EWOULDBLOCK)
                return elmo_fail("%s: cannot lock elmo.lock: %s", dir, strerror(e));
            long pid = 0;
            char host[HOST_NAME_MAX + 1] = "?";
            if (sscanf(holder, "%ld %64s", &pid, host) < 1)
                return elmo_fail("%s: in use by another elmo run (its elmo.lock is held); wait for it to end", dir);
            return elmo_fail("%s: in use by process %ld on %s (it holds %s/elmo.lock); wait for it to end or stop it",
                             dir, pid, host, dir);
        }
        /* the file may have been removed by its holder between our open and flock */
        struct stat a, b;
        if (fstat(fd, &a) < 0 || stat(path, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
            close(fd);
            CHECK(attempt < 100, "%s: the lock file keeps changing", path);
            continue;
        }
        read_holder(fd, holder, sizeof holder);
        if (holder[0]) {
            long pid = 0;
            char host[HOST_NAME_MAX + 1] = "?";
            sscanf(holder, "%ld %64s", &pid, host);
            elmo_note("%s: lock of process %ld on %s, which no longer runs, taken over", dir, pid, host);
        }
        char host[HOST_NAME_MAX + 1];
        if (gethostname(host, sizeof host) < 0) snprintf(host, sizeof host, "?");
        host[HOST_NAME_MAX] = '\0';
        char line[HOST_NAME_MAX + 32];
        const int len = snprintf(line, sizeof line, "%ld %s\n", (long)getpid(), host);
        if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)len, 0) != len) {
            const int e = errno;
            close(fd);
            free(path);
            return elmo_fail("%s: cannot write elmo.lock: %s", dir, strerror(e));
        }
        static int registered;
        if (!registered) {
            atexit(runlock_release);
            at_quick_exit(runlock_release); /* elmo_die's */
        }
        registered = 1;
        held_fd = fd;
        held_path = path;
        held_by = getpid();
        return 0;
    }
}
