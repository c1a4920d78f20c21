#!/usr/bin/python3
"""Checks that an ONNX file from `bin/export --mnn` uses only the forms MNN's converter reads correctly, and that
its compression-parameter file (MODEL.mnn.json, when given) describes that graph: what a machine without MNN
can check of the MNN export (scripts/mnn_check.sh runs MNN itself).

    scripts/mnn_forms_check.py MODEL.onnx [MODEL.mnn.json]

The forms (MNN 3.6 mishandles the others silently): every DequantizeLinear of a weight per channel on axis 0,
read by one node only, over int8 codes (no int4 type); no QuantizeLinear at all (MNN drops activation pairs).
The parameter file: every layer's input and output names are values of the graph, its output is a Conv's
(directly or through the Relu or Clip that MNN fuses into it), its weight scales are one per output channel, and
round(w / scale) of the convolution's weight gives integers within its clamp range that reproduce w: the
codes MNN re-derives are nibble's. Prints a one-line summary; exits 1 naming the first violation."""
import json
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def fail(msg):
    sys.exit(f"mnn_forms_check: {msg}")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    model = onnx.load(sys.argv[1])
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    readers, producer = {}, {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
        for o in n.output:
            producer[o] = n
    dq = 0
    for n in g.node:
        if n.op_type == "QuantizeLinear":
            fail(f"{n.name}: a QuantizeLinear (MNN drops activation quantization: the grids go to the parameter file)")
        if n.op_type != "DequantizeLinear":
            continue
        dq += 1
        codes, scale = inits.get(n.input[0]), inits.get(n.input[1])
        if codes is None or scale is None:
            fail(f"{n.name}: a DequantizeLinear of something other than a weight's codes")
        if codes.data_type != onnx.TensorProto.INT8:
            fail(f"{n.name}: codes of type {onnx.TensorProto.DataType.Name(codes.data_type)}, MNN reads int8 only")
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        if len(scale.dims) != 1 or scale.dims[0] != codes.dims[0] or axis != 0:
            fail(f"{n.name}: scale of shape {list(scale.dims)} on axis {axis}: MNN needs one per output channel")
        if len(readers.get(n.output[0], [])) != 1:
            fail(f"{n.name}: read by {len(readers.get(n.output[0], []))} nodes; MNN needs one DequantizeLinear each")
    summary = f"{sys.argv[1]}: MNN forms ({dq} weight DequantizeLinear, per channel, int8, one reader each)"
    if len(sys.argv) == 2:
        print(summary)
        return
    values = {i.name for i in g.input} | set(producer)
    params = json.load(open(sys.argv[2]))
    layers = params["algo"][0]["quant_params"]["layer"]
    if not layers:
        fail(f"{sys.argv[2]}: no layers")
    for layer in layers:
        x, y, w = layer["input"][0], layer["output"][0], layer["weight"][0]
        for a in (x, y):
            if a["name"] not in values:
                fail(f"{sys.argv[2]}: {a['name']} is not a value of the graph")
            if not (-128 <= a["clamp_min"] <= a["zero_point"] <= a["clamp_max"] <= 127) or a["scales"][0] <= 0:
                fail(f"{sys.argv[2]}: {a['name']}: not an int8 grid: {a}")
        conv = producer[y["name"]]
        while conv.op_type in ("Relu", "Clip"):
            conv = producer[conv.input[0]]
        if conv.op_type != "Conv":
            fail(f"{sys.argv[2]}: {y['name']} is made by a {conv.op_type}, not a convolution")
        wdq = producer.get(conv.input[1])
        if wdq is None or wdq.op_type != "DequantizeLinear":
            fail(f"{conv.name}: its weight is not DequantizeLinear of codes")
        codes = numpy_helper.to_array(inits[wdq.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(inits[wdq.input[1]]).astype(np.float32)
        weight = codes * scale.reshape(-1, *[1] * (codes.ndim - 1))  # DequantizeLinear, as MNN folds it
        s = np.array(w["scales"], dtype=np.float32)
        if s.shape[0] != codes.shape[0]:
            fail(f"{conv.name}: {s.shape[0]} weight scales for {codes.shape[0]} output channels")
        q = np.round(weight * (1 / s).reshape(-1, *[1] * (codes.ndim - 1)))
        if q.min() < w["clamp_min"] or q.max() > w["clamp_max"] or not np.array_equal(q, codes):
            fail(f"{conv.name}: round(w / scale) does not give back the codes within [{w['clamp_min']}, {w['clamp_max']}]")
    print(f"{summary}; {len(layers)} int8 layers in {sys.argv[2]}, each reproducing its codes")


if __name__ == "__main__":
    main()
