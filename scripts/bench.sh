#!/bin/sh
# `make bench`: prediction speed of `elmo embed` for the model sizes in configs/, on
# random weights, printed as a table. Leave OPENBLAS_CORETYPE as the environment sets it.
set -eu
cd "$(dirname "$0")/.."
ELMO=${ELMO:-bin/elmo}
THREADS=${THREADS:-$(nproc)}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

printf '%-10s %-8s %-8s %14s %12s %10s\n' config mode threads sentences/s tokens/s GFLOP/s
for config in tiny small original; do
    steps=5
    [ "$config" = original ] && steps=3
    "$ELMO" bench --options "configs/$config.json" --mode predict --threads "$THREADS" --steps "$steps" >"$out"
    sps=$(sed -n 's/^sentences_per_second: //p' "$out")
    tps=$(sed -n 's/^tokens_per_second: //p' "$out")
    gfs=$(sed -n 's/^GFLOP\/s: \([0-9.]*\).*/\1/p' "$out")
    printf '%-10s %-8s %-8s %14s %12s %10s\n' "$config" predict "$THREADS" "$sps" "$tps" "$gfs"
done
