/* ONNX export: a model's forward pass, recorded on the tape (the same record that drives backward and FLOP
 * counting), lowered to the deploy graph (deploy/graph.h) and written as an ONNX graph (deploy/onnx_emit.c).
 * Float weights, or the integer codes of quantized layers followed by DequantizeLinear with their scales;
 * channels that channel pruning zeroed are removed; batch norms are kept or folded into the convolutions
 * before them. */
#ifndef NB_EXPORT_H
#define NB_EXPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "compress/qsim.h"
#include "deploy/qweights.h"
#include "models/model.h"

typedef struct {
    int opset;            /* 13..21; int4 weights need 21 (default 17) */
    bool fold_bn;         /* fold batch norms into the convolution before them */
    bool float_weights;   /* ignore the checkpoint's codes: every weight as float */
    bool keep_channels;   /* do not remove pruned channels */
    bool softmax;         /* output "probabilities" (softmax of the logits) instead of "logits" */
    const char *input_doc;      /* metadata: what the input is (normalisation) */
    const char *const *meta;    /* extra metadata: key, value, key, value, ..., NULL */
    /* a full-integer network (nb_qsim_for_checkpoint): written as QuantizeLinear/DequantizeLinear around every
     * op the simulation quantizes, int8 weights on its grids and int32 biases, which ONNX Runtime fuses into
     * integer kernels (QLinearConv, QLinearAdd, ...); needs fold_bn */
    nb_qsim *qsim;
    /* MNN's forms (its converter mishandles others silently): every weight scale per channel (a per-tensor one
     * repeated), int8 containers for int4 codes, one DequantizeLinear per reader of a shared weight, and no
     * QuantizeLinear/DequantizeLinear on activations: their grids go to MNN's compression-parameter file
     * (deploy/mnn_params.h), written to mnn_params when the network has any */
    bool mnn;
    const char *mnn_params;
    /* NB_MODEL_KEY_BYTES: the file is written encrypted under this key (deploy/model_crypt.h); the plaintext is
     * only ever in memory */
    const unsigned char *encrypt_key;
} nb_export_opts;

typedef struct {
    int64_t nodes, initializers, bytes;
    int quantized_layers, int_bits; /* int_bits: 8, or 4 when every quantized layer was written as int4 */
    int64_t quantized_weights, float_weights; /* elements of conv and linear weights */
    int64_t zero_weights;                     /* of all conv and linear weights written: unstructured sparsity */
    int64_t channels_removed, prunable_channels;
    int folded_bn;
    char methods[64]; /* the compression records used: "admm", "ptq", ... */
    int64_t activation_qdq;   /* QuantizeLinear/DequantizeLinear pairs on activations */
    int64_t int32_biases;
    int mnn_layers; /* layers MNN's compression-parameter file quantizes */
} nb_export_report;

/* Export m (its parameters loaded) to path, written to a temporary file and renamed, so that a failure leaves
 * no partial file. q: the checkpoint's codes (NULL: float export). 0, or -1 after reporting. */
/* bytes to path through a temporary file, flushed, synced and renamed: an error (disk full, file too large,
 * read-only) names the file and the reason and leaves an earlier file of that name as it was. 0, or -1 after
 * reporting. */
int nb_export_write_file(nb_ctx *ctx, const char *path, const uint8_t *buf, size_t bytes);
int nb_export_onnx(nb_model *m, const nb_qweights *q, const nb_export_opts *o, const char *path, nb_export_report *r);

#endif
