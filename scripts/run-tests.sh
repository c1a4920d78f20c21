#!/bin/sh
# Runs each cmocka test binary, prints its report, and ends with a one-line summary; non-zero exit if any
# binary failed. Run from the repository root (tests find their fixtures under tests/fixtures).
# The suite runs once on the CPU backend and, in a CUDA build (NB_CUDA_BUILD=1), once more on the GPU
# (NB_TEST_DEVICE=cuda) when one is present; without a GPU that pass is reported as skipped, with the reason, and
# the CUDA build's CPU pass runs only the binaries that reach its backend choice (NB_CUDA_CPU_SUBSET).
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
cuda_note=""
if [ "${NB_CUDA_BUILD:-0}" = 1 ] && why=$("${NB_BIN_DIR:-build/rel-cuda/bin}/devices" cuda); then
    run_pass cpu "$@"
    echo "== CUDA pass on $why"
    run_pass cuda "$@"
elif [ "${NB_CUDA_BUILD:-0}" = 1 ]; then
    # no GPU: the CUDA build's CPU pass is the plain build's again, but for the binaries that reach the backend
    # choice and dispatch (CI runs the plain build's whole suite just before)
    subset=""
    for t in "$@"; do
        case " ${NB_CUDA_CPU_SUBSET:-test_backends test_ops test_engine test_errors} " in
        *" $(basename "$t") "*) subset="$subset $t" ;;
        esac
    done
    # shellcheck disable=SC2086
    run_pass cpu $subset
    cuda_note="; the CUDA build ran $(echo $subset | wc -w) of its $# binaries on the CPU (set NB_CUDA_CPU_SUBSET to change which) and SKIPPED the CUDA pass: $why"
else
    run_pass cpu "$@"
fi
if [ -n "$failed" ]; then
    echo "FAILED test binaries:$failed$cuda_note"
    exit 1
fi
echo "all $n test binary runs passed$cuda_note"
