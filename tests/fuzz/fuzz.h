/* fuzz.h - the fuzz harnesses (tests/fuzz/fuzz_*.c). Each takes one input and must never
 * crash, hang or leak whatever the bytes: `make fuzz` runs them under libFuzzer (clang,
 * -fsanitize=fuzzer,address,undefined), `make test` replays their corpora
 * (tests/test_fuzz_corpora.c). Built with -DFUZZ_ENTRY a harness file also defines
 * libFuzzer's entry point. */
#ifndef ELMO_FUZZ_H
#define ELMO_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int fuzz_options(const uint8_t *data, size_t size);
int fuzz_text(const uint8_t *data, size_t size);
int fuzz_vocab(const uint8_t *data, size_t size);
int fuzz_tfbundle(const uint8_t *data, size_t size);
int fuzz_shard(const uint8_t *data, size_t size);
int fuzz_weights(const uint8_t *data, size_t size);
int fuzz_checkpoint(const uint8_t *data, size_t size);
int fuzz_tfevents(const uint8_t *data, size_t size);

/* This process's own temporary directory (created on first use). */
const char *fuzz_dir(void);
/* Writes data into a file of this process's own temporary directory; returns its path. */
const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size);

#define FUZZ_ENTRY_POINT(harness)                                                       \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return harness(data, size); }

#endif
