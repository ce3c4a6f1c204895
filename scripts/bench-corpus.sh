#!/bin/sh
# `make bench-corpus`: throughput of `elmo vocab` and `elmo shard` on a generated corpus of
# SIZE_MB megabytes (default 300), next to what reading and writing the same bytes costs
# without any work (cat, wc -l, dd with fsync): the limit set by the page cache and disk.
#
# The corpus: sentences of 5-40 tokens drawn from 200,000 word types with Zipf-like
# frequencies (log-uniform ranks: rank r with probability ~ 1/r; the 1,000 most frequent
# types make 57% of the tokens), written once into a temporary directory
# (BENCH_DIR, default under $TMPDIR) and removed at the end. Every figure is taken with
# the corpus in the page cache (a first `cat` puts it there), so `elmo` is measured
# against memory-speed reads; its output goes to the same file system as the corpus.
# Each elmo row is the median of REPS runs (default 3), once per thread count in THREADS
# (OMP_NUM_THREADS; default "1 <all cores>"); BROWN=1 adds the same rows for the bundled
# Brown text (data/brown, 6 MB unpacked).
set -eu
cd "$(dirname "$0")/.."
ELMO=${ELMO:-$(pwd)/bin/elmo}
SIZE_MB=${SIZE_MB:-300}
SHARDS=${SHARDS:-16}
REPS=${REPS:-3}
THREADS=${THREADS:-"1 $(nproc)"}
BROWN=${BROWN:-0}
work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/elmo-bench-corpus.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

corpus="$work/corpus.txt"
echo "generating a $SIZE_MB MB corpus in $work ..."
# a 32 MB block of awk's output, repeated (awk makes ~10 MB/s)
awk -v mb=32 'BEGIN {
    srand(7); V = 200000; logV = log(V); letters = "etaoinshrdlcumwfgypbvkjxqz"
    for (r = 1; r <= V; r++) {   # rank -> a word of 4-5 letters: 5.2 bytes a token, as in 1B Word
        w = ""; x = 17576 + 37 * r
        while (x > 0) { w = w substr(letters, x % 26 + 1, 1); x = int(x / 26) }
        word[r] = w
    }
    limit = mb * 1048576; bytes = 0
    while (bytes < limit) {
        n = 5 + int(rand() * 36); line = word[int(exp(rand() * logV))]
        for (i = 1; i < n; i++) line = line " " word[int(exp(rand() * logV))]
        print line; bytes += length(line) + 1
    }
}' >"$work/block.txt"
: >"$corpus"
while [ "$(wc -c <"$corpus")" -lt $((SIZE_MB * 1048576)) ]; do cat "$work/block.txt" >>"$corpus"; done
rm "$work/block.txt"
bytes=$(wc -c <"$corpus")
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1e6 }')
cat "$corpus" >/dev/null

now() { date +%s.%N; }
# row NAME SECONDS [PEAK_RSS_MB]
row() { awk -v n="$1" -v s="$2" -v b="$bytes" -v r="${3:-}" \
    'BEGIN { printf "%-34s %8.2f %10.1f %10s\n", n, s, b / 1e6 / s, r == "" ? "-" : r " MB" }'; }
# times a command: sets `took`
timed() { t0=$(now); "$@"; took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }'); }
# times a command REPS times: sets `took` to the median
median() {
    : >"$work/times"
    i=0
    while [ $i -lt "$REPS" ]; do
        i=$((i + 1))
        rm -rf "$work/shards"
        timed "$@"
        echo "$took" >>"$work/times"
    done
    took=$(sort -n "$work/times" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
}
# the peak RSS elmo reports on its last stderr line
rss() { sed -n 's/.*peak RSS \([0-9]*\) MB.*/\1/p' "$1" | tail -n 1; }
# the elmo rows for one corpus
elmo_rows() {
    for t in $THREADS; do
        n="$t thread$([ "$t" -eq 1 ] || echo s)"
        median sh -c "OMP_NUM_THREADS=$t '$ELMO' vocab --input '$corpus' --output '$work/vocab.txt' \
            >'$work/vocab.out' 2>'$work/vocab.err'"
        row "elmo vocab, $n" "$took" "$(rss "$work/vocab.err")"
        median sh -c "OMP_NUM_THREADS=$t '$ELMO' shard --input '$corpus' --output-dir '$work/shards' --shards $SHARDS \
            --heldout-fraction 0.01 >/dev/null 2>'$work/shard.err'"
        row "elmo shard ($SHARDS shards), $n" "$took" "$(rss "$work/shard.err")"
        median sh -c "OMP_NUM_THREADS=$t '$ELMO' shard --input '$corpus' --output-dir '$work/shards' --shards $SHARDS \
            --heldout-fraction 0.01 --gzip >/dev/null 2>'$work/shardgz.err'"
        row "elmo shard --gzip, $n" "$took" "$(rss "$work/shardgz.err")"
    done
}

echo "corpus: $mb MB, $(wc -l <"$corpus") lines; $(nproc) cores ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p'));" \
    "load: $(uptime | sed 's/.*load average: //'); page cache warm"
printf '%-34s %8s %10s %10s\n' command seconds MB/s "peak RSS"
timed sh -c "cat '$corpus' >/dev/null"
row "cat > /dev/null" "$took"
timed sh -c "wc -l '$corpus' >/dev/null"
row "wc -l" "$took"
timed dd if="$corpus" of="$work/copy.txt" bs=1M conv=fsync status=none
row "dd (copy, fsync)" "$took"
rm "$work/copy.txt"
elmo_rows
echo "largest shard: $(sed -n 's/.*largest shard \([0-9.]*\) MB.*/\1/p' "$work/shard.err") MB;" \
    "vocabulary: $(sed -n 's/^distinct_tokens: //p' "$work/vocab.out") distinct tokens," \
    "$(sed -n 's/^n_train_tokens: //p' "$work/vocab.out") tokens"
if [ "$BROWN" = 1 ]; then
    corpus="$work/brown.txt"
    cat data/brown/train/*.txt.gz data/brown/heldout/*.txt.gz | gzip -dc >"$corpus"
    bytes=$(wc -c <"$corpus")
    echo "the Brown text: $(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB, $(wc -l <"$corpus") lines"
    elmo_rows
fi
echo "load after: $(uptime | sed 's/.*load average: //')"
