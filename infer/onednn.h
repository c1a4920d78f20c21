/* oneDNN primitives of nibble's inference: a convolution (a linear layer is a 1x1 one), in integers (u8 or s8
 * NHWC activations and s8 weights to the next quantizer's grid or to float) or in float (f32 NHWC activations
 * and weights), and max pooling of either. oneDNN picks the kernel for the CPU (VNNI, AMX where present). */
#ifndef NB_INFER_ONEDNN_H
#define NB_INFER_ONEDNN_H

#include <dnnl.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/context.h"
#include "infer/int8_kernels.h"

typedef enum { NB_INFER_ACT_NONE, NB_INFER_ACT_RELU, NB_INFER_ACT_RELU6 } nb_infer_act;

/* What an activation holds: bytes on a grid (u8, s8) or floats */
typedef enum { NB_INFER_U8, NB_INFER_S8, NB_INFER_F32 } nb_infer_type;

typedef struct {
    bool f32;                 /* a float convolution: weights, bias, input and output in float, no grids */
    int64_t n, c, h, w;       /* input */
    int64_t o, kh, kw;        /* weight [o, c / groups, kh, kw] */
    int64_t oh, ow;           /* output */
    int groups, stride[2], pad[2], dilation[2]; /* dilation 1 = none */
    const int8_t *codes;      /* the weight's integer codes (integer convolution) */
    const float *weights;     /* the weight (float convolution) */
    const float *wscale;      /* their scale: [o] when per_channel, else [1] */
    bool per_channel;
    const float *bias;        /* [o]: float values on the int32 grid of in.scale x wscale (deploy/onnx_emit.c), or NULL */
    nb_i8_grid in;
    bool out_float;           /* float output (nothing quantizes it after), else on grid out */
    nb_i8_grid out;
    nb_infer_act act;            /* applied before the output grid, as the quantizer after it sees it */
} nb_infer_conv;

typedef struct nb_infer_prim nb_infer_prim;

/* NULL after reporting, naming layer */
nb_infer_prim *nb_infer_conv_new(nb_ctx *ctx, dnnl_engine_t eng, const nb_infer_conv *s, const char *layer);
/* Max pooling of NHWC values [n, c, h, w] to [n, c, oh, ow] (padding counts as the lowest value) */
nb_infer_prim *nb_infer_maxpool_new(nb_ctx *ctx, dnnl_engine_t eng, int64_t n, int64_t c, int64_t h, int64_t w,
                                    int64_t oh, int64_t ow, const int kernel[2], const int stride[2], const int pad[2],
                                    nb_infer_type type, const char *layer);
/* Run on src, write dst. 0, or -1 after reporting */
int nb_infer_prim_run(nb_ctx *ctx, nb_infer_prim *p, dnnl_stream_t st, const void *src, void *dst);
/* oneDNN's name for the kernel it chose ("brg:avx512_core_vnni", ...) */
const char *nb_infer_prim_impl(const nb_infer_prim *p);
void nb_infer_prim_free(nb_infer_prim *p);

#endif
