#!/bin/sh
# Runs each cmocka test binary, prints its report, and ends with a one-line summary; non-zero exit if any
# binary failed. Run from the repository root (tests find their fixtures under tests/fixtures).
# The suite runs once on the CPU backend and, in a CUDA build (NB_CUDA_BUILD=1), once more on the GPU
# (NB_TEST_DEVICE=cuda) when one is present; without a GPU that pass is reported as skipped, with the reason.
set -u
failed=""
n=0
run_pass() {
    device=$1
    shift
    for t in "$@"; do
        n=$((n + 1))
        echo "== $t ($device)"
        # the CUDA pass compares with FP32 references: TF32 convolutions off unless asked for
        if ! NB_TEST_DEVICE=$device NB_TF32=${NB_TF32:-0} "$t"; then failed="$failed $(basename "$t")($device)"; fi
    done
}
run_pass cpu "$@"
cuda_note=""
if [ "${NB_CUDA_BUILD:-0}" = 1 ]; then
    if why=$("${NB_BIN_DIR:-build/rel-cuda/bin}/devices" cuda); then
        echo "== CUDA pass on $why"
        run_pass cuda "$@"
    else
        cuda_note="; SKIPPED the CUDA pass of all $# binaries: $why"
    fi
fi
if [ -n "$failed" ]; then
    echo "FAILED test binaries:$failed$cuda_note"
    exit 1
fi
echo "all $n test binary runs passed$cuda_note"
