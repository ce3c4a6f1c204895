/* runlock.h - one run at a time in a directory: an exclusive flock(2) on DIR/elmo.lock.
 *
 * The lock file holds "pid host\n" of the process that holds it, for the message that
 * refuses a second run. The kernel releases a flock when its process ends however it ends,
 * so a lock file whose flock can be taken was left by a process that no longer runs: it is
 * taken over (a note names the old pid). The descriptor stays open for the life of the
 * process; the file is removed at exit() and quick_exit(). One lock per process. */
#ifndef ELMO_RUNLOCK_H
#define ELMO_RUNLOCK_H

/* Takes DIR/elmo.lock (DIR exists). Fails, naming dir and the holder's pid and host, when
 * another process holds it. */
int runlock_take(const char *dir);
/* Removes the lock file and lets the lock go (a failed run leaving the directory as it
 * found it); nothing when no lock is held. Also done at exit. */
void runlock_release(void);

#endif
