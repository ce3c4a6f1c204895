/* paths.h - no output of a command may be one of its inputs.
 *
 * Files are compared by identity (st_dev and st_ino of stat), not by name, so a second
 * name for the same file (a hard link, a symbolic link, "dir/../file") is caught too. An
 * output that does not exist yet cannot be an input. Inputs are given as pairs
 * {flag, path}: the flag names the input in the message ("--weights"); a NULL path or
 * "-" (standard input) is skipped.
 */
#ifndef ELMO_PATHS_H
#define ELMO_PATHS_H

/* 1 when a and b both exist and are the same file, else 0. */
int paths_same_file(const char *a, const char *b);

/* Fails with "<command>: --output <output> is also an input (<flag> <path>)" when output is
 * one of the n inputs (inputs[2k] the flag, inputs[2k + 1] the path). */
int paths_refuse_overwrite(const char *output, const char *const *inputs, int n, const char *command);
/* The same with the output named by another flag (e.g. "--output-dir DIR: DIR/vocab.txt"). */
int paths_refuse_overwrite_as(const char *output_flag, const char *output, const char *const *inputs, int n,
                              const char *command);
/* The same check for every file matching the glob pattern (the inputs of input_flag). */
int paths_refuse_glob_overwrite(const char *output_flag, const char *output, const char *pattern,
                                const char *input_flag, const char *command);
/* Fails when a file matching pattern lies directly in directory dir (whose files the
 * command replaces): "<command>: --input <file> lies in <dir>, which --output-dir replaces". */
int paths_refuse_glob_inside(const char *pattern, const char *input_flag, const char *dir, const char *command);

#endif
