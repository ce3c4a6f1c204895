/* test_metrics.c - the metrics of a run: metrics.jsonl, TensorBoard event files read back
 * with this test's own TFRecord and protobuf reader, curves.svg checked as XML, resumed
 * runs, damaged input and write errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"
#include "metrics.h"
#include "svgplot.h"
#include "testutil.h"
#include "tfevents.h"
#include "text.h"

/* ------------------------------------------------------------ small helpers */

/* The whole file (NUL-terminated; free it). Not inlined: gcc 12 then takes the returned
 * buffer for a pointer to the local that received it (-Wdangling-pointer). */
static __attribute__((noinline)) char *slurp(const char *path, size_t *len) {
    char *data = NULL;
    size_t n = 0;
    if (file_read_all(path, (size_t)1 << 30, &data, &n) < 0) fail_msg("%s", elmo_error());
    if (len) *len = n;
    return data;
}

/* A fresh directory under the test's temporary folder. */
static const char *fresh_dir(char *buf, size_t size, const char *name) {
    tmp_path(buf, size, name);
    assert_int_equal(mkdir(buf, 0755), 0);
    return buf;
}

/* Names in dir containing "tfevents", sorted; returns the count. */
static int event_files(const char *dir, char names[][512], int max) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, "tfevents") && n < max) snprintf(names[n++], 512, "%s/%s", dir, e->d_name);
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: TensorBoard's order */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[512];
            memcpy(t, names[j], 512), memcpy(names[j], names[j - 1], 512), memcpy(names[j - 1], t, 512);
        }
    return n;
}

/* stderr into a file while a call runs. */
static int saved_stderr = -1;
static char stderr_path[512];
static void capture_stderr(void) {
    fflush(stderr);
    tmp_path(stderr_path, sizeof stderr_path, "stderr.txt");
    int fd = open(stderr_path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(fd >= 0);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}
static char *captured_stderr(void) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    saved_stderr = -1;
    return slurp(stderr_path, NULL);
}

/* ------------------------------------------- this test's own TFRecord reader */

typedef struct {
    const unsigned char *data;
    size_t len;
} Slice;

static uint64_t le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* CRC32C bit by bit and its mask, written here again so that the reader does not share
 * the writer's code (the library's table is checked against it below). */
static uint32_t own_crc32c(const void *data, size_t n) {
    const unsigned char *p = data;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return ~c;
}
static uint32_t own_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

/* Splits a TFRecord file into its records, checking both CRCs of each. Returns the number
 * of records, or -1 with why set (the offset and what is wrong). */
static int tfrecord_split(const unsigned char *file, size_t size, Slice *out, int max, char *why, size_t why_size) {
    size_t at = 0;
    int n = 0;
    while (at < size) {
        if (size - at < 12) return snprintf(why, why_size, "offset %zu: header cut short", at), -1;
        uint64_t len = le(file + at, 8);
        uint32_t len_crc = (uint32_t)le(file + at + 8, 4);
        if (own_mask(own_crc32c(file + at, 8)) != len_crc)
            return snprintf(why, why_size, "offset %zu: length CRC mismatch", at), -1;
        if (len > size - at - 12 || size - at - 12 - len < 4)
            return snprintf(why, why_size, "offset %zu: record cut short", at), -1;
        const unsigned char *data = file + at + 12;
        uint32_t data_crc = (uint32_t)le(data + len, 4);
        if (own_mask(own_crc32c(data, len)) != data_crc)
            return snprintf(why, why_size, "offset %zu: data CRC mismatch", at), -1;
        if (n == max) return snprintf(why, why_size, "more than %d records", max), -1;
        out[n].data = data, out[n].len = len;
        n++;
        at += 12 + len + 4;
    }
    return n;
}

/* One protobuf field. */
typedef struct {
    int field, wire;
    uint64_t varint;   /* wire 0, and the bits of wire 1 and 5 */
    Slice bytes;       /* wire 2 */
} Field;

static int read_varint(Slice *s, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (s->len == 0) return -1;
        unsigned char b = *s->data++;
        s->len--;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

/* The next field of s: 1, 0 at the end, -1 when malformed. */
static int next_field(Slice *s, Field *f) {
    if (s->len == 0) return 0;
    uint64_t key;
    if (read_varint(s, &key) < 0) return -1;
    f->field = (int)(key >> 3), f->wire = (int)(key & 7);
    switch (f->wire) {
    case 0: return read_varint(s, &f->varint) < 0 ? -1 : 1;
    case 1:
    case 5: {
        size_t k = f->wire == 1 ? 8 : 4;
        if (s->len < k) return -1;
        f->varint = le(s->data, (int)k);
        s->data += k, s->len -= k;
        return 1;
    }
    case 2: {
        uint64_t n;
        if (read_varint(s, &n) < 0 || n > s->len) return -1;
        f->bytes.data = s->data, f->bytes.len = (size_t)n;
        s->data += n, s->len -= n;
        return 1;
    }
    default: return -1;
    }
}

typedef struct {
    double wall_time;
    int64_t step;
    char file_version[64];
    int n_values;         /* Summary.value */
    char tag[8][128];
    float simple_value[8];
    int has_session_log, session_status;
} Event;

static void decode_value(Slice s, Event *e) {
    Field f;
    int r, k = e->n_values++;
    assert_true(k < 8);
    e->tag[k][0] = '\0';
    e->simple_value[k] = NAN;
    while ((r = next_field(&s, &f)) == 1) {
        if (f.field == 1 && f.wire == 2) { /* string tag = 1 */
            assert_true(f.bytes.len < 128);
            memcpy(e->tag[k], f.bytes.data, f.bytes.len);
            e->tag[k][f.bytes.len] = '\0';
        } else if (f.field == 2 && f.wire == 5) { /* float simple_value = 2 */
            uint32_t bits = (uint32_t)f.varint;
            memcpy(&e->simple_value[k], &bits, 4);
        } else {
            fail_msg("Summary.Value: unexpected field %d (wire %d)", f.field, f.wire);
        }
    }
    assert_int_equal(r, 0);
}

static void decode_event(Slice s, Event *e) {
    memset(e, 0, sizeof *e);
    Field f;
    int r;
    while ((r = next_field(&s, &f)) == 1) {
        if (f.field == 1 && f.wire == 1) { /* double wall_time = 1 */
            memcpy(&e->wall_time, &f.varint, 8);
        } else if (f.field == 2 && f.wire == 0) { /* int64 step = 2 */
            e->step = (int64_t)f.varint;
        } else if (f.field == 3 && f.wire == 2) { /* string file_version = 3 */
            assert_true(f.bytes.len < 64);
            memcpy(e->file_version, f.bytes.data, f.bytes.len);
        } else if (f.field == 5 && f.wire == 2) { /* Summary summary = 5 */
            Slice sum = f.bytes;
            Field v;
            int rv;
            while ((rv = next_field(&sum, &v)) == 1) {
                assert_true(v.field == 1 && v.wire == 2); /* repeated Value value = 1 */
                decode_value(v.bytes, e);
            }
            assert_int_equal(rv, 0);
        } else if (f.field == 7 && f.wire == 2) { /* SessionLog session_log = 7 */
            e->has_session_log = 1;
            Slice log = f.bytes;
            Field v;
            while (next_field(&log, &v) == 1)
                if (v.field == 1 && v.wire == 0) e->session_status = (int)v.varint;
        } else {
            fail_msg("Event: unexpected field %d (wire %d)", f.field, f.wire);
        }
    }
    assert_int_equal(r, 0);
}

/* Every Event of an event file (at most max). */
static int read_events(const char *path, Event *events, int max) {
    size_t size;
    unsigned char *file = (unsigned char *)slurp(path, &size);
    Slice records[256];
    char why[128];
    int n = tfrecord_split(file, size, records, 256, why, sizeof why);
    if (n < 0) fail_msg("%s: %s", path, why);
    assert_true(n <= max);
    for (int i = 0; i < n; i++) decode_event(records[i], &events[i]);
    free(file);
    return n;
}

/* ------------------------------------------------------ this test's XML check */

static int is_name_start(int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':'; }
static int is_name_char(int c) { return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'; }

/* Length of a valid entity reference at s ('&'), 0 if none. */
static size_t entity_len(const char *s) {
    static const char *named[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (int i = 0; i < 5; i++)
        if (strncmp(s, named[i], strlen(named[i])) == 0) return strlen(named[i]);
    if (s[1] == '#') {
        size_t k = 2;
        int hex = s[2] == 'x';
        if (hex) k++;
        size_t digits = 0;
        while (hex ? strchr("0123456789abcdefABCDEF", s[k]) && s[k] : (s[k] >= '0' && s[k] <= '9')) k++, digits++;
        if (digits > 0 && s[k] == ';') return k + 1;
    }
    return 0;
}

/* Character data up to a '<' (or the end): entities valid, no control characters. */
static int check_chars(const char **p, char stop, char *why, size_t size) {
    const char *s = *p;
    while (*s && *s != '<' && *s != stop) {
        if (*s == '&') {
            size_t k = entity_len(s);
            if (!k) return snprintf(why, size, "bad '&' at \"%.20s\"", s), -1;
            s += k;
            continue;
        }
        if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
            return snprintf(why, size, "control character 0x%02x", *s), -1;
        s++;
    }
    *p = s;
    return 0;
}

/* Well-formed XML 1.0 (the subset an SVG file uses): an optional <?xml ...?> prolog, one
 * root element, balanced and properly nested tags, attributes name="value" or 'value',
 * entity references valid, comments allowed, valid UTF-8. */
static int xml_well_formed(const char *doc, char *why, size_t size) {
    if (utf8_invalid_offset(doc, strlen(doc)) >= 0) return snprintf(why, size, "invalid UTF-8"), -1;
    const char *s = doc;
    if (strncmp(s, "<?xml ", 6) == 0) {
        s = strstr(s, "?>");
        if (!s) return snprintf(why, size, "prolog not closed"), -1;
        s += 2;
    }
    char stack[64][64];
    int depth = 0, roots = 0;
    for (;;) {
        const char *text = s;
        if (check_chars(&s, '\0', why, size) < 0) return -1;
        if (depth == 0)
            for (const char *c = text; c < s; c++)
                if (!strchr(" \t\r\n", *c)) return snprintf(why, size, "text outside the root element"), -1;
        if (*s == '\0') break;
        if (strncmp(s, "<!--", 4) == 0) {
            const char *end = strstr(s + 4, "-->");
            if (!end) return snprintf(why, size, "comment not closed"), -1;
            s = end + 3;
            continue;
        }
        if (s[1] == '/') { /* end tag */
            s += 2;
            const char *name = s;
            while (is_name_char(*s)) s++;
            size_t n = (size_t)(s - name);
            while (*s == ' ' || *s == '\n' || *s == '\t') s++;
            if (*s != '>') return snprintf(why, size, "end tag not closed"), -1;
            if (depth == 0 || strlen(stack[depth - 1]) != n || strncmp(stack[depth - 1], name, n) != 0)
                return snprintf(why, size, "end tag </%.*s> does not match <%s>", (int)n, name,
                                depth ? stack[depth - 1] : "(none)"),
                       -1;
            depth--;
            s++;
            continue;
        }
        s++; /* start tag */
        if (!is_name_start(*s)) return snprintf(why, size, "bad tag name at \"%.20s\"", s), -1;
        const char *name = s;
        while (is_name_char(*s)) s++;
        size_t n = (size_t)(s - name);
        if (depth == 0 && ++roots > 1) return snprintf(why, size, "more than one root element"), -1;
        for (;;) { /* attributes */
            int space = 0;
            while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') s++, space = 1;
            if (*s == '>' || (s[0] == '/' && s[1] == '>')) break;
            if (!space || !is_name_start(*s)) return snprintf(why, size, "bad attribute at \"%.20s\"", s), -1;
            while (is_name_char(*s)) s++;
            if (*s++ != '=') return snprintf(why, size, "attribute without '='"), -1;
            char quote = *s++;
            if (quote != '"' && quote != '\'') return snprintf(why, size, "unquoted attribute value"), -1;
            if (check_chars(&s, quote, why, size) < 0) return -1;
            if (*s != quote) return snprintf(why, size, "'<' or end inside an attribute value"), -1;
            s++;
        }
        if (*s == '/') {
            s += 2; /* empty element */
        } else {
            if (depth == 64 || n >= 64) return snprintf(why, size, "nesting too deep"), -1;
            memcpy(stack[depth], name, n);
            stack[depth][n] = '\0';
            depth++;
            s++;
        }
    }
    if (depth) return snprintf(why, size, "<%s> not closed", stack[depth - 1]), -1;
    if (roots != 1) return snprintf(why, size, "no root element"), -1;
    return 0;
}

static void assert_well_formed(const char *doc) {
    char why[256];
    if (xml_well_formed(doc, why, sizeof why) < 0) fail_msg("not well-formed XML: %s", why);
}

/* The number of "x,y" pairs in the points of the k-th <polyline> (-1 if none), each
 * coordinate a finite number. */
static int polyline_points(const char *doc, int k) {
    const char *s = doc;
    for (int i = 0; i <= k; i++) {
        s = strstr(s, "<polyline");
        if (!s) return -1;
        s++;
    }
    const char *end = strchr(s, '>');
    const char *pts = strstr(s, " points=\"");
    assert_true(pts && pts < end);
    pts += 9;
    int n = 0;
    while (*pts != '"') {
        char *after;
        double x = strtod(pts, &after);
        assert_true(after != pts && *after == ',');
        double y = strtod(after + 1, &after);
        assert_true(isfinite(x) && isfinite(y));
        n++;
        pts = after;
        while (*pts == ' ') pts++;
    }
    return n;
}

static int count_of(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

/* No NaN or infinity printed anywhere. */
static void assert_no_nan(const char *doc) {
    assert_null(strstr(doc, "nan"));
    assert_null(strstr(doc, "inf"));
}

/* ================================================================== the tests */

static void test_crc32c_known_answer(void **state) {
    assert_int_equal(crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_extend_portable(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(own_crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c("", 0), 0);
    /* RFC 3720 B.4: 32 bytes of zeros, of 0xff */
    unsigned char buf[300];
    memset(buf, 0, 32);
    assert_int_equal(crc32c(buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, 32);
    assert_int_equal(crc32c(buf, 32), 0x62A8AB43u);
    /* continued = whole; the SSE4.2 path (when built) = the table, at every length and
     * alignment */
    for (int i = 0; i < 300; i++) buf[i] = (unsigned char)(i * 131 + 7);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= 300; n += 13) {
            uint32_t whole = crc32c_extend_portable(0, buf + off, n);
            assert_int_equal(crc32c(buf + off, n), whole);
            assert_int_equal(own_crc32c(buf + off, n), whole);
            assert_int_equal(crc32c_extend(crc32c(buf + off, n / 2), buf + off + n / 2, n - n / 2), whole);
        }
    assert_int_equal(crc32c_mask(0), 0xa282ead8u);
    assert_int_equal(crc32c_mask(0xE3069283u), own_mask(0xE3069283u));
    assert_int_equal(crc32c_mask(0x00008000u), 0xa282ead9u); /* rotated right by 15 */
}

/* The records of test_events_match_jsonl: kind, step, tokens, perplexity, loss. */
typedef struct {
    const char *kind;
    long step;
    double tokens, perplexity, loss;
} Row;

static const Row rows[] = {
    {"train", 10, 2560, 812.5, 6.7},
    {"train", 20, 5120, 401.25, 6.0},
    {"heldout", 20, 5120, 455.0, 6.12},
    {"train", 30, 7680, 350.0 / 3.0, NAN},   /* a non-finite loss */
    {"heldout", 30, 7680, INFINITY, 1e300},  /* a non-finite perplexity */
    {"train", 40, 10240, 0.1 + 0.2, 4.0},    /* 0.30000000000000004: 17 digits */
};
#define N_ROWS ((int)(sizeof rows / sizeof rows[0]))

/* Writes rows[from..to) to m. */
static void record_rows(MetricsLog *m, int from, int to) {
    for (int i = from; i < to; i++) {
        const Row *r = &rows[i];
        int train = strcmp(r->kind, "train") == 0;
        MetricValue v[4] = {
            {METRICS_TOKENS, NULL, r->tokens},
            {train ? METRICS_TRAIN_PERPLEXITY : METRICS_HELDOUT_PERPLEXITY,
             train ? "train/perplexity" : "heldout/perplexity", r->perplexity},
            {train ? "loss" : "heldout_loss", train ? "train/loss" : "heldout/loss", r->loss},
            {"learning_rate", NULL, 0.2},
        };
        const char *flags[] = {"outlier_loss", NULL};
        assert_int_equal(metrics_record(m, r->kind, r->step, v, 4, isnan(r->loss) ? flags : NULL), 0);
    }
}

/* The jsonl line of kind and step. */
static const cJSON *jsonl_line(cJSON *const *lines, int n, const char *kind, long step) {
    for (int i = 0; i < n; i++) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(lines[i], "kind");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(lines[i], "step");
        if (cJSON_IsString(k) && strcmp(k->valuestring, kind) == 0 && cJSON_IsNumber(s) && s->valuedouble == step)
            return lines[i];
    }
    return NULL;
}

/* Parses every line of a jsonl file (each must be a JSON object); returns the count. */
static int read_jsonl(const char *path, cJSON **lines, int max) {
    char *text = slurp(path, NULL);
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        assert_true(n < max);
        lines[n] = cJSON_Parse(line);
        if (!cJSON_IsObject(lines[n])) fail_msg("%s: line %d is not a JSON object: %s", path, n + 1, line);
        n++;
    }
    free(text);
    return n;
}

static void test_events_match_jsonl(void **state) {
    char dir[512];
    fresh_dir(dir, sizeof dir, "events");
    double before = (double)time(NULL);
    MetricsLog *m;
    assert_int_equal(metrics_open(&m, dir, 0), 0);
    char events_path[1024];
    snprintf(events_path, sizeof events_path, "%s", metrics_events_path(m));
    cJSON *plan = cJSON_Parse("{\"kind\": \"plan\", \"lr\": 0.30000000000000004, \"steps\": [1, 0.1, 3e9],"
                              " \"nested\": {\"third\": 0.3333333333333333}}");
    assert_int_equal(metrics_record_json(m, plan), 0);
    record_rows(m, 0, N_ROWS);
    metrics_close(m);

    /* the event file's name is TensorFlow's */
    char names[4][512];
    assert_int_equal(event_files(dir, names, 4), 1);
    assert_string_equal(names[0], events_path);
    const char *base = strrchr(events_path, '/') + 1;
    assert_int_equal(strncmp(base, "events.out.tfevents.", 20), 0);
    char *end;
    long long stamp = strtoll(base + 20, &end, 10);
    assert_true(*end == '.' && end - (base + 20) == 10);
    assert_true(stamp >= (long long)before && stamp <= (long long)time(NULL));

    /* metrics.jsonl: the plan, then one line per record, numbers exact */
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    cJSON *lines[32];
    int n_lines = read_jsonl(path, lines, 32);
    assert_int_equal(n_lines, 1 + N_ROWS);
    cJSON *lr = cJSON_GetObjectItemCaseSensitive(lines[0], "lr");
    assert_true(cJSON_IsNumber(lr) && lr->valuedouble == 0.1 + 0.2);
    cJSON *third = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(lines[0], "nested"), "third");
    assert_true(cJSON_IsNumber(third) && third->valuedouble == 1.0 / 3.0);
    cJSON *steps = cJSON_GetObjectItemCaseSensitive(lines[0], "steps");
    assert_int_equal(cJSON_GetArraySize(steps), 3);
    assert_true(cJSON_GetArrayItem(steps, 1)->valuedouble == 0.1);
    assert_true(cJSON_GetArrayItem(steps, 2)->valuedouble == 3e9);
    for (int i = 0; i < N_ROWS; i++) {
        const Row *r = &rows[i];
        const cJSON *line = lines[1 + i];
        int train = strcmp(r->kind, "train") == 0;
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(line, "kind")->valuestring, r->kind);
        assert_true(cJSON_GetObjectItemCaseSensitive(line, "step")->valuedouble == r->step);
        assert_true(cJSON_GetObjectItemCaseSensitive(line, METRICS_TOKENS)->valuedouble == r->tokens);
        const cJSON *ppl =
            cJSON_GetObjectItemCaseSensitive(line, train ? METRICS_TRAIN_PERPLEXITY : METRICS_HELDOUT_PERPLEXITY);
        const cJSON *loss = cJSON_GetObjectItemCaseSensitive(line, train ? "loss" : "heldout_loss");
        if (isfinite(r->perplexity)) assert_true(cJSON_IsNumber(ppl) && ppl->valuedouble == r->perplexity);
        else assert_true(cJSON_IsNull(ppl));
        if (isfinite(r->loss)) assert_true(cJSON_IsNumber(loss) && loss->valuedouble == r->loss);
        else assert_true(cJSON_IsNull(loss));
        const cJSON *flags = cJSON_GetObjectItemCaseSensitive(line, "flags");
        assert_true(cJSON_IsArray(flags));
        if (isnan(r->loss)) {
            assert_int_equal(cJSON_GetArraySize(flags), 1);
            assert_string_equal(cJSON_GetArrayItem(flags, 0)->valuestring, "outlier_loss");
        } else {
            assert_int_equal(cJSON_GetArraySize(flags), 0);
        }
    }

    /* the events: file_version first, then one per tagged value, in order, each equal (as a
     * float) to the value of its key on the jsonl line of the same kind and step */
    Event ev[64];
    int n_ev = read_events(events_path, ev, 64);
    assert_int_equal(n_ev, 1 + 2 * N_ROWS);
    assert_string_equal(ev[0].file_version, "brain.Event:2");
    assert_int_equal(ev[0].n_values, 0);
    assert_true(ev[0].wall_time >= before && ev[0].wall_time <= (double)time(NULL) + 1);
    for (int i = 0; i < N_ROWS; i++)
        for (int j = 0; j < 2; j++) {
            const Row *r = &rows[i];
            const Event *e = &ev[1 + 2 * i + j];
            int train = strcmp(r->kind, "train") == 0;
            const char *tag = j == 0 ? (train ? "train/perplexity" : "heldout/perplexity")
                                     : (train ? "train/loss" : "heldout/loss");
            const char *key = j == 0 ? (train ? METRICS_TRAIN_PERPLEXITY : METRICS_HELDOUT_PERPLEXITY)
                                     : (train ? "loss" : "heldout_loss");
            assert_int_equal(e->step, r->step);
            assert_int_equal(e->n_values, 1);
            assert_string_equal(e->tag[0], tag);
            assert_false(e->has_session_log);
            assert_true(e->wall_time >= ev[0].wall_time && e->wall_time <= (double)time(NULL) + 1);
            const cJSON *line = jsonl_line(lines, n_lines, r->kind, r->step);
            assert_non_null(line);
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(line, key);
            float written = e->simple_value[0];
            if (cJSON_IsNull(v)) { /* a non-finite value: as its float in the event */
                double want = j == 0 ? r->perplexity : r->loss;
                assert_true(isnan(want) ? isnan(written) : written == (float)want);
            } else {
                assert_true(cJSON_IsNumber(v));
                if (written != (float)v->valuedouble)
                    fail_msg("%s at step %ld: event %.9g, jsonl %.17g", tag, r->step, written, v->valuedouble);
            }
        }
    for (int i = 0; i < n_lines; i++) cJSON_Delete(lines[i]);
    cJSON_Delete(plan);
}

static void test_event_crc_detects_corruption(void **state) {
    char dir[512];
    fresh_dir(dir, sizeof dir, "corrupt");
    MetricsLog *m;
    assert_int_equal(metrics_open(&m, dir, 0), 0);
    char path[1024];
    snprintf(path, sizeof path, "%s", metrics_events_path(m));
    record_rows(m, 0, 3);
    metrics_close(m);
    size_t size;
    unsigned char *file = (unsigned char *)slurp(path, &size);
    Slice rec[16];
    char why[128];
    assert_int_equal(tfrecord_split(file, size, rec, 16, why, sizeof why), 1 + 2 * 3);
    /* every single flipped bit, anywhere in the file, is caught by one of the CRCs */
    for (size_t at = 0; at < size; at++)
        for (int bit = 0; bit < 8; bit++) {
            file[at] ^= (unsigned char)(1u << bit);
            if (tfrecord_split(file, size, rec, 16, why, sizeof why) >= 0)
                fail_msg("byte %zu bit %d flipped: not detected", at, bit);
            file[at] ^= (unsigned char)(1u << bit);
        }
    /* a data byte in the second record: the data CRC */
    size_t second = 12 + rec[0].len + 4;
    file[second + 12 + 3] ^= 0x40;
    assert_int_equal(tfrecord_split(file, size, rec, 16, why, sizeof why), -1);
    assert_non_null(strstr(why, "data CRC"));
    file[second + 12 + 3] ^= 0x40;
    /* a length byte: the length CRC */
    file[second] ^= 0x01;
    assert_int_equal(tfrecord_split(file, size, rec, 16, why, sizeof why), -1);
    assert_non_null(strstr(why, "length CRC"));
    file[second] ^= 0x01;
    /* cut short */
    assert_int_equal(tfrecord_split(file, size - 1, rec, 16, why, sizeof why), -1);
    assert_int_equal(tfrecord_split(file, size, rec, 16, why, sizeof why), 7);
    free(file);
}

static void test_curves_svg(void **state) {
    /* a directory name that needs escaping: it is in the title */
    char dir[512];
    fresh_dir(dir, sizeof dir, "run &<\"'> \xff");
    MetricsLog *m;
    assert_int_equal(metrics_open(&m, dir, 0), 0);
    char path[1024];
    snprintf(path, sizeof path, "%s", metrics_curves_path(m));
    assert_int_equal(metrics_write_curves(m), 0); /* no points yet */
    char *doc = slurp(path, NULL);
    assert_well_formed(doc);
    assert_no_nan(doc);
    assert_int_equal(polyline_points(doc, 0), 0);
    assert_int_equal(polyline_points(doc, 1), 0);
    free(doc);

    record_rows(m, 0, 3); /* 2 train points, 1 heldout: curves.svg rewritten */
    doc = slurp(path, NULL);
    assert_well_formed(doc);
    assert_int_equal(polyline_points(doc, 0), 2);
    assert_int_equal(polyline_points(doc, 1), 1);
    free(doc);

    record_rows(m, 3, N_ROWS); /* the heldout inf is not drawn; 0.3 is */
    doc = slurp(path, NULL);   /* as of the last heldout record: before train step 40 */
    assert_int_equal(polyline_points(doc, 0), 3);
    free(doc);
    assert_int_equal(metrics_write_curves(m), 0);
    doc = slurp(path, NULL);
    assert_well_formed(doc);
    assert_no_nan(doc);
    assert_int_equal(count_of(doc, "<polyline"), 2);
    assert_int_equal(polyline_points(doc, 0), 4);
    assert_int_equal(polyline_points(doc, 1), 1);
    assert_int_equal(count_of(doc, "<circle"), 1 + 1); /* the heldout point, its legend mark */
    assert_non_null(strstr(doc, "&amp;&lt;&quot;&apos;&gt;")); /* the escaped directory name */
    assert_non_null(strstr(doc, "tokens seen"));
    assert_non_null(strstr(doc, "perplexity (log scale)"));
    assert_non_null(strstr(doc, ">10k<")); /* x ticks in k */
    /* y from 0.2 to 1000: more than ten 1-2-5 values, so decades */
    assert_non_null(strstr(doc, ">1<"));
    assert_non_null(strstr(doc, ">100<"));
    assert_non_null(strstr(doc, ">1k<"));
    assert_null(strstr(doc, ">200<"));
    assert_non_null(strstr(doc, "training perplexity (sampled)"));
    assert_non_null(strstr(doc, "held-out perplexity"));
    free(doc);
    metrics_close(m);
    /* no temporary left beside it */
    char names[4][512];
    assert_int_equal(event_files(dir, names, 4), 1);
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d))) assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
}

static void test_svgplot_edge_cases(void **state) {
    char label[32];
    svgplot_format_number(0, label, sizeof label);
    assert_string_equal(label, "0");
    svgplot_format_number(950, label, sizeof label);
    assert_string_equal(label, "950");
    svgplot_format_number(1500, label, sizeof label);
    assert_string_equal(label, "1.5k");
    svgplot_format_number(2e6, label, sizeof label);
    assert_string_equal(label, "2M");
    svgplot_format_number(3.25e9, label, sizeof label);
    assert_string_equal(label, "3.25B");
    svgplot_format_number(0.05, label, sizeof label);
    assert_string_equal(label, "0.05");

    /* nothing drawable, one point, equal points, a point at x = 0 and y tiny, many points */
    double nan = NAN, inf = INFINITY;
    double bad_x[4] = {nan, inf, 1, 2}, bad_y[4] = {1, 1, 0, -5};
    double one_x[1] = {0}, one_y[1] = {100};
    double same_x[3] = {5, 5, 5}, same_y[3] = {7, 7, 7};
    enum { MANY = 100000 };
    double *many_x = xmalloc(sizeof(double) * MANY), *many_y = xmalloc(sizeof(double) * MANY);
    for (int i = 0; i < MANY; i++) many_x[i] = 1e9 * i, many_y[i] = 1e4 / (1 + 0.001 * i) * (1 + 0.1 * (i % 7));
    struct {
        SvgSeries s;
        int points;
    } cases[] = {
        {{bad_x, bad_y, 4, "bad", "red", 1}, 0},
        {{one_x, one_y, 1, "one", "red", 0}, 1},
        {{same_x, same_y, 3, "same", "red", 1}, 3},
        {{many_x, many_y, MANY, "many <&>", "red", 0}, -1},
    };
    for (int c = 0; c < 4; c++) {
        SvgPlot plot = {.title = "edge \x01 case", .x_title = "x", .y_title = "y", .series = &cases[c].s, .n_series = 1};
        size_t len;
        char *doc = svgplot_render(&plot, &len);
        assert_int_equal(strlen(doc), len);
        assert_well_formed(doc);
        assert_no_nan(doc);
        int n = polyline_points(doc, 0);
        if (cases[c].points >= 0) {
            assert_int_equal(n, cases[c].points);
        } else { /* the envelope: at most two points per pixel column */
            assert_true(n > 100 && n <= 2 * 800);
            assert_true(len < 100000);
        }
        free(doc);
    }
    free(many_x);
    free(many_y);
}

static void test_resume_drops_repeated_points(void **state) {
    char dir[512];
    fresh_dir(dir, sizeof dir, "resume");
    MetricsLog *m;
    assert_int_equal(metrics_open(&m, dir, 0), 0);
    record_rows(m, 0, N_ROWS); /* train 10 20 30 40, heldout 20 30 */
    char first[1024];
    snprintf(first, sizeof first, "%s", metrics_events_path(m));
    metrics_close(m);
    size_t first_size;
    char *first_bytes = slurp(first, &first_size);

    /* resumed from the checkpoint of step 20: the points after it go */
    assert_int_equal(metrics_open(&m, dir, 20), 0);
    int n;
    const long *step;
    const double *tokens, *ppl;
    metrics_curve(m, "train", &n, &tokens, &ppl, &step);
    assert_int_equal(n, 2);
    assert_int_equal(step[0], 10);
    assert_int_equal(step[1], 20);
    assert_true(ppl[1] == 401.25);
    metrics_curve(m, "heldout", &n, &tokens, &ppl, &step);
    assert_int_equal(n, 1);
    assert_int_equal(step[0], 20);
    /* a new event file, after the first in name order; the old one untouched */
    char second[1024];
    snprintf(second, sizeof second, "%s", metrics_events_path(m));
    assert_string_not_equal(first, second);
    /* the run repeats steps 30 and 40 with other values */
    MetricValue t30[2] = {{METRICS_TOKENS, NULL, 7680}, {METRICS_TRAIN_PERPLEXITY, "train/perplexity", 300}};
    MetricValue t40[2] = {{METRICS_TOKENS, NULL, 10240}, {METRICS_TRAIN_PERPLEXITY, "train/perplexity", 250}};
    MetricValue h40[2] = {{METRICS_TOKENS, NULL, 10240}, {METRICS_HELDOUT_PERPLEXITY, "heldout/perplexity", 260}};
    assert_int_equal(metrics_record(m, "train", 30, t30, 2, NULL), 0);
    assert_int_equal(metrics_record(m, "train", 40, t40, 2, NULL), 0);
    assert_int_equal(metrics_record(m, "heldout", 40, h40, 2, NULL), 0);
    metrics_curve(m, "train", &n, &tokens, &ppl, &step);
    assert_int_equal(n, 4);
    assert_true(ppl[2] == 300 && ppl[3] == 250);
    char *doc = slurp(metrics_curves_path(m), NULL);
    assert_well_formed(doc);
    assert_int_equal(polyline_points(doc, 0), 4);
    assert_int_equal(polyline_points(doc, 1), 2);
    free(doc);
    metrics_close(m);

    char names[4][512];
    assert_int_equal(event_files(dir, names, 4), 2);
    assert_string_equal(names[0], first);
    assert_string_equal(names[1], second);
    size_t size;
    char *bytes = slurp(first, &size);
    assert_int_equal(size, first_size);
    assert_memory_equal(bytes, first_bytes, size);
    free(bytes);
    free(first_bytes);
    /* the new file: file_version, SessionLog START at the first repeated step, the scalars */
    Event ev[16];
    assert_int_equal(read_events(second, ev, 16), 5);
    assert_string_equal(ev[0].file_version, "brain.Event:2");
    assert_true(ev[1].has_session_log);
    assert_int_equal(ev[1].session_status, 1);
    assert_int_equal(ev[1].step, 21);
    assert_int_equal(ev[2].step, 30);
    assert_true(ev[2].simple_value[0] == 300.0f);
    assert_int_equal(ev[4].step, 40);
    assert_string_equal(ev[4].tag[0], "heldout/perplexity");

    /* resumed again at 40: metrics.jsonl holds 10 20 30 40 (first run) and 30 40 (second);
     * the curves keep the second run's 30 and 40 */
    assert_int_equal(metrics_open(&m, dir, 40), 0);
    metrics_curve(m, "train", &n, &tokens, &ppl, &step);
    assert_int_equal(n, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(step[i], 10 * (i + 1));
    assert_true(ppl[2] == 300 && ppl[3] == 250);
    metrics_curve(m, "heldout", &n, &tokens, &ppl, &step);
    assert_int_equal(n, 2);
    assert_true(ppl[0] == 455.0 && ppl[1] == 260);
    metrics_close(m);
    assert_int_equal(event_files(dir, names, 4), 3);

    /* a fresh run (step 0) in the same directory starts the curves afresh */
    assert_int_equal(metrics_open(&m, dir, 0), 0);
    metrics_curve(m, "train", &n, NULL, NULL, NULL);
    assert_int_equal(n, 0);
    metrics_close(m);
}

static void test_truncated_line_skipped(void **state) {
    char dir[512], path[600];
    fresh_dir(dir, sizeof dir, "truncated");
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    write_text_file(path, "{\"kind\": \"train\", \"step\": 1, \"tokens\": 100, \"train_sampled_perplexity\": 900}\n"
                          "{\"kind\": \"heldout\", \"step\": 1, \"tokens\": 100, \"heldout_perplexity\": 950}\n"
                          "{\"kind\": \"train\", \"step\": 2, \"tok");
    MetricsLog *m;
    capture_stderr();
    int rc = metrics_open(&m, dir, 2);
    char *err = captured_stderr();
    assert_int_equal(rc, 0);
    char want[700];
    snprintf(want, sizeof want, "%s:3: ", path);
    if (!strstr(err, want)) fail_msg("no note naming %s in: %s", want, err);
    assert_int_equal(count_lines(err), 1);
    free(err);
    int n;
    metrics_curve(m, "train", &n, NULL, NULL, NULL);
    assert_int_equal(n, 1);
    metrics_curve(m, "heldout", &n, NULL, NULL, NULL);
    assert_int_equal(n, 1);
    MetricValue v[2] = {{METRICS_TOKENS, NULL, 200}, {METRICS_TRAIN_PERPLEXITY, NULL, 800}};
    assert_int_equal(metrics_record(m, "train", 2, v, 2, NULL), 0);
    metrics_close(m);
    /* the new record is a line of its own after the cut one */
    char *text = slurp(path, NULL);
    assert_int_equal(count_lines(text), 4);
    char *last = strrchr(text, '{');
    cJSON *rec = cJSON_Parse(last);
    assert_true(cJSON_IsObject(rec));
    assert_true(cJSON_GetObjectItemCaseSensitive(rec, "step")->valuedouble == 2);
    cJSON_Delete(rec);
    free(text);
    /* read back again: the cut line is still skipped, the others are points */
    capture_stderr();
    rc = metrics_open(&m, dir, 2);
    err = captured_stderr();
    assert_int_equal(rc, 0);
    assert_non_null(strstr(err, want));
    free(err);
    metrics_curve(m, "train", &n, NULL, NULL, NULL);
    assert_int_equal(n, 2);
    metrics_close(m);
}

static void test_unwritable_directory(void **state) {
    char dir[512];
    MetricsLog *m = (MetricsLog *)1;
    tmp_path(dir, sizeof dir, "no-such-dir/run");
    assert_int_equal(metrics_open(&m, dir, 0), -1);
    assert_null(m);
    assert_non_null(strstr(elmo_error(), dir));
    assert_non_null(strstr(elmo_error(), "metrics.jsonl"));
    assert_null(strchr(elmo_error(), '\n'));
    /* a file where the directory should be */
    tmp_path(dir, sizeof dir, "plain-file");
    write_text_file(dir, "x");
    assert_int_equal(metrics_open(&m, dir, 0), -1);
    assert_non_null(strstr(elmo_error(), dir));
    /* a read-only directory (root writes anyway) */
    if (geteuid() != 0) {
        fresh_dir(dir, sizeof dir, "read-only");
        chmod(dir, 0555);
        assert_int_equal(metrics_open(&m, dir, 0), -1);
        assert_non_null(strstr(elmo_error(), dir));
        chmod(dir, 0755);
    }
}

/* Files may grow to `limit` bytes (RLIMIT_FSIZE; SIGXFSZ ignored, so writes fail with
 * EFBIG as on a full disk); limit 0 restores. */
static void file_size_limit(rlim_t limit) {
    static struct rlimit saved;
    static void (*saved_handler)(int);
    if (limit) {
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
        saved_handler = signal(SIGXFSZ, SIG_IGN);
        struct rlimit r = saved;
        r.rlim_cur = limit;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &r), 0);
    } else {
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
        signal(SIGXFSZ, saved_handler);
    }
}

static void test_full_disk(void **state) {
    char dir[512];
    MetricsLog *m;
    /* metrics.jsonl fills up: values without tags */
    fresh_dir(dir, sizeof dir, "full-jsonl");
    assert_int_equal(metrics_open(&m, dir, 0), 0);
    MetricValue v[3] = {{"a_rather_long_key_for_the_jsonl_only", NULL, 1.5}, {"another_long_key", NULL, 2.5},
                        {METRICS_TOKENS, NULL, 100}};
    file_size_limit(4096);
    int rc = 0, i;
    for (i = 0; i < 1000 && rc == 0; i++) rc = metrics_record(m, "train", i, v, 3, NULL);
    file_size_limit(0);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(elmo_error(), metrics_jsonl_path(m)));
    assert_non_null(strstr(elmo_error(), "write failed"));
    assert_int_equal(metrics_record(m, "train", i, v, 3, NULL), -1); /* and stays failed */
    metrics_close(m);

    /* the event file fills up: long tags, short keys */
    fresh_dir(dir, sizeof dir, "full-events");
    assert_int_equal(metrics_open(&m, dir, 0), 0);
    char tag[300];
    memset(tag, 't', sizeof tag - 1);
    tag[sizeof tag - 1] = '\0';
    MetricValue w[2] = {{"a", tag, 1.5}, {"b", tag, 2.5}};
    file_size_limit(8192);
    rc = 0;
    for (i = 0; i < 1000 && rc == 0; i++) rc = metrics_record(m, "train", i, w, 2, NULL);
    file_size_limit(0);
    assert_int_equal(rc, -1);
    char events[1024];
    snprintf(events, sizeof events, "%s", metrics_events_path(m));
    if (!strstr(elmo_error(), events)) fail_msg("error does not name %s: %s", events, elmo_error());
    metrics_close(m);

    /* curves.svg cannot be written: the error names it, the old one stays */
    fresh_dir(dir, sizeof dir, "full-svg");
    assert_int_equal(metrics_open(&m, dir, 0), 0);
    assert_int_equal(metrics_write_curves(m), 0);
    size_t before;
    char *old = slurp(metrics_curves_path(m), &before);
    file_size_limit(before / 2);
    rc = metrics_write_curves(m);
    file_size_limit(0);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(elmo_error(), metrics_curves_path(m)));
    size_t after;
    char *now = slurp(metrics_curves_path(m), &after);
    assert_int_equal(after, before);
    assert_memory_equal(now, old, before);
    free(old);
    free(now);
    metrics_close(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_answer),
        cmocka_unit_test(test_events_match_jsonl),
        cmocka_unit_test(test_event_crc_detects_corruption),
        cmocka_unit_test(test_curves_svg),
        cmocka_unit_test(test_svgplot_edge_cases),
        cmocka_unit_test(test_resume_drops_repeated_points),
        cmocka_unit_test(test_truncated_line_skipped),
        cmocka_unit_test(test_unwritable_directory),
        cmocka_unit_test(test_full_disk),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
