/* Convolution, batch-norm and linear layers over the ops. */
#include "layers/layers.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/arith.h"

int nb_conv_layer_init(nb_conv_layer *l, nb_params *ps, const char *name, int in, int out, int k, int stride,
                       int pad, int groups, bool bias) {
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->weight = nb_params_add(ps, name, "weight", NB_PARAM, NB_F32, 4, (int64_t[]){out, in / groups, k, k});
    if (!l->weight || nb_init_kaiming_normal_fan_out(ps, l->weight)) return -1;
    if (bias && !(l->bias = nb_params_add(ps, name, "bias", NB_PARAM, NB_F32, 1, (int64_t[]){out}))) return -1;
    l->attr = (nb_conv_attr){.stride = {stride, stride}, .pad = {pad, pad}, .groups = groups};
    return 0;
}

nb_tensor *nb_conv_layer_fwd(nb_ctx *ctx, nb_conv_layer *l, nb_tensor *x) {
    nb_set_scope_name(ctx, l->name);
    return nb_conv2d(x, l->weight, l->bias, l->attr);
}

int nb_bn_layer_init(nb_bn_layer *l, nb_params *ps, const char *name, int channels) {
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    int64_t c = channels;
    l->weight = nb_params_add(ps, name, "weight", NB_PARAM, NB_F32, 1, &c);
    l->bias = nb_params_add(ps, name, "bias", NB_PARAM, NB_F32, 1, &c);
    l->running_mean = nb_params_add(ps, name, "running_mean", NB_BUFFER, NB_F32, 1, &c);
    l->running_var = nb_params_add(ps, name, "running_var", NB_BUFFER, NB_F32, 1, &c);
    l->num_batches_tracked = nb_params_add(ps, name, "num_batches_tracked", NB_BUFFER, NB_I64, 0, NULL);
    if (!l->weight || !l->bias || !l->running_mean || !l->running_var || !l->num_batches_tracked) return -1;
    l->momentum = 0.1f;
    l->eps = 1e-5f;
    if (nb_fill(l->weight, 1.0) || nb_fill(l->running_var, 1.0)) return -1;
    return 0;
}

nb_tensor *nb_bn_layer_fwd(nb_ctx *ctx, nb_bn_layer *l, nb_tensor *x, bool training, bool relu) {
    nb_set_scope_name(ctx, l->name);
    training = training && !ctx->bn_frozen;
    nb_tensor *y = nb_batchnorm2d(x, l->weight, l->bias, l->running_mean, l->running_var,
                                  (nb_bn_attr){.momentum = l->momentum, .eps = l->eps, .training = training, .relu = relu});
    if (y && training) {
        /* torchvision counts batches seen; kept for state_dict compatibility, counted where the tensor lives
         * (a read-modify-write through the host would stall a GPU at every layer) */
        if (nb_counter_add(l->num_batches_tracked, 1) != 0) return NULL;
    }
    return y;
}

int nb_linear_layer_init(nb_linear_layer *l, nb_params *ps, const char *name, int in, int out, bool bias) {
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    float bound = 1.0f / sqrtf((float)in);
    l->weight = nb_params_add(ps, name, "weight", NB_PARAM, NB_F32, 2, (int64_t[]){out, in});
    if (!l->weight || nb_init_uniform(ps, l->weight, bound)) return -1;
    if (bias) {
        l->bias = nb_params_add(ps, name, "bias", NB_PARAM, NB_F32, 1, (int64_t[]){out});
        if (!l->bias || nb_init_uniform(ps, l->bias, bound)) return -1;
    }
    return 0;
}

nb_tensor *nb_linear_layer_fwd(nb_ctx *ctx, nb_linear_layer *l, nb_tensor *x) {
    nb_set_scope_name(ctx, l->name);
    return nb_linear(x, l->weight, l->bias);
}
