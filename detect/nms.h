/* Non-maximum suppression: of boxes sorted by score (ties by index, so the result is deterministic), keep
 * each box that overlaps no kept box by more than the IoU threshold, up to top_k. */
#ifndef NB_NMS_H
#define NB_NMS_H

#include "detect/boxes.h"

/* Writes the kept indices, best first, into keep and returns how many. Scores below min_score are dropped
 * first. */
int nb_nms(const nb_box *boxes, const float *scores, int n, float iou_threshold, float min_score, int top_k, int *keep);

#endif
