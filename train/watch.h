/* watch.h - a running median of the last WATCH_POINTS values of a series (the training
 * loss at each log point, the held-out perplexity at each evaluation), to flag a value
 * more than twice the median: a run going wrong says so on the line it happens. */
#ifndef ELMO_WATCH_H
#define ELMO_WATCH_H

#define WATCH_POINTS 20
/* fewer points than this flag nothing: a median of two is no baseline */
#define WATCH_MIN_POINTS 5

typedef struct {
    double values[WATCH_POINTS];
    int n, next;
} Watch;

/* Whether v is more than twice the median of the values seen before it; then adds v. */
int watch_is_outlier(Watch *w, double v);

#endif
