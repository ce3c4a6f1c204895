/* fuzz_util.c - see fuzz.h. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"

const char *fuzz_dir(void) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/elmo-fuzz-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
        CHECK(file_make_dirs(dir) == 0, "cannot create %s", dir);
    }
    return dir;
}

const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    CHECK(f, "cannot write %s", path);
    CHECK(size == 0 || fwrite(data, 1, size, f) == size, "cannot write %s", path);
    fclose(f);
    return path;
}
