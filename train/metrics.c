/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "svgplot.h"
#include "tfevents.h"

/* One curve: points in order of record, steps increasing. */
typedef struct {
    long *step;
    double *x, *y; /* tokens, perplexity */
    int n, cap;
} Curve;

struct MetricsLog {
    char *dir, *jsonl_path, *curves_path;
    FILE *jsonl;
    TfEventWriter *events;
    Curve train, heldout;
};

const char *metrics_jsonl_path(const MetricsLog *m) { return m->jsonl_path; }
const char *metrics_events_path(const MetricsLog *m) { return tfevents_path(m->events); }
const char *metrics_curves_path(const MetricsLog *m) { return m->curves_path; }

static double wall_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---------------------------------------------------------------------- curves */

/* A record of the curve's kind at step: a step not above the last one first drops the
 * points from that step on (a resumed run repeating them); then (x, y) is added when the
 * record has both. */
static void curve_record(Curve *c, long step, int has_point, double x, double y) {
    if (c->n > 0 && step <= c->step[c->n - 1]) {
        int keep = c->n;
        while (keep > 0 && c->step[keep - 1] >= step) keep--;
        c->n = keep;
    }
    if (!has_point) return;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->step = xrealloc(c->step, sizeof(long) * (size_t)c->cap);
        c->x = xrealloc(c->x, sizeof(double) * (size_t)c->cap);
        c->y = xrealloc(c->y, sizeof(double) * (size_t)c->cap);
    }
    c->step[c->n] = step, c->x[c->n] = x, c->y[c->n] = y;
    c->n++;
}

/* Drops the points after first_step. */
static void curve_truncate(Curve *c, long first_step) {
    while (c->n > 0 && c->step[c->n - 1] > first_step) c->n--;
}

static void curve_free(Curve *c) {
    free(c->step);
    free(c->x);
    free(c->y);
}

static Curve *curve_of(MetricsLog *m, const char *kind) {
    if (strcmp(kind, "train") == 0) return &m->train;
    if (strcmp(kind, "heldout") == 0) return &m->heldout;
    return NULL;
}

static const char *perplexity_key(const MetricsLog *m, const Curve *c) {
    return c == &m->train ? METRICS_TRAIN_PERPLEXITY : METRICS_HELDOUT_PERPLEXITY;
}

void metrics_curve(const MetricsLog *m, const char *kind, int *n, const double **tokens, const double **perplexity,
                   const long **step) {
    const Curve *c = curve_of((MetricsLog *)m, kind);
    CHECK(c != NULL, "no curve of kind '%s'", kind);
    *n = c->n;
    if (tokens) *tokens = c->x;
    if (perplexity) *perplexity = c->y;
    if (step) *step = c->step;
}

/* ------------------------------------------------------------- reading back */

/* A finite number of a record, or 0. */
static int number_of(const cJSON *record, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return 0;
    *out = v->valuedouble;
    return 1;
}

static void read_back_record(MetricsLog *m, const cJSON *record) {
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(record, "kind");
    double step;
    if (!cJSON_IsString(kind) || !number_of(record, "step", &step) || fabs(step) > 9e18) return; /* e.g. a plan */
    Curve *c = curve_of(m, kind->valuestring);
    if (!c) return;
    double x = 0, y = 0;
    int has = number_of(record, METRICS_TOKENS, &x) && number_of(record, perplexity_key(m, c), &y);
    curve_record(c, (long)step, has, x, y);
}

/* Reads the points of an earlier metrics.jsonl; *ends_in_newline is 0 when the file's last
 * line was cut short (a newline must come first before appending). */
static int read_back(MetricsLog *m, long first_step, int *ends_in_newline) {
    *ends_in_newline = 1;
    FILE *f = fopen(m->jsonl_path, "rb");
    if (!f) {
        if (errno == ENOENT) return 0;
        return elmo_fail("%s: cannot open: %s", m->jsonl_path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0, skipped = 0;
    while ((got = getline(&line, &cap, f)) > 0) {
        lineno++;
        size_t len = (size_t)got;
        *ends_in_newline = line[len - 1] == '\n';
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        size_t start = strspn(line, " \t");
        if (start == len) continue; /* blank */
        cJSON *record = NULL;
        if (strlen(line) == len) /* no NUL inside */
            record = cJSON_ParseWithLengthOpts(line, len + 1, NULL, 1);
        if (!cJSON_IsObject(record)) {
            elmo_note("%s:%ld: not a JSON object (a line cut short?), skipped", m->jsonl_path, lineno);
            skipped++;
        } else {
            read_back_record(m, record);
        }
        cJSON_Delete(record);
    }
    int failed = ferror(f);
    free(line);
    fclose(f);
    if (failed) return elmo_fail("%s: read error", m->jsonl_path);
    curve_truncate(&m->train, first_step);
    curve_truncate(&m->heldout, first_step);
    return 0;
}

/* ------------------------------------------------------------------ writing */

/* The shortest of %.15g, %.16g, %.17g that reads back as exactly x (x finite): cJSON's own
 * printing accepts a 15-digit form within a relative DBL_EPSILON, which does not always
 * round-trip. */
static void format_double(double x, char *out, size_t size) {
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(out, size, "%.*g", digits, x);
        if (strtod(out, NULL) == x) return;
    }
}

static cJSON *number_node(double x) {
    if (!isfinite(x)) return cJSON_CreateNull();
    char text[40];
    format_double(x, text, sizeof text);
    return cJSON_CreateRaw(text);
}

/* Replaces every number below node by the same number printed to round-trip. */
static void exact_numbers(cJSON *node) {
    for (cJSON *c = node->child; c;) {
        cJSON *next = c->next;
        if (cJSON_IsNumber(c)) {
            cJSON *raw = number_node(c->valuedouble);
            if (c->string) { /* an object's member keeps its key */
                raw->string = xstrdup(c->string);
                raw->type &= ~cJSON_StringIsConst;
            }
            cJSON_ReplaceItemViaPointer(node, c, raw);
        } else {
            exact_numbers(c);
        }
        c = next;
    }
}

static int jsonl_write(MetricsLog *m, const cJSON *record) {
    if (!m->jsonl) return elmo_fail("%s: write failed earlier", m->jsonl_path);
    char *text = cJSON_PrintUnformatted(record);
    CHECK(text != NULL, "%s: cJSON could not print a record", m->jsonl_path);
    errno = 0;
    int ok = fputs(text, m->jsonl) >= 0 && fputc('\n', m->jsonl) != EOF && fflush(m->jsonl) == 0 && !ferror(m->jsonl);
    int e = errno;
    free(text);
    if (!ok) {
        fclose(m->jsonl); /* a half-written line stays; the next reader skips it */
        m->jsonl = NULL;
        return elmo_fail("%s: write failed: %s", m->jsonl_path, strerror(e ? e : EIO));
    }
    return 0;
}

int metrics_open(MetricsLog **out, const char *dir, long first_step) {
    *out = NULL;
    MetricsLog *m = xcalloc(1, sizeof *m);
    m->dir = xstrdup(dir);
    m->jsonl_path = join(dir, "metrics.jsonl");
    m->curves_path = join(dir, "curves.svg");
    int ends_in_newline;
    if (read_back(m, first_step, &ends_in_newline) < 0) goto fail;
    m->jsonl = fopen(m->jsonl_path, "ab");
    if (!m->jsonl) {
        elmo_fail("%s: cannot open for appending: %s", m->jsonl_path, strerror(errno));
        goto fail;
    }
    if (!ends_in_newline && (fputc('\n', m->jsonl) == EOF || fflush(m->jsonl) != 0)) {
        elmo_fail("%s: write failed: %s", m->jsonl_path, strerror(errno));
        goto fail;
    }
    double now = wall_clock();
    if (tfevents_open(&m->events, dir, now) < 0) goto fail;
    if (first_step > 0 && (tfevents_session_start(m->events, now, first_step + 1) < 0 || tfevents_flush(m->events) < 0))
        goto fail;
    *out = m;
    return 0;
fail:
    metrics_close(m);
    return -1;
}

int metrics_record(MetricsLog *m, const char *kind, long step, const MetricValue *values, int n,
                   const char *const *flags) {
    cJSON *record = cJSON_CreateObject();
    cJSON_AddStringToObject(record, "kind", kind);
    cJSON_AddItemToObject(record, "step", number_node((double)step));
    for (int i = 0; i < n; i++) cJSON_AddItemToObject(record, values[i].key, number_node(values[i].value));
    cJSON *list = cJSON_AddArrayToObject(record, "flags");
    for (int i = 0; flags && flags[i]; i++) cJSON_AddItemToArray(list, cJSON_CreateString(flags[i]));
    int rc = jsonl_write(m, record);
    cJSON_Delete(record);
    if (rc < 0) return -1;

    double now = wall_clock();
    int tagged = 0;
    for (int i = 0; i < n; i++) {
        if (!values[i].tag) continue;
        if (tfevents_scalar(m->events, now, step, values[i].tag, (float)values[i].value) < 0) return -1;
        tagged++;
    }
    if (tagged && tfevents_flush(m->events) < 0) return -1;

    Curve *c = curve_of(m, kind);
    if (!c) return 0;
    double x = NAN, y = NAN;
    for (int i = 0; i < n; i++) {
        if (strcmp(values[i].key, METRICS_TOKENS) == 0) x = values[i].value;
        if (strcmp(values[i].key, perplexity_key(m, c)) == 0) y = values[i].value;
    }
    curve_record(c, step, isfinite(x) && isfinite(y), x, y);
    return c == &m->heldout ? metrics_write_curves(m) : 0;
}

int metrics_record_json(MetricsLog *m, const cJSON *object) {
    CHECK(cJSON_IsObject(object), "%s: a record must be a JSON object", m->jsonl_path);
    cJSON *copy = cJSON_Duplicate(object, 1);
    CHECK(copy != NULL, "%s: cJSON could not copy a record", m->jsonl_path);
    exact_numbers(copy);
    int rc = jsonl_write(m, copy);
    cJSON_Delete(copy);
    return rc;
}

/* "training perplexity (sampled), last 123.4". */
static void legend(char *out, size_t size, const char *what, const Curve *c) {
    if (c->n == 0) snprintf(out, size, "%s (no points yet)", what);
    else snprintf(out, size, "%s, last %.4g", what, c->y[c->n - 1]);
}

int metrics_write_curves(MetricsLog *m) {
    char train_label[128], heldout_label[128];
    legend(train_label, sizeof train_label, "training perplexity (sampled)", &m->train);
    legend(heldout_label, sizeof heldout_label, "held-out perplexity", &m->heldout);
    SvgSeries series[2] = {
        {.x = m->train.x, .y = m->train.y, .n = m->train.n, .label = train_label, .color = "#1f77b4"},
        {.x = m->heldout.x, .y = m->heldout.y, .n = m->heldout.n, .label = heldout_label, .color = "#d62728",
         .markers = 1},
    };
    size_t tn = strlen(m->dir) + 32;
    char *title = xmalloc(tn);
    snprintf(title, tn, "Perplexity: %s", m->dir);
    SvgPlot plot = {.title = title, .x_title = "tokens seen", .y_title = "perplexity (log scale)",
                    .series = series, .n_series = 2};
    int rc = svgplot_write(m->curves_path, &plot);
    free(title);
    return rc;
}

void metrics_close(MetricsLog *m) {
    if (!m) return;
    if (m->jsonl) fclose(m->jsonl);
    if (m->events && tfevents_close(m->events) < 0) elmo_note("%s", elmo_error());
    curve_free(&m->train);
    curve_free(&m->heldout);
    free(m->dir);
    free(m->jsonl_path);
    free(m->curves_path);
    free(m);
}
