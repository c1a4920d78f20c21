#!/bin/sh
# Runs nibble's libFuzzer targets (built by `make fuzz` / `make fuzz-smoke` into build/fuzz/fuzz/).
#   scripts/fuzz.sh NAME SECONDS [OPTION...] fuzz one target: the committed seeds (fuzz/seeds/NAME) and the
#                                           regression inputs (fuzz/regress/NAME) start the corpus kept in
#                                           build/fuzz/corpus/NAME; crashes land in build/fuzz/crashes/NAME;
#                                           further libFuzzer options follow (-runs=1000000 with a long
#                                           SECONDS: a campaign of 1,000,000 executions)
#   scripts/fuzz.sh --smoke SECONDS NAME... every target: replay its seeds and regression inputs, then fuzz it
#                                           for SECONDS from them (nothing kept; the HDF5 targets replay only);
#                                           exit 1 on any finding
# Per-target limits: the importer and checkpoints run whole models per input, so they get a longer timeout.
set -u
cd "$(dirname "$0")/.."
B=build/fuzz/fuzz

opts() {
    case "$1" in
    onnx_import) echo "-timeout=30 -rss_limit_mb=3072 -max_len=262144" ;;
    checkpoint | hdf5_data) echo "-timeout=20 -rss_limit_mb=2048 -max_len=65536" ;;
    *) echo "-timeout=10 -rss_limit_mb=2048 -max_len=65536" ;;
    esac
}
# fuzz/upstream/NAME: files on which libhdf5 itself crashes or loops; nibble refuses them (formats/h5_probe.h),
# so they are replayed as regression inputs of that containment
dirs() { for d in fuzz/seeds/$1 fuzz/regress/$1 fuzz/upstream/$1; do [ -d "$d" ] && printf '%s ' "$d"; done; }
# the probe's limit on a walk that loops (formats/h5_probe.c): a walk of an input of at most 64 KB takes
# milliseconds, and every mutation of a looping input costs the whole limit
export NB_H5_PROBE_SECONDS="${NB_H5_PROBE_SECONDS:-0.25}"
# no leak check at exit from the libraries' own caches (oneDNN keeps its primitive cache); leaks per input are
# still found by libFuzzer's -detect_leaks, which compares mallocs and frees around each run
asan_base="detect_leaks=1:allocator_may_return_null=1"
# The HDF5 targets: a request above 256 MB fails (NULL, which libhdf5 reports): libhdf5 allocates what a
# malformed file's sizes claim (gigabytes: fuzz/upstream/hdf5_data/local-heap-4gb-malloc), and
# AddressSanitizer poisons all of it, page by page, where the C library only maps it; nibble's readers ask
# for what the file can hold. A small quarantine keeps the process small, and its fork of the walker cheap.
asan_opts() {
    [ -n "${ASAN_OPTIONS:-}" ] && { echo "$ASAN_OPTIONS"; return; }
    case "$1" in
    checkpoint | hdf5_data) echo "$asan_base:max_allocation_size_mb=256:quarantine_size_mb=32" ;;
    *) echo "$asan_base" ;;
    esac
}
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$(pwd)/fuzz/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_NUM_THREADS=1

if [ "${1:-}" = "--smoke" ]; then
    secs=$2
    shift 2
    failed=""
    for t in "$@"; do
        # shellcheck disable=SC2046
        files=$(find $(dirs "$t") -type f 2>/dev/null)
        nseed=$(echo "$files" | grep -c . || true)
        printf '== fuzz %-12s replay %3d inputs, then %ss: ' "$t" "$nseed" "$secs"
        log=build/fuzz/smoke-$t.log
        work=$(mktemp -d)
        # shellcheck disable=SC2046,SC2086
        if [ -n "$files" ] && ! ASAN_OPTIONS=$(asan_opts "$t") $B/fuzz_$t $(opts "$t") -runs=0 $files > "$log" 2>&1; then
            echo "FAILED on a committed input"; tail -30 "$log"; failed="$failed $t"; rm -rf "$work"; continue
        fi
        # libhdf5 1.10 crashes and hangs on some malformed files (fuzz/upstream/): nibble contains what is known,
        # but a few seconds of mutating HDF5 files reach new ones by chance, so CI replays those targets only
        case "$t" in
        hdf5_data | checkpoint)
            echo "replayed (mutation: make fuzz T=$t; libhdf5's own findings are in fuzz/upstream)"
            rm -rf "$work"
            continue
            ;;
        esac
        # shellcheck disable=SC2046,SC2086
        if ASAN_OPTIONS=$(asan_opts "$t") $B/fuzz_$t $(opts "$t") -max_total_time="$secs" -artifact_prefix="$work/" "$work" $(dirs "$t") \
            >> "$log" 2>&1; then
            grep -o 'Done [0-9]* runs' "$log" | tail -1
        else
            echo "FAILED (a new finding: $work)"; tail -40 "$log"; failed="$failed $t"; continue
        fi
        rm -rf "$work"
    done
    [ -z "$failed" ] || { echo "fuzz smoke FAILED:$failed"; exit 1; }
    echo "fuzz smoke: every target replayed its inputs, and all but the HDF5 ones fuzzed ${secs}s, without a finding"
    exit 0
fi

t=${1:?usage: scripts/fuzz.sh NAME SECONDS [OPTION...] | --smoke SECONDS NAME...}
secs=${2:-600}
shift $(($# < 2 ? $# : 2))
mkdir -p build/fuzz/corpus/"$t" build/fuzz/crashes/"$t"
ASAN_OPTIONS=$(asan_opts "$t")
export ASAN_OPTIONS
# shellcheck disable=SC2046
exec $B/fuzz_"$t" $(opts "$t") -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix=build/fuzz/crashes/"$t"/ "$@" build/fuzz/corpus/"$t" $(dirs "$t")
