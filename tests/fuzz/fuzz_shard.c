/* fuzz_shard.c - a training shard of arbitrary bytes read to its end by an evaluation
 * reader (both directions), as elmo eval and held-out evaluation read shards. */
#include "dataset.h"
#include "fuzz.h"
#include "vocab.h"

int fuzz_shard(const uint8_t *data, size_t size) {
    static const char *const words[] = {"<S>", "</S>", "<UNK>", "the", "cat", "a"};
    Vocab v;
    vocab_from_words(&v, words, 6);
    const char *path = fuzz_write_file("shard.txt", data, size);
    for (int reverse = 0; reverse < 2; reverse++) {
        LmReader *r;
        if (lm_reader_open(&r, path, &v, 10, reverse, LM_EVAL, 0, 1) < 0) break;
        LmBatch b;
        lm_batch_init(&b, 3, 4, 10);
        while (lm_reader_next(r, &b) == 1) {
        }
        lm_batch_free(&b);
        lm_reader_close(r);
    }
    vocab_free(&v);
    return 0;
}

#ifdef FUZZ_ENTRY
FUZZ_ENTRY_POINT(fuzz_shard)
#endif
