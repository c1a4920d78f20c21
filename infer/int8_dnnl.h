/* oneDNN int8 primitives of nibble's integer inference: a convolution (a linear layer is a 1x1 one) from u8 or
 * s8 NHWC activations and s8 weights to the next quantizer's grid or to float, and max pooling on the
 * integers. oneDNN picks the kernel for the CPU (VNNI, AMX where present). */
#ifndef NB_INT8_DNNL_H
#define NB_INT8_DNNL_H

#include <dnnl.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/context.h"
#include "infer/int8_kernels.h"

typedef enum { NB_I8_ACT_NONE, NB_I8_ACT_RELU, NB_I8_ACT_RELU6 } nb_i8_act;

typedef struct {
    int64_t n, c, h, w;       /* input */
    int64_t o, kh, kw;        /* weight [o, c / groups, kh, kw] */
    int64_t oh, ow;           /* output */
    int groups, stride[2], pad[2], dilation[2]; /* dilation 1 = none */
    const int8_t *codes;      /* the weight's integer codes */
    const float *wscale;      /* their scale: [o] when per_channel, else [1] */
    bool per_channel;
    const float *bias;        /* [o]: float values on the int32 grid of in.scale x wscale (deploy/onnx_emit.c), or NULL */
    nb_i8_grid in;
    bool out_float;           /* float output (nothing quantizes it after), else on grid out */
    nb_i8_grid out;
    nb_i8_act act;            /* applied before the output grid, as the quantizer after it sees it */
} nb_i8_conv_spec;

typedef struct nb_i8_prim nb_i8_prim;

/* NULL after reporting, naming layer */
nb_i8_prim *nb_i8_conv_new(nb_ctx *ctx, dnnl_engine_t eng, const nb_i8_conv_spec *s, const char *layer);
/* Max pooling of NHWC bytes [n, c, h, w] to [n, c, oh, ow] (padding counts as the lowest value) */
nb_i8_prim *nb_i8_maxpool_new(nb_ctx *ctx, dnnl_engine_t eng, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh,
                              int64_t ow, const int kernel[2], const int stride[2], const int pad[2], bool s8,
                              const char *layer);
/* Run on src, write dst. 0, or -1 after reporting */
int nb_i8_prim_run(nb_ctx *ctx, nb_i8_prim *p, dnnl_stream_t st, const void *src, void *dst);
/* oneDNN's name for the kernel it chose ("brg:avx512_core_vnni", ...) */
const char *nb_i8_prim_impl(const nb_i8_prim *p);
void nb_i8_prim_free(nb_i8_prim *p);

#endif
