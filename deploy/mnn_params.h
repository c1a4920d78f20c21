/* MNN's compression-parameter file (MNNConvert --compressionParamsFile, the JSON form of MNN_compression.proto)
 * for a full-integer deploy graph: per convolution and linear layer, its input's and output's activation grids
 * and its weight's scales and code range, keyed by the layer's output tensor name in the ONNX file written
 * beside it. MNN drops QuantizeLinear/DequantizeLinear pairs on activations; from this file it builds its own
 * int8 convolutions, re-deriving nibble's codes from the float weights exactly (round(w / scale) of
 * w = scale * code). */
#ifndef NB_MNN_PARAMS_H
#define NB_MNN_PARAMS_H

#include <stddef.h>

#include "deploy/graph.h"

/* The ONNX name the emitter gave a value, or NULL */
typedef const char *(*nb_value_name_fn)(void *ctx, const nb_tensor *value);

/* The file's text (malloc'd), *layers the number of layers it quantizes (0: the graph has no activation grids,
 * and the text is NULL) */
char *nb_mnn_params(const nb_deploy_graph *g, nb_value_name_fn name_of, void *ctx, int *layers);

#endif
