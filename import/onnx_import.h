/* Any ONNX CNN as a nibble model (model.arch = onnx, model.onnx = FILE): its graph mapped onto nibble's ops, its
 * initializers the model's parameters under their own names (for a PyTorch export, the state_dict names), its
 * batch norms nibble batch norms with their running statistics, its constant shape computations folded at
 * import. The model then trains, compresses, checkpoints and exports like a zoo model: its forward pass records
 * the same ops on the tape.
 *
 * model.num_classes replaces the final classifier (a Gemm, MatMul or 1x1 convolution whose output is the
 * graph's) with a new one initialised as nibble initialises its own, when it differs from the graph's; the same
 * for model.in_channels and the first convolution. A node nibble cannot run, a malformed file, a shape that
 * cannot be folded, an initializer whose shape disagrees with its use, a name defined twice: an error naming
 * the file, the node, its op type and the opset, and no model. */
#ifndef NB_ONNX_IMPORT_H
#define NB_ONNX_IMPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "models/model.h"

/* The model of the ONNX file at path (spec: num_classes, in_channels and input_size as above; seed for new
 * layers). NULL after reporting. */
nb_model *nb_onnx_import(nb_ctx *ctx, const nb_model_spec *spec, const char *path);
/* The same from a file's bytes; label names it in messages */
nb_model *nb_onnx_import_bytes(nb_ctx *ctx, const nb_model_spec *spec, const uint8_t *bytes, size_t len,
                               const char *label);
/* What the file at path declares: its input's channels and size and its output's classes, where it fixes
 * them, into spec (what it leaves open stays). 0, or -1 after reporting a file that is not an ONNX model. */
int nb_onnx_probe(nb_ctx *ctx, const char *path, nb_model_spec *spec);
/* The values of m's tensor t in the layout of the file's initializer it came from (row-major, into dst of
 * nb_numel(t) floats): a Gemm or MatMul weight stored [in, out] transposed back, a ConvTranspose weight back from
 * its convolution's; t itself for any other tensor. 0, or -1 when t is not a float tensor of m. */
int nb_onnx_file_layout(const nb_model *m, const nb_tensor *t, float *dst);
/* Whether m was imported (its impl is the importer's) */
int nb_onnx_is_imported(const nb_model *m);
/* The graph as nibble sees it: each node, what it became (a nibble op, folded at import, the identity), its
 * parameters with their shapes; then totals */
int nb_onnx_describe(const nb_model *m, FILE *out);

#endif
