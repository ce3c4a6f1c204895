/* crc32c.h - CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as TensorFlow's files
 * use it: TFRecord event files (train/tfevents.c) and checkpoint bundles (src/tfbundle.c)
 * store it masked. crc32c("123456789") = 0xE3069283. */
#ifndef ELMO_CRC32C_H
#define ELMO_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC of data continuing from crc (0 to start): SSE4.2's crc32 instruction when the
 * build targets it, else the table. */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n);
static inline uint32_t crc32c(const void *data, size_t n) { return crc32c_extend(0, data, n); }
/* The table-driven version, always compiled (the tests compare the two). */
uint32_t crc32c_extend_portable(uint32_t crc, const void *data, size_t n);
/* The masked form TensorFlow stores, and back. */
static inline uint32_t crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
static inline uint32_t crc32c_unmask(uint32_t masked) {
    const uint32_t rot = masked - 0xa282ead8u;
    return (rot >> 17) | (rot << 15);
}

#endif
