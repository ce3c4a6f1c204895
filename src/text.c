/* text.c - see text.h. */
#include "text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

long utf8_invalid_offset(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        /* Most text is ASCII: skip it eight bytes at a time (corpus tools read GBs). */
        uint64_t word;
        while (i + 8 <= len && (memcpy(&word, s + i, 8), (word & 0x8080808080808080ull) == 0)) i += 8;
        if (i == len) break;
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return (long)i;
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80) return (long)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (long)i;
        i += need + 1;
    }
    return -1;
}

/* The ASCII white space: \t \n \v \f \r, \x1c-\x1f and space. A table, because
 * splitting looks at every byte of every line. */
static const unsigned char ascii_space[128] = {
    [0x09] = 1, [0x0A] = 1, [0x0B] = 1, [0x0C] = 1, [0x0D] = 1,
    [0x1C] = 1, [0x1D] = 1, [0x1E] = 1, [0x1F] = 1, [' '] = 1,
};

int text_space_len(const char *str, const char *end) {
    const unsigned char *s = (const unsigned char *)str;
    size_t left = (size_t)(end - str);
    if (left == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return ascii_space[c];
    if (c == 0xC2 && left >= 2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (left < 3) return 0;
    if (c == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 3;                 /* U+1680 */
    if (c == 0xE2 && s[1] == 0x80 && (s[2] <= 0x8A || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
        return 3;                                                             /* U+2000-200A, 2028, 2029, 202F */
    if (c == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 3;                 /* U+205F */
    if (c == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3;                 /* U+3000 */
    return 0;
}

/* text_space_len with the ASCII case inline: the common case costs one table lookup. */
static inline int space_len(const char *p, const char *end) {
    unsigned char c = (unsigned char)*p;
    return c < 0x80 ? ascii_space[c] : text_space_len(p, end);
}

/* The end of the token starting at p: the first white space at or after p, or end.
 * Only bytes <= 0x20 or >= 0x80 can start white space; eight bytes are checked for
 * those at once ((b - 0x21) borrows below 0x21; the lowest flagged byte is exact). */
static char *token_end(char *p, char *end) {
    while (p < end) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            uint64_t maybe = ((w - 0x2121212121212121ull) | w) & 0x8080808080808080ull;
            if (!maybe) {
                p += 8;
                continue;
            }
            p += __builtin_ctzll(maybe) >> 3;
        }
#endif
        if (space_len(p, end)) return p;
        p++;
    }
    return p;
}

int text_split(char *line, size_t len, TokenList *out, const char *where) {
    char *p = line, *end = line + len;
    out->n = 0;
    while (p < end) {
        int sp = space_len(p, end);
        if (sp) {
            while (sp--) *p++ = '\0';
            continue;
        }
        char *start = p;
        p = token_end(p, end);
        if ((size_t)(p - start) > ELMO_MAX_TOKEN_BYTES)
            return elmo_fail("%s: token of %zu bytes (longest accepted: %d); is this tokenized text?",
                             where, (size_t)(p - start), ELMO_MAX_TOKEN_BYTES);
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 64;
            out->tokens = xrealloc(out->tokens, (size_t)out->cap * sizeof *out->tokens);
        }
        out->tokens[out->n++] = start;
        if (p < end)
            for (int sp2 = space_len(p, end); sp2--;) *p++ = '\0';
    }
    *end = '\0';
    return 0;
}

void token_list_free(TokenList *t) {
    free(t->tokens);
    t->tokens = NULL;
    t->n = t->cap = 0;
}
