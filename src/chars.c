/* chars.c - see chars.h. */
#include "chars.h"

#include <string.h>

void chars_encode_marker(int which, int C, int32_t *out) {
    for (int i = 0; i < C; i++) out[i] = CHAR_PAD;
    out[0] = CHAR_BOW;
    out[1] = which;
    out[2] = CHAR_EOW;
}

void chars_encode(const char *token, int C, int32_t *out) {
    if (strcmp(token, "<S>") == 0) {
        chars_encode_marker(CHAR_BOS, C, out);
        return;
    }
    if (strcmp(token, "</S>") == 0) {
        chars_encode_marker(CHAR_EOS, C, out);
        return;
    }
    size_t n = strlen(token);
    if (n > (size_t)(C - 2)) n = (size_t)(C - 2); /* byte truncation, as bilm-tf */
    out[0] = CHAR_BOW;
    for (size_t k = 0; k < n; k++) out[k + 1] = (unsigned char)token[k];
    out[n + 1] = CHAR_EOW;
    for (int i = (int)n + 2; i < C; i++) out[i] = CHAR_PAD;
}

void chars_encode_prediction(const char *token, int C, int32_t *out) {
    chars_encode(token, C, out);
    for (int i = 0; i < C; i++) out[i] += 1;
}
