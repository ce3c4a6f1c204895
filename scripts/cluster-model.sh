#!/bin/sh
# The README's "on a cluster, on paper" figures for `original`: tokens/s of a job of N nodes
# from a node's compute rate and the bytes a step exchanges (docs/design.md section 9).
# usage: scripts/cluster-model.sh [RATE [EFFICIENCY [DENSE_MIB]]]
#   RATE        `elmo bench --options configs/original.json --threads 2` tokens/s here (424)
#   EFFICIENCY  assumed efficiency of 32 cores against 16 x 2 (0.75)
#   DENSE_MIB   dense gradient per step, from `elmo bench --ranks` (357.1)
set -eu
awk -v r2="${1:-424}" -v eff="${2:-0.75}" -v dense_mib="${3:-357.1}" '
# expected distinct rows of `draws` log-uniform draws from V words
function distinct(draws,   k, s) { s = 0; for (k = 0; k < V; k++) s += 1 - exp(draws * lq[k]); return s }
BEGIN {
    V = 793471; S = 8192; tokens = 2560; row = 513 * 4; alpha = 5e-6; buckets = 6; ids = 21500
    L = log(V + 1)
    for (k = 0; k < V; k++) lq[k] = log(1 - log((k + 2) / (k + 1)) / L)
    # a unique sampler draws until S distinct: the draws per set
    lo = S; hi = 100 * S
    while (hi - lo > 1) { mid = int((lo + hi) / 2); if (distinct(mid) < S) lo = mid; else hi = mid }
    R = hi
    C = tokens / (r2 * 16 * eff); dense = dense_mib * 1048576
    printf "compute per step %.3f s (%.0f tokens/s a node); %d draws per candidate set\n", C, tokens / C, R
    for (g = 25; g <= 100; g *= 4) {
        beta = g * 1e9 / 8
        for (N = 2; N <= 256; N *= 2) {
            U = distinct(R * 2 * N)  # two directions, one candidate set each, per rank
            bytes = dense + U * row
            comm = 2 * (N - 1) / N * bytes / beta + 2 * (N - 1) * alpha * buckets + (N - 1) * ids * 4 / beta
            exposed = comm - 0.5 * C; last = 2 * 72e6 / beta; if (exposed < last) exposed = last
            printf "%3d Gb/s N=%3d union %6.0f rows, %5.0f MB, comm %.3f s (%2.0f%% of a step): %8.0f tokens/s; overlapped %8.0f (%2.0f%%)\n",
                g, N, U, bytes / 1e6, comm, 100 * comm / (C + comm), N * tokens / (C + comm),
                N * tokens / (C + exposed), 100 * exposed / (C + exposed)
        }
    }
}'
