/* The float steps of nibble's inference that are not oneDNN primitives: layout changes at the network's ends
 * (its input and output are NCHW, its activations NHWC, the layout its int8 steps use too), adds, global
 * average pooling, channel concatenations and slices, all on NHWC floats. */
#ifndef NB_INFER_FLOAT_KERNELS_H
#define NB_INFER_FLOAT_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

/* NCHW [n, c, hw] to NHWC [n, hw, c], and back */
void nb_f32_to_nhwc(const float *x, int64_t n, int64_t c, int64_t hw, float *y);
void nb_f32_to_nchw(const float *x, int64_t n, int64_t c, int64_t hw, float *y);
/* y = alpha a + beta b over count values, then ReLU (relu) or ReLU6 (relu6) */
void nb_f32_add(const float *a, float alpha, const float *b, float beta, int64_t count, bool relu, bool relu6, float *y);
/* y = ReLU or ReLU6 of x over count values */
void nb_f32_act(const float *x, int64_t count, bool relu6, float *y);
/* The mean over hw of each of n x c channels (NHWC [n, hw, c]), as [n, c] */
void nb_f32_global_avgpool(const float *x, int64_t n, int64_t hw, int64_t c, float *y);
/* A channel concatenation of NHWC parts (part j: cj channels); interleave as nb_i8_concat */
void nb_f32_concat(const float *const *parts, const int64_t *channels, int n, int64_t pixels, bool interleave, float *y);
/* Output pixel p of each image is input pixel src[p] (NHWC, c channels): nearest upsampling */
void nb_f32_gather_pixels(const float *x, int64_t n, int64_t px_in, int64_t c, const int32_t *src, int64_t px_out,
                          float *y);
/* A concatenation along the last axis of values in NCHW order, rows rows of lens[j] values from each part */
void nb_f32_concat_rows(const float *const *parts, const int64_t *lens, int n, int64_t rows, float *y);
/* Channels [start, start + len) of NHWC floats with c channels */
void nb_f32_slice_channels(const float *x, int64_t pixels, int64_t c, int64_t start, int64_t len, float *y);

#endif
