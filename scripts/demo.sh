#!/bin/sh
# `make demo`: what elmo-c does today, end to end, on the bundled sample sentences:
# embeddings from the reference ELMo model of bilm-tf's test suite (contextual, per
# sentence, and context-free, per vocabulary word), written in bilm-tf's HDF5 layouts.
set -eu
cd "$(dirname "$0")/.."
ELMO=${ELMO:-bin/elmo}
FIXTURES=${ELMO_FIXTURES:-../shared/fixtures}
MODEL="$FIXTURES/bilm-tf/model"
OUT=demo-out
if [ ! -f "$MODEL/lm_weights.hdf5" ]; then
    echo "demo: the reference model is not at $MODEL (set ELMO_FIXTURES to the fixtures directory)" >&2
    exit 2
fi
mkdir -p "$OUT"
echo "== elmo embed: contextual embeddings of data/sample_sentences.txt"
"$ELMO" embed --options "$MODEL/options.json" --weights "$MODEL/lm_weights.hdf5" \
    --vocab "$MODEL/vocab_test.txt" --input data/sample_sentences.txt --output "$OUT/embeddings.hdf5"
h5ls "$OUT/embeddings.hdf5"
echo "== elmo embed-vocab: token embeddings of the model's vocabulary"
"$ELMO" embed-vocab --options "$MODEL/options.json" --weights "$MODEL/lm_weights.hdf5" \
    --vocab "$MODEL/vocab_test.txt" --output "$OUT/vocab_embeddings.hdf5"
h5ls "$OUT/vocab_embeddings.hdf5"
echo "== prediction speed (random weights, configs/tiny.json)"
"$ELMO" bench --options configs/tiny.json --steps 3 | tail -1
echo "demo: outputs in $OUT/"
