#!/bin/sh
# `make demo`: the whole job on the bundled Brown Corpus sample (data/brown): train the
# `tiny` biLM for one epoch (a few minutes on 2 cores), evaluate its held-out perplexity,
# export the weights in the released layout, and embed sentences with them.
set -eu
cd "$(dirname "$0")/.."
ELMO=${ELMO:-bin/elmo}
DATA=data/brown
OUT=demo-out
n_train_tokens=$(sed -n 's/^train tokens: //p' "$DATA/STATS")
rm -rf "$OUT"
mkdir -p "$OUT/export"

echo "== 1. train configs/tiny.json on $DATA/train ($n_train_tokens tokens, 1 epoch)"
"$ELMO" train --options configs/tiny.json --train-prefix "$DATA/train/shard-*.txt.gz" \
    --vocab "$DATA/vocab.txt" --save-dir "$OUT/model" --n-epochs 1 --n-train-tokens "$n_train_tokens" \
    --log-every 10 --seed 1

echo "== 2. held-out perplexity ($DATA/heldout)"
"$ELMO" eval --save-dir "$OUT/model" --test-prefix "$DATA/heldout/*.txt.gz" --vocab "$DATA/vocab.txt"

echo "== 3. export: weights + options.json for AllenNLP / bilm-tf / elmo embed"
"$ELMO" dump-weights --save-dir "$OUT/model" --output "$OUT/export/weights.hdf5"

echo "== 4. embed data/sample_sentences.txt with the exported model"
"$ELMO" embed --options "$OUT/export/options.json" --weights "$OUT/export/weights.hdf5" \
    --vocab "$DATA/vocab.txt" --input data/sample_sentences.txt --output "$OUT/embeddings.hdf5"
h5ls "$OUT/embeddings.hdf5"
echo "demo: model in $OUT/model, exported weights in $OUT/export, embeddings in $OUT/embeddings.hdf5"
