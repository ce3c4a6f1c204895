/* svgplot.c - see svgplot.h. */
#include "svgplot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fileio.h"
#include "text.h"

/* ------------------------------------------------------------------ text output */

typedef struct {
    char *p;
    size_t n, cap;
} Text;

static void text_reserve(Text *t, size_t more) {
    if (t->n + more + 1 <= t->cap) return;
    t->cap = (t->n + more + 1) * 2;
    t->p = xrealloc(t->p, t->cap);
}

static void text_put(Text *t, const char *s, size_t n) {
    text_reserve(t, n);
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = '\0';
}

/* A string constant, its length counted by the compiler. */
#define TEXT_LITERAL(t, s) text_put((t), "" s, sizeof(s) - 1)

static void __attribute__((format(printf, 2, 3))) text_printf(Text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    CHECK(k >= 0, "vsnprintf failed on \"%s\"", fmt);
    text_reserve(t, (size_t)k);
    va_start(ap, fmt);
    vsnprintf(t->p + t->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    t->n += (size_t)k;
}

/* Character data or an attribute value: the five XML specials become entities; bytes that
 * are not valid UTF-8, control characters (XML 1.0 forbids them) and U+FFFE/U+FFFF become
 * '?', so any string gives well-formed XML. */
static void text_escaped(Text *t, const char *s) {
    size_t len = s ? strlen(s) : 0;
    size_t i = 0;
    while (i < len) {
        long bad = utf8_invalid_offset(s + i, len - i);
        size_t good = bad < 0 ? len - i : (size_t)bad;
        for (size_t j = i; j < i + good; j++) {
            unsigned char c = (unsigned char)s[j];
            switch (c) {
            case '&': text_put(t, "&amp;", 5); break;
            case '<': text_put(t, "&lt;", 4); break;
            case '>': text_put(t, "&gt;", 4); break;
            case '"': text_put(t, "&quot;", 6); break;
            case '\'': text_put(t, "&apos;", 6); break;
            default:
                if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
                    text_put(t, "?", 1);
                } else if (c == 0xEF && j + 2 < i + good && (unsigned char)s[j + 1] == 0xBF &&
                           ((unsigned char)s[j + 2] & 0xFE) == 0xBE) {
                    text_put(t, "?", 1); /* U+FFFE, U+FFFF: not XML characters */
                    j += 2;
                } else {
                    text_put(t, (const char *)&s[j], 1);
                }
            }
        }
        i += good;
        if (bad >= 0) {
            text_put(t, "?", 1);
            i++;
        }
    }
}

/* ------------------------------------------------------------------------ axes */

void svgplot_format_number(double v, char *out, size_t size) {
    double a = fabs(v);
    if (a >= 1e9) snprintf(out, size, "%.4gB", v / 1e9);
    else if (a >= 1e6) snprintf(out, size, "%.4gM", v / 1e6);
    else if (a >= 1e3) snprintf(out, size, "%.4gk", v / 1e3);
    else snprintf(out, size, "%.4g", v == 0 ? 0.0 : v); /* no "-0" */
}

/* 1, 2 or 5 times a power of ten, the smallest >= raw (raw > 0, finite). */
static double nice_step(double raw) {
    double m = pow(10.0, floor(log10(raw)));
    double f = raw / m;
    return (f <= 1.0 + 1e-9 ? 1.0 : f <= 2.0 + 1e-9 ? 2.0 : f <= 5.0 + 1e-9 ? 5.0 : 10.0) * m;
}

/* The 1-2-5 sequence: value(3k) = 10^k, value(3k+1) = 2·10^k, value(3k+2) = 5·10^k. */
static double seq125(int i) {
    static const double mant[3] = {1.0, 2.0, 5.0};
    int k = i >= 0 ? i / 3 : -((-i + 2) / 3);
    return mant[i - 3 * k] * pow(10.0, k);
}

/* The largest index whose value is <= v (v > 0, finite), with a little tolerance. */
static int seq125_floor(double v) {
    CHECK(v >= 1e-300 && v <= 1e300, "log axis at %g", v); /* drawable() keeps others out */
    int i = 3 * (int)floor(log10(v)) + 3;
    while (seq125(i) > v * (1.0 + 1e-9)) i--;
    return i;
}

typedef struct {
    double lo, hi;       /* data range shown */
    double ticks[64];
    int n_ticks;
} Axis;

static void linear_axis(Axis *a, double lo, double hi) {
    if (!(hi > lo)) hi = lo + (lo != 0 ? fabs(lo) : 1.0); /* one point, or no spread */
    double step = nice_step((hi - lo) / 6.0);
    a->lo = floor(lo / step) * step;
    a->hi = ceil(hi / step) * step;
    if (!(a->hi > a->lo)) a->hi = a->lo + step;
    a->n_ticks = 0;
    for (int i = 0; a->n_ticks < 64; i++) {
        double v = a->lo + i * step;
        if (v > a->hi + step * 1e-9) break;
        a->ticks[a->n_ticks++] = fabs(v) < step * 1e-9 ? 0.0 : v;
    }
}

static void log_axis(Axis *a, double lo, double hi) {
    int i_lo = seq125_floor(lo), i_hi = seq125_floor(hi);
    if (seq125(i_hi) < hi * (1.0 - 1e-9)) i_hi++;
    if (i_hi <= i_lo) i_hi = i_lo + 1;
    a->lo = seq125(i_lo);
    a->hi = seq125(i_hi);
    a->n_ticks = 0;
    int every = 1;
    if (i_hi - i_lo + 1 > 10) { /* decades only, at most about ten of them */
        int decades = (i_hi - i_lo) / 3 + 1;
        every = 3 * ((decades + 9) / 10);
    }
    for (int i = i_lo; i <= i_hi && a->n_ticks < 64; i++) {
        if (every > 1 && (((i % every) + every) % every) != 0) continue;
        a->ticks[a->n_ticks++] = seq125(i);
    }
}

/* Finite x, positive finite y, within bounds that keep every logarithm and pixel finite. */
static int drawable(double x, double y) { return fabs(x) <= 1e300 && y >= 1e-300 && y <= 1e300; }

/* ---------------------------------------------------------------------- render */

typedef struct {
    double left, top, w, h; /* plot area in pixels */
    Axis x, y;
} Frame;

static double px_x(const Frame *f, double x) { return f->left + (x - f->x.lo) / (f->x.hi - f->x.lo) * f->w; }
static double px_y(const Frame *f, double y) {
    return f->top + (log(f->y.hi) - log(y)) / (log(f->y.hi) - log(f->y.lo)) * f->h;
}

/* The pixel positions of the drawable points of s; with more points than twice the pixel
 * columns, each column's lowest and highest point, in the order of the series. Returns the
 * count (at most s->n). */
static int series_pixels(const Frame *f, const SvgSeries *s, double *px, double *py) {
    int m = 0;
    if (s->n <= 2 * (int)f->w) {
        for (int i = 0; i < s->n; i++)
            if (drawable(s->x[i], s->y[i])) px[m] = px_x(f, s->x[i]), py[m] = px_y(f, s->y[i]), m++;
        return m;
    }
    long col = -1;
    int lo_at = -1, hi_at = -1; /* the column being gathered and its extreme points */
    for (int i = 0; i <= s->n; i++) {
        if (i < s->n && !drawable(s->x[i], s->y[i])) continue;
        long c = i < s->n ? (long)floor(px_x(f, s->x[i])) : -2;
        if (i < s->n && c == col) {
            if (s->y[i] < s->y[lo_at]) lo_at = i;
            if (s->y[i] > s->y[hi_at]) hi_at = i;
            continue;
        }
        if (lo_at >= 0) { /* the column ends: its extremes, in series order */
            int a = lo_at < hi_at ? lo_at : hi_at, b = lo_at < hi_at ? hi_at : lo_at;
            px[m] = px_x(f, s->x[a]), py[m] = px_y(f, s->y[a]), m++;
            if (b != a) px[m] = px_x(f, s->x[b]), py[m] = px_y(f, s->y[b]), m++;
        }
        col = c;
        lo_at = hi_at = i;
    }
    return m;
}

char *svgplot_render(const SvgPlot *p, size_t *len) {
    const int W = p->width > 0 ? p->width : 800, H = p->height > 0 ? p->height : 500;
    Frame f = {.left = 80, .top = 50, .w = W - 80 - 24, .h = H - 50 - 64};
    if (f.w < 10) f.w = 10;
    if (f.h < 10) f.h = 10;

    /* ranges over every drawable point; x from 0 when no x is negative (tokens seen) */
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    int points = 0;
    for (int k = 0; k < p->n_series; k++)
        for (int i = 0; i < p->series[k].n; i++) {
            double x = p->series[k].x[i], y = p->series[k].y[i];
            if (!drawable(x, y)) continue;
            points++;
            xmin = fmin(xmin, x), xmax = fmax(xmax, x);
            ymin = fmin(ymin, y), ymax = fmax(ymax, y);
        }
    if (points == 0) xmin = 0, xmax = 1, ymin = 1, ymax = 10;
    if (xmin > 0) xmin = 0;
    linear_axis(&f.x, xmin, xmax);
    log_axis(&f.y, ymin, ymax);

    Text t = {0};
    text_printf(&t, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
    text_printf(&t,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\""
                " viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
                W, H, W, H);
    TEXT_LITERAL(&t, "<title>");
    text_escaped(&t, p->title);
    TEXT_LITERAL(&t, "</title>\n");
    text_printf(&t, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    text_printf(&t, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", W / 2.0);
    text_escaped(&t, p->title);
    TEXT_LITERAL(&t, "</text>\n");

    /* grid, ticks and their labels */
    char label[64];
    TEXT_LITERAL(&t, "<g stroke=\"#dddddd\" stroke-width=\"1\">\n");
    for (int i = 0; i < f.x.n_ticks; i++) {
        double x = px_x(&f, f.x.ticks[i]);
        text_printf(&t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x, f.top, x, f.top + f.h);
    }
    for (int i = 0; i < f.y.n_ticks; i++) {
        double y = px_y(&f, f.y.ticks[i]);
        text_printf(&t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f.left, y, f.left + f.w, y);
    }
    TEXT_LITERAL(&t, "</g>\n");
    text_printf(&t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n",
                f.left, f.top, f.w, f.h);
    text_printf(&t, "<g text-anchor=\"middle\">\n");
    for (int i = 0; i < f.x.n_ticks; i++) {
        svgplot_format_number(f.x.ticks[i], label, sizeof label);
        double x = px_x(&f, f.x.ticks[i]);
        text_printf(&t, "<text x=\"%.1f\" y=\"%.1f\">", x, f.top + f.h + 18);
        text_escaped(&t, label);
        TEXT_LITERAL(&t, "</text>\n");
    }
    TEXT_LITERAL(&t, "</g>\n<g text-anchor=\"end\">\n");
    for (int i = 0; i < f.y.n_ticks; i++) {
        svgplot_format_number(f.y.ticks[i], label, sizeof label);
        text_printf(&t, "<text x=\"%.1f\" y=\"%.1f\">", f.left - 6, px_y(&f, f.y.ticks[i]) + 4);
        text_escaped(&t, label);
        TEXT_LITERAL(&t, "</text>\n");
    }
    TEXT_LITERAL(&t, "</g>\n");

    /* axis titles */
    text_printf(&t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", f.left + f.w / 2, f.top + f.h + 44);
    text_escaped(&t, p->x_title);
    TEXT_LITERAL(&t, "</text>\n");
    double yc = f.top + f.h / 2;
    text_printf(&t, "<text x=\"20\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 20 %.1f)\">", yc, yc);
    text_escaped(&t, p->y_title);
    TEXT_LITERAL(&t, "</text>\n");
    if (points == 0)
        text_printf(&t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#888888\">no points yet</text>\n",
                    f.left + f.w / 2, yc);

    /* the series */
    for (int k = 0; k < p->n_series; k++) {
        const SvgSeries *s = &p->series[k];
        double *px = xmalloc(sizeof(double) * (size_t)(s->n + 1));
        double *py = xmalloc(sizeof(double) * (size_t)(s->n + 1));
        int m = series_pixels(&f, s, px, py);
        TEXT_LITERAL(&t, "<polyline fill=\"none\" stroke-width=\"1.5\" stroke=\"");
        text_escaped(&t, s->color);
        TEXT_LITERAL(&t, "\" points=\"");
        for (int i = 0; i < m; i++) text_printf(&t, "%s%.1f,%.1f", i ? " " : "", px[i], py[i]);
        TEXT_LITERAL(&t, "\"/>\n");
        if (s->markers && m > 0) {
            TEXT_LITERAL(&t, "<g fill=\"");
            text_escaped(&t, s->color);
            TEXT_LITERAL(&t, "\">\n");
            for (int i = 0; i < m; i++) text_printf(&t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\"/>\n", px[i], py[i]);
            TEXT_LITERAL(&t, "</g>\n");
        } else if (m == 1) { /* a lone point of a line: a dot, so it shows */
            TEXT_LITERAL(&t, "<circle r=\"2\" fill=\"");
            text_escaped(&t, s->color);
            text_printf(&t, "\" cx=\"%.1f\" cy=\"%.1f\"/>\n", px[0], py[0]);
        }
        free(px);
        free(py);
    }

    /* legend, top right inside the plot */
    if (p->n_series > 0) {
        size_t longest = 0; /* about 6.5 pixels a character at font size 12 */
        for (int k = 0; k < p->n_series; k++)
            if (p->series[k].label && strlen(p->series[k].label) > longest) longest = strlen(p->series[k].label);
        double lw = fmin(52 + 6.5 * (double)longest, f.w - 16), lx = f.left + f.w - lw - 8, ly = f.top + 8;
        text_printf(&t,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"white\""
                    " fill-opacity=\"0.85\" stroke=\"#999999\"/>\n",
                    lx, ly, lw, 8 + 18 * p->n_series);
        for (int k = 0; k < p->n_series; k++) {
            const SvgSeries *s = &p->series[k];
            double y = ly + 16 + 18 * k;
            text_printf(&t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke-width=\"2\" stroke=\"", lx + 8,
                        y - 4, lx + 36, y - 4);
            text_escaped(&t, s->color);
            TEXT_LITERAL(&t, "\"/>\n");
            if (s->markers) {
                text_printf(&t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"", lx + 22, y - 4);
                text_escaped(&t, s->color);
                TEXT_LITERAL(&t, "\"/>\n");
            }
            text_printf(&t, "<text x=\"%.1f\" y=\"%.1f\">", lx + 44, y);
            text_escaped(&t, s->label);
            TEXT_LITERAL(&t, "</text>\n");
        }
    }
    TEXT_LITERAL(&t, "</svg>\n");
    if (len) *len = t.n;
    return t.p;
}

int svgplot_write(const char *path, const SvgPlot *plot) {
    size_t len;
    char *doc = svgplot_render(plot, &len);
    int rc = file_write_atomic(path, doc, len);
    free(doc);
    return rc;
}
