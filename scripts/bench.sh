#!/bin/sh
# `make bench`: training and prediction speed for the model sizes in configs/ on random
# weights and data (batch 128, unroll 20, vocabulary 50,000, 8,192 samples: the settings
# of the options files), as a table. Leave OPENBLAS_CORETYPE as the environment sets it.
# THREADS=1 make bench measures one thread; MODES="predict" or CONFIGS="tiny" narrow it.
set -eu
cd "$(dirname "$0")/.."
ELMO=${ELMO:-bin/elmo}
THREADS=${THREADS:-$(nproc)}
MODES=${MODES:-train predict}
CONFIGS=${CONFIGS:-tiny small original}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

printf '%-10s %-8s %-8s %12s %10s %9s %10s %10s %10s\n' config mode threads tokens/s GFLOP/s roofline \
    "need MiB" "used MiB" "peak MiB"
for config in $CONFIGS; do
    for mode in $MODES; do
        steps=5
        [ "$config" = original ] && steps=3
        "$ELMO" bench --options "configs/$config.json" --mode "$mode" --threads "$THREADS" --steps "$steps" >"$out"
        tps=$(sed -n 's/^tokens_per_second: //p' "$out")
        gfs=$(sed -n 's/^GFLOP\/s: \([0-9.]*\),.*/\1/p' "$out")
        roof=$(sed -n 's/^GFLOP\/s: [0-9.]*, \([0-9]*%\) of the roofline.*/\1/p' "$out")
        need=$(sed -n 's/^memory: analytic need \([0-9.]*\) MiB.*/\1/p' "$out")
        peak=$(sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' "$out")
        used=$(sed -n 's/.* baseline (program, libraries, BLAS buffers) + \([0-9.]*\) MiB.*/\1/p' "$out")
        printf '%-10s %-8s %-8s %12s %10s %9s %10s %10s %10s\n' "$config" "$mode" "$THREADS" "$tps" "$gfs" \
            "$roof" "${need:--}" "${used:--}" "${peak:--}"
    done
done
