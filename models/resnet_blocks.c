/* Basic and bottleneck residual blocks. */
#include "models/resnet_blocks.h"

#include <stdio.h>
#include <string.h>

int nb_res_block_init(nb_res_block *b, nb_params *ps, const char *name, int in, int planes, int stride, bool bottleneck,
                      bool zero_init) {
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->bottleneck = bottleneck;
    int out = nb_res_block_out(planes, bottleneck);
    char p[96];
#define SUB(x) (snprintf(p, sizeof p, "%s.%s", name, x), p)
    int rc;
    if (bottleneck) {
        rc = nb_conv_layer_init(&b->conv1, ps, SUB("conv1"), in, planes, 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&b->bn1, ps, SUB("bn1"), planes) ||
             nb_conv_layer_init(&b->conv2, ps, SUB("conv2"), planes, planes, 3, stride, 1, 1, false) ||
             nb_bn_layer_init(&b->bn2, ps, SUB("bn2"), planes) ||
             nb_conv_layer_init(&b->conv3, ps, SUB("conv3"), planes, out, 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&b->bn3, ps, SUB("bn3"), out);
    } else {
        rc = nb_conv_layer_init(&b->conv1, ps, SUB("conv1"), in, planes, 3, stride, 1, 1, false) ||
             nb_bn_layer_init(&b->bn1, ps, SUB("bn1"), planes) ||
             nb_conv_layer_init(&b->conv2, ps, SUB("conv2"), planes, planes, 3, 1, 1, 1, false) ||
             nb_bn_layer_init(&b->bn2, ps, SUB("bn2"), planes);
    }
    if (!rc && (stride != 1 || in != out)) {
        b->has_down = true;
        rc = nb_conv_layer_init(&b->down_conv, ps, SUB("downsample.0"), in, out, 1, stride, 0, 1, false) ||
             nb_bn_layer_init(&b->down_bn, ps, SUB("downsample.1"), out);
    }
#undef SUB
    if (!rc && zero_init) rc = nb_fill(bottleneck ? b->bn3.weight : b->bn2.weight, 0.0);
    return rc ? -1 : 0;
}

nb_tensor *nb_res_block_fwd(nb_ctx *ctx, nb_res_block *b, nb_tensor *x, bool training) {
    nb_tensor *h = nb_bn_layer_fwd(ctx, &b->bn1, nb_conv_layer_fwd(ctx, &b->conv1, x), training, true);
    if (b->bottleneck) {
        h = nb_bn_layer_fwd(ctx, &b->bn2, nb_conv_layer_fwd(ctx, &b->conv2, h), training, true);
        h = nb_bn_layer_fwd(ctx, &b->bn3, nb_conv_layer_fwd(ctx, &b->conv3, h), training, false);
    } else {
        h = nb_bn_layer_fwd(ctx, &b->bn2, nb_conv_layer_fwd(ctx, &b->conv2, h), training, false);
    }
    nb_tensor *sc = x;
    if (b->has_down) sc = nb_bn_layer_fwd(ctx, &b->down_bn, nb_conv_layer_fwd(ctx, &b->down_conv, x), training, false);
    nb_set_scope_name(ctx, b->name);
    return nb_add_relu(h, sc);
}
