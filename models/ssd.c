/* Single-shot detectors on a MobileNetV2 or ResNet-18 backbone: SSD (Liu et al. 2016), SSDLite (Sandler et al.
 * 2018) and LRSSD, nibble's reading of the light-refine SSD.
 *
 * Feature maps (all three): on MobileNetV2 the output of block features.14's 1x1 expansion (stride 16) and
 * the backbone's last layer (stride 32), as SSDLite attaches them; on ResNet-18 the outputs of layer3 and
 * layer4 (strides 16 and 32). Then extra blocks that halve the resolution until it
 * reaches 1x1 (at most 6 maps in all): a 1x1 reduction to half the block's width, then a 3x3 stride-2
 * convolution (SSD) or a 3x3 stride-2 depthwise + 1x1 pair (SSDLite, LRSSD) to 512, 256, 256, 128 channels
 * (times model.width). BN and ReLU6 after every convolution but the predictors.
 *
 * Predictors, per map k with A default boxes per location and C classes (background included):
 *   SSD      a 3x3 convolution to 4A box offsets and one to CA class scores, each map its own;
 *   SSDLite  the same two with each 3x3 convolution made a 3x3 depthwise (+ BN, ReLU6) and a 1x1;
 *   LRSSD    one prediction layer shared by every scale, and box regression that cascades from coarse to
 *            fine:
 *              F_k   = ReLU6(BN(1x1 lateral_k(map_k)))             every map to the same width D
 *              O_k   = 1x1 shared_pw(ReLU6(BN_k(3x3 shared_dw(F_k))))   (4 + C)A outputs, weights shared,
 *                                                                  a batch norm per scale (their statistics
 *                                                                  differ from scale to scale)
 *                      or, with detect.predictor = dense, O_k = 3x3 shared_conv(F_k): SSD's predictor, one
 *                      for all scales
 *              box_k = O_k[box] + cascade(up(box_{k+1}))           k from the second-coarsest map down
 *            where up() is nearest upsampling of the next coarser map's box offsets to map k's size and
 *            cascade a 1x1 convolution (4A -> 4A, shared, starting at zero, so that training begins from the
 *            plain shared head). A finer map's regression is thus a refinement of what the coarser maps
 *            predicted for the same place, the "information cascade" of the description; the class scores are
 *            not cascaded. The head's cost is the laterals plus one small shared predictor run on few
 *            positions, against SSD's 3x3 convolutions on wide maps.
 *
 * Output: [N, 4 + C, P], the 4 box offsets (SSD's encoding, variances 0.1 and 0.2) and the C class scores of
 * each default box along axis 1, boxes ordered as detect/priors.h lays them out. Every head writes output
 * channel j * A + a for value j of box type a, so this is a reshape, not a transpose. The backbone's
 * parameters keep torchvision's names (mobilenet_v2's features.*, resnet18's conv1, bn1, layer1 ... layer4),
 * so a classifier checkpoint can start it (model.init_strict = false). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/check.h"
#include "layers/layers.h"
#include "models/mobilenetv2.h"
#include "models/model.h"
#include "models/resnet_blocks.h"

#define MAX_MAPS 6

typedef enum { HEAD_SSD, HEAD_SSDLITE, HEAD_LRSSD } head_kind;

typedef struct {
    nb_conv_layer reduce, down, down_pw; /* down: 3x3 s2 (dense for SSD, depthwise otherwise) */
    nb_bn_layer bn_reduce, bn_down, bn_pw;
    bool separable;
} extra_block;

typedef struct { /* SSDLite's predictor: 3x3 depthwise + BN + ReLU6, then 1x1 */
    nb_conv_layer dw, pw;
    nb_bn_layer bn;
} separable_pred;

typedef struct { /* ResNet-18's layers up to layer4 */
    nb_conv_layer conv1;
    nb_bn_layer bn1;
    nb_res_block blocks[8];
} resnet18_features;

typedef struct {
    head_kind kind;
    bool resnet;
    nb_mbv2_features f;
    resnet18_features r;
    int n_maps, A, C;
    int map_ch[MAX_MAPS], map_size[MAX_MAPS];
    extra_block extras[MAX_MAPS];
    nb_conv_layer loc[MAX_MAPS], conf[MAX_MAPS]; /* SSD */
    separable_pred sloc[MAX_MAPS], sconf[MAX_MAPS]; /* SSDLite */
    nb_conv_layer lateral[MAX_MAPS], shared_dw, shared_pw, cascade; /* LRSSD; shared_pw is the dense 3x3 when
                                                                       spec.det.dense_predictor (no shared_dw) */
    nb_bn_layer bn_lateral[MAX_MAPS], bn_shared[MAX_MAPS];
    nb_prior_cfg priors;
} ssd;

bool nb_ssd_arch(const char *arch) {
    static const char *const names[] = {"ssd_mobilenet_v2", "ssdlite_mobilenet_v2", "lrssd_mobilenet_v2",
                                        "ssd_resnet18",     "ssdlite_resnet18",     "lrssd_resnet18"};
    for (int i = 0; i < 6; i++)
        if (!strcmp(arch, names[i])) return true;
    return false;
}

/* layer3's output (stride 16) into *tap, layer4's (stride 32) returned */
static nb_tensor *resnet18_fwd(nb_ctx *ctx, resnet18_features *r, nb_tensor *x, bool training, nb_tensor **tap) {
    nb_tensor *h = nb_bn_layer_fwd(ctx, &r->bn1, nb_conv_layer_fwd(ctx, &r->conv1, x), training, true);
    nb_set_scope_name(ctx, "maxpool");
    h = nb_maxpool2d(h, (nb_pool_attr){.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}});
    for (int i = 0; i < 8; i++) {
        h = nb_res_block_fwd(ctx, &r->blocks[i], h, training);
        if (i == 5) *tap = h;
    }
    return h;
}

static int resnet18_init(resnet18_features *r, nb_params *ps, int in_channels, float w, int *c16, int *c32) {
    int stem = (int)(64 * w + 0.5f), in = stem, k = 0;
    int rc = nb_conv_layer_init(&r->conv1, ps, "conv1", in_channels, stem, 7, 2, 3, 1, false) ||
             nb_bn_layer_init(&r->bn1, ps, "bn1", stem);
    for (int s = 0; s < 4 && !rc; s++) {
        int planes = (int)((64 << s) * w + 0.5f);
        for (int b = 0; b < 2 && !rc; b++, k++) {
            char name[32];
            snprintf(name, sizeof name, "layer%d.%d", s + 1, b);
            rc = nb_res_block_init(&r->blocks[k], ps, name, in, planes, b == 0 && s > 0 ? 2 : 1, false, false);
            in = planes;
        }
        if (s == 2) *c16 = in;
    }
    *c32 = in;
    return rc;
}

static nb_tensor *cbr(nb_ctx *ctx, nb_conv_layer *c, nb_bn_layer *b, nb_tensor *x, bool training) {
    return nb_relu6(nb_bn_layer_fwd(ctx, b, nb_conv_layer_fwd(ctx, c, x), training, false));
}

static nb_tensor *extra_fwd(nb_ctx *ctx, extra_block *e, nb_tensor *x, bool training) {
    nb_tensor *h = cbr(ctx, &e->reduce, &e->bn_reduce, x, training);
    h = cbr(ctx, &e->down, &e->bn_down, h, training);
    return e->separable ? cbr(ctx, &e->down_pw, &e->bn_pw, h, training) : h;
}

/* [N, (4 + C)A, H, W] with channels value-major -> [N, 4 + C, A H W] */
static nb_tensor *flatten_map(nb_tensor *o, int D) {
    if (!o) return NULL;
    return nb_reshape(o, 3, (int64_t[]){o->shape[0], D, -1});
}

static nb_tensor *ssd_forward(nb_model *m, nb_tensor *x, bool training) {
    ssd *s = m->impl;
    nb_ctx *ctx = m->ctx;
    nb_tensor *maps[MAX_MAPS] = {NULL}, *tap = NULL;
    maps[1] = s->resnet ? resnet18_fwd(ctx, &s->r, x, training, &tap) : nb_mbv2_features_fwd(ctx, &s->f, x, training, 14, &tap);
    maps[0] = tap;
    for (int k = 2; k < s->n_maps; k++) maps[k] = extra_fwd(ctx, &s->extras[k], maps[k - 1], training);
    int D = 4 + s->C;
    nb_tensor *outs[MAX_MAPS] = {NULL};
    if (s->kind == HEAD_LRSSD) {
        nb_tensor *box_coarser = NULL;
        for (int k = s->n_maps - 1; k >= 0; k--) {
            nb_tensor *f = cbr(ctx, &s->lateral[k], &s->bn_lateral[k], maps[k], training);
            nb_tensor *g = m->spec.det.dense_predictor ? f
                                              : nb_relu6(nb_bn_layer_fwd(ctx, &s->bn_shared[k],
                                                                         nb_conv_layer_fwd(ctx, &s->shared_dw, f),
                                                                         training, false));
            nb_tensor *o = nb_conv_layer_fwd(ctx, &s->shared_pw, g);
            if (!o) return NULL;
            nb_tensor *box = nb_slice(o, 1, 0, 4 * s->A), *cls = nb_slice(o, 1, 4 * s->A, (int64_t)s->C * s->A);
            if (box_coarser) {
                nb_tensor *up = nb_upsample_nearest(box_coarser, (int)o->shape[2], (int)o->shape[3]);
                box = nb_add(box, nb_conv_layer_fwd(ctx, &s->cascade, up));
            }
            box_coarser = box;
            nb_set_scope_name(ctx, "head.out");
            outs[k] = flatten_map(nb_concat((nb_tensor *[]){box, cls}, 2, 1), D);
        }
    } else {
        for (int k = 0; k < s->n_maps; k++) {
            nb_tensor *box, *cls;
            if (s->kind == HEAD_SSD) {
                box = nb_conv_layer_fwd(ctx, &s->loc[k], maps[k]);
                cls = nb_conv_layer_fwd(ctx, &s->conf[k], maps[k]);
            } else {
                box = nb_conv_layer_fwd(ctx, &s->sloc[k].pw, cbr(ctx, &s->sloc[k].dw, &s->sloc[k].bn, maps[k], training));
                cls = nb_conv_layer_fwd(ctx, &s->sconf[k].pw,
                                        cbr(ctx, &s->sconf[k].dw, &s->sconf[k].bn, maps[k], training));
            }
            nb_set_scope_name(ctx, "head.out");
            outs[k] = flatten_map(box && cls ? nb_concat((nb_tensor *[]){box, cls}, 2, 1) : NULL, D);
        }
    }
    for (int k = 0; k < s->n_maps; k++)
        if (!outs[k]) return NULL;
    nb_set_scope_name(ctx, "head.out");
    return nb_concat(outs, s->n_maps, 2);
}

static int extra_init(extra_block *e, nb_params *ps, int k, int in, int out, bool separable) {
    char n[64];
    int mid = out / 2;
    e->separable = separable;
#define N(fmt) (snprintf(n, sizeof n, "extras.%d." fmt, k), n)
    int rc = nb_conv_layer_init(&e->reduce, ps, N("reduce"), in, mid, 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&e->bn_reduce, ps, N("reduce_bn"), mid);
    if (separable)
        rc = rc || nb_conv_layer_init(&e->down, ps, N("dw"), mid, mid, 3, 2, 1, mid, false) ||
             nb_bn_layer_init(&e->bn_down, ps, N("dw_bn"), mid) ||
             nb_conv_layer_init(&e->down_pw, ps, N("pw"), mid, out, 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&e->bn_pw, ps, N("pw_bn"), out);
    else
        rc = rc || nb_conv_layer_init(&e->down, ps, N("conv"), mid, out, 3, 2, 1, 1, false) ||
             nb_bn_layer_init(&e->bn_down, ps, N("conv_bn"), out);
#undef N
    return rc;
}

static int separable_init(separable_pred *p, nb_params *ps, const char *what, int k, int in, int out) {
    char n[64], b[64], w[64];
    snprintf(n, sizeof n, "head.%s.%d.dw", what, k);
    snprintf(b, sizeof b, "head.%s.%d.dw_bn", what, k);
    snprintf(w, sizeof w, "head.%s.%d.pw", what, k);
    return nb_conv_layer_init(&p->dw, ps, n, in, in, 3, 1, 1, in, false) || nb_bn_layer_init(&p->bn, ps, b, in) ||
           nb_conv_layer_init(&p->pw, ps, w, in, out, 1, 1, 0, 1, true);
}

/* SSD's scales: s_1 = first, then min .. max evenly over maps 2..m; box k's extra 1:1 box uses s_{k+1}, the
 * last one max + one step (ssd.pytorch's VOC setting: 0.1, 0.2, 0.37, ..., 0.88 and 1.05 at 300x300) */
static void make_priors(ssd *s, const nb_model_spec *spec) {
    nb_prior_cfg *p = &s->priors;
    memset(p, 0, sizeof *p);
    p->n_maps = s->n_maps;
    p->image_size = spec->input_size;
    p->clip = true;
    int m = s->n_maps;
    float sc[MAX_MAPS + 1];
    float step = m > 2 ? (spec->det.max_scale - spec->det.min_scale) / (float)(m - 2) : 0.0f;
    sc[0] = spec->det.first_scale;
    for (int k = 1; k < m; k++) sc[k] = spec->det.min_scale + step * (float)(k - 1);
    sc[m] = (m > 2 ? spec->det.max_scale : spec->det.min_scale) + (step > 0 ? step : 0.1f);
    for (int k = 0; k < m; k++) {
        p->map_size[k] = s->map_size[k];
        p->min_size[k] = sc[k] * (float)spec->input_size;
        p->max_size[k] = sc[k + 1] * (float)spec->input_size;
        p->n_ratios[k] = spec->det.n_ratios;
        for (int r = 0; r < spec->det.n_ratios; r++) p->ratios[k][r] = spec->det.ratios[r];
    }
}

nb_model *nb_ssd_create(nb_ctx *ctx, const nb_model_spec *spec) {
    head_kind kind = !strncmp(spec->arch, "ssdlite", 7) ? HEAD_SSDLITE : !strncmp(spec->arch, "lrssd", 5) ? HEAD_LRSSD : HEAD_SSD;
    NB_REQUIRE(ctx, spec->num_classes >= 2, NULL, "model",
               "a detector's model.num_classes counts the background too: it must be at least 2 (got %d)",
               spec->num_classes);
    NB_REQUIRE(ctx, spec->det.n_ratios >= 0 && spec->det.n_ratios <= NB_PRIOR_RATIOS, NULL, "model",
               "detect.ratios: at most %d aspect ratios (got %d)", NB_PRIOR_RATIOS, spec->det.n_ratios);
    for (int r = 0; r < spec->det.n_ratios; r++)
        NB_REQUIRE(ctx, spec->det.ratios[r] > 1.0f, NULL, "model",
                   "detect.ratios: each ratio a > 1 stands for a and 1/a (got %g)", (double)spec->det.ratios[r]);
    NB_REQUIRE(ctx, spec->det.first_scale > 0 && spec->det.min_scale > 0 && spec->det.max_scale >= spec->det.min_scale,
               NULL, "model", "detect.first_scale, min_scale, max_scale (%g, %g, %g) must be positive, max >= min",
               (double)spec->det.first_scale, (double)spec->det.min_scale, (double)spec->det.max_scale);
    /* stride 16 and 32 maps, then halvings (3x3, stride 2, padding 1: ceil(n / 2)) down to 1x1 */
    int size = spec->input_size;
    for (int i = 0; i < 4; i++) size = (size + 1) / 2;
    NB_REQUIRE(ctx, size >= 2, NULL, "model", "model.input_size %d is too small for a detector (at least 32)",
               spec->input_size);
    nb_model *m = nb_model_alloc(ctx, spec, sizeof(ssd), ssd_forward, NULL);
    ssd *s = m->impl;
    s->kind = kind;
    s->A = 2 + 2 * spec->det.n_ratios;
    s->C = spec->num_classes;
    float w = spec->width;
    s->resnet = strstr(spec->arch, "resnet18") != NULL;
    int rc;
    if (s->resnet) {
        rc = resnet18_init(&s->r, &m->params, spec->in_channels, w, &s->map_ch[0], &s->map_ch[1]);
    } else {
        rc = nb_mbv2_features_init(&s->f, &m->params, spec->in_channels, w);
        s->map_ch[0] = s->f.expansion_channels[13];
        s->map_ch[1] = s->f.out_channels;
    }
    static const int extra_out[4] = {512, 256, 256, 128};
    s->map_size[0] = size;
    s->map_size[1] = (size + 1) / 2;
    s->n_maps = 2;
    while (!rc && s->n_maps < MAX_MAPS && s->map_size[s->n_maps - 1] > 1) {
        int k = s->n_maps, out = nb_make_divisible((float)extra_out[k - 2] * w, 8);
        rc = extra_init(&s->extras[k], &m->params, k, s->map_ch[k - 1], out, kind != HEAD_SSD);
        s->map_ch[k] = out;
        s->map_size[k] = (s->map_size[k - 1] + 1) / 2;
        s->n_maps++;
    }
    int A = s->A, C = s->C;
    char n[64], b[64];
    if (kind == HEAD_LRSSD) {
        int D = spec->det.head_channels > 0 ? spec->det.head_channels : nb_make_divisible(128.0f * w, 8);
        for (int k = 0; k < s->n_maps && !rc; k++) {
            snprintf(n, sizeof n, "head.lateral.%d.conv", k);
            snprintf(b, sizeof b, "head.lateral.%d.bn", k);
            rc = nb_conv_layer_init(&s->lateral[k], &m->params, n, s->map_ch[k], D, 1, 1, 0, 1, false) ||
                 nb_bn_layer_init(&s->bn_lateral[k], &m->params, b, D);
            snprintf(b, sizeof b, "head.shared.bn.%d", k);
            if (!spec->det.dense_predictor) rc = rc || nb_bn_layer_init(&s->bn_shared[k], &m->params, b, D);
        }
        if (spec->det.dense_predictor)
            rc = rc || nb_conv_layer_init(&s->shared_pw, &m->params, "head.shared.conv", D, (4 + C) * A, 3, 1, 1, 1, true);
        else
            rc = rc || nb_conv_layer_init(&s->shared_dw, &m->params, "head.shared.dw", D, D, 3, 1, 1, D, false) ||
                 nb_conv_layer_init(&s->shared_pw, &m->params, "head.shared.pw", D, (4 + C) * A, 1, 1, 0, 1, true);
        rc = rc || nb_conv_layer_init(&s->cascade, &m->params, "head.cascade", 4 * A, 4 * A, 1, 1, 0, 1, false);
        if (!rc) rc = nb_fill(s->cascade.weight, 0.0);
    } else {
        for (int k = 0; k < s->n_maps && !rc; k++) {
            if (kind == HEAD_SSD) {
                snprintf(n, sizeof n, "head.loc.%d", k);
                snprintf(b, sizeof b, "head.conf.%d", k);
                rc = nb_conv_layer_init(&s->loc[k], &m->params, n, s->map_ch[k], 4 * A, 3, 1, 1, 1, true) ||
                     nb_conv_layer_init(&s->conf[k], &m->params, b, s->map_ch[k], C * A, 3, 1, 1, 1, true);
            } else {
                rc = separable_init(&s->sloc[k], &m->params, "loc", k, s->map_ch[k], 4 * A) ||
                     separable_init(&s->sconf[k], &m->params, "conf", k, s->map_ch[k], C * A);
            }
        }
    }
    if (rc) {
        nb_model_free(m);
        return NULL;
    }
    make_priors(s, spec);
    m->priors = &s->priors;
    return m;
}
