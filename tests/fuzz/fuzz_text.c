/* fuzz_text.c - a line of input text: UTF-8 check, white-space splitting, character ids. */
#include <stdlib.h>
#include <string.h>

#include "chars.h"
#include "fuzz.h"
#include "text.h"

int fuzz_text(const uint8_t *data, size_t size) {
    if (utf8_invalid_offset((const char *)data, size) >= 0) return 0;
    char *line = malloc(size + 1);
    memcpy(line, data, size);
    line[size] = '\0';
    TokenList tokens = {0};
    if (text_split(line, size, &tokens, "fuzz") == 0) {
        int32_t ids[50];
        for (int i = 0; i < tokens.n; i++) {
            chars_encode(tokens.tokens[i], 50, ids);
            chars_encode_prediction(tokens.tokens[i], 50, ids);
        }
    }
    token_list_free(&tokens);
    free(line);
    return 0;
}

#ifdef FUZZ_ENTRY
FUZZ_ENTRY_POINT(fuzz_text)
#endif
