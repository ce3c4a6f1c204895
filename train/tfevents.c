/* tfevents.c - see tfevents.h. */
#include "tfevents.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "crc32c.h"

/* ---------------------------------------------------------------- protobuf encoding */

/* A growable byte buffer. */
typedef struct {
    unsigned char *p;
    size_t n, cap;
} Bytes;

static void put(Bytes *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_varint(Bytes *b, uint64_t v) {
    unsigned char out[10];
    int k = 0;
    do {
        out[k] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) out[k] |= 0x80;
        k++;
    } while (v);
    put(b, out, (size_t)k);
}

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

static void put_key(Bytes *b, int field, int wire) { put_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }

static void put_le(Bytes *b, uint64_t v, int bytes) {
    unsigned char out[8];
    for (int i = 0; i < bytes; i++) out[i] = (unsigned char)(v >> (8 * i));
    put(b, out, (size_t)bytes);
}

static void put_double(Bytes *b, int field, double x) {
    uint64_t bits;
    memcpy(&bits, &x, 8);
    put_key(b, field, WIRE_FIXED64);
    put_le(b, bits, 8);
}

static void put_float(Bytes *b, int field, float x) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    put_key(b, field, WIRE_FIXED32);
    put_le(b, bits, 4);
}

/* int64 as a varint: a negative value is its 64-bit two's complement (10 bytes). */
static void put_int64(Bytes *b, int field, int64_t v) {
    put_key(b, field, WIRE_VARINT);
    put_varint(b, (uint64_t)v);
}

static void put_bytes(Bytes *b, int field, const void *data, size_t n) {
    put_key(b, field, WIRE_LEN);
    put_varint(b, n);
    put(b, data, n);
}

/* Field numbers of event.proto and summary.proto. */
enum { EVENT_WALL_TIME = 1, EVENT_STEP = 2, EVENT_FILE_VERSION = 3, EVENT_SUMMARY = 5, EVENT_SESSION_LOG = 7 };
enum { SUMMARY_VALUE = 1, VALUE_TAG = 1, VALUE_SIMPLE_VALUE = 2 };
enum { SESSION_LOG_STATUS = 1, SESSION_LOG_START = 1 };

/* ------------------------------------------------------------------- the writer */

struct TfEventWriter {
    char *path;
    FILE *f;
    int failed; /* a write failed: later calls fail at once */
    Bytes event, inner, value;
};

const char *tfevents_path(const TfEventWriter *w) { return w->path; }

static int write_failed(TfEventWriter *w, int e) {
    w->failed = 1;
    return elmo_fail("%s: write failed: %s", w->path, strerror(e ? e : EIO));
}

/* Frames the Event in w->event as one TFRecord. */
static int write_record(TfEventWriter *w) {
    if (w->failed) return elmo_fail("%s: write failed earlier", w->path);
    unsigned char head[12], tail[4];
    uint64_t len = w->event.n;
    for (int i = 0; i < 8; i++) head[i] = (unsigned char)(len >> (8 * i));
    uint32_t len_crc = crc32c_mask(crc32c(head, 8));
    uint32_t data_crc = crc32c_mask(crc32c(w->event.p, w->event.n));
    for (int i = 0; i < 4; i++) head[8 + i] = (unsigned char)(len_crc >> (8 * i));
    for (int i = 0; i < 4; i++) tail[i] = (unsigned char)(data_crc >> (8 * i));
    errno = 0;
    if (fwrite(head, 1, 12, w->f) != 12 || fwrite(w->event.p, 1, w->event.n, w->f) != w->event.n ||
        fwrite(tail, 1, 4, w->f) != 4)
        return write_failed(w, errno);
    return 0;
}

int tfevents_flush(TfEventWriter *w) {
    if (w->failed) return elmo_fail("%s: write failed earlier", w->path);
    errno = 0;
    if (fflush(w->f) != 0 || ferror(w->f)) return write_failed(w, errno);
    return 0;
}

/* The host name as a file name part: '/' and control characters replaced. */
static void host_name(char *out, size_t size) {
    if (gethostname(out, size) != 0 || out[0] == '\0') snprintf(out, size, "localhost");
    out[size - 1] = '\0';
    for (char *c = out; *c; c++)
        if (*c == '/' || (unsigned char)*c < 0x20) *c = '_';
}

int tfevents_open(TfEventWriter **out, const char *dir, double wall_time) {
    *out = NULL;
    char host[256];
    host_name(host, sizeof host);
    size_t size = strlen(dir) + strlen(host) + 64;
    char *path = xmalloc(size);
    int fd = -1;
    for (int attempt = 0; attempt < 1000 && fd < 0; attempt++) {
        int k = snprintf(path, size, "%s/events.out.tfevents.%010lld.%s", dir, (long long)wall_time, host);
        if (attempt > 0) snprintf(path + k, size - (size_t)k, ".%d", attempt);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int e = errno;
        elmo_fail("%s: cannot create: %s", path, strerror(e));
        free(path);
        return -1;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        elmo_fail("%s: cannot open: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        free(path);
        return -1;
    }
    TfEventWriter *w = xcalloc(1, sizeof *w);
    w->path = path;
    w->f = f;
    put_double(&w->event, EVENT_WALL_TIME, wall_time);
    put_bytes(&w->event, EVENT_FILE_VERSION, TFEVENTS_FILE_VERSION, strlen(TFEVENTS_FILE_VERSION));
    if (write_record(w) < 0 || tfevents_flush(w) < 0) {
        tfevents_close(w);
        return -1;
    }
    *out = w;
    return 0;
}

int tfevents_scalar(TfEventWriter *w, double wall_time, long step, const char *tag, float value) {
    Bytes *v = &w->value, *s = &w->inner, *e = &w->event;
    v->n = s->n = e->n = 0;
    put_bytes(v, VALUE_TAG, tag, strlen(tag));
    put_float(v, VALUE_SIMPLE_VALUE, value);
    put_bytes(s, SUMMARY_VALUE, v->p, v->n);
    put_double(e, EVENT_WALL_TIME, wall_time);
    put_int64(e, EVENT_STEP, step);
    put_bytes(e, EVENT_SUMMARY, s->p, s->n);
    return write_record(w);
}

int tfevents_session_start(TfEventWriter *w, double wall_time, long step) {
    Bytes *s = &w->inner, *e = &w->event;
    s->n = e->n = 0;
    put_key(s, SESSION_LOG_STATUS, WIRE_VARINT);
    put_varint(s, SESSION_LOG_START);
    put_double(e, EVENT_WALL_TIME, wall_time);
    put_int64(e, EVENT_STEP, step);
    put_bytes(e, EVENT_SESSION_LOG, s->p, s->n);
    return write_record(w);
}

int tfevents_close(TfEventWriter *w) {
    if (!w) return 0;
    int rc = 0;
    if (!w->failed) {
        errno = 0;
        if (fflush(w->f) != 0 || ferror(w->f)) rc = write_failed(w, errno);
    }
    if (fclose(w->f) != 0 && rc == 0) rc = elmo_fail("%s: write failed: %s", w->path, strerror(errno));
    free(w->path);
    free(w->event.p);
    free(w->inner.p);
    free(w->value.p);
    free(w);
    return rc;
}
