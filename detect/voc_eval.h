/* Pascal VOC's detection metric, as the devkit computes it: per class, detections sorted by score are
 * matched greedily to the not yet matched ground truth of their image with the highest IoU (> 0.5); a match
 * to a `difficult` object counts neither as a true nor as a false positive, and difficult objects are not
 * counted in the recall's denominator. AP is the 11-point interpolated precision (VOC2007) or the area under
 * the monotone precision envelope (all-point, VOC2010 on). Boxes in pixels use the devkit's inclusive
 * convention (width = x2 - x1 + 1); boxes in fractions of the image use plain geometry. */
#ifndef NB_VOC_EVAL_H
#define NB_VOC_EVAL_H

#include <stdbool.h>

#include "detect/boxes.h"

typedef struct {
    int image, cls;
    float score;
    nb_box box;
} nb_detection;

typedef struct {
    int image, cls;
    nb_box box;
    bool difficult;
} nb_gt_object;

typedef struct {
    bool voc07;           /* 11-point AP, else all-point */
    bool pixel_boxes;     /* the devkit's +1 in widths and heights */
    float iou_threshold;  /* 0.5 */
} nb_voc_eval_cfg;

/* AP of every class 0..n_classes-1 into ap[] (NaN for a class without a non-difficult ground-truth object:
 * its recall is undefined) and returns the mean over the classes that have one (NaN when none has). Ties in
 * score keep the order in which the detections were given. */
double nb_voc_map(const nb_voc_eval_cfg *c, const nb_detection *dets, int n_dets, const nb_gt_object *gt, int n_gt,
                  int n_classes, double *ap);

/* AP from the precision/recall curve of n ranked detections (the devkit's voc_ap). */
double nb_voc_ap(const double *recall, const double *precision, int n, bool voc07);

#endif
