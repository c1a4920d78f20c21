#!/bin/sh
# make paper: the Fashion-MNIST compression grid (every row of paper/fmnist_tables.md), then the tables and
# plots. Runs that have finished are kept; an interrupted one is resumed. The full-precision ResNet-20
# (experiments/fmnist_resnet20.cfg) comes first: every compression row starts from its best.h5 but the ResNet-8
# rows (fmnist_r8_*, from fmnist_r8's); the wide ResNet-20x2 next, the second distillation teacher, and the
# ResNet-20 without label smoothing, the third.
# Takes about ten hours on a 2-core machine (the ResNet-20x2 teacher alone about 80 minutes).
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}

. scripts/train_run.sh

train fmnist_resnet20
train fmnist_wrn20x2
train fmnist_resnet20_nols
for e in admm_binary admm_ternary admm_pm2 admm_pm4 twn bwn admm_ste_binary admm_ste_ternary admm_final3_binary \
         admm_final3_ternary admm_const3_binary admm_const3_ternary prune50 prune75 prune90 prune50_oneshot \
         prune75_oneshot prune90_oneshot r8 r8_bwn r8_twn r8_admm_binary r8_admm_ternary \
         r8_admm_final3_binary r8_admm_final3_ternary r8_admm_1p5_binary r8_admm_1p5_ternary \
         kd_r8 kd_r8_t2 kd_r8_wrn kd_r8_nols kd_r8_alpha01 combined \
         admm_e12_binary bwn_e12 admm_e12_ternary twn_e12 bwn_scratch twn_scratch; do
    train fmnist_$e
done
# reseeded(SEEDS, EXPERIMENTS): each experiment again with train.seed overridden, into runs/fmnist_<e>_s<seed>
reseeded() {
    for seed in $1; do
        for e in $2; do
            train fmnist_$e runs/fmnist_${e}_s$seed train.seed=$seed
        done
    done
}
# the quantization-aware baselines' spread over seeds, and that of the ADMM variants closest to them, against
# the distance between them
reseeded "2 3" "twn bwn admm_final3_binary admm_final3_ternary admm_const3_binary admm_const3_ternary"
# the same comparison on the ResNet-8, which loses more to 1-bit weights
reseeded "2 3" "r8_bwn r8_twn r8_admm_binary r8_admm_ternary r8_admm_final3_binary r8_admm_final3_ternary \
    r8_admm_1p5_binary r8_admm_1p5_ternary"
# distillation's gain against seed noise: the student with and without the teacher, two more seeds, and five in
# all for the ResNet-20 (with and without label smoothing) and ResNet-20x2 teachers at alpha 0.5, T = 4
reseeded "2 3" "r8 kd_r8 kd_r8_t2 kd_r8_wrn"
reseeded "4 5" "r8 kd_r8 kd_r8_wrn"
reseeded "2 3 4 5" "kd_r8_nols"

# post-training quantization of the full-precision checkpoint: no data, no training
mkdir -p runs/fmnist_ptq
FP=runs/fmnist_resnet20/best.h5
ptq() { # name, bin/quantize overrides...
    name=$1
    shift
    "$BIN/quantize" "$FP" "runs/fmnist_ptq/$name.h5" "$@" > "runs/fmnist_ptq/$name.quant.json"
    "$BIN/eval" "runs/fmnist_ptq/$name.h5" > "runs/fmnist_ptq/$name.eval.json"
    echo "== ptq $name: $(cat "runs/fmnist_ptq/$name.eval.json")"
}
for cb in binary ternary pm2 pm4; do
    ptq "round_layer_$cb" compress.codebook=$cb quantize.scale=layer
    ptq "round_channel_$cb" compress.codebook=$cb quantize.scale=channel
    ptq "optimal_layer_$cb" compress.codebook=$cb quantize.method=optimal
    ptq "folded_layer_$cb" compress.codebook=$cb quantize.fold_bn=true
    ptq "dfq_layer_$cb" compress.codebook=$cb quantize.dfq=true
done

# full-integer quantization (weights and activations) of the full-precision checkpoint, and of the qat runs
# (their final weights, as every other row):
# each exported and run in ONNX Runtime on the whole test set beside the simulation (top-1, agreement), and
# timed there against the float export (batch 1 and 256, 2 threads). reduce_range throughout: 8-bit weights on
# [-64, 63], which x86 CPUs without VNNI compute exactly; one full-range row shows what that costs.
mkdir -p runs/fmnist_int8
# the CPU decides whether full-range int8 weights are computed exactly (VNNI) and how fast: the table names it
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), ISA: $(grep -m1 '^flags' /proc/cpuinfo |
    tr ' ' '\n' | grep -xE 'avx2|avx512f|avx512_vnni|avx_vnni|amx_int8' | tr '\n' ' ' | sed 's/ $//')" \
    > runs/fmnist_int8/machine.txt
export NB_ORT_NODE_PATH=${NB_ORT_NODE_PATH:-build/ort/node_modules}
deployed() { # name, checkpoint[, float export]: export, ONNX Runtime beside the simulation, speed against the float export
    "$BIN/export" "$2" -o "runs/fmnist_int8/$1.onnx" > "runs/fmnist_int8/$1.export.txt"
    "$BIN/eval" "$2" --onnx "runs/fmnist_int8/$1.onnx" > "runs/fmnist_int8/$1.eval.json"
    for f in "runs/fmnist_int8/$1.onnx" "${3:-runs/fmnist_int8/float.onnx}"; do
        for b in 1 256; do
            NODE_PATH=$NB_ORT_NODE_PATH node bench/ort_bench.js "$f" 1 28 28 --threads 2 --batch $b --seconds 2 |
                sed "s|^{|{\"model\": \"$f\", |"
        done
    done > "runs/fmnist_int8/$1.speed.jsonl"
    echo "== int8 $1: $(cat "runs/fmnist_int8/$1.eval.json")"
}
fullint() { # name, bin/quantize overrides...
    name=$1
    shift
    [ -f "runs/fmnist_int8/$name.eval.json" ] && return 0
    "$BIN/quantize" "$FP" "runs/fmnist_int8/$name.h5" quantize.activations=8 quantize.reduce_range=true "$@" \
        > "runs/fmnist_int8/$name.quant.json"
    deployed "$name" "runs/fmnist_int8/$name.h5"
}
"$BIN/export" "$FP" -o runs/fmnist_int8/float.onnx --fold-bn > /dev/null
fullint w8a8_minmax
fullint w8a8_percentile quantize.range=percentile
fullint w8a8_mse quantize.range=mse
fullint w8a8_zeroq quantize.data_free=zeroq quantize.calibration=64
fullint w8a8_bn quantize.data_free=bn
fullint w8a8_symmetric quantize.activation_grid=symmetric
fullint w8a8_layer compress.qat_scale=layer
fullint w8a8_fullrange quantize.reduce_range=false
for e in qat_w8a8 qat_w4a4 qat_w3a3 qat_w2a2 admm_pm4_a8; do
    train fmnist_$e
    [ -f "runs/fmnist_int8/$e.eval.json" ] || deployed "$e" "runs/fmnist_$e/last.h5"
done
# W8A8 QAT lands within a few tenths of full precision: two more seeds say how much of that is noise
reseeded "2 3" "qat_w8a8"
for seed in 2 3; do
    [ -f "runs/fmnist_int8/qat_w8a8_s$seed.eval.json" ] || deployed "qat_w8a8_s$seed" "runs/fmnist_qat_w8a8_s$seed/last.h5"
done
# MobileNetV2 (the zoo's Fashion-MNIST recipe), W8A8 post-training with per-channel weights and, beside it,
# per-tensor ones: a depthwise convolution's channels differ in range by orders of magnitude, and one scale for
# all of them is where users of per-tensor toolkits report the collapse
train fmnist_mobilenetv2
MB=runs/fmnist_mobilenetv2/best.h5
[ -f runs/fmnist_int8/mbv2_float.eval.json ] || "$BIN/eval" "$MB" > runs/fmnist_int8/mbv2_float.eval.json
"$BIN/export" "$MB" -o runs/fmnist_int8/mbv2_float.onnx --fold-bn > /dev/null
for scale in channel layer; do
    name=mbv2_w8a8_$scale
    [ -f "runs/fmnist_int8/$name.eval.json" ] && continue
    "$BIN/quantize" "$MB" "runs/fmnist_int8/$name.h5" quantize.activations=8 quantize.reduce_range=true \
        compress.qat_scale=$scale > "runs/fmnist_int8/$name.quant.json"
    deployed "$name" "runs/fmnist_int8/$name.h5" runs/fmnist_int8/mbv2_float.onnx
done
# PyTorch 1.13's own eager-mode int8 of the same checkpoint on the same 512 calibration images
[ -f runs/fmnist_int8/torch_ptq.json ] || /usr/bin/python3 scripts/torch_quant_peer.py "$FP" > runs/fmnist_int8/torch_ptq.json
# ... and its quantization-aware training, with the recipe of the W8A8 LSQ row (about an hour here)
[ -f runs/fmnist_int8/torch_qat.json ] || /usr/bin/python3 scripts/torch_quant_peer.py "$FP" --qat 2 > runs/fmnist_int8/torch_qat.json

# what each distillation teacher's soft targets carry at the T the students use
/usr/bin/python3 scripts/teacher_targets.py --bin "$BIN" --temperature 4 --out runs/teacher_targets.jsonl \
    runs/fmnist_resnet20/best.h5 runs/fmnist_wrn20x2/best.h5 runs/fmnist_resnet20_nols/best.h5

/usr/bin/python3 scripts/paper_tables.py --bin "$BIN"
