/* fuzz_tfevents.c - the event-file writer's round trip: the input is a sequence of
 * records, each written with train/tfevents.c, and the file is read back by a reader of
 * this file's own (its own CRC32C too, bit by bit) that aborts on any difference: the
 * TFRecord framing (lengths, masked CRCs), the Event fields in the order the writer puts
 * them, tags, steps, wall times and values bit for bit, nothing before, between or after.
 *
 * Input: 5 bytes, the file's wall time: whole seconds (uint32, little endian), then
 * 256ths of a second (the writer names the file by the whole seconds); then records of
 *   byte h: bit 0 a session_start (else a scalar), bit 1 flush after it, h >> 2 = n
 *   n bytes   the tag (up to its first NUL: the writer takes a C string; unused by a
 *             session_start)
 *   8 bytes   wall time (the double's bits), 8 bytes step (int64), 4 bytes value (the
 *             float's bits), all little endian
 * until the input ends (an incomplete last record is dropped). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"
#include "fuzz.h"
#include "tfevents.h"

static void expect(int ok, const char *what) {
    if (ok) return;
    fprintf(stderr, "fuzz_tfevents: the file read back differs: %s\n", what);
    abort();
}

static uint64_t le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* CRC32C the slow way (reflected polynomial 0x82F63B78), independent of src/crc32c.c. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t n) {
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
    }
    return ~crc;
}

static uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

/* ------------------------------------------------------------------ the reader */

typedef struct {
    const uint8_t *p;
    size_t n, at;
} Cursor;

static uint64_t get_varint(Cursor *c) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        expect(c->at < c->n, "a varint runs past its message");
        const uint8_t b = c->p[c->at++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    expect(0, "a varint of more than 10 bytes");
    return 0;
}

static uint64_t get_fixed(Cursor *c, int bytes) {
    expect(c->n - c->at >= (size_t)bytes, "a fixed-size field runs past its message");
    const uint64_t v = le(c->p + c->at, bytes);
    c->at += (size_t)bytes;
    return v;
}

static void expect_key(Cursor *c, int field, int wire, const char *what) {
    expect(get_varint(c) == ((uint64_t)field << 3 | (uint64_t)wire), what);
}

/* A length-delimited field's bytes as a cursor of their own. */
static Cursor get_message(Cursor *c) {
    const uint64_t len = get_varint(c);
    expect(len <= c->n - c->at, "a length-delimited field runs past its message");
    Cursor inner = {c->p + c->at, (size_t)len, 0};
    c->at += (size_t)len;
    return inner;
}

/* The next TFRecord of the file: length, masked CRC of the length, data, masked CRC of
 * the data. */
static Cursor get_record(Cursor *file) {
    expect(file->n - file->at >= 12, "a record header runs past the end of the file");
    const uint8_t *head = file->p + file->at;
    const uint64_t len = le(head, 8);
    expect(le(head + 8, 4) == masked(crc32c_bitwise(head, 8)), "the CRC of a record's length");
    expect(len <= file->n - file->at - 12 && file->n - file->at - 12 - len >= 4,
           "a record runs past the end of the file");
    Cursor rec = {head + 12, (size_t)len, 0};
    expect(le(head + 12 + len, 4) == masked(crc32c_bitwise(rec.p, rec.n)), "the CRC of a record's data");
    file->at += 12 + (size_t)len + 4;
    return rec;
}

/* Event {wall_time, step, ...}: the two fields every record but the first begins with. */
static void expect_time_and_step(Cursor *e, uint64_t wall_bits, int64_t step) {
    expect_key(e, 1, 1, "wall_time key");
    expect(get_fixed(e, 8) == wall_bits, "wall_time");
    expect_key(e, 2, 0, "step key");
    expect(get_varint(e) == (uint64_t)step, "step");
}

/* ------------------------------------------------------------------ the round trip */

/* One record of the input, or 0 at its end. */
typedef struct {
    int session, flush;
    char tag[64];
    uint64_t wall_bits;
    int64_t step;
    uint32_t value_bits;
} Input;

static int next_input(Cursor *in, Input *r) {
    if (in->at >= in->n) return 0;
    const uint8_t h = in->p[in->at];
    const size_t n = h >> 2;
    if (in->n - in->at < 1 + n + 20) return 0;
    const uint8_t *p = in->p + in->at + 1;
    r->session = h & 1;
    r->flush = (h & 2) != 0;
    size_t len = 0;
    while (len < n && p[len]) len++;
    memcpy(r->tag, p, len);
    r->tag[len] = '\0';
    r->wall_bits = le(p + n, 8);
    r->step = (int64_t)le(p + n + 8, 8);
    r->value_bits = (uint32_t)le(p + n + 16, 4);
    in->at += 1 + n + 20;
    return 1;
}

int fuzz_tfevents(const uint8_t *data, size_t size) {
    const size_t head = size >= 5 ? 5 : size;
    const double open_time = head == 5 ? (double)le(data, 4) + data[4] / 256.0 : 0;
    TfEventWriter *w;
    CHECK(tfevents_open(&w, fuzz_dir(), open_time) == 0, "%s", elmo_error());
    char path[1024];
    snprintf(path, sizeof path, "%s", tfevents_path(w));
    Cursor in = {data, size, head};
    Input r;
    while (next_input(&in, &r)) {
        double wall;
        float value;
        memcpy(&wall, &r.wall_bits, 8);
        memcpy(&value, &r.value_bits, 4);
        int rc = r.session ? tfevents_session_start(w, wall, (long)r.step)
                           : tfevents_scalar(w, wall, (long)r.step, r.tag, value);
        if (rc == 0 && r.flush) rc = tfevents_flush(w);
        CHECK(rc == 0, "%s", elmo_error());
    }
    CHECK(tfevents_close(w) == 0, "%s", elmo_error());

    /* the name: DIR/events.out.tfevents.<10 digits>.<host> */
    char prefix[1024];
    snprintf(prefix, sizeof prefix, "%s/events.out.tfevents.%010lld.", fuzz_dir(), (long long)open_time);
    expect(strncmp(path, prefix, strlen(prefix)) == 0, "the file name");

    char *bytes;
    size_t n_bytes;
    CHECK(file_read_all(path, (size_t)1 << 26, &bytes, &n_bytes) == 0, "%s", elmo_error());
    unlink(path);
    Cursor file = {(const uint8_t *)bytes, n_bytes, 0};
    /* Event {wall_time, file_version "brain.Event:2"} */
    Cursor e = get_record(&file);
    uint64_t open_bits;
    memcpy(&open_bits, &open_time, 8);
    expect_key(&e, 1, 1, "wall_time key of the file_version event");
    expect(get_fixed(&e, 8) == open_bits, "wall_time of the file_version event");
    expect_key(&e, 3, 2, "file_version key");
    Cursor version = get_message(&e);
    expect(version.n == strlen(TFEVENTS_FILE_VERSION) && memcmp(version.p, TFEVENTS_FILE_VERSION, version.n) == 0,
           "file_version");
    expect(e.at == e.n, "bytes after the file_version event");

    in.at = head;
    while (next_input(&in, &r)) {
        e = get_record(&file);
        expect_time_and_step(&e, r.wall_bits, r.step);
        if (r.session) {
            /* session_log {status: START} */
            expect_key(&e, 7, 2, "session_log key");
            Cursor log = get_message(&e);
            expect_key(&log, 1, 0, "status key");
            expect(get_varint(&log) == 1, "status START");
            expect(log.at == log.n, "bytes after the session_log's status");
        } else {
            /* summary {value {tag, simple_value}} */
            expect_key(&e, 5, 2, "summary key");
            Cursor summary = get_message(&e);
            expect_key(&summary, 1, 2, "value key");
            Cursor value = get_message(&summary);
            expect(summary.at == summary.n, "bytes after the summary's value");
            expect_key(&value, 1, 2, "tag key");
            Cursor tag = get_message(&value);
            expect(tag.n == strlen(r.tag) && memcmp(tag.p, r.tag, tag.n) == 0, "tag");
            expect_key(&value, 2, 5, "simple_value key");
            expect(get_fixed(&value, 4) == r.value_bits, "simple_value");
            expect(value.at == value.n, "bytes after the value's simple_value");
        }
        expect(e.at == e.n, "bytes after an event");
    }
    expect(file.at == file.n, "bytes after the last record");
    free(bytes);
    return 0;
}

#ifdef FUZZ_ENTRY
FUZZ_ENTRY_POINT(fuzz_tfevents)
#endif
