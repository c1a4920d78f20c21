# Sourced by the paper scripts: train NAME [RUN_DIR [OVERRIDES...]] trains experiments/NAME.cfg into RUN_DIR
# (default runs/NAME, the cfg's own) with the extra overrides. A run with a last.h5 is resumed, which does
# nothing when it has finished, so a paper script can be run again to pick up where it stopped. Needs $BIN.
train() {
    run_exp=$1 run_dir=runs/$1
    shift
    if [ $# -gt 0 ]; then
        run_dir=$1
        shift
        set -- train.out="$run_dir" "$@"
    fi
    echo "== $run_exp -> $run_dir"
    if [ -f "$run_dir/last.h5" ]; then set -- "$@" --resume; fi
    "$BIN/train" "experiments/$run_exp.cfg" "$@"
}
