/* svgplot.h - a line chart with a logarithmic y axis as a self-contained SVG 1.1 document,
 * made with the C standard library alone (the training curves of metrics.c).
 *
 * The x axis is linear with "nice" ticks (1, 2 or 5 times a power of ten apart) labelled
 * with k/M/B suffixes; the y axis is logarithmic, from a 1-2-5 value below the data to one
 * above it, with ticks at every 1-2-5 value (decades only when there would be more than
 * ten). Points that cannot be drawn (x not finite, y not finite or <= 0) are left out, so
 * no coordinate is ever NaN or infinite; an empty chart gets default ranges. A series of
 * more points than the plot has pixel columns keeps, per column, its lowest and highest
 * point (the envelope), so the file stays small on a long run.
 */
#ifndef ELMO_SVGPLOT_H
#define ELMO_SVGPLOT_H

#include <stddef.h>

typedef struct {
    const double *x, *y; /* n points, drawn in this order */
    int n;
    const char *label;   /* legend text (UTF-8; escaped here) */
    const char *color;   /* an SVG colour such as "#1f77b4" (escaped here) */
    int markers;         /* 1: a circle on every point */
} SvgSeries;

typedef struct {
    const char *title, *x_title, *y_title; /* UTF-8, escaped here */
    int width, height;                     /* pixels; 0: 800 x 500 */
    const SvgSeries *series;
    int n_series;
} SvgPlot;

/* The document, NUL-terminated (free it); *len its length in bytes. */
char *svgplot_render(const SvgPlot *plot, size_t *len);
/* Renders and writes it to path atomically (file_write_atomic). */
int svgplot_write(const char *path, const SvgPlot *plot);

/* An axis label: 950 -> "950", 1500 -> "1.5k", 2e6 -> "2M", 3e9 -> "3B" (%.4g before the
 * suffix). */
void svgplot_format_number(double v, char *out, size_t size);

#endif
