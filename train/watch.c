/* watch.c - see watch.h. */
#include "watch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int watch_is_outlier(Watch *w, double v) {
    int outlier = 0;
    if (w->n >= WATCH_MIN_POINTS) {
        double sorted[WATCH_POINTS];
        memcpy(sorted, w->values, (size_t)w->n * sizeof *sorted);
        qsort(sorted, (size_t)w->n, sizeof *sorted, compare_doubles);
        const double median = w->n % 2 ? sorted[w->n / 2] : 0.5 * (sorted[w->n / 2 - 1] + sorted[w->n / 2]);
        outlier = !(v <= 2.0 * median); /* a NaN is an outlier too */
    }
    if (isfinite(v)) {
        w->values[w->next] = v;
        w->next = (w->next + 1) % WATCH_POINTS;
        if (w->n < WATCH_POINTS) w->n++;
    }
    return outlier;
}
