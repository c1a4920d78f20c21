/* Layers: a parameter set registered under a torchvision name plus the op call. Each forward sets the
 * context's scope name so that tape records (summaries, export) know which layer ran them. */
#ifndef NB_LAYERS_H
#define NB_LAYERS_H

#include <stdbool.h>

#include "core/ops.h"
#include "layers/params.h"

typedef struct {
    char name[NB_NAME_MAX];
    nb_tensor *weight, *bias; /* bias may be NULL */
    nb_conv_attr attr;
} nb_conv_layer;

typedef struct {
    char name[NB_NAME_MAX];
    nb_tensor *weight, *bias, *running_mean, *running_var, *num_batches_tracked;
    float momentum, eps;
} nb_bn_layer;

typedef struct {
    char name[NB_NAME_MAX];
    nb_tensor *weight, *bias;
} nb_linear_layer;

/* Conv weights get Kaiming-normal (fan_out) as torchvision's ResNets; bias zero. */
int nb_conv_layer_init(nb_conv_layer *l, nb_params *ps, const char *name, int in, int out, int k, int stride,
                       int pad, int groups, bool bias);
nb_tensor *nb_conv_layer_fwd(nb_ctx *ctx, nb_conv_layer *l, nb_tensor *x);

/* weight 1, bias 0, running mean 0, running var 1, num_batches_tracked 0; momentum 0.1, eps 1e-5.
 * relu fuses the ReLU that follows into the same pass. With ctx->bn_frozen a training pass normalises by the
 * running statistics, as evaluation does. */
int nb_bn_layer_init(nb_bn_layer *l, nb_params *ps, const char *name, int channels);
nb_tensor *nb_bn_layer_fwd(nb_ctx *ctx, nb_bn_layer *l, nb_tensor *x, bool training, bool relu);

/* torch.nn.Linear's default: weight and bias U(-1/sqrt(in), 1/sqrt(in)) */
int nb_linear_layer_init(nb_linear_layer *l, nb_params *ps, const char *name, int in, int out, bool bias);
nb_tensor *nb_linear_layer_fwd(nb_ctx *ctx, nb_linear_layer *l, nb_tensor *x);

#endif
