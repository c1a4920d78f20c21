#!/bin/sh
# make paper-detect: the synthetic-data detection table (paper/detect_tables.md): SSD, SSDLite and LRSSD (its
# shared predictor separable, or dense) on a MobileNetV2 backbone trained on the synthetic VOC-format shapes,
# both LRSSDs quantized by ADMM to {0,±1,±2,±4} and by int8 round-to-nearest (per output channel) after
# training, every model's VOC mAP (bin/eval), FLOPs and parameters (bin/train --summary), and bin/detect
# pictures of four test images. Finished runs are kept, interrupted ones resumed. About an hour and a half
# on a 2-core machine.
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
DATA=data/synth_voc
[ -f "$DATA/SYNTH/ImageSets/Main/test.txt" ] || /usr/bin/python3 scripts/make_synth_voc.py "$DATA" --train 3000 --test 600
[ -f "$DATA/crops_train.h5" ] || /usr/bin/python3 scripts/make_synth_crops.py "$DATA"

. scripts/train_run.sh
# every detector of the table, each float one before its quantized ones
DETECTORS="ssd_mbv2_synth ssdlite_mbv2_synth lrssd_mbv2_synth lrssd128_mbv2_synth lrssd_mbv2_synth_admm_pm4
           lrssd_dense_mbv2_synth lrssd_dense_mbv2_synth_admm_pm4"
for e in mbv2_synth_crops $DETECTORS; do
    train "$e"
done
# the seed-to-seed spread of the two rows the comparison rests on
for e in ssd_mbv2_synth lrssd_dense_mbv2_synth; do
    train "$e" "runs/${e}_s2" train.seed=2
done

out=runs/detect_eval
mkdir -p "$out" paper/detect_examples
for e in $DETECTORS; do
    "$BIN/eval" "runs/$e/best.h5" > "$out/$e.eval.json"
    "$BIN/train" "experiments/$e.cfg" --summary > "$out/$e.summary.txt"
    echo "== $e: $(cat "$out/$e.eval.json")"
done
for e in lrssd lrssd_dense; do # int8 round-to-nearest per output channel, no data
    "$BIN/quantize" "runs/${e}_mbv2_synth/best.h5" "$out/${e}_int8.h5" compress.codebook=int8 quantize.scale=channel \
        > "$out/${e}_int8.quant.json"
    "$BIN/eval" "$out/${e}_int8.h5" > "$out/${e}_int8.eval.json"
    echo "== $e int8: $(cat "$out/${e}_int8.eval.json")"
done
for e in ssd_mbv2_synth lrssd_dense_mbv2_synth; do
    "$BIN/eval" "runs/${e}_s2/best.h5" > "$out/${e}_s2.eval.json"
done
# training throughput, every detector side by side on an otherwise idle machine: 60 steps each, the rate of the
# last 20 (the runs' own rates depend on what else the machine was doing)
for e in $DETECTORS; do
    rm -rf "$out/speed/$e"
    "$BIN/train" "experiments/$e.cfg" train.steps=60 train.log_every=20 train.out="$out/speed/$e" 2> /dev/null
done
# the last checkpoint of the ADMM run holds the weights on the codebook (best.h5 too: evaluation sees them so)
imgs=""
for i in 003000 003001 003002 003003; do imgs="$imgs $DATA/SYNTH/JPEGImages/$i.jpg"; done
for e in ssd_mbv2_synth lrssd_mbv2_synth lrssd_mbv2_synth_admm_pm4 lrssd_dense_mbv2_synth lrssd_dense_mbv2_synth_admm_pm4; do
    "$BIN/detect" "runs/$e/best.h5" $imgs -o "paper/detect_examples/$e.png" detect.score_min=0.15 > "$out/$e.detect.jsonl"
done
BIN="$BIN" /usr/bin/python3 scripts/detect_tables.py
