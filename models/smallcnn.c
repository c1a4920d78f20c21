/* The small CNN: conv3x3-BN-ReLU-maxpool2 twice, then a linear classifier on the flattened features.
 * Channels 32 and 64 at width 1.0 (the engine's parity test uses width 0.25: 8 and 16). */
#include <stdlib.h>

#include "core/check.h"
#include "layers/layers.h"
#include "models/model.h"

typedef struct {
    nb_conv_layer conv1, conv2;
    nb_bn_layer bn1, bn2;
    nb_linear_layer fc;
} smallcnn;

static nb_tensor *smallcnn_forward(nb_model *m, nb_tensor *x, bool training) {
    smallcnn *s = m->impl;
    nb_ctx *ctx = m->ctx;
    nb_pool_attr pool = {.kernel = {2, 2}};
    nb_tensor *h = nb_bn_layer_fwd(ctx, &s->bn1, nb_conv_layer_fwd(ctx, &s->conv1, x), training, true);
    nb_set_scope_name(ctx, "pool1");
    h = nb_maxpool2d(h, pool);
    h = nb_bn_layer_fwd(ctx, &s->bn2, nb_conv_layer_fwd(ctx, &s->conv2, h), training, true);
    nb_set_scope_name(ctx, "pool2");
    h = nb_flatten(nb_maxpool2d(h, pool));
    return nb_linear_layer_fwd(ctx, &s->fc, h);
}

nb_model *nb_smallcnn_create(nb_ctx *ctx, const nb_model_spec *spec) {
    NB_REQUIRE(ctx, spec->input_size % 4 == 0, NULL, "smallcnn", "input size %d must be a multiple of 4",
               spec->input_size);
    nb_model *m = nb_model_alloc(ctx, spec, sizeof(smallcnn), smallcnn_forward, NULL);
    smallcnn *s = m->impl;
    int c1 = (int)(32 * spec->width + 0.5f), c2 = (int)(64 * spec->width + 0.5f), side = spec->input_size / 4;
    if (nb_conv_layer_init(&s->conv1, &m->params, "conv1", spec->in_channels, c1, 3, 1, 1, 1, false) ||
        nb_bn_layer_init(&s->bn1, &m->params, "bn1", c1) ||
        nb_conv_layer_init(&s->conv2, &m->params, "conv2", c1, c2, 3, 1, 1, 1, false) ||
        nb_bn_layer_init(&s->bn2, &m->params, "bn2", c2) ||
        nb_linear_layer_init(&s->fc, &m->params, "fc", c2 * side * side, spec->num_classes, true)) {
        nb_model_free(m);
        return NULL;
    }
    return m;
}
