#!/usr/bin/python3
"""Validates ONNX files with the onnx package's full checker (schema, types, shape inference), the independent
check of bin/export. Usage: scripts/onnx_check.py MODEL.onnx ... Exits 1 naming the first file that fails."""
import sys

import onnx


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: scripts/onnx_check.py MODEL.onnx ...")
    for path in sys.argv[1:]:
        try:
            model = onnx.load(path)
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:  # the checker raises several exception types; all mean "not valid"
            sys.exit(f"{path}: not a valid ONNX model: {e}")
        print(f"{path}: valid (IR {model.ir_version}, opset {model.opset_import[0].version}, "
              f"{len(model.graph.node)} nodes)")


if __name__ == "__main__":
    main()
