#!/bin/sh
# Installs the Debian packages nibble builds, tests and benchmarks with. Safe to run again: it installs only
# what is missing. Usage: scripts/install-deps.sh [--check] [build|data|bench|export|all]
#   build  compilers' libraries: OpenBLAS, oneDNN, HDF5, libjpeg-turbo, libpng, cmocka, zlib, protobuf-c, libxml2, Open MPI,
#          libsodium (encrypted exports), clang 14 with its libFuzzer and OpenMP runtimes (make fuzz) (default)
#   data   the Fashion-MNIST dataset package (for the default experiment)
#   bench  python3-torch and -torchvision, the speed and numerics reference (also regenerates fixtures), and
#          python3-pil, the image-decoding reference
#   export python3-onnx (the ONNX checker) and Node.js with npm (for onnxruntime-node, which
#          scripts/install-ort.sh installs from the npm registry): what the export tests check against
#   --check  exit 1 if something is missing, install nothing
set -eu

check_only=0
if [ "${1:-}" = "--check" ]; then check_only=1; shift; fi
what="${1:-build}"

build_pkgs="build-essential pkg-config libopenblas-dev libdnnl-dev libhdf5-dev libjpeg62-turbo-dev libpng-dev libcmocka-dev zlib1g-dev libprotobuf-c-dev protobuf-c-compiler libxml2-dev libopenmpi-dev openmpi-bin libsodium-dev clang-14 libclang-rt-14-dev libomp-14-dev"
data_pkgs="dataset-fashion-mnist"
bench_pkgs="python3-torch python3-torchvision python3-h5py python3-numpy python3-pil"
export_pkgs="python3-onnx"
# a Node.js from elsewhere (nodesource) brings its own npm, which Debian's npm package would conflict with
command -v npm > /dev/null 2>&1 || export_pkgs="$export_pkgs nodejs npm"

case "$what" in
build) pkgs="$build_pkgs" ;;
data) pkgs="$data_pkgs" ;;
bench) pkgs="$bench_pkgs" ;;
export) pkgs="$export_pkgs" ;;
all) pkgs="$build_pkgs $data_pkgs $bench_pkgs $export_pkgs" ;;
*) echo "install-deps.sh: unknown set '$what' (expected build, data, bench, export or all)" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0
if [ "$check_only" = 1 ]; then
    echo "missing Debian packages:$missing" >&2
    exit 1
fi

echo "nibble: installing Debian packages:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps.sh: need root (or sudo) to apt-get install:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
