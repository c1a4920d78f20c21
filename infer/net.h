/* nibble's own inference: a full-integer network (a checkpoint with quantizers: quantization-aware training or
 * bin/quantize with quantize.activations) run on integers, as the engines that deploy it run it, or a float
 * network run by the same steps in float (so that float and integer are measured on one engine).
 * The model's forward pass is recorded and lowered to the deploy graph exactly as bin/export lowers it
 * (deploy/graph.h: batch norms folded, pruned channels removed, weights as their integer codes, activation
 * quantizers as fake_quant nodes), and compiled into steps:
 *   - every convolution and linear layer is a oneDNN int8 convolution (u8 or s8 activations with their zero
 *     point, s8 weights, s32 accumulation and int32 bias, one output scale per channel), its ReLU or ReLU6
 *     a post-op, requantized straight to the grid of the quantizer after it (or to float when none follows);
 *   - max pooling is oneDNN's on the integers (input and output share a grid);
 *   - adds, global average pooling, channel concatenations and slices, nearest upsampling (a gather of pixels)
 *     and concatenations along a 3-D value's last axis (the detectors' outputs) requantize in a few lines of
 *     their own (infer/int8_kernels.h), the float input is quantized and the output dequantized there too.
 * Activations live as bytes in NHWC, the layout oneDNN's int8 kernels (VNNI, AMX) read; a reshape of values
 * with a spatial extent reorders them to NCHW first. An op with no step here is an error naming the layer,
 * never a silent float fallback. */
#ifndef NB_INFER_NET_H
#define NB_INFER_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "compress/qsim.h"
#include "deploy/qweights.h"
#include "models/model.h"

typedef struct nb_infer_net nb_infer_net;

/* Compile m (its parameters loaded) running the simulation q (nb_qsim_for_checkpoint) into integer steps; w:
 * the checkpoint's compression records (codebook weights beside qat), or NULL. NULL after reporting. */
nb_infer_net *nb_infer_net_new(nb_model *m, nb_qsim *q, const nb_qweights *w);
/* Compile m (no quantizers on it) into float steps: oneDNN float convolutions on NHWC floats, batch norms
 * folded, ReLU and ReLU6 fused, pruned channels removed; w: compression records whose codes stand for the
 * weights (their float values used), or NULL. NULL after reporting. */
nb_infer_net *nb_infer_net_new_float(nb_model *m, const nb_qweights *w);
/* Output values per image */
int64_t nb_infer_net_outputs(const nb_infer_net *net);
/* n images x ([n, c, h, w] floats, as the model takes them) to y ([n, outputs] floats). 0, or -1 after
 * reporting. */
int nb_infer_net_run(nb_infer_net *net, const float *x, int64_t n, float *y);
/* A model whose forward pass (evaluation only) runs net, which m compiled: what a task evaluates to score the
 * network as it deploys (top-1, a detector's mAP). Free it with nb_model_free before net. */
nb_model *nb_infer_model(nb_model *m, nb_infer_net *net);
/* Time every step of the runs from here (on) and report the mean in nb_infer_net_describe, or stop; the times
 * start from zero */
void nb_infer_net_profile(nb_infer_net *net, bool on);
/* The steps in order, one line each (what ran in integers and how, and its mean time when profiled) */
void nb_infer_net_describe(const nb_infer_net *net, char *buf, size_t len);
void nb_infer_net_free(nb_infer_net *net);

#endif
