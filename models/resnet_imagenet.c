/* torchvision's ImageNet ResNets: a 7x7/2 stem with 3x3/2 max pooling, four stages of 64, 128, 256 and 512
 * planes (basic blocks for ResNet-18/34, bottlenecks with expansion 4 for ResNet-50/101/152, the stride on
 * the 3x3 convolution), global average pooling and a linear classifier. Parameter names, shapes and
 * layouts are those of torchvision.models.resnetNN().state_dict(). */
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

static nb_tensor *resnet_imagenet_forward(nb_model *m, nb_tensor *x, bool training) {
    resnet *r = m->impl;
    nb_ctx *ctx = m->ctx;
    nb_tensor *h = nb_bn_layer_fwd(ctx, &r->bn1, nb_conv_layer_fwd(ctx, &r->conv1, x), training, true);
    nb_set_scope_name(ctx, "maxpool");
    h = nb_maxpool2d(h, (nb_pool_attr){.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}});
    for (int i = 0; i < r->n_blocks; i++) h = nb_res_block_fwd(ctx, &r->blocks[i], h, training);
    nb_set_scope_name(ctx, "avgpool");
    h = nb_flatten(nb_global_avgpool(h));
    return nb_linear_layer_fwd(ctx, &r->fc, h);
}

static void resnet_imagenet_destroy(nb_model *m) { free(((resnet *)m->impl)->blocks); }

bool nb_resnet_imagenet_depth(int depth) {
    return depth == 18 || depth == 34 || depth == 50 || depth == 101 || depth == 152;
}

nb_model *nb_resnet_imagenet_create(nb_ctx *ctx, const nb_model_spec *spec, int depth) {
    static const int layers[5][4] = {{2, 2, 2, 2}, {3, 4, 6, 3}, {3, 4, 6, 3}, {3, 4, 23, 3}, {3, 8, 36, 3}};
    int which = depth == 18 ? 0 : depth == 34 ? 1 : depth == 50 ? 2 : depth == 101 ? 3 : 4;
    bool bottleneck = depth >= 50;
    nb_model *m = nb_model_alloc(ctx, spec, sizeof(resnet), resnet_imagenet_forward, resnet_imagenet_destroy);
    resnet *r = m->impl;
    for (int s = 0; s < 4; s++) r->n_blocks += layers[which][s];
    r->blocks = nb_xcalloc((size_t)r->n_blocks, sizeof *r->blocks);
    int stem = (int)(64 * spec->width + 0.5f);
    int rc = nb_conv_layer_init(&r->conv1, &m->params, "conv1", spec->in_channels, stem, 7, 2, 3, 1, false) ||
             nb_bn_layer_init(&r->bn1, &m->params, "bn1", stem);
    int in = stem, k = 0;
    for (int s = 0; s < 4 && !rc; s++) {
        int planes = (int)((64 << s) * spec->width + 0.5f);
        for (int b = 0; b < layers[which][s] && !rc; b++, k++) {
            char name[32];
            snprintf(name, sizeof name, "layer%d.%d", s + 1, b);
            rc = nb_res_block_init(&r->blocks[k], &m->params, name, in, planes, b == 0 && s > 0 ? 2 : 1, bottleneck, spec->zero_init_residual);
            in = nb_res_block_out(planes, bottleneck);
        }
    }
    if (!rc) rc = nb_linear_layer_init(&r->fc, &m->params, "fc", in, spec->num_classes, true);
    if (rc) {
        nb_model_free(m);
        return NULL;
    }
    return m;
}
