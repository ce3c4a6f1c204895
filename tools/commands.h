/* commands.h - every subcommand of bin/elmo (each main-like: argc/argv after the
 * subcommand name, returns the exit code). */
#ifndef ELMO_COMMANDS_H
#define ELMO_COMMANDS_H

#include "train_commands.h"

int cmd_embed(int argc, char **argv);
int cmd_embed_vocab(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_dump_weights(int argc, char **argv);
int cmd_vocab(int argc, char **argv);
int cmd_shard(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_import_tf(int argc, char **argv);

#endif
