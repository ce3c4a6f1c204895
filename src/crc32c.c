/* crc32c.c - see crc32c.h. */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

/* table[b] = the CRC register after shifting byte b through the reflected polynomial. */
static uint32_t crc_table[256];

static void crc_table_init(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[b] = c;
    }
}

uint32_t crc32c_extend_portable(uint32_t crc, const void *data, size_t n) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_table_init);
    const unsigned char *p = data;
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return ~c;
}

uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n) {
#if defined(__SSE4_2__) && defined(__x86_64__)
    const unsigned char *p = data;
    uint64_t c = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t word;
        memcpy(&word, p, 8); /* x86 is little endian, as the CRC's byte order wants */
        c = _mm_crc32_u64(c, word);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n > 0; n--, p++) c32 = _mm_crc32_u8(c32, *p);
    return ~c32;
#else
    return crc32c_extend_portable(crc, data, n);
#endif
}
