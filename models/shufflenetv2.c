/* torchvision's ShuffleNetV2 (Ma et al. 2018) at 0.5x, 1.0x, 1.5x and 2.0x: a 3x3/2 stem and 3x3/2 max
 * pooling, three stages of shuffle units (4, 8 and 4 units, the first of each with stride 2), a 1x1
 * convolution to 1024 (2048 at 2.0x) channels, global average pooling and a linear classifier. A unit of
 * stride 1 splits its input channels in two, passes one half through and the other through 1x1 - 3x3
 * depthwise - 1x1; a unit of stride 2 feeds its whole input to two such branches (the first: 3x3 depthwise -
 * 1x1). The halves are concatenated and their channels shuffled in two groups. Parameter names, shapes and
 * layouts are those of torchvision.models.shufflenet_v2_x*().state_dict(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "layers/layers.h"
#include "models/model.h"

typedef struct {
    char name[48];
    int stride;
    /* branch1 (stride 2 only): depthwise 3x3 + BN, 1x1 + BN + ReLU */
    nb_conv_layer b1_dw, b1_pw;
    nb_bn_layer b1_bn_dw, b1_bn_pw;
    /* branch2: 1x1 + BN + ReLU, depthwise 3x3 + BN, 1x1 + BN + ReLU */
    nb_conv_layer b2_pw1, b2_dw, b2_pw2;
    nb_bn_layer b2_bn1, b2_bn_dw, b2_bn2;
} shuffle_unit;

typedef struct {
    nb_conv_layer conv1, conv5;
    nb_bn_layer bn1, bn5;
    shuffle_unit *units;
    int n_units;
    nb_linear_layer fc;
} shufflenet;

static int unit_init(shuffle_unit *u, nb_params *ps, const char *name, int in, int out, int stride) {
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    u->stride = stride;
    int bf = out / 2;
    char p[96];
#define SUB(x) (snprintf(p, sizeof p, "%s.%s", name, x), p)
    int rc = 0;
    if (stride > 1)
        rc = nb_conv_layer_init(&u->b1_dw, ps, SUB("branch1.0"), in, in, 3, stride, 1, in, false) ||
             nb_bn_layer_init(&u->b1_bn_dw, ps, SUB("branch1.1"), in) ||
             nb_conv_layer_init(&u->b1_pw, ps, SUB("branch1.2"), in, bf, 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&u->b1_bn_pw, ps, SUB("branch1.3"), bf);
    if (!rc)
        rc = nb_conv_layer_init(&u->b2_pw1, ps, SUB("branch2.0"), stride > 1 ? in : bf, bf, 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&u->b2_bn1, ps, SUB("branch2.1"), bf) ||
             nb_conv_layer_init(&u->b2_dw, ps, SUB("branch2.3"), bf, bf, 3, stride, 1, bf, false) ||
             nb_bn_layer_init(&u->b2_bn_dw, ps, SUB("branch2.4"), bf) ||
             nb_conv_layer_init(&u->b2_pw2, ps, SUB("branch2.5"), bf, bf, 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&u->b2_bn2, ps, SUB("branch2.6"), bf);
#undef SUB
    return rc ? -1 : 0;
}

static nb_tensor *unit_fwd(nb_ctx *ctx, shuffle_unit *u, nb_tensor *x, bool training) {
    if (!x) return NULL;
    nb_tensor *keep, *h;
    if (u->stride == 1) {
        int64_t half = x->shape[1] / 2;
        nb_set_scope_name(ctx, u->name);
        keep = nb_slice(x, 1, 0, half);
        h = nb_slice(x, 1, half, half);
    } else {
        keep = nb_bn_layer_fwd(ctx, &u->b1_bn_dw, nb_conv_layer_fwd(ctx, &u->b1_dw, x), training, false);
        keep = nb_bn_layer_fwd(ctx, &u->b1_bn_pw, nb_conv_layer_fwd(ctx, &u->b1_pw, keep), training, true);
        h = x;
    }
    h = nb_bn_layer_fwd(ctx, &u->b2_bn1, nb_conv_layer_fwd(ctx, &u->b2_pw1, h), training, true);
    h = nb_bn_layer_fwd(ctx, &u->b2_bn_dw, nb_conv_layer_fwd(ctx, &u->b2_dw, h), training, false);
    h = nb_bn_layer_fwd(ctx, &u->b2_bn2, nb_conv_layer_fwd(ctx, &u->b2_pw2, h), training, true);
    if (!keep || !h) return NULL;
    nb_set_scope_name(ctx, u->name);
    nb_tensor *parts[2] = {keep, h};
    return nb_concat_shuffle(parts, 2);
}

static nb_tensor *shufflenetv2_forward(nb_model *m, nb_tensor *x, bool training) {
    shufflenet *s = m->impl;
    nb_ctx *ctx = m->ctx;
    nb_tensor *h = nb_bn_layer_fwd(ctx, &s->bn1, nb_conv_layer_fwd(ctx, &s->conv1, x), training, true);
    nb_set_scope_name(ctx, "maxpool");
    h = nb_maxpool2d(h, (nb_pool_attr){.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}});
    for (int i = 0; i < s->n_units; i++) h = unit_fwd(ctx, &s->units[i], h, training);
    h = nb_bn_layer_fwd(ctx, &s->bn5, nb_conv_layer_fwd(ctx, &s->conv5, h), training, true);
    nb_set_scope_name(ctx, "avgpool");
    h = nb_flatten(nb_global_avgpool(h));
    return nb_linear_layer_fwd(ctx, &s->fc, h);
}

static void shufflenetv2_destroy(nb_model *m) { free(((shufflenet *)m->impl)->units); }

/* torchvision's stage widths: stem, three stages, final 1x1 */
static const struct {
    const char *suffix;
    int ch[5];
} widths[] = {{"x0_5", {24, 48, 96, 192, 1024}},
              {"x1_0", {24, 116, 232, 464, 1024}},
              {"x1_5", {24, 176, 352, 704, 1024}},
              {"x2_0", {24, 244, 488, 976, 2048}}};

bool nb_shufflenetv2_arch(const char *arch) {
    if (strncmp(arch, "shufflenet_v2_", 14)) return false;
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++)
        if (!strcmp(arch + 14, widths[i].suffix)) return true;
    return false;
}

nb_model *nb_shufflenetv2_create(nb_ctx *ctx, const nb_model_spec *spec) {
    const int *ch = NULL;
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++)
        if (!strcmp(spec->arch + 14, widths[i].suffix)) ch = widths[i].ch;
    NB_ASSERT(ch);
    static const int repeats[3] = {4, 8, 4};
    nb_model *m = nb_model_alloc(ctx, spec, sizeof(shufflenet), shufflenetv2_forward, shufflenetv2_destroy);
    shufflenet *s = m->impl;
    s->n_units = repeats[0] + repeats[1] + repeats[2];
    s->units = nb_xcalloc((size_t)s->n_units, sizeof *s->units);
    int rc = nb_conv_layer_init(&s->conv1, &m->params, "conv1.0", spec->in_channels, ch[0], 3, 2, 1, 1, false) ||
             nb_bn_layer_init(&s->bn1, &m->params, "conv1.1", ch[0]);
    int in = ch[0], k = 0;
    for (int st = 0; st < 3 && !rc; st++) {
        for (int r = 0; r < repeats[st] && !rc; r++, k++) {
            char name[32];
            snprintf(name, sizeof name, "stage%d.%d", st + 2, r);
            rc = unit_init(&s->units[k], &m->params, name, in, ch[st + 1], r == 0 ? 2 : 1);
            in = ch[st + 1];
        }
    }
    if (!rc)
        rc = nb_conv_layer_init(&s->conv5, &m->params, "conv5.0", in, ch[4], 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&s->bn5, &m->params, "conv5.1", ch[4]) ||
             nb_linear_layer_init(&s->fc, &m->params, "fc", ch[4], spec->num_classes, true);
    if (rc) {
        nb_model_free(m);
        return NULL;
    }
    return m;
}
