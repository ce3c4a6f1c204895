/* metrics.h - the metrics of a training run, where users look for them. In the save
 * directory DIR of a run:
 *
 *   DIR/metrics.jsonl                       one JSON object per line, appended and flushed
 *                                           after each record, across every run of DIR:
 *                                           {"kind": "train", "step": 100, "tokens": 256000,
 *                                            "train_sampled_perplexity": 812.5, ..., "flags": []}
 *                                           numbers round-trip exactly; NaN and infinities
 *                                           are null (JSON has neither)
 *   DIR/events.out.tfevents.<time>.<host>   TensorBoard scalars (tfevents.h), a new file per
 *                                           run of DIR: `tensorboard --logdir DIR`
 *   DIR/curves.svg                          training (sampled) and held-out perplexity against
 *                                           tokens seen (svgplot.h), rewritten atomically after
 *                                           each held-out record
 *
 * A resumed run repeats the steps after its checkpoint. The curves therefore keep, of the
 * points read back from metrics.jsonl, only those at steps <= first_step, and a point whose
 * step is not above the last one of its curve replaces the points from that step on (so
 * a file written by several interrupted runs still gives one clean curve, as TensorBoard
 * purges out-of-order steps). The new event file of a resumed run (first_step > 0) starts
 * with a SessionLog START at step first_step + 1, which tells TensorBoard to forget what
 * earlier files hold from there on. metrics.jsonl itself is never rewritten.
 */
#ifndef ELMO_METRICS_H
#define ELMO_METRICS_H

#include <cjson/cJSON.h>

typedef struct MetricsLog MetricsLog;

/* One scalar of a record: its key in metrics.jsonl, and its TensorBoard tag (NULL: the
 * jsonl only). */
typedef struct {
    const char *key;
    const char *tag;
    double value;
} MetricValue;

/* The keys that feed the curves. */
#define METRICS_TOKENS "tokens"
#define METRICS_TRAIN_PERPLEXITY "train_sampled_perplexity"
#define METRICS_HELDOUT_PERPLEXITY "heldout_perplexity"

/* Opens the metrics of a run in save directory dir (which must exist): appends to
 * dir/metrics.jsonl (created if absent; the points already there are read back so that the
 * curves span every run of the directory, and points with step > first_step are dropped
 * from the in-memory curves because a resumed run repeats them), and starts a NEW
 * TensorBoard event file dir/events.out.tfevents.<unix time>.<hostname> (a restarted run
 * continues the step axis in a new file, as TensorFlow does). Lines of metrics.jsonl that
 * are not JSON objects (a line cut short by a kill) are skipped with a note naming
 * file:line. */
int metrics_open(MetricsLog **m, const char *dir, long first_step);
/* One record: {"kind": kind, "step": step, <key>: <value>..., "flags": [...]} as one line of
 * metrics.jsonl (flushed), and one TensorBoard Event per value that has a tag (wall_time =
 * now, step = step, summary { value { tag, simple_value } }), flushed. flags (NULL-terminated
 * list, may be NULL: "flags": []) are strings such as "outlier_loss". Non-finite values are
 * written as JSON null in the jsonl and as their float in the events. kind "train" records
 * feed the training curve (keys "tokens" and "train_sampled_perplexity"), kind "heldout"
 * records the held-out curve (keys "tokens" and "heldout_perplexity"); after each
 * "heldout" record dir/curves.svg is regenerated (atomically). */
int metrics_record(MetricsLog *m, const char *kind, long step, const MetricValue *values, int n,
                   const char *const *flags);
/* A record of free-form fields (e.g. the run's plan), as one jsonl line; not in the events.
 * The object is not taken. */
int metrics_record_json(MetricsLog *m, const cJSON *object);
/* Writes dir/curves.svg now (also done after each heldout record). */
int metrics_write_curves(MetricsLog *m);
/* Closes the files (m may be NULL). */
void metrics_close(MetricsLog *m);

/* The paths of the files (for messages and tests). */
const char *metrics_jsonl_path(const MetricsLog *m);
const char *metrics_events_path(const MetricsLog *m);
const char *metrics_curves_path(const MetricsLog *m);
/* The points of a curve now (kind "train" or "heldout"): *n of them, x tokens, y perplexity,
 * step the step of each; the arrays stay valid until the next call on m. */
void metrics_curve(const MetricsLog *m, const char *kind, int *n, const double **tokens,
                   const double **perplexity, const long **step);

#endif
