#!/bin/sh
# Installs what the export tests check against: python3-onnx (the ONNX checker, Debian) and onnxruntime-node
# (ONNX Runtime for Node.js, from the npm registry) into build/ort/node_modules. Its CPU library ships inside
# the package; the optional CUDA download is skipped. Safe to run again.
# Usage: scripts/install-ort.sh [--check]
set -eu
cd "$(dirname "$0")/.."
# 1.30: the optimized graph a session really executes can be written out (optimizedModelFilePath), which the
# full-integer export tests read
ORT_VERSION=1.30.0
dir=build/ort
installed() {
    [ -f "$dir/node_modules/onnxruntime-node/package.json" ] &&
        grep -q "\"version\": \"$ORT_VERSION\"" "$dir/node_modules/onnxruntime-node/package.json"
}
if [ "${1:-}" = "--check" ]; then
    installed && command -v node > /dev/null && /usr/bin/python3 -c "import onnx" 2> /dev/null
    exit
fi
scripts/install-deps.sh --check export 2> /dev/null || scripts/install-deps.sh export
if ! installed; then
    mkdir -p "$dir"
    echo "nibble: installing onnxruntime-node@$ORT_VERSION into $dir (npm)"
    (cd "$dir" && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install --no-audit --no-fund --loglevel=error \
        "onnxruntime-node@$ORT_VERSION")
fi
NODE_PATH="$dir/node_modules" node -e "require('onnxruntime-node')" ||
    { echo "nibble: onnxruntime-node is installed in $dir but does not load" >&2; exit 1; }
