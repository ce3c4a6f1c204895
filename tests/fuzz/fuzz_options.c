/* fuzz_options.c - options.json parsing and validation on arbitrary bytes. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fuzz.h"
#include "options.h"

int fuzz_options(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    ElmoOptions o;
    if (options_parse(&o, text, "fuzz.json") == 0) {
        char assumed[1024];
        options_assumed_training_keys(&o, assumed, sizeof assumed);
        options_make_training_keys_explicit(&o);
        options_free(&o);
    }
    free(text);
    return 0;
}

#ifdef FUZZ_ENTRY
FUZZ_ENTRY_POINT(fuzz_options)
#endif
