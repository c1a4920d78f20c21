/* MobileNetV2's feature extractor (features.0 ... features.18 of torchvision's mobilenet_v2), shared by the
 * classifier (models/mobilenetv2.c) and the detectors that use it as a backbone (models/ssd.c). */
#ifndef NB_MOBILENETV2_H
#define NB_MOBILENETV2_H

#include <stdbool.h>

#include "layers/layers.h"

typedef struct {
    char name[32];
    bool expand, residual;
    nb_conv_layer pw, dw, proj;
    nb_bn_layer bn_pw, bn_dw, bn_proj;
} nb_mbv2_block;

typedef struct {
    nb_conv_layer stem, head;
    nb_bn_layer bn_stem, bn_head;
    nb_mbv2_block blocks[17];
    int n_blocks;
    int out_channels;
    int expansion_channels[17]; /* of each block's 1x1 expansion (its input width when it has none) */
} nb_mbv2_features;

/* torchvision's _make_divisible: round to the nearest multiple of divisor, never more than 10% below v */
int nb_make_divisible(float v, int divisor);
int nb_mbv2_features_init(nb_mbv2_features *f, nb_params *ps, int in_channels, float width);
/* The features' output (out_channels, stride 32). With tap_block = k in 1..17, *tap also gets the output of
 * block features.k's expansion (block 14's is at stride 16: SSDLite's first feature map). */
nb_tensor *nb_mbv2_features_fwd(nb_ctx *ctx, nb_mbv2_features *f, nb_tensor *x, bool training, int tap_block,
                                 nb_tensor **tap);

#endif
