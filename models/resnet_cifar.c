/* CIFAR-style ResNets (He et al. 2016, section 4.2): a 3x3 stem, three stages of n basic blocks with 16, 32
 * and 64 channels (depth = 6n + 2), global average pooling and a linear classifier. Shortcuts that change
 * shape use a 1x1 convolution + BN ("option B"), named downsample.0/.1 as in torchvision's ResNets, so
 * the state_dict names read conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0, ..., fc. */
#include <stdio.h>
#include <stdlib.h>

#include "core/check.h"
#include "layers/layers.h"
#include "models/model.h"
#include "models/resnet_blocks.h"

typedef struct {
    nb_conv_layer conv1;
    nb_bn_layer bn1;
    nb_res_block *blocks;
    int n_blocks;
    nb_linear_layer fc;
} resnet;

static nb_tensor *resnet_cifar_forward(nb_model *m, nb_tensor *x, bool training) {
    resnet *r = m->impl;
    nb_ctx *ctx = m->ctx;
    nb_tensor *h = nb_bn_layer_fwd(ctx, &r->bn1, nb_conv_layer_fwd(ctx, &r->conv1, x), training, true);
    for (int i = 0; i < r->n_blocks; i++) h = nb_res_block_fwd(ctx, &r->blocks[i], h, training);
    nb_set_scope_name(ctx, "avgpool");
    h = nb_flatten(nb_global_avgpool(h));
    return nb_linear_layer_fwd(ctx, &r->fc, h);
}

static void resnet_cifar_destroy(nb_model *m) {
    resnet *r = m->impl;
    free(r->blocks);
}

nb_model *nb_resnet_cifar_create(nb_ctx *ctx, const nb_model_spec *spec, int depth) {
    NB_REQUIRE(ctx, (depth - 2) % 6 == 0, NULL, "resnet", "depth %d is not 6n+2", depth);
    int n = (depth - 2) / 6;
    nb_model *m = nb_model_alloc(ctx, spec, sizeof(resnet), resnet_cifar_forward, resnet_cifar_destroy);
    resnet *r = m->impl;
    r->n_blocks = 3 * n;
    r->blocks = nb_xcalloc((size_t)r->n_blocks, sizeof *r->blocks);
    int widths[3];
    for (int s = 0; s < 3; s++) widths[s] = (int)((16 << s) * spec->width + 0.5f);
    int rc = nb_conv_layer_init(&r->conv1, &m->params, "conv1", spec->in_channels, widths[0], 3, 1, 1, 1, false) ||
             nb_bn_layer_init(&r->bn1, &m->params, "bn1", widths[0]);
    int in = widths[0];
    for (int s = 0; s < 3 && !rc; s++) {
        for (int b = 0; b < n && !rc; b++) {
            char name[32];
            snprintf(name, sizeof name, "layer%d.%d", s + 1, b);
            rc = nb_res_block_init(&r->blocks[s * n + b], &m->params, name, in, widths[s], b == 0 && s > 0 ? 2 : 1, false, spec->zero_init_residual);
            in = widths[s];
        }
    }
    if (!rc) rc = nb_linear_layer_init(&r->fc, &m->params, "fc", in, spec->num_classes, true);
    if (rc) {
        nb_model_free(m);
        return NULL;
    }
    return m;
}
