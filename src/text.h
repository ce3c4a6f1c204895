/* text.h - UTF-8 validation and splitting a line into tokens.
 *
 * Tokens are separated by white space exactly as Python's str.split() separates them
 * (bilm-tf does `line.strip().split()`): ASCII space, \t \n \v \f \r, \x1c-\x1f and the
 * Unicode spaces U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F,
 * U+205F, U+3000.
 */
#ifndef ELMO_TEXT_H
#define ELMO_TEXT_H

#include <stddef.h>

/* Longest token accepted, in bytes. Longer "tokens" are almost always binary data or a
 * file that is not tokenized text; the model only ever sees the first C-2 bytes. */
#define ELMO_MAX_TOKEN_BYTES 2048

/* Byte offset of the first invalid UTF-8 sequence in s[0..len), or -1 if valid
 * (strict: no overlong forms, no surrogates, nothing above U+10FFFF). */
long utf8_invalid_offset(const char *s, size_t len);

typedef struct {
    char **tokens;  /* NUL-terminated, pointing into the split line */
    int n, cap;
} TokenList;

/* Splits line[0..len) in place (separators become NUL; line[len] must be writable and
 * becomes NUL). The line must be valid UTF-8.
 * Fails (naming `where`) when a token is longer than ELMO_MAX_TOKEN_BYTES. */
int text_split(char *line, size_t len, TokenList *out, const char *where);
void token_list_free(TokenList *t);

/* Length of the white-space character at s (0 if s does not start with one). */
int text_space_len(const char *s, const char *end);

#endif
