/* cmd_bench.c - `elmo bench`: prediction speed on random weights and random sentences. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "chars.h"
#include "cli.h"
#include "common.h"
#include "predictor.h"
#include "rng.h"

int cmd_bench(int argc, char **argv) { (void)argc; (void)argv; return 0; }
