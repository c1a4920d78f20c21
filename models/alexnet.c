/* torchvision's AlexNet (the one-tower variant of Krizhevsky 2014, "one weird trick"): five convolutions with
 * biases (64, 192, 384, 256, 256 channels; 11x11/4, 5x5, then 3x3) and ReLUs, 3x3/2 max pooling after the
 * first, second and fifth, adaptive average pooling to 6x6, and a classifier of dropout, 4096, ReLU,
 * dropout, 4096, ReLU, num_classes. Parameter names and layouts are those of
 * torchvision.models.alexnet().state_dict() (features.0 ... features.10, classifier.1/4/6). */
#include <stdio.h>
#include <stdlib.h>

#include "core/check.h"
#include "layers/layers.h"
#include "models/model.h"

typedef struct {
    nb_conv_layer conv[5];
    nb_linear_layer fc[3];
} alexnet;

static nb_tensor *alexnet_forward(nb_model *m, nb_tensor *x, bool training) {
    alexnet *a = m->impl;
    nb_ctx *ctx = m->ctx;
    nb_pool_attr pool = {.kernel = {3, 3}, .stride = {2, 2}};
    nb_tensor *h = x;
    for (int i = 0; i < 5; i++) {
        h = nb_relu(nb_conv_layer_fwd(ctx, &a->conv[i], h));
        if (i == 0 || i == 1 || i == 4) h = nb_maxpool2d(h, pool);
    }
    nb_set_scope_name(ctx, "avgpool");
    h = nb_flatten(nb_adaptive_avgpool(h, 6, 6));
    for (int i = 0; i < 3; i++) {
        if (i < 2) h = nb_dropout(h, 0.5f, training);
        h = nb_linear_layer_fwd(ctx, &a->fc[i], h);
        if (i < 2) h = nb_relu(h);
    }
    return h;
}

nb_model *nb_alexnet_create(nb_ctx *ctx, const nb_model_spec *spec) {
    /* the smallest input the three poolings leave a pixel of: 11x11/4 and two 3x3/2 before the last */
    NB_REQUIRE(ctx, spec->input_size >= 63, NULL, "alexnet", "input size %d is below AlexNet's minimum of 63",
               spec->input_size);
    static const int ch[5] = {64, 192, 384, 256, 256}, k[5] = {11, 5, 3, 3, 3}, stride[5] = {4, 1, 1, 1, 1},
                     pad[5] = {2, 2, 1, 1, 1}, index[5] = {0, 3, 6, 8, 10};
    nb_model *m = nb_model_alloc(ctx, spec, sizeof(alexnet), alexnet_forward, NULL);
    alexnet *a = m->impl;
    int rc = 0, in = spec->in_channels;
    for (int i = 0; i < 5 && !rc; i++) {
        char name[32];
        snprintf(name, sizeof name, "features.%d", index[i]);
        int out = (int)(ch[i] * spec->width + 0.5f);
        rc = nb_conv_layer_init(&a->conv[i], &m->params, name, in, out, k[i], stride[i], pad[i], 1, true);
        in = out;
    }
    int dims[4] = {in * 36, (int)(4096 * spec->width + 0.5f), (int)(4096 * spec->width + 0.5f), spec->num_classes};
    static const char *const names[3] = {"classifier.1", "classifier.4", "classifier.6"};
    for (int i = 0; i < 3 && !rc; i++) rc = nb_linear_layer_init(&a->fc[i], &m->params, names[i], dims[i], dims[i + 1], true);
    if (rc) {
        nb_model_free(m);
        return NULL;
    }
    return m;
}
