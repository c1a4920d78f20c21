/* From a detector's raw output to detections: softmax over the classes, SSD's box decoding against the default
 * boxes, then per class the boxes scoring at least score_min, non-maximum suppression, and the top_k of the
 * image over all classes (ssd.pytorch's Detect: 0.01, 0.45, 200 for VOC evaluation). */
#ifndef NB_DECODE_H
#define NB_DECODE_H

#include "detect/boxes.h"
#include "detect/voc_eval.h"

typedef struct {
    float var_center, var_size; /* NB_SSD_VAR_CENTER, NB_SSD_VAR_SIZE */
    float score_min, nms_iou;
    int top_k;
} nb_decode_cfg;

/* pred: one image's output, value j of default box p at pred[j * stride + p] (stride P for a [4 + C, P]
 * slice of the [N, 4 + C, P] output). Writes up to top_k detections (image, cls 0-based without the
 * background, score, box in fractions of the input, clipped to [0, 1]) best first; returns how many. */
int nb_decode(const nb_decode_cfg *c, const float *pred, int stride, const nb_cbox *priors, int P, int C, int image,
              nb_detection *out);

#endif
