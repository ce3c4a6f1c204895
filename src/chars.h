/* chars.h - tokens as character ids (docs/design.md section 2).
 *
 * Training ids: the token's UTF-8 bytes (0..255) truncated to C-2 bytes, framed by
 * begin-of-word 258 and end-of-word 259, padded with 260; <S> and </S> are the special
 * words [258, 256, 259, 260...] and [258, 257, 259, 260...].
 * Prediction ids: training ids + 1, and 0 for the padding tokens of a batch.
 */
#ifndef ELMO_CHARS_H
#define ELMO_CHARS_H

#include <stdint.h>

enum {
    CHAR_BOS = 256,          /* <S> */
    CHAR_EOS = 257,          /* </S> */
    CHAR_BOW = 258,          /* begin of word */
    CHAR_EOW = 259,          /* end of word */
    CHAR_PAD = 260,          /* after the end of word */
    CHAR_TABLE_ROWS = 261,   /* rows of char_embed in every weight file */
};

/* Writes the C training ids of token into out. "<S>" and "</S>" are the sentence
 * markers (bilm-tf gives them the marker encoding whenever the vocabulary has them). */
void chars_encode(const char *token, int C, int32_t *out);
/* Training ids of a sentence marker: which = CHAR_BOS or CHAR_EOS. */
void chars_encode_marker(int which, int C, int32_t *out);
/* Prediction ids (shift by one; padding tokens are all zero). */
void chars_encode_prediction(const char *token, int C, int32_t *out);

#endif
