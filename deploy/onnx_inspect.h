/* Reading an ONNX file back (bin/export --check): its inputs and outputs, node counts by type, size, and how
 * each convolution and linear weight is stored (float, or int8/int4 codes with their scales); in an engine's
 * optimized graph, the integer concatenations that requantize an input. */
#ifndef NB_ONNX_INSPECT_H
#define NB_ONNX_INSPECT_H

#include <stdint.h>
#include <stdio.h>

#include "core/context.h"

typedef struct {
    int64_t bytes, nodes, initializers;
    int64_t float_values, int8_values, int4_values; /* elements of initializers by type */
    int float_layers, int8_layers, int4_layers;    /* conv/linear weights by storage */
    int64_t weight_values, zero_weight_values;    /* conv/linear weights (codes or floats) */
    int64_t qconcats, requantizing_qconcats;      /* ONNX Runtime's QLinearConcat, and those that requantize */
} nb_onnx_summary;

/* Parse path and print the report to out. 0, or -1 after reporting a file that is not an ONNX model. */
int nb_onnx_inspect(nb_ctx *ctx, const char *path, FILE *out, nb_onnx_summary *s);

#endif
