#!/bin/sh
# Builds MNN (Alibaba's inference engine, the seed's deployment target) from its public source, and
# scripts/mnn_run.cpp against it, into build/mnn: MNNConvert (ONNX -> .mnn) and mnn_run (bin/eval --mnn's
# runner). MNN is not a dependency of nibble and is never part of the repository: this is for checking what
# bin/export --mnn writes. About 40 minutes on 2 cores.
#
#   scripts/mnn_setup.sh MNN_SOURCE [BUILD_DIR]
#
# MNN_SOURCE: a checkout of https://github.com/alibaba/MNN (3.6 was used). BUILD_DIR (default build/mnn/engine):
# where cmake builds it; an existing build there is reused.
set -eu
[ $# -ge 1 ] || { echo "usage: scripts/mnn_setup.sh MNN_SOURCE [BUILD_DIR]" >&2; exit 2; }
src=$(cd "$1" && pwd)
[ -f "$src/include/MNN/Interpreter.hpp" ] || { echo "scripts/mnn_setup.sh: $src is not an MNN checkout" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/mnn"
build=${2:-$out/engine}
mkdir -p "$build" "$out"
build=$(cd "$build" && pwd)
# AVX-512 kernels (VNNI for int8) where the CPU has them; the converter and its compression-parameter reader;
# no GPU backends
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMNN_BUILD_CONVERTER=ON -DMNN_BUILD_TOOLS=ON \
    -DMNN_AVX512=ON -DMNN_LOW_MEMORY=ON -DMNN_BUILD_QUANTOOLS=OFF -DMNN_BUILD_TEST=OFF -DMNN_OPENCL=OFF \
    -DMNN_VULKAN=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target MNN MNNConvert
ln -sf "$build/MNNConvert" "$out/MNNConvert"
g++ -O2 -std=c++17 -I"$src/include" "$root/scripts/mnn_run.cpp" -L"$build" -lMNN -Wl,-rpath,"$build" -o "$out/mnn_run"
echo "MNN: $out/MNNConvert and $out/mnn_run"
