#!/bin/sh
# make bench: nibble against PyTorch (Debian's python3-torch, built on the same oneDNN) on this machine, in
# one run, with the same thread count. Tables on stdout, JSON lines in bench/out/.
set -eu
BUILD=${BUILD:-build/rel}
PYTHON=${PYTHON:-/usr/bin/python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
# the ISA extensions that decide what oneDNN and PyTorch can use here (each ratio below holds for this CPU only)
isa=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|avx512f|avx512_vnni|avx_vnni|avx512_bf16|amx_tile|amx_bf16|amx_int8' |
    tr '\n' ' ' | sed 's/ $//')
echo "$(date -u +%Y-%m-%dT%H:%MZ), cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, ISA: ${isa:-none of AVX2, AVX-512, VNNI, AMX}"
"$PYTHON" bench/compare_conv.py "$BUILD" "${BENCH_REPS:-10}" "${BENCH_ROUNDS:-5}"
echo
"$PYTHON" bench/compare_train.py "$BUILD" resnet20 smallcnn --rounds "${BENCH_ROUNDS:-3}"
echo
"$PYTHON" bench/compare_zoo.py "$BUILD" --rounds "${BENCH_ZOO_ROUNDS:-2}"
echo
# mixed precision: nibble bf16 and fp32 against PyTorch fp32 and its CPU autocast bf16
"$PYTHON" bench/compare_precision.py "$BUILD" --rounds "${BENCH_ROUNDS_PRECISION:-2}"
echo
# ONNX import: a zoo model against its export imported again (the import must cost no throughput)
"$PYTHON" bench/compare_import.py "$BUILD" resnet18 mobilenet_v2 --rounds "${BENCH_ROUNDS:-3}"
echo
"$PYTHON" bench/compare_dist.py "$BUILD"
echo
# full-integer inference: ONNX Runtime float32 against nibble's int8 export, PyTorch's int8 beside
NB_ORT_NODE_PATH=${NB_ORT_NODE_PATH:-build/ort/node_modules} "$PYTHON" bench/compare_int8.py "$BUILD" --threads 2
# GPU training throughput next to PyTorch, on a CUDA build where a GPU is present
echo
if why=$("$BUILD/bin/devices" cuda 2>&1); then
    "${PYTHON_GPU:-python3}" bench/compare_train_gpu.py "$BUILD"
else
    echo "GPU benchmark not run: $why"
fi
