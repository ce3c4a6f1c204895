/* testutil.h - helpers shared by the cmocka suites.
 * Include after <cmocka.h> (with its prerequisites). */
#ifndef ELMO_TESTUTIL_H
#define ELMO_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "charcnn.h"
#include "lstm.h"

/* Directory of the reference fixtures ($ELMO_FIXTURES, default ../shared/fixtures). */
const char *fixtures_dir(void);
/* Full path of a fixture file into buf; NULL when it does not exist (callers skip; a
 * note names the path).  With ELMO_REQUIRE_FIXTURES=1 in the environment a missing
 * fixture fails the test instead, with one line naming the path. */
const char *fixture_path(char *buf, size_t size, const char *relative);
/* 1 when ELMO_REQUIRE_FIXTURES=1: tests that skip without a fixture must fail instead. */
int fixtures_required(void);

/* A fresh temporary directory for this process (removed at exit). */
const char *test_tmpdir(void);
/* buf = "<tmpdir>/<name>". */
const char *tmp_path(char *buf, size_t size, const char *name);
void write_text_file(const char *path, const char *text);
int file_exists(const char *path);

/* The program under test: $ELMO_BIN (make test sets it to its own build), else bin/elmo. */
const char *elmo_program(void);
/* Runs `<elmo_program()> <args>` (a shell command line), returns its exit status; its stderr
 * goes to err (NUL-terminated, truncated to size). */
int run_elmo(const char *args, char *err, size_t size);
/* Number of lines in s. */
int count_lines(const char *s);

/* Max |a - b| over n floats. */
double max_abs_diff(const float *a, const float *b, size_t n);
/* Fills x with uniform values in [-scale, scale) from a fixed-seed generator. */
void fill_uniform(float *x, size_t n, float scale, uint64_t seed);

/* Finite-difference check of an analytic gradient.
 * loss(ctx) evaluates the scalar loss at the current values of p (n floats); grad holds
 * d loss / d p. Up to max_checks entries (a seeded subset when n is larger) are perturbed
 * by +-h and the central difference compared with grad. The vectors are compared with
 * the asymmetry metric |fd - an| / (|fd| + |an|) over the checked entries (ggml's), which
 * must stay below tol; differences up to `noise` (the float rounding of the loss divided
 * by 2h) and the error a kink inside [-h, h] causes (measured by the second difference)
 * are forgiven entry by entry. The worst entry is printed on failure; ELMO_FD_VERBOSE=1 in
 * the environment prints every entry. Returns the metric. */
typedef double (*LossFn)(void *ctx);
double fd_check(const char *name, float *p, const float *grad, size_t n, LossFn loss, void *ctx, float h, double tol,
                int max_checks, double noise);

/* One arena for one object of the library, for tests (see arena.h); arena_free it. */
void arena_for_charcnn(Arena *a, CharCnnWork *w, const ElmoOptions *o);
/* The cache, and the backward scratch when w is not NULL. */
void arena_for_lstm(Arena *a, LstmCache *c, LstmBackWork *w, int B, int T, const LstmDims *d);

/* Reads a whole float dataset of an HDF5 file (allocated); dims/rank out. NULL on error. */
float *read_dataset(const char *path, const char *name, int *rank, size_t *dims);

#endif
