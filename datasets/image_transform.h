/* The geometric and photometric steps between a decoded image and a network input: torchvision's
 * RandomResizedCrop rectangle, the resize-then-centre-crop rectangle of evaluation, and resampling a source
 * rectangle to S x S with PIL's antialiased bilinear filter, optional horizontal flip, and normalisation to
 * float CHW. */
#ifndef NB_IMAGE_TRANSFORM_H
#define NB_IMAGE_TRANSFORM_H

#include <stdbool.h>

#include "core/rng.h"
#include "datasets/image_decode.h"

typedef struct {
    double x, y, w, h; /* in source pixels */
} nb_rect;

/* torchvision's RandomResizedCrop(scale=(scale_lo, 1), ratio=(3/4, 4/3)): ten tries at a random area and
 * aspect ratio, then the centred fallback. */
nb_rect nb_random_resized_crop(nb_rng *r, int w, int h, double scale_lo);
/* Resize the shorter side to `resize`, then take the centred size x size square: the equivalent rectangle of
 * the source. */
nb_rect nb_center_crop(int w, int h, int resize, int size);
/* r scaled from an image of w x h to one of dw x dh (after a DCT-scaled decode). */
nb_rect nb_rect_scale(nb_rect r, int w, int h, int dw, int dh);
/* Resample r of im to S x S (antialiased bilinear), flip if asked, scale to [0, 1], subtract mean and divide
 * by std per channel, and write planar [3, S, S] floats. */
void nb_resample_normalize(const nb_image *im, nb_rect r, int S, bool flip, const float *mean, const float *std,
                           float *out);

#endif
