/* common.h - error reporting, checked allocation and timing shared by every file.
 *
 * The error pattern of the whole project:
 *   - library functions return 0 on success and -1 on failure, after recording one
 *     line that names the thing at fault with elmo_fail("%s: ...", path);
 *   - programs print that line with elmo_die() (prefix "elmo: ", exit code 2);
 *   - broken invariants (programming errors, never user input) abort with file:line
 *     through CHECK().
 */
#ifndef ELMO_COMMON_H
#define ELMO_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define ELMO_EXIT_FAILURE 2

/* Records a one-line error message (printf-style) for this thread; returns -1. */
int elmo_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message recorded by elmo_fail on this thread ("" if none). */
const char *elmo_error(void);
/* Prints "elmo: <last error>" (or the given message) to stderr and exits 2. */
_Noreturn void elmo_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void elmo_die_last(void);
/* Notes to the user ("elmo: note: ..."), one line each. */
void elmo_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* From now on stdout and stderr are silent but for errors (elmo_die, internal errors, out of memory),
 * which go to the original stderr with this prefix: the other replicas of an MPI run,
 * whose progress would repeat rank 0's. */
void elmo_errors_only(const char *prefix);

#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        if (!(cond)) elmo_check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);        \
    } while (0)
_Noreturn void elmo_check_failed(const char *file, int line, const char *cond,
                                 const char *fmt, ...);

/* Allocation that exits with a message naming the size and the call site on failure.
 * Memory from xmalloc_aligned is 64-byte aligned (AVX-512 friendly) and freed with free(). */
#define xmalloc(n) elmo_xmalloc((n), __FILE__, __LINE__)
#define xcalloc(n, s) elmo_xcalloc((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) elmo_xrealloc((p), (n), __FILE__, __LINE__)
#define xmalloc_aligned(n) elmo_xmalloc_aligned((n), __FILE__, __LINE__)
void *elmo_xmalloc(size_t n, const char *file, int line);
void *elmo_xcalloc(size_t n, size_t size, const char *file, int line);
void *elmo_xrealloc(void *p, size_t n, const char *file, int line);
void *elmo_xmalloc_aligned(size_t n, const char *file, int line);
char *xstrdup(const char *s);

/* Monotonic wall clock in seconds. */
double elmo_now(void);
/* Peak resident set size of this process in bytes (0 if unknown). */
size_t elmo_peak_rss(void);
/* Current resident set size in bytes (0 if unknown). */
size_t elmo_current_rss(void);
/* Sets the number of OpenMP and OpenBLAS threads (n <= 0: all cores). Returns n used. */
int elmo_set_threads(int n);

#endif
