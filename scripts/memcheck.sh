#!/bin/sh
# `make memcheck`: valgrind memcheck of short runs of every command that reads or writes
# files — train, a restart, eval, embed, embed-vocab, vocab, shard, dump-weights, score —
# on a build without -march=native (valgrind cannot decode AVX-512). Each run must report
# 0 errors and 0 bytes definitely lost; one summary line, exit 1 on any miss.
# usage: scripts/memcheck.sh ELMO_BINARY
set -u
cd "$(dirname "$0")/.."
ELMO=${1:?usage: memcheck.sh ELMO_BINARY}
work=$(mktemp -d "${TMPDIR:-/tmp}/elmo-memcheck.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

# a small corpus, vocabulary and model (6 x 10 tokens a batch)
for i in $(seq 1 60); do echo "the cat sat on a mat number $((i % 9))"; done > "$work/train.txt"
for i in $(seq 1 20); do echo "a cat sat on the mat $((i % 9))"; done > "$work/heldout.txt"
printf '<S>\n</S>\n<UNK>\nthe\ncat\nsat\non\na\nmat\nnumber\n' > "$work/vocab.txt"
cat > "$work/options.json" <<'EOF'
{"char_cnn": {"activation": "relu", "embedding": {"dim": 4}, "filters": [[1, 8], [2, 8], [3, 8]],
  "max_characters_per_token": 12, "n_characters": 261, "n_highway": 1},
 "lstm": {"cell_clip": 3, "dim": 16, "n_layers": 2, "proj_clip": 3, "projection_dim": 8, "use_skip_connections": true},
 "batch_size": 6, "unroll_steps": 10, "n_negative_samples_batch": 8, "n_epochs": 1}
EOF

passed=0
failed=0
# memcheck NAME ARGS...: runs elmo ARGS under valgrind, checks its summary
memcheck() {
    name=$1
    shift
    log="$work/$name.valgrind"
    valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        --log-file="$log" "$ELMO" "$@" >"$work/$name.out" 2>"$work/$name.err"
    rc=$?
    errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
    lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1 | tr -d ,)
    if [ "$rc" -ne 0 ] || [ "${errors:-x}" != 0 ] || [ "${lost:-0}" != 0 ]; then
        echo "memcheck: $name: exit $rc, ${errors:-?} errors, ${lost:-0} bytes definitely lost ($log)"
        sed -n '1,40p' "$log"
        failed=$((failed + 1))
    else
        echo "memcheck: $name: 0 errors, 0 bytes definitely lost"
        passed=$((passed + 1))
    fi
}

memcheck train train --options "$work/options.json" --train-prefix "$work/train.txt" --vocab "$work/vocab.txt" \
    --save-dir "$work/run" --n-train-tokens 600 --max-batches 3 --threads 1 --log-every 0 \
    --heldout-prefix "$work/heldout.txt" --eval-every 3 --eval-batch-size 4
memcheck restart train --restart "$work/run" --max-batches 2
memcheck eval eval --save-dir "$work/run" --test-prefix "$work/heldout.txt" --vocab "$work/vocab.txt" \
    --batch-size 4 --quiet
memcheck dump-weights dump-weights --save-dir "$work/run" --output "$work/export/weights.hdf5"
memcheck embed embed --options "$work/export/options.json" --weights "$work/export/weights.hdf5" \
    --vocab "$work/vocab.txt" --input "$work/heldout.txt" --output "$work/emb.hdf5" --quiet
memcheck embed-vocab embed-vocab --options "$work/export/options.json" --weights "$work/export/weights.hdf5" \
    --vocab "$work/vocab.txt" --output "$work/vocab_emb.hdf5"
memcheck score score --save-dir "$work/run" --vocab "$work/vocab.txt" --input "$work/heldout.txt"
memcheck vocab vocab --input "$work/train.txt" --output "$work/vocab_out.txt" --quiet
memcheck shard shard --input "$work/train.txt" --output-dir "$work/shards" --shards 2 --heldout-fraction 0.1 --quiet

echo "memcheck: $passed runs clean, $failed with errors or leaks"
[ "$failed" -eq 0 ]
