/* The integer steps of nibble's integer inference that are not oneDNN primitives: quantizing the float input,
 * dequantizing the output, requantizing adds and global average pooling. Each computes in float32 the way the
 * engines do (ONNX Runtime's QuantizeLinear, QLinearAdd, QLinearGlobalAveragePool): dequantize, operate,
 * round half to even onto the output grid, saturate. Activations are NHWC bytes, u8 or s8 (a grid with
 * qmin < 0 is signed). */
#ifndef NB_INT8_KERNELS_H
#define NB_INT8_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

/* A quantized activation's grid */
typedef struct {
    float scale;
    int zero, qmin, qmax;
} nb_i8_grid;

static inline bool nb_i8_signed(nb_i8_grid g) { return g.qmin < 0; }

/* NCHW floats [n, c, hw] onto grid g as NHWC bytes */
void nb_i8_quantize(const float *x, int64_t n, int64_t c, int64_t hw, nb_i8_grid g, void *y);
/* NHWC bytes on grid g back to NCHW floats [n, c, hw] */
void nb_i8_dequantize(const void *x, int64_t n, int64_t c, int64_t hw, nb_i8_grid g, float *y);
/* y = a + b (then ReLU when relu), count elements of the same layout, each on its grid */
void nb_i8_add(const void *a, nb_i8_grid ga, const void *b, nb_i8_grid gb, int64_t count, bool relu, nb_i8_grid gy,
               void *y);
/* The mean over hw of each of n x c channels (NHWC [n, hw, c]) onto gy, as [n, c] */
void nb_i8_global_avgpool(const void *x, nb_i8_grid gx, int64_t n, int64_t hw, int64_t c, nb_i8_grid gy, void *y);
/* A channel concatenation of NHWC parts (part j: cj channels on grid gj, each put on gy: bytes copied where the
 * grids are one, requantized where not); interleave: output channel k n + j is channel k of part j (ShuffleNet's
 * concatenation and shuffle, n parts of equal channels) */
void nb_i8_concat(const void *const *parts, const int64_t *channels, const nb_i8_grid *grids, int n, int64_t pixels,
                  bool interleave, nb_i8_grid gy, void *y);
/* Channels [start, start + len) of NHWC bytes with c channels */
void nb_i8_slice_channels(const void *x, int64_t pixels, int64_t c, int64_t start, int64_t len, void *y);
/* NHWC bytes [n, hw, c] to NCHW order [n, c, hw] (the same grid) */
void nb_i8_to_nchw(const void *x, int64_t n, int64_t c, int64_t hw, void *y);
/* Output pixel p of each image is input pixel src[p] (nearest upsampling: an NHWC gather of whole pixels), put
 * onto gy from gx as DequantizeLinear, a float copy and QuantizeLinear would (bytes copied where the grids are
 * one) */
void nb_i8_gather_pixels(const void *x, nb_i8_grid gx, int64_t n, int64_t px_in, int64_t c, const int32_t *src,
                         int64_t px_out, nb_i8_grid gy, void *y);
/* A concatenation along the last axis of values in NCHW order: each of rows rows of the output is part 0's row
 * (lens[0] values on grids[0]), then part 1's, ..., each put on gy as nb_i8_concat puts it */
void nb_i8_concat_rows(const void *const *parts, const int64_t *lens, const nb_i8_grid *grids, int n, int64_t rows,
                       nb_i8_grid gy, void *y);
/* Rounded steps (s32) plus the grid's zero point, saturated onto it */
void nb_i8_add_zero(const int32_t *steps, int64_t count, nb_i8_grid g, void *y);

#endif
