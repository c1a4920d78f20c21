#!/bin/sh
# A checkpoint through MNN beside nibble: bin/export --mnn, MNNConvert (with the compression-parameter file
# when the export wrote one), then bin/eval --mnn on the validation set: MNN's top-1, how often its top class
# is nibble's, and how many outputs lie within one step of nibble's (JSON on stdout, key "mnn").
# Needs scripts/mnn_setup.sh's build/mnn.
#
#   scripts/mnn_check.sh CKPT OUT_STEM [--limit N] [bin/export options ...]
set -eu
[ $# -ge 2 ] || { echo "usage: scripts/mnn_check.sh CKPT OUT_STEM [--limit N] [bin/export options]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
ckpt=$1 stem=$2
shift 2
limit=0
if [ "${1:-}" = --limit ]; then limit=$2; shift 2; fi
conv="$root/build/mnn/MNNConvert"
[ -x "$conv" ] || { echo "scripts/mnn_check.sh: $conv is missing: run scripts/mnn_setup.sh first" >&2; exit 1; }
rm -f "$stem.mnn.json"
"$root/bin/export" "$ckpt" -o "$stem.onnx" --mnn "$@" >&2
params=
[ -f "$stem.mnn.json" ] && params="--compressionParamsFile $stem.mnn.json"
# shellcheck disable=SC2086 # params is empty or two words
"$conv" -f ONNX --modelFile "$stem.onnx" --MNNModel "$stem.mnn" --bizCode nibble $params >"$stem.convert.log" 2>&1 ||
    { cat "$stem.convert.log" >&2; exit 1; }
echo "$stem.mnn: $(stat -c %s "$stem.mnn") bytes ($(stat -c %s "$stem.onnx") for the ONNX file)" >&2
"$root/bin/eval" "$ckpt" --mnn "$stem.mnn" --limit "$limit"
