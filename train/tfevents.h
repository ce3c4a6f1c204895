/* tfevents.h - TensorBoard event files, written without TensorFlow.
 *
 * An event file is a TFRecord file of serialized tensorflow.Event protocol buffers
 * (tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto):
 *
 *   record   = uint64 length (little endian) | uint32 masked_crc32c(those 8 bytes)
 *              | data[length] | uint32 masked_crc32c(data)
 *   masked   = ((crc >> 15) | (crc << 17)) + 0xa282ead8
 *   Event    { double wall_time = 1; int64 step = 2;
 *              oneof { string file_version = 3; Summary summary = 5;
 *                      SessionLog session_log = 7; ... } }
 *   Summary  { repeated Value value = 1; }
 *   Value    { string tag = 1; float simple_value = 2; ... }
 *   SessionLog { SessionStatus status = 1; ... }       START = 1
 *
 * The first record of every file is an Event with file_version "brain.Event:2". The
 * protocol buffers are encoded by hand: varints (wire type 0), fixed64 (1), length-delimited
 * (2) and fixed32 (5). TensorBoard (`tensorboard --logdir DIR`) reads every file named
 * "*tfevents*" in DIR, in name order, as one stream.
 */
#ifndef ELMO_TFEVENTS_H
#define ELMO_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "crc32c.h"

#define TFEVENTS_FILE_VERSION "brain.Event:2"

typedef struct TfEventWriter TfEventWriter;

/* Creates a new event file dir/events.out.tfevents.<unix time, 10 digits>.<hostname> (with
 * ".1", ".2", ... appended if that name is taken, e.g. a restart within the same second)
 * and writes the file_version Event, flushed. */
int tfevents_open(TfEventWriter **w, const char *dir, double wall_time);
/* The path of the file. */
const char *tfevents_path(const TfEventWriter *w);
/* One Event {wall_time, step, summary {value {tag, simple_value}}}; buffered until
 * tfevents_flush. */
int tfevents_scalar(TfEventWriter *w, double wall_time, long step, const char *tag, float value);
/* One Event {wall_time, step, session_log {status: START}}: TensorBoard then forgets the
 * points at steps >= step that earlier files hold (a resumed run repeats them). */
int tfevents_session_start(TfEventWriter *w, double wall_time, long step);
/* Writes out what is buffered (fflush); fails naming the file on a write error. */
int tfevents_flush(TfEventWriter *w);
/* Flushes and closes; fails naming the file if that fails. w may be NULL. */
int tfevents_close(TfEventWriter *w);

#endif
