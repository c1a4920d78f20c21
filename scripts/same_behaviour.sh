#!/bin/sh
# Shows that a change of structure left behaviour alone: builds revision REV (in a worktree of its own) and the
# working tree, runs the same short experiments with each build, and compares what they wrote.
#
#   scripts/same_behaviour.sh REV [OUT]      (OUT default /tmp/nibble-same; about 15 minutes on 2 cores)
#
# The experiments, each a few hundred steps at a fixed seed (Fashion-MNIST cut to 6400 training and 1000 test
# images, the synthetic VOC shapes to 200 and 40):
#   r20       the default experiment (ResNet-20), 4 epochs
#   admm      ADMM ternary, 2 epochs of ADMM then 1 of quantized retraining (admm_final_epochs), from r20
#   combined  prune + ADMM + distillation (experiments/fmnist_combined.cfg), from r20 with r20 as teacher
#   twn, bwn  TWN and BWN (straight-through ternary / binary weights), from r20
#   taylor    channel pruning by Taylor importance, from r20
#   lrssd     LRSSD on the synthetic shapes, from scratch
#   mpi       the default experiment on 2 MPI ranks with synchronized batch norm
#   ptq       bin/quantize with data-free quantization onto {0,±1,±2,±4}, from r20
# then bin/export (ONNX, with and without --fold-bn) and bin/eval of each run's checkpoint.
# scripts/same_behaviour.py compares the two sides: every tensor and attribute of every checkpoint, the ONNX
# files byte for byte, and bin/eval's JSON; it prints one line per file and exits non-zero where they differ.
set -eu
REV=${1:?usage: scripts/same_behaviour.sh REV [OUT]}
OUT=${2:-/tmp/nibble-same}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ ! -d "$OUT/src" ]; then git -C "$REPO" worktree add --detach "$OUT/src" "$REV"; fi
git -C "$OUT/src" checkout -q --detach "$REV"
echo "== building $REV in $OUT/src, and the working tree"
make -C "$OUT/src" -j2 all > "$OUT/build-before.log" 2>&1 || { tail -20 "$OUT/build-before.log"; exit 1; }
make -C "$REPO" -j2 all > "$OUT/build-after.log" 2>&1 || { tail -20 "$OUT/build-after.log"; exit 1; }

if [ ! -f "$OUT/data/synth_voc/classes.txt" ]; then
    $PY "$REPO/scripts/make_synth_voc.py" "$OUT/data/synth_voc" --train 200 --test 40 > /dev/null
fi

FM="data.limit=6400 data.val_limit=1000 train.log_every=10"
# mpirun on one machine, as tests/test_dist.c runs it
MPIRUN="mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none -np 2"

side() { # side NAME BIN: every experiment with the programs in BIN, in OUT/NAME
    name=$1 bin=$2 dir=$OUT/$1
    rm -rf "$dir"
    mkdir -p "$dir"
    # the same cfg files and data for both sides, under the same relative paths: the resolved configuration
    # stored in each checkpoint names them
    ln -s "$REPO/experiments" "$REPO/configs" "$OUT/data" "$dir/"
    cd "$dir"
    export OMP_NUM_THREADS=2
    run() { echo "   $name: $*"; "$@" > "$dir/log.txt" 2>&1 || { tail -20 "$dir/log.txt"; exit 1; }; }
    run "$bin/train" experiments/fmnist_resnet20.cfg train.out=runs/fmnist_resnet20 train.epochs=4 $FM
    run "$bin/train" experiments/fmnist_admm_ternary.cfg train.out=runs/admm train.epochs=3 \
        compress.admm_final_epochs=1 compress.admm_interval=20 $FM
    run "$bin/train" experiments/fmnist_combined.cfg train.out=runs/combined train.epochs=3 \
        compress.prune_epochs=1 compress.admm_interval=20 $FM
    run "$bin/train" experiments/fmnist_twn.cfg train.out=runs/twn train.epochs=2 $FM
    run "$bin/train" experiments/fmnist_bwn.cfg train.out=runs/bwn train.epochs=2 $FM
    run "$bin/train" experiments/fmnist_prune50.cfg train.out=runs/taylor train.epochs=2 \
        compress.granularity=channel compress.importance=taylor compress.prune_epochs=1 compress.prune_every=10 $FM
    run "$bin/train" experiments/lrssd_mbv2_synth.cfg train.out=runs/lrssd model.init= train.epochs=4 \
        train.batch=8 train.eval_batch=20 train.log_every=5 optim.warmup_epochs=0
    run $MPIRUN "$bin/train" experiments/fmnist_resnet20.cfg train.out=runs/mpi train.epochs=2 train.sync_bn=true $FM
    run "$bin/quantize" runs/fmnist_resnet20/best.h5 runs/ptq.h5 compress.codebook=pm4 quantize.dfq=true
    for r in fmnist_resnet20 admm combined twn bwn taylor lrssd mpi; do
        run "$bin/export" "runs/$r/last.h5" -o "runs/$r/model.onnx"
        run "$bin/export" "runs/$r/last.h5" -o "runs/$r/folded.onnx" --fold-bn
        "$bin/eval" "runs/$r/last.h5" > "runs/$r/eval.json" 2> "$dir/log.txt"
    done
    run "$bin/export" runs/ptq.h5 -o runs/ptq.onnx
    "$bin/eval" runs/ptq.h5 > runs/ptq.json 2> "$dir/log.txt"
    rm -f "$dir/log.txt"
}

# REV's side is the same for every working tree: run it once per revision
rev=$(git -C "$OUT/src" rev-parse HEAD)
if [ "$(cat "$OUT/before/.rev" 2>/dev/null)" = "$rev" ]; then
    echo "== the experiments ($REV): kept from an earlier run in $OUT/before"
else
    echo "== the experiments ($REV)"
    (side before "$OUT/src/build/rel/bin")
    echo "$rev" > "$OUT/before/.rev"
fi
echo "== the experiments (working tree)"
(side after "$REPO/build/rel/bin")
echo "== comparison"
$PY "$REPO/scripts/same_behaviour.py" "$OUT/before/runs" "$OUT/after/runs"
