/* Detection samples: a VOC image and its boxes made into a network input and SSD training targets.
 *
 * Training augmentation (data.augment = ssd) follows SSD's recipe (Liu et al. 2016, §3.6; the steps of the
 * public Caffe and PyTorch ports): photometric distortion (brightness, contrast before or after saturation and
 * hue, each with probability 1/2), expand (zoom out onto a canvas of the mean colour, up to detect.expand_max
 * times the image side, probability 1/2), a random crop whose overlap with at least one object reaches a
 * minimum IoU drawn from {none, 0.1, 0.3, 0.7, 0.9, any} (keeping the objects whose centre falls inside),
 * horizontal flip (1/2), and a resize to S x S. Expand and crop are carried as one rectangle on a virtual
 * canvas, so the canvas is never materialised: the final bilinear resample reads the image where the
 * rectangle covers it and the mean colour elsewhere.
 *
 * Evaluation: the whole image resized to S x S. Difficult objects are left out of the targets, as in VOC
 * training; evaluation (detect/voc_eval.h) counts them as VOC does. */
#ifndef NB_DET_DATA_H
#define NB_DET_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "datasets/image_decode.h"
#include "datasets/voc.h"
#include "detect/boxes.h"
#include "detect/match.h"

typedef struct nb_det_data {
    nb_voc_set voc;
    int size;       /* S: the network's input side */
    nb_cbox *priors;
    int n_priors;
    nb_match_cfg match;
    float expand_max;
} nb_det_data;

/* An object of a prepared sample: class (0-based, as in the VOC set) and box in fractions of the input. */
typedef struct {
    int cls;
    nb_box box;
} nb_det_object;

/* Prepares sample `index`: x [3, S, S] normalised by mean/std (of [0, 1] pixel values), target [P, 5]
 * (class + 1 or 0 for background, then the encoded offsets; see core/ops.h nb_multibox_loss). With objs,
 * also the objects it was matched against (up to max_objs; *n_objs gets their number). 0, or -1 with err
 * filled when the image cannot be decoded. */
int nb_det_sample(const nb_det_data *d, int64_t index, nb_rng *r, bool augment, const float *mean, const float *std,
                  float *x, float *target, nb_det_object *objs, int max_objs, int *n_objs, char *err, size_t errn);

/* Any picture as a detector sees it in evaluation: decoded in full into *full (RGB, for drawing on; free with
 * nb_image_free) and resized to S x S, normalised, into x [3, S, S]. 0, or -1 with err. */
int nb_det_load_image(const char *path, int S, const float *mean, const float *std, float *x, nb_image *full, char *err,
                      size_t errn);

void nb_det_data_free(nb_det_data *d);

#endif
