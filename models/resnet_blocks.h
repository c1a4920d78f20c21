/* The residual blocks of the ResNet family, shared by the CIFAR-style and the ImageNet-style networks:
 * the basic block (two 3x3 convolutions) and the bottleneck (1x1, 3x3, 1x1 with expansion 4, stride on the
 * 3x3 as torchvision's "ResNet v1.5"). A shortcut that changes shape is a 1x1 convolution + BN named
 * downsample.0 / downsample.1, as in torchvision. */
#ifndef NB_RESNET_BLOCKS_H
#define NB_RESNET_BLOCKS_H

#include <stdbool.h>

#include "layers/layers.h"

typedef struct {
    nb_conv_layer conv1, conv2, conv3, down_conv;
    nb_bn_layer bn1, bn2, bn3, down_bn;
    bool has_down, bottleneck;
    char name[48];
} nb_res_block;

/* The block's output channels: planes (basic) or 4 * planes (bottleneck). zero_init starts the last BN's
 * scale at zero (torchvision's zero_init_residual). */
int nb_res_block_init(nb_res_block *b, nb_params *ps, const char *name, int in, int planes, int stride, bool bottleneck,
                      bool zero_init);
nb_tensor *nb_res_block_fwd(nb_ctx *ctx, nb_res_block *b, nb_tensor *x, bool training);
static inline int nb_res_block_out(int planes, bool bottleneck) { return bottleneck ? 4 * planes : planes; }

#endif
