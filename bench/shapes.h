/* The convolution shapes the engine benchmark measures: every distinct convolution of ResNet-18 and every
 * depthwise convolution of MobileNetV2 at 224x224, batch 16. bench/conv_torch.py lists the same table. */
#ifndef NB_BENCH_SHAPES_H
#define NB_BENCH_SHAPES_H

typedef struct {
    const char *name;
    int N, C, H, O, k, stride, pad, groups;
} bench_conv_shape;

static const bench_conv_shape bench_conv_shapes[] = {
    {"r18.conv1", 16, 3, 224, 64, 7, 2, 3, 1},
    {"r18.layer1", 16, 64, 56, 64, 3, 1, 1, 1},
    {"r18.layer2.down3x3", 16, 64, 56, 128, 3, 2, 1, 1},
    {"r18.layer2.proj1x1", 16, 64, 56, 128, 1, 2, 0, 1},
    {"r18.layer2", 16, 128, 28, 128, 3, 1, 1, 1},
    {"r18.layer3.down3x3", 16, 128, 28, 256, 3, 2, 1, 1},
    {"r18.layer3.proj1x1", 16, 128, 28, 256, 1, 2, 0, 1},
    {"r18.layer3", 16, 256, 14, 256, 3, 1, 1, 1},
    {"r18.layer4.down3x3", 16, 256, 14, 512, 3, 2, 1, 1},
    {"r18.layer4.proj1x1", 16, 256, 14, 512, 1, 2, 0, 1},
    {"r18.layer4", 16, 512, 7, 512, 3, 1, 1, 1},
    {"mbv2.dw32@112", 16, 32, 112, 32, 3, 1, 1, 32},
    {"mbv2.dw96@112s2", 16, 96, 112, 96, 3, 2, 1, 96},
    {"mbv2.dw144@56", 16, 144, 56, 144, 3, 1, 1, 144},
    {"mbv2.dw144@56s2", 16, 144, 56, 144, 3, 2, 1, 144},
    {"mbv2.dw192@28", 16, 192, 28, 192, 3, 1, 1, 192},
    {"mbv2.dw192@28s2", 16, 192, 28, 192, 3, 2, 1, 192},
    {"mbv2.dw384@14", 16, 384, 14, 384, 3, 1, 1, 384},
    {"mbv2.dw576@14", 16, 576, 14, 576, 3, 1, 1, 576},
    {"mbv2.dw576@14s2", 16, 576, 14, 576, 3, 2, 1, 576},
    {"mbv2.dw960@7", 16, 960, 7, 960, 3, 1, 1, 960},
};

#define BENCH_N_CONV (int)(sizeof bench_conv_shapes / sizeof bench_conv_shapes[0])

#endif
