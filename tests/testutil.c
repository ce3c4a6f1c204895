/* testutil.c - see testutil.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "h5io.h"
#include "rng.h"

const char *fixtures_dir(void) {
    const char *d = getenv("ELMO_FIXTURES");
    return d && *d ? d : "../shared/fixtures";
}

/* Line-buffered stdout in every suite: cmocka's result lines (stdout) and messages
 * (stderr) then arrive in order through a pipe, and the lines of a suite that crashes
 * are not lost in a stdio buffer (scripts/run-tests.sh counts them). */
__attribute__((constructor)) static void line_buffered_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

int fixtures_required(void) {
    const char *v = getenv("ELMO_REQUIRE_FIXTURES");
    return v && strcmp(v, "1") == 0;
}

const char *fixture_path(char *buf, size_t size, const char *relative) {
    snprintf(buf, size, "%s/%s", fixtures_dir(), relative);
    if (access(buf, R_OK) == 0) return buf;
    if (fixtures_required()) { /* fails the running test, the message as its error line */
        char msg[4200];
        snprintf(msg, sizeof msg, "missing fixture %s (ELMO_REQUIRE_FIXTURES=1)", buf);
        _assert_true(0, msg, __FILE__, __LINE__);
    }
    print_message("missing fixture %s: skipped\n", buf);
    return NULL;
}

static char tmpdir[256];

static void remove_tmpdir(void) {
    if (!tmpdir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
}

const char *test_tmpdir(void) {
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/elmo-test-XXXXXX");
        CHECK(mkdtemp(tmpdir), "mkdtemp failed");
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

const char *tmp_path(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", test_tmpdir(), name);
    return buf;
}

void write_text_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

const char *elmo_program(void) {
    const char *bin = getenv("ELMO_BIN");
    return bin && *bin ? bin : "bin/elmo";
}

int run_elmo(const char *args, char *err, size_t size) {
    char errfile[512], cmd[8192];
    tmp_path(errfile, sizeof errfile, "stderr.txt");
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>'%s'", elmo_program(), args, errfile);
    int status = system(cmd);
    FILE *f = fopen(errfile, "rb");
    size_t n = f ? fread(err, 1, size - 1, f) : 0;
    if (f) fclose(f);
    err[n] = '\0';
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d; /* NaN counts as worst */
    }
    return worst;
}

void fill_uniform(float *x, size_t n, float scale, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * rng_uniform(&r) - 1.0) * scale);
}

float *read_dataset(const char *path, const char *name, int *rank, size_t *dims) {
    hid_t file;
    if (h5io_open_read(path, &file) < 0) return NULL;
    hsize_t d[H5IO_MAX_RANK];
    float *data = NULL;
    if (h5io_shape(file, path, name, rank, d) == 0) {
        size_t n = 1;
        for (int i = 0; i < *rank; i++) {
            dims[i] = d[i];
            n *= d[i];
        }
        data = malloc((n ? n : 1) * sizeof(float));
        if (h5io_read_floats(file, path, name, *rank, d, data) < 0) {
            free(data);
            data = NULL;
        }
    }
    H5Fclose(file);
    return data;
}

double fd_check(const char *name, float *p, const float *grad, size_t n, LossFn loss, void *ctx, float h, double tol,
                int max_checks, double noise) {
    Rng r;
    rng_seed(&r, 1234 + n);
    double diff2 = 0, fd2 = 0, an2 = 0, worst = -1;
    size_t worst_i = 0;
    double worst_fd = 0, worst_an = 0;
    const size_t checks = n < (size_t)max_checks ? n : (size_t)max_checks;
    const double center = loss(ctx);
    for (size_t k = 0; k < checks; k++) {
        const size_t i = n <= (size_t)max_checks ? k : (size_t)(rng_next(&r) % n);
        const float saved = p[i];
        p[i] = saved + h;
        const double up = loss(ctx);
        p[i] = saved - h;
        const double down = loss(ctx);
        p[i] = saved;
        const double step = (double)(float)(saved + h) - (double)(float)(saved - h); /* the step taken */
        const double fd = (up - down) / step;
        const double an = grad[i];
        if (getenv("ELMO_FD_VERBOSE"))
            fprintf(stderr, "%s[%zu]: numeric %.6g analytic %.6g (up %.9g down %.9g)\n", name, i, fd, an, up, down);
        /* A kink (relu, clip, max-pool switch) at distance d < h from the point, where the
         * slope jumps by s, moves the central difference by s (h - d) / 2h, which is
         * exactly (up + down - 2 center) / 2h; for a smooth loss that term is h L'' / 2,
         * negligible. Forgiving it (and the rounding noise) leaves every other error. */
        const double kink = fabs(up + down - 2.0 * center) / step;
        const double excess = fabs(fd - an) > noise + kink ? fabs(fd - an) - noise - kink : 0.0;
        diff2 += excess * excess;
        fd2 += fd * fd;
        an2 += an * an;
        if (fabs(fd - an) > worst) {
            worst = fabs(fd - an);
            worst_i = i;
            worst_fd = fd;
            worst_an = an;
        }
    }
    const double metric = sqrt(diff2) / (sqrt(fd2) + sqrt(an2) + 1e-30);
    if (!(metric < tol))
        print_error("%s: asymmetry %.3g (limit %.3g) over %zu entries; worst [%zu]: numeric %.6g, analytic %.6g\n",
                    name, metric, tol, checks, worst_i, worst_fd, worst_an);
    return metric;
}

typedef struct {
    CharCnnWork *w;
    const ElmoOptions *o;
} CharCnnArgs;

static void carve_charcnn(void *ctx, Arena *a) {
    CharCnnArgs *c = ctx;
    charcnn_work_carve(c->w, a, c->o);
}

void arena_for_charcnn(Arena *a, CharCnnWork *w, const ElmoOptions *o) {
    CharCnnArgs args = {w, o};
    memset(a, 0, sizeof *a);
    arena_build(a, carve_charcnn, &args);
}

typedef struct {
    LstmCache *c;
    LstmBackWork *w;
    int B, T;
    const LstmDims *d;
} LstmArgs;

static void carve_lstm(void *ctx, Arena *a) {
    LstmArgs *l = ctx;
    lstm_cache_carve(l->c, a, l->B, l->T, l->d);
    if (l->w) lstm_back_work_carve(l->w, a, l->B, l->T, l->d);
}

void arena_for_lstm(Arena *a, LstmCache *c, LstmBackWork *w, int B, int T, const LstmDims *d) {
    LstmArgs args = {c, w, B, T, d};
    memset(a, 0, sizeof *a);
    arena_build(a, carve_lstm, &args);
}
