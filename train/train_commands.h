/* train_commands.h - the subcommands of the training layer (each main-like: argc/argv
 * after the subcommand name, returns the exit code). */
#ifndef ELMO_TRAIN_COMMANDS_H
#define ELMO_TRAIN_COMMANDS_H

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);

#endif
