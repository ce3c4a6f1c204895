/* fuzz_tfbundle.c - a TensorFlow checkpoint index of arbitrary bytes, with a data shard
 * of 4 KiB of zeros, opened and every float tensor read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tfbundle.h"

int fuzz_tfbundle(const uint8_t *data, size_t size) {
    static uint8_t zeros[4096];
    fuzz_write_file("ckpt.data-00000-of-00001", zeros, sizeof zeros);
    const char *index = fuzz_write_file("ckpt.index", data, size);
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(index) - 6), index);
    TfBundle *b;
    if (tfbundle_open(&b, prefix) < 0) return 0;
    for (int i = 0; i < tfbundle_count(b); i++) {
        const TfTensor *t = tfbundle_tensor(b, i);
        const uint64_t n = tfbundle_elements(t);
        if (n > (1u << 20)) continue;
        float *out = malloc((size_t)(n ? n : 1) * sizeof(float));
        tfbundle_read_floats(b, t->name, out, (size_t)n);
        free(out);
    }
    tfbundle_close(b);
    return 0;
}

#ifdef FUZZ_ENTRY
FUZZ_ENTRY_POINT(fuzz_tfbundle)
#endif
