/* nibble's own integer inference: a full-integer network (a checkpoint with quantizers: quantization-aware
 * training or bin/quantize with quantize.activations) run on integers, as the engines that deploy it run it.
 * The model's forward pass is recorded and lowered to the deploy graph exactly as bin/export lowers it
 * (deploy/graph.h: batch norms folded, pruned channels removed, weights as their integer codes, activation
 * quantizers as fake_quant nodes), and compiled into steps:
 *   - every convolution and linear layer is a oneDNN int8 convolution (u8 or s8 activations with their zero
 *     point, s8 weights, s32 accumulation and int32 bias, one output scale per channel), its ReLU or ReLU6
 *     a post-op, requantized straight to the grid of the quantizer after it (or to float when none follows);
 *   - max pooling is oneDNN's on the integers (input and output share a grid);
 *   - adds and global average pooling requantize in a few lines of their own (infer/int8_kernels.h), the
 *     float input is quantized and the output dequantized there too.
 * Activations live as bytes in NHWC, the layout oneDNN's int8 kernels (VNNI, AMX) read. An op with no integer
 * step here is an error naming the layer, never a silent float fallback. */
#ifndef NB_INT8_NET_H
#define NB_INT8_NET_H

#include <stdint.h>

#include "compress/qsim.h"
#include "deploy/qweights.h"
#include "models/model.h"

typedef struct nb_int8_net nb_int8_net;

/* Compile m (its parameters loaded) running the simulation q (nb_qsim_for_checkpoint) into integer steps; w:
 * the checkpoint's compression records (codebook weights beside qat), or NULL. NULL after reporting. */
nb_int8_net *nb_int8_net_new(nb_model *m, nb_qsim *q, const nb_qweights *w);
/* Output values per image */
int64_t nb_int8_net_outputs(const nb_int8_net *net);
/* n images x ([n, c, h, w] floats, as the model takes them) to y ([n, outputs] floats). 0, or -1 after
 * reporting. */
int nb_int8_net_run(nb_int8_net *net, const float *x, int64_t n, float *y);
/* The steps in order, one line each (what ran in integers and how), for reports */
void nb_int8_net_describe(const nb_int8_net *net, char *buf, size_t len);
void nb_int8_net_free(nb_int8_net *net);

#endif
