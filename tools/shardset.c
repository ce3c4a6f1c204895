/* shardset.c - see shardset.h.
 *
 * What a kill -9 leaves at each step of a run (SIGINT, SIGTERM and SIGHUP are blocked
 * during the commit, steps 3-6, so only kill -9 or a crash stops it there):
 *   1. the new generation being written (shards, held-out files, vocab.txt): DIR shows
 *      the earlier set; the generation, named with the dead pid, is a leftover.
 *   2. files of the earlier set that are not shards hard-linked into it, directories
 *      synced: the same.
 *   3. a missing fixed link made (a DIR new to this layout): it leads through DIR/.shards,
 *      which does not lead to the new generation yet, so it shows nothing or the earlier
 *      set; a taken-over directory of the older layout (below): the earlier set at every
 *      step.
 *   4. the switch link DIR/.shards.tmp.<pid> made: a leftover.
 *   5. renamed over DIR/.shards (one atomic step): the new set, complete.
 *   6. the earlier generation removed: until then an invisible leftover.
 * A reader lists DIR/train/ and then opens names in it; each open goes through the switch
 * again, so a reader that must see one set throughout a switch resolves the link once
 * (realpath) and reads there.
 *
 * The older layout (train/ and heldout/ real directories, vocab.txt a plain file; also
 * what `elmo vocab --output DIR/vocab.txt` makes) is taken over name by name without a
 * moment where the name is missing or shows something else. For DIR/train:
 *   - the current generation (an empty one made and switched to, when there is none) gets
 *     a link train -> ../.old-train.<pid>, and DIR/.old-train.<pid> -> .shards/train is
 *     made: both lead nowhere useful yet, and nothing reads them;
 *   - DIR/train and DIR/.old-train.<pid> are exchanged in one step (renameat2 with
 *     RENAME_EXCHANGE, Linux): DIR/train is now the fixed link, which leads through the
 *     switch to the same earlier directory, now named DIR/.old-train.<pid>.
 * That directory is kept while a current generation's link names it, and removed with
 * the generation that does. A file system without RENAME_EXCHANGE fails the run here,
 * before anything changed (one line saying what to remove by hand).
 */
#define _GNU_SOURCE /* renameat2 and RENAME_EXCHANGE (Linux); nftw */
#include "shardset.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

#define SWITCH ".shards"
#define SWITCH_TMP ".shards.tmp."
#define MOVED ".old-"
/* The names of a set in DIR and in a generation; prepare has the third. */
static const char *const PARTS[3] = {"train", "heldout", "vocab.txt"};
#define N_PARTS(s) ((s)->with_vocab ? 3 : 2)

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = xmalloc(n);
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}

/* ------------------------------------------------------------- names and leftovers */

/* A decimal pid at s (no leading zero); *end after it. 0: none. */
static long parse_pid(const char *s, const char **end) {
    long v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9' && p - s < 10) v = v * 10 + (*p++ - '0');
    *end = p;
    return p > s && *s != '0' ? v : 0;
}

/* The pid in a name this module makes in DIR (0 for any other name):
 *   .shards.<pid>, .shards.<pid>.<k>   a generation
 *   .shards.tmp.<pid>                  a switch link being made
 *   .old-<part>.<pid>                  a taken-over directory of the older layout */
static long leftover_pid(const char *name) {
    const char *end;
    long pid = 0;
    if (strncmp(name, SWITCH_TMP, strlen(SWITCH_TMP)) == 0) {
        pid = parse_pid(name + strlen(SWITCH_TMP), &end);
    } else if (strncmp(name, SWITCH ".", strlen(SWITCH ".")) == 0) {
        pid = parse_pid(name + strlen(SWITCH "."), &end);
        if (pid && *end == '.' && parse_pid(end + 1, &end) == 0) return 0;
    } else if (strncmp(name, MOVED, strlen(MOVED)) == 0) {
        for (int k = 0; k < 3 && !pid; k++) {
            const char *p = name + strlen(MOVED);
            const size_t n = strlen(PARTS[k]);
            if (strncmp(p, PARTS[k], n) == 0 && p[n] == '.') pid = parse_pid(p + n + 1, &end);
        }
    }
    return pid && *end == '\0' ? pid : 0;
}

static int process_alive(long pid) { return kill((pid_t)pid, 0) == 0 || errno != ESRCH; }

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    remove(path);
    return 0;
}

/* rm -rf path, never following a symbolic link. */
static void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) == 0) nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The target of the link at path (malloc'ed), NULL when path is no link. */
static char *read_link(const char *path) {
    char buf[4096];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n <= 0) return NULL;
    buf[n] = '\0';
    return xstrdup(buf);
}

/* The name of the current generation in dir (malloc'ed), NULL when there is none. */
static char *current_generation(const char *dir) {
    char *link = join(dir, SWITCH), *name = read_link(link);
    free(link);
    if (name && strchr(name, '/')) { /* not one of ours */
        free(name);
        name = NULL;
    }
    return name;
}

/* Removes from dir the leftovers of runs: names with a pid (leftover_pid) whose process
 * no longer exists, or, with own set (after this run's switch), is this one; but never
 * the current generation nor the taken-over directories its links lead to. */
static void remove_leftovers(const char *dir, int own) {
    char *keep[4] = {current_generation(dir)};
    int n_keep = 1;
    for (int k = 0; keep[0] && k < 3; k++) { /* links "../.old-<part>.<pid>" in it */
        char rel[512];
        snprintf(rel, sizeof rel, "%s/%s", keep[0], PARTS[k]);
        char *path = join(dir, rel), *target = read_link(path);
        free(path);
        if (target && strncmp(target, "../", 3) == 0 && !strchr(target + 3, '/')) keep[n_keep++] = xstrdup(target + 3);
        free(target);
    }
    DIR *d = opendir(dir);
    char **doomed = NULL;
    int n = 0;
    const long self = (long)getpid();
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        const long pid = leftover_pid(e->d_name);
        if (!pid || (pid == self ? !own : process_alive(pid))) continue;
        int kept = 0;
        for (int k = 0; k < n_keep; k++) kept |= keep[k] && strcmp(keep[k], e->d_name) == 0;
        if (kept) continue;
        doomed = xrealloc(doomed, (size_t)(n + 1) * sizeof *doomed);
        doomed[n++] = join(dir, e->d_name);
    }
    if (d) closedir(d);
    for (int i = 0; i < n; i++) {
        remove_tree(doomed[i]);
        free(doomed[i]);
    }
    free(doomed);
    for (int k = 0; k < n_keep; k++) free(keep[k]);
    if (n && !own) elmo_note("%s: removed %d leftover%s of shard runs that no longer exist", dir, n, n == 1 ? "" : "s");
}

/* ------------------------------------------------------------- the names of a set */

enum { PART_ABSENT, PART_LINK, PART_OLD, PART_BAD };

/* What DIR/<part> is: missing, the fixed link, a directory (a regular file for vocab.txt)
 * of the older layout, or something else. A symbolic link of the user's to a directory
 * counts as the older layout: it is what is taken over (and removed in the end), not
 * the directory it leads to. */
static int part_state(const char *dir, int k) {
    char *path = join(dir, PARTS[k]), *target = NULL;
    struct stat st;
    int state = PART_BAD;
    char fixed[64];
    snprintf(fixed, sizeof fixed, SWITCH "/%s", PARTS[k]);
    if (lstat(path, &st) < 0) state = errno == ENOENT ? PART_ABSENT : PART_BAD;
    else if (S_ISLNK(st.st_mode) && (target = read_link(path)) != NULL && strcmp(target, fixed) == 0) state = PART_LINK;
    else if (stat(path, &st) == 0 && (k == 2 ? S_ISREG(st.st_mode) : S_ISDIR(st.st_mode))) state = PART_OLD;
    free(target);
    free(path);
    return state;
}

/* A name this tool writes: prefix, digits, ".txt" or ".txt.gz". */
static int is_output_name(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0 || name[n] < '0' || name[n] > '9') return 0;
    const char *s = name + n;
    while (*s >= '0' && *s <= '9') s++;
    return strcmp(s, ".txt") == 0 || strcmp(s, ".txt.gz") == 0;
}

/* "<name>.tmp.<digits>": a temporary of fileio's, never carried over. */
static int is_temporary(const char *name) {
    const char *t = strstr(name, ".tmp."), *end;
    for (const char *next; t && (next = strstr(t + 1, ".tmp.")) != NULL;) t = next;
    return t && parse_pid(t + 5, &end) && *end == '\0';
}

/* A copy of src as dst (when dst's file system cannot hard-link), synced. */
static int copy_file(const char *src, const char *dst) {
    int in = open(src, O_RDONLY), out = -1, rc = 0;
    if (in < 0) return elmo_fail("%s: cannot open: %s", src, strerror(errno));
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (out < 0) rc = elmo_fail("%s: cannot create: %s", dst, strerror(errno));
    const size_t cap = (size_t)1 << 20;
    char *buf = rc == 0 ? xmalloc(cap) : NULL;
    for (ssize_t n; rc == 0 && (n = read(in, buf, cap)) != 0;) {
        if (n < 0 || write(out, buf, (size_t)n) != n) rc = elmo_fail("%s: cannot copy to %s: %s", src, dst, strerror(errno));
    }
    if (rc == 0 && fsync(out) < 0) rc = elmo_fail("%s: cannot sync: %s", dst, strerror(errno));
    free(buf);
    close(in);
    if (out >= 0 && close(out) < 0 && rc == 0) rc = elmo_fail("%s: write failed: %s", dst, strerror(errno));
    return rc;
}

/* dst as a second name of src (following src's links), or a copy. */
static int carry_file(ShardSet *s, const char *src, const char *dst) {
    shardset_add(s, dst);
    if (linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0) return 0;
    if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOTSUP)
        return elmo_fail("%s: cannot link into the new shard set: %s", src, strerror(errno));
    return copy_file(src, dst);
}

/* Looks at the files of DIR/<part> (through the link): *n_outputs counts those this tool
 * wrote (prefix + digits), *first names the first one found. Any other regular file
 * belongs to whoever put it there: with dest set, it is carried into dest. An entry that
 * is neither (a directory, a link) cannot be carried: refused. */
static int scan_part(ShardSet *s, const char *dir, int k, const char *prefix, const char *dest, int *n_outputs,
                     char **first) {
    char *path = join(dir, PARTS[k]);
    DIR *d = opendir(path);
    int rc = 0;
    if (!d) {
        int e = errno;
        free(path);
        return e == ENOENT ? 0 : elmo_fail("%s/%s: cannot read directory: %s", dir, PARTS[k], strerror(e));
    }
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || is_temporary(e->d_name)) continue;
        char *file = join(path, e->d_name);
        struct stat st;
        if (is_output_name(e->d_name, prefix)) {
            if (n_outputs && (*n_outputs)++ == 0 && first) *first = xstrdup(file);
        } else if (lstat(file, &st) < 0 || !S_ISREG(st.st_mode)) {
            rc = elmo_fail("%s: neither a shard file nor a plain file; the shard set is replaced as a whole, so move "
                           "it out of %s first", file, path);
        } else if (dest) {
            char *to = join(dest, e->d_name);
            rc = carry_file(s, file, to);
            free(to);
        }
        free(file);
    }
    closedir(d);
    free(path);
    return rc;
}

/* ------------------------------------------------------------------- generations */

/* Makes a new empty generation in dir: ".shards.<pid>", or ".shards.<pid>.<k>" when a
 * current one of an earlier process with this pid has that name. Returns its name. */
static char *make_generation(const char *dir) {
    for (int k = 0;; k++) {
        char name[64];
        if (k) snprintf(name, sizeof name, SWITCH ".%ld.%d", (long)getpid(), k);
        else snprintf(name, sizeof name, SWITCH ".%ld", (long)getpid());
        char *path = join(dir, name);
        int rc = mkdir(path, 0777), e = errno;
        free(path);
        if (rc == 0) return xstrdup(name);
        if (e != EEXIST) {
            elmo_fail("%s/%s: cannot create directory: %s", dir, name, strerror(e));
            return NULL;
        }
    }
}

/* DIR/.shards -> name, in one step: a new link renamed over it. */
static int switch_to(const char *dir, const char *name) {
    char tmp_name[64];
    snprintf(tmp_name, sizeof tmp_name, SWITCH_TMP "%ld", (long)getpid());
    char *tmp = join(dir, tmp_name), *link = join(dir, SWITCH);
    int rc = 0;
    unlink(tmp);
    if (symlink(name, tmp) < 0) rc = elmo_fail("%s: cannot create link: %s", tmp, strerror(errno));
    else if (rename(tmp, link) < 0) {
        rc = elmo_fail("%s: cannot switch to the new shard set: %s", link, strerror(errno));
        unlink(tmp);
    }
    if (rc == 0) rc = file_sync_dir(dir);
    free(tmp);
    free(link);
    return rc;
}

/* DIR/<part> of the older layout becomes the fixed link, showing the same files
 * throughout (see the top of this file). */
static int take_over(const char *dir, int k) {
    char *cur = current_generation(dir);
    if (!cur) {
        if ((cur = make_generation(dir)) == NULL) return -1;
        if (switch_to(dir, cur) < 0) {
            free(cur);
            return -1;
        }
    }
    char moved_name[64], fixed[64], back[80], rel[600];
    snprintf(moved_name, sizeof moved_name, MOVED "%s.%ld", PARTS[k], (long)getpid());
    snprintf(fixed, sizeof fixed, SWITCH "/%s", PARTS[k]);
    snprintf(back, sizeof back, "../%s", moved_name);
    snprintf(rel, sizeof rel, "%s/%s", cur, PARTS[k]);
    char *part = join(dir, PARTS[k]), *moved = join(dir, moved_name), *in_cur = join(dir, rel), *gen = join(dir, cur);
    int rc = 0;
    remove_tree(in_cur); /* no reader can reach it while DIR/<part> is not the link */
    remove_tree(moved);
    if (symlink(fixed, moved) < 0 || symlink(back, in_cur) < 0) {
        rc = elmo_fail("%s: cannot create link: %s", dir, strerror(errno));
    } else if (file_sync_dir(gen) < 0) {
        rc = -1;
    } else if (renameat2(AT_FDCWD, part, AT_FDCWD, moved, RENAME_EXCHANGE) < 0) {
        const int e = errno;
        if (e == EINVAL || e == ENOSYS || e == ENOTSUP)
            rc = elmo_fail("%s: this file system cannot exchange two names in one step, which replacing a shard "
                           "set of an earlier version needs; remove %s/train, %s/heldout and %s/vocab.txt, or "
                           "choose a new --output-dir", part, dir, dir, dir);
        else
            rc = elmo_fail("%s: cannot replace by a link: %s", part, strerror(e));
    } else {
        rc = file_sync_dir(dir);
    }
    if (rc < 0) {
        struct stat st;
        if (lstat(moved, &st) == 0 && S_ISLNK(st.st_mode)) { /* not exchanged: undo */
            unlink(moved);
            unlink(in_cur);
        }
    }
    free(part);
    free(moved);
    free(in_cur);
    free(gen);
    free(cur);
    return rc;
}

/* --------------------------------------------------------------------- the set */

static void set_free(ShardSet *s) {
    free(s->dir);
    free(s->gen);
    free(s->train);
    free(s->heldout);
    free(s->vocab);
    memset(s, 0, sizeof *s);
}

int shardset_begin(ShardSet *s, const char *dir, int with_vocab, int force) {
    memset(s, 0, sizeof *s);
    s->with_vocab = with_vocab;
    struct stat st;
    const int existed = stat(dir, &st) == 0;
    remove_leftovers(dir, 0);
    for (int k = 0; k < N_PARTS(s); k++)
        if (part_state(dir, k) == PART_BAD)
            return elmo_fail("%s/%s: neither a %s nor the link to the current shard set; move it out of the way", dir,
                             PARTS[k], k == 2 ? "file" : "directory");
    int n_outputs = 0;
    char *first = NULL;
    if (scan_part(s, dir, 0, "shard-", NULL, &n_outputs, &first) < 0 ||
        scan_part(s, dir, 1, "heldout-", NULL, &n_outputs, &first) < 0) {
        free(first);
        return -1;
    }
    if (n_outputs > 0 && !force) {
        elmo_fail("%s already holds shard files (%s, ...); --force replaces them", dir, first);
        free(first);
        return -1;
    }
    free(first);
    if (file_make_dirs(dir) < 0) return -1;
    s->made_dir = !existed;
    s->dir = xstrdup(dir);
    char *name = make_generation(dir);
    if (!name) {
        shardset_abort(s);
        return -1;
    }
    s->gen = join(dir, name);
    free(name);
    fileset_begin(&s->files);
    fileset_add_dir(&s->files, s->gen);
    s->train = join(s->gen, PARTS[0]);
    s->heldout = join(s->gen, PARTS[1]);
    s->vocab = join(s->gen, PARTS[2]);
    for (int k = 0; k < 2; k++) {
        const char *sub = k ? s->heldout : s->train;
        fileset_add_dir(&s->files, sub);
        if (mkdir(sub, 0777) < 0) {
            elmo_fail("%s: cannot create directory: %s", sub, strerror(errno));
            shardset_abort(s);
            return -1;
        }
    }
    return 0;
}

void shardset_add(ShardSet *s, const char *path) { fileset_add(&s->files, path); }

/* The files of the current set that are not shards, into the new generation: notes in
 * train/ and heldout/, and (for shard, which does not make one) the current vocab.txt. */
static int carry_over(ShardSet *s) {
    if (scan_part(s, s->dir, 0, "shard-", s->train, NULL, NULL) < 0 ||
        scan_part(s, s->dir, 1, "heldout-", s->heldout, NULL, NULL) < 0)
        return -1;
    struct stat st;
    char *vocab = join(s->dir, PARTS[2]);
    int rc = 0;
    if (!s->with_vocab && part_state(s->dir, 2) == PART_LINK && stat(vocab, &st) == 0 && S_ISREG(st.st_mode))
        rc = carry_file(s, vocab, s->vocab);
    free(vocab);
    return rc;
}

int shardset_commit(ShardSet *s) {
    int rc = carry_over(s);
    if (rc == 0) rc = file_sync_dir(s->train) < 0 || file_sync_dir(s->heldout) < 0 || file_sync_dir(s->gen) < 0 ? -1 : 0;
    /* From the first change of DIR to the end of the clean-up: no signal stops the run
     * halfway (the files registered for removal are no longer temporary after the switch). */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    for (int k = 0; rc == 0 && k < N_PARTS(s); k++) {
        const int state = part_state(s->dir, k);
        if (state == PART_ABSENT) {
            char fixed[64];
            snprintf(fixed, sizeof fixed, SWITCH "/%s", PARTS[k]);
            char *part = join(s->dir, PARTS[k]);
            if (symlink(fixed, part) < 0) rc = elmo_fail("%s: cannot create link: %s", part, strerror(errno));
            free(part);
        } else if (state == PART_OLD) {
            rc = take_over(s->dir, k);
        } else if (state == PART_BAD) {
            rc = elmo_fail("%s/%s: neither a %s nor the link to the current shard set; move it out of the way",
                           s->dir, PARTS[k], k == 2 ? "file" : "directory");
        }
    }
    if (rc == 0) rc = switch_to(s->dir, strrchr(s->gen, '/') + 1);
    if (rc == 0) {
        fileset_keep(&s->files);
        remove_leftovers(s->dir, 1); /* the earlier generation */
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        shardset_abort(s);
        return -1;
    }
    set_free(s);
    return 0;
}

void shardset_abort(ShardSet *s) {
    if (!s->dir) return;
    fileset_discard(&s->files);
    if (s->gen) remove_tree(s->gen);
    if (s->made_dir) rmdir(s->dir);
    set_free(s);
}
