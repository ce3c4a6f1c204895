/* paths.c - no output of a command may be one of its inputs (see paths.h). */
#include "paths.h"

#include <glob.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

int paths_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int paths_refuse_overwrite_as(const char *output_flag, const char *output, const char *const *inputs, int n,
                              const char *command) {
    for (int k = 0; k < n; k++) {
        const char *flag = inputs[2 * k], *path = inputs[2 * k + 1];
        if (!path || strcmp(path, "-") == 0) continue;
        if (paths_same_file(output, path))
            return elmo_fail("%s: %s %s is also an input (%s %s)", command, output_flag, output, flag, path);
    }
    return 0;
}

int paths_refuse_overwrite(const char *output, const char *const *inputs, int n, const char *command) {
    return paths_refuse_overwrite_as("--output", output, inputs, n, command);
}

int paths_refuse_glob_overwrite(const char *output_flag, const char *output, const char *pattern,
                                const char *input_flag, const char *command) {
    struct stat st;
    if (!pattern || stat(output, &st) != 0) return 0; /* a new output is no input */
    glob_t g;
    int rc = 0;
    if (glob(pattern, 0, NULL, &g) != 0) return 0; /* no match: the command itself says so */
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++) {
        const char *pair[2] = {input_flag, g.gl_pathv[i]};
        rc = paths_refuse_overwrite_as(output_flag, output, pair, 1, command);
    }
    globfree(&g);
    return rc;
}

int paths_refuse_glob_inside(const char *pattern, const char *input_flag, const char *dir, const char *command) {
    struct stat st;
    if (!pattern || stat(dir, &st) != 0) return 0;
    glob_t g;
    int rc = 0;
    if (glob(pattern, 0, NULL, &g) != 0) return 0;
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++) {
        char *copy = xstrdup(g.gl_pathv[i]);
        if (paths_same_file(dirname(copy), dir))
            rc = elmo_fail("%s: %s %s lies in %s, whose files this command replaces", command, input_flag,
                           g.gl_pathv[i], dir);
        free(copy);
    }
    globfree(&g);
    return rc;
}
