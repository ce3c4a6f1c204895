/* fuzz_vocab.c - a vocabulary file of arbitrary bytes. */
#include "fuzz.h"
#include "vocab.h"

int fuzz_vocab(const uint8_t *data, size_t size) {
    Vocab v;
    if (vocab_load(&v, fuzz_write_file("vocab.txt", data, size), VOCAB_NEED_BOS_EOS | VOCAB_NEED_UNK) == 0) {
        for (int i = 0; i < v.size; i++) vocab_lookup(&v, v.words[i]);
        vocab_free(&v);
    }
    return 0;
}

#ifdef FUZZ_ENTRY
FUZZ_ENTRY_POINT(fuzz_vocab)
#endif
