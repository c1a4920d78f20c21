/* torchvision's MobileNetV2 (Sandler et al. 2018): a 3x3/2 stem of 32 channels, seventeen inverted residual
 * blocks (1x1 expansion by t, 3x3 depthwise, linear 1x1 projection; a residual sum where stride is 1 and the
 * widths agree) in the (t, c, n, s) settings of the paper, a 1x1 convolution to 1280 channels, global
 * average pooling, dropout 0.2 and a linear classifier. ReLU6 throughout. model.width is the width
 * multiplier, rounded to multiples of 8 as torchvision does. Parameter names and layouts are those of
 * torchvision.models.mobilenet_v2().state_dict() (features.0 ... features.18, classifier.1). */
#include <stdio.h>
#include <stdlib.h>

#include "core/check.h"
#include "layers/layers.h"
#include "models/mobilenetv2.h"
#include "models/model.h"

typedef struct {
    nb_mbv2_features f;
    nb_linear_layer fc;
} mobilenetv2;

/* torchvision's _make_divisible: round to the nearest multiple of 8, never more than 10% below v */
int nb_make_divisible(float v, int divisor) {
    int r = (int)(v + divisor / 2.0f) / divisor * divisor;
    if (r < divisor) r = divisor;
    if ((float)r < 0.9f * v) r += divisor;
    return r;
}

static nb_tensor *conv_bn_relu6(nb_ctx *ctx, nb_conv_layer *c, nb_bn_layer *b, nb_tensor *x, bool training) {
    nb_tensor *h = nb_bn_layer_fwd(ctx, b, nb_conv_layer_fwd(ctx, c, x), training, false);
    return nb_relu6(h);
}

static nb_tensor *block_fwd(nb_ctx *ctx, nb_mbv2_block *b, nb_tensor *x, bool training, nb_tensor **expansion) {
    nb_tensor *h = x;
    if (b->expand) h = conv_bn_relu6(ctx, &b->pw, &b->bn_pw, h, training);
    if (expansion) *expansion = h;
    h = conv_bn_relu6(ctx, &b->dw, &b->bn_dw, h, training);
    h = nb_bn_layer_fwd(ctx, &b->bn_proj, nb_conv_layer_fwd(ctx, &b->proj, h), training, false);
    if (!b->residual) return h;
    nb_set_scope_name(ctx, b->name);
    return nb_add(x, h);
}

nb_tensor *nb_mbv2_features_fwd(nb_ctx *ctx, nb_mbv2_features *f, nb_tensor *x, bool training, int tap_block,
                                 nb_tensor **tap) {
    nb_tensor *h = conv_bn_relu6(ctx, &f->stem, &f->bn_stem, x, training);
    for (int i = 0; i < f->n_blocks; i++) h = block_fwd(ctx, &f->blocks[i], h, training, i + 1 == tap_block ? tap : NULL);
    return conv_bn_relu6(ctx, &f->head, &f->bn_head, h, training);
}

static nb_tensor *mobilenetv2_forward(nb_model *m, nb_tensor *x, bool training) {
    mobilenetv2 *s = m->impl;
    nb_ctx *ctx = m->ctx;
    nb_tensor *h = nb_mbv2_features_fwd(ctx, &s->f, x, training, 0, NULL);
    nb_set_scope_name(ctx, "avgpool");
    h = nb_dropout(nb_flatten(nb_global_avgpool(h)), 0.2f, training);
    return nb_linear_layer_fwd(ctx, &s->fc, h);
}

static int block_init(nb_mbv2_block *b, nb_params *ps, int index, int in, int out, int stride, int t) {
    snprintf(b->name, sizeof b->name, "features.%d", index);
    int hidden = (int)(in * t + 0.5f);
    b->expand = t != 1;
    b->residual = stride == 1 && in == out;
    char p[64];
    int k = 0, rc = 0;
#define SUB(x) (snprintf(p, sizeof p, "%s.conv.%s", b->name, x), p)
    if (b->expand) {
        rc = nb_conv_layer_init(&b->pw, ps, SUB("0.0"), in, hidden, 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&b->bn_pw, ps, SUB("0.1"), hidden);
        k = 1;
    }
    char dw[16], dwbn[16], proj[16], projbn[16];
    snprintf(dw, sizeof dw, "%d.0", k);
    snprintf(dwbn, sizeof dwbn, "%d.1", k);
    snprintf(proj, sizeof proj, "%d", k + 1);
    snprintf(projbn, sizeof projbn, "%d", k + 2);
    if (!rc)
        rc = nb_conv_layer_init(&b->dw, ps, SUB(dw), hidden, hidden, 3, stride, 1, hidden, false) ||
             nb_bn_layer_init(&b->bn_dw, ps, SUB(dwbn), hidden) ||
             nb_conv_layer_init(&b->proj, ps, SUB(proj), hidden, out, 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&b->bn_proj, ps, SUB(projbn), out);
#undef SUB
    return rc ? -1 : 0;
}

int nb_mbv2_features_init(nb_mbv2_features *f, nb_params *ps, int in_channels, float w) {
    static const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                       {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int in = nb_make_divisible(32 * w, 8);
    f->out_channels = nb_make_divisible(1280 * (w > 1.0f ? w : 1.0f), 8);
    int rc = nb_conv_layer_init(&f->stem, ps, "features.0.0", in_channels, in, 3, 2, 1, 1, false) ||
             nb_bn_layer_init(&f->bn_stem, ps, "features.0.1", in);
    for (int g = 0; g < 7 && !rc; g++) {
        int out = nb_make_divisible(settings[g][1] * w, 8);
        for (int r = 0; r < settings[g][2] && !rc; r++, f->n_blocks++) {
            nb_mbv2_block *b = &f->blocks[f->n_blocks];
            rc = block_init(b, ps, f->n_blocks + 1, in, out, r == 0 ? settings[g][3] : 1, settings[g][0]);
            f->expansion_channels[f->n_blocks] = b->expand ? b->pw.weight->shape[0] : in;
            in = out;
        }
    }
    if (!rc)
        rc = nb_conv_layer_init(&f->head, ps, "features.18.0", in, f->out_channels, 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&f->bn_head, ps, "features.18.1", f->out_channels);
    return rc ? -1 : 0;
}

nb_model *nb_mobilenetv2_create(nb_ctx *ctx, const nb_model_spec *spec) {
    nb_model *m = nb_model_alloc(ctx, spec, sizeof(mobilenetv2), mobilenetv2_forward, NULL);
    mobilenetv2 *s = m->impl;
    int rc = nb_mbv2_features_init(&s->f, &m->params, spec->in_channels, spec->width) ||
             nb_linear_layer_init(&s->fc, &m->params, "classifier.1", s->f.out_channels, spec->num_classes, true);
    if (rc) {
        nb_model_free(m);
        return NULL;
    }
    return m;
}
