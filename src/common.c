/* common.c - see common.h. */
#include "common.h"

#include <cblas.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char last_error[1024];

int elmo_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

const char *elmo_error(void) { return last_error; }

/* Where errors go, with their prefix: stderr and "elmo: " unless elmo_errors_only. */
static FILE *errors;
static char error_prefix[64] = "elmo: ";

static FILE *error_stream(void) { return errors ? errors : stderr; }

void elmo_errors_only(const char *prefix) {
    const int fd = dup(STDERR_FILENO);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f || !freopen("/dev/null", "w", stderr)) return; /* then everything stays on stderr */
    if (!freopen("/dev/null", "w", stdout)) return;
    setvbuf(f, NULL, _IOLBF, 0);
    errors = f;
    snprintf(error_prefix, sizeof error_prefix, "%s", prefix);
}

void elmo_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    FILE *out = error_stream();
    fputs(error_prefix, out);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    va_end(ap);
    /* quick_exit: after a failed write the HDF5 library's own exit handler can crash on
     * the file it could not close; our handlers (temporary-file removal) run through
     * at_quick_exit. */
    fflush(NULL);
    quick_exit(ELMO_EXIT_FAILURE);
}

void elmo_die_last(void) { elmo_die("%s", last_error[0] ? last_error : "unknown error"); }

void elmo_note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("elmo: note: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void elmo_check_failed(const char *file, int line, const char *cond, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    FILE *out = error_stream();
    fprintf(out, "%sinternal error at %s:%d: %s: ", error_prefix, file, line, cond);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    va_end(ap);
    abort();
}

static _Noreturn void out_of_memory(size_t n, const char *file, int line) {
    fprintf(error_stream(), "%sout of memory allocating %zu bytes (%s:%d)\n", error_prefix, n, file, line);
    exit(ELMO_EXIT_FAILURE);
}

void *elmo_xmalloc(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n, file, line);
    return p;
}

void *elmo_xcalloc(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size, file, line);
    return p;
}

void *elmo_xrealloc(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n, file, line);
    return q;
}

void *elmo_xmalloc_aligned(size_t n, const char *file, int line) {
    void *p = NULL;
    size_t rounded = (n + 63) / 64 * 64;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) out_of_memory(n, file, line);
    return p;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

double elmo_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t elmo_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024;
}

size_t elmo_current_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int got = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return got == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

int elmo_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return n;
}
