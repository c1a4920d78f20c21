/* Writing a deploy graph (deploy/graph.h) as an ONNX model. */
#ifndef NB_ONNX_EMIT_H
#define NB_ONNX_EMIT_H

#include <stddef.h>
#include <stdint.h>

#include "deploy/export.h"
#include "deploy/graph.h"

/* The serialized model (malloc'd, *bytes long) with its report filled, or NULL after reporting. With o->mnn,
 * *mnn_params receives MNN's compression-parameter file (malloc'd; NULL when the graph has no activation
 * grids). */
uint8_t *nb_onnx_emit(nb_ctx *ctx, const nb_deploy_graph *g, const nb_export_opts *o, nb_export_report *r,
                      size_t *bytes, char **mnn_params);

#endif
