/* MuffNet, the multi-layer feature federation network, as nibble reads its authors' description (no paper
 * text was available; ../shared/reference/algorithms.md section 8): "a sparse topology, so that
 * high-frequency responses are easier to obtain; dense computing nodes, so that it is hardware friendly".
 *
 * nibble's reading, built to be compared with ShuffleNetV2 at equal FLOPs:
 * - Same skeleton as ShuffleNetV2: a 3x3/2 stem of 24 channels and 3x3/2 max pooling, three stages of
 *   4, 8 and 4 units whose first unit halves the resolution (ShuffleNetV2's two-branch stride-2 unit), a
 *   1x1 convolution to 1024 channels, global average pooling, a linear classifier.
 * - Multi-layer feature federation (the sparse topology): inside a stage every unit emits c/2 channels and
 *   keeps them in the stage's history. The input of the next unit federates the four newest entries of that
 *   history, newest first, with geometrically fewer channels from older layers: c/2 from the newest, c/4
 *   from the one before, c/8 and c/8 (the leading channels of each). Shallow features, which still carry
 *   high-frequency detail, so reach every later unit directly, through sparse connections. The stage's
 *   output (the next stage's input, or the head's) is federated the same way.
 * - Dense computing nodes: a unit is one unbranched path over all c federated channels, 1x1 (c -> c/2),
 *   3x3 depthwise, 1x1 (c/2 -> c/2), each followed by batch norm (ReLU after the 1x1s). Where a ShuffleNetV2
 *   unit passes half its input through untouched and convolves the other half, every unit here convolves
 *   its whole input: fewer, larger operations, and no channel shuffle (the federation mixes sources).
 * The per-stage widths are chosen so that muffnet_x0_5 costs what shufflenet_v2_x0_5 costs (about 40
 * MFLOPs at 224x224) and muffnet_x1_0 what shufflenet_v2_x1_0 costs (about 146 MFLOPs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "layers/layers.h"
#include "models/model.h"

#define MUFF_HISTORY 4 /* layers a unit federates */

typedef struct {
    char name[48];
    bool down;
    /* stride 2: ShuffleNetV2's two branches, each emitting c/2 channels */
    nb_conv_layer b1_dw, b1_pw, b2_pw1, b2_dw, b2_pw2;
    nb_bn_layer b1_bn_dw, b1_bn_pw, b2_bn1, b2_bn_dw, b2_bn2;
    /* stride 1: the dense node over the federated input */
    nb_conv_layer pw1, dw, pw2;
    nb_bn_layer bn1, bn_dw, bn2;
} muff_unit;

typedef struct {
    int width[3]; /* channels a stage federates into each unit's input (c); units emit c/2 */
    nb_conv_layer conv1, conv5;
    nb_bn_layer bn1, bn5;
    muff_unit units[16];
    nb_linear_layer fc;
} muffnet;

static const int repeats[3] = {4, 8, 4};

/* The channels each history entry contributes, newest first: c/2, c/4, c/8, ...; the oldest entry used
 * takes what remains so that the federation always has c channels. */
static int federation_parts(int c, int available, int *take) {
    int n = available < MUFF_HISTORY ? available : MUFF_HISTORY, left = c;
    for (int i = 0; i < n; i++) {
        take[i] = i == n - 1 ? left : c >> (i + 1);
        if (take[i] > c / 2) take[i] = c / 2;
        left -= take[i];
    }
    return n;
}

static nb_tensor *federate(nb_ctx *ctx, const char *scope, nb_tensor **hist, int n_hist, int c) {
    int take[MUFF_HISTORY];
    int n = federation_parts(c, n_hist, take);
    nb_tensor *parts[MUFF_HISTORY];
    nb_set_scope_name(ctx, scope);
    for (int i = 0; i < n; i++) {
        nb_tensor *h = hist[n_hist - 1 - i];
        parts[i] = take[i] == h->shape[1] ? h : nb_slice(h, 1, 0, take[i]);
    }
    return nb_concat(parts, n, 1);
}

static nb_tensor *cbr(nb_ctx *ctx, nb_conv_layer *c, nb_bn_layer *b, nb_tensor *x, bool training, bool relu) {
    return nb_bn_layer_fwd(ctx, b, nb_conv_layer_fwd(ctx, c, x), training, relu);
}

static nb_tensor *muffnet_forward(nb_model *m, nb_tensor *x, bool training) {
    muffnet *s = m->impl;
    nb_ctx *ctx = m->ctx;
    nb_tensor *h = cbr(ctx, &s->conv1, &s->bn1, x, training, true);
    nb_set_scope_name(ctx, "maxpool");
    h = nb_maxpool2d(h, (nb_pool_attr){.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}});
    int k = 0;
    for (int st = 0; st < 3; st++) {
        nb_tensor *hist[16];
        int n = 0, c = s->width[st];
        for (int r = 0; r < repeats[st]; r++, k++) {
            muff_unit *u = &s->units[k];
            if (u->down) {
                hist[n++] = cbr(ctx, &u->b1_pw, &u->b1_bn_pw, cbr(ctx, &u->b1_dw, &u->b1_bn_dw, h, training, false),
                                training, true);
                nb_tensor *b = cbr(ctx, &u->b2_pw1, &u->b2_bn1, h, training, true);
                b = cbr(ctx, &u->b2_dw, &u->b2_bn_dw, b, training, false);
                hist[n++] = cbr(ctx, &u->b2_pw2, &u->b2_bn2, b, training, true);
            } else {
                nb_tensor *in = federate(ctx, u->name, hist, n, c);
                nb_tensor *b = cbr(ctx, &u->pw1, &u->bn1, in, training, true);
                b = cbr(ctx, &u->dw, &u->bn_dw, b, training, false);
                hist[n++] = cbr(ctx, &u->pw2, &u->bn2, b, training, true);
            }
            for (int i = 0; i < n; i++)
                if (!hist[i]) return NULL;
        }
        char scope[24];
        snprintf(scope, sizeof scope, "stage%d", st + 2);
        h = federate(ctx, scope, hist, n, c);
    }
    h = cbr(ctx, &s->conv5, &s->bn5, h, training, true);
    nb_set_scope_name(ctx, "avgpool");
    h = nb_flatten(nb_global_avgpool(h));
    return nb_linear_layer_fwd(ctx, &s->fc, h);
}

static int unit_init(muff_unit *u, nb_params *ps, const char *name, int in, int c, bool down) {
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    u->down = down;
    int half = c / 2;
    char p[96];
#define SUB(x) (snprintf(p, sizeof p, "%s.%s", name, x), p)
    if (down)
        return nb_conv_layer_init(&u->b1_dw, ps, SUB("branch1.0"), in, in, 3, 2, 1, in, false) ||
                       nb_bn_layer_init(&u->b1_bn_dw, ps, SUB("branch1.1"), in) ||
                       nb_conv_layer_init(&u->b1_pw, ps, SUB("branch1.2"), in, half, 1, 1, 0, 1, false) ||
                       nb_bn_layer_init(&u->b1_bn_pw, ps, SUB("branch1.3"), half) ||
                       nb_conv_layer_init(&u->b2_pw1, ps, SUB("branch2.0"), in, half, 1, 1, 0, 1, false) ||
                       nb_bn_layer_init(&u->b2_bn1, ps, SUB("branch2.1"), half) ||
                       nb_conv_layer_init(&u->b2_dw, ps, SUB("branch2.3"), half, half, 3, 2, 1, half, false) ||
                       nb_bn_layer_init(&u->b2_bn_dw, ps, SUB("branch2.4"), half) ||
                       nb_conv_layer_init(&u->b2_pw2, ps, SUB("branch2.5"), half, half, 1, 1, 0, 1, false) ||
                       nb_bn_layer_init(&u->b2_bn2, ps, SUB("branch2.6"), half)
                   ? -1
                   : 0;
    return nb_conv_layer_init(&u->pw1, ps, SUB("node.0"), c, half, 1, 1, 0, 1, false) ||
                   nb_bn_layer_init(&u->bn1, ps, SUB("node.1"), half) ||
                   nb_conv_layer_init(&u->dw, ps, SUB("node.3"), half, half, 3, 1, 1, half, false) ||
                   nb_bn_layer_init(&u->bn_dw, ps, SUB("node.4"), half) ||
                   nb_conv_layer_init(&u->pw2, ps, SUB("node.5"), half, half, 1, 1, 0, 1, false) ||
                   nb_bn_layer_init(&u->bn2, ps, SUB("node.6"), half)
               ? -1
               : 0;
#undef SUB
}

/* Stage widths (c), multiples of 16 so that every federation slice is whole, set so that each variant
 * costs what the ShuffleNetV2 of the same name costs. */
static const struct {
    const char *suffix;
    int width[3];
} variants[] = {{"x0_5", {48, 80, 176}}, {"x1_0", {96, 208, 416}}};

bool nb_muffnet_arch(const char *arch) {
    if (strncmp(arch, "muffnet_", 8)) return false;
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++)
        if (!strcmp(arch + 8, variants[i].suffix)) return true;
    return false;
}

nb_model *nb_muffnet_create(nb_ctx *ctx, const nb_model_spec *spec) {
    const int *width = NULL;
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++)
        if (!strcmp(spec->arch + 8, variants[i].suffix)) width = variants[i].width;
    NB_ASSERT(width);
    nb_model *m = nb_model_alloc(ctx, spec, sizeof(muffnet), muffnet_forward, NULL);
    muffnet *s = m->impl;
    memcpy(s->width, width, sizeof s->width);
    int rc = nb_conv_layer_init(&s->conv1, &m->params, "conv1.0", spec->in_channels, 24, 3, 2, 1, 1, false) ||
             nb_bn_layer_init(&s->bn1, &m->params, "conv1.1", 24);
    int in = 24, k = 0;
    for (int st = 0; st < 3 && !rc; st++) {
        for (int r = 0; r < repeats[st] && !rc; r++, k++) {
            char name[32];
            snprintf(name, sizeof name, "stage%d.%d", st + 2, r);
            rc = unit_init(&s->units[k], &m->params, name, in, width[st], r == 0);
        }
        in = width[st];
    }
    if (!rc)
        rc = nb_conv_layer_init(&s->conv5, &m->params, "conv5.0", in, 1024, 1, 1, 0, 1, false) ||
             nb_bn_layer_init(&s->bn5, &m->params, "conv5.1", 1024) ||
             nb_linear_layer_init(&s->fc, &m->params, "fc", 1024, spec->num_classes, true);
    if (rc) {
        nb_model_free(m);
        return NULL;
    }
    return m;
}
