/* SSD's matching of ground truth to default boxes (Liu et al. 2016, §2.2): every ground-truth box takes the
 * default box it overlaps best, and every other default box takes the ground truth it overlaps best when that
 * IoU exceeds the threshold (0.5); the rest are background. Matched boxes get their encoded regression
 * targets (boxes.h). */
#ifndef NB_MATCH_H
#define NB_MATCH_H

#include <stdint.h>

#include "detect/boxes.h"

typedef struct {
    float threshold;        /* 0.5 */
    float var_center, var_size; /* NB_SSD_VAR_CENTER, NB_SSD_VAR_SIZE */
} nb_match_cfg;

/* For one image: priors [P], ground truth boxes [G] with classes in 1..C-1 (0 is the background). conf[P] gets
 * the class of each default box (0: background), loc[P * 4] the regression targets of the matched ones (zeros
 * elsewhere). Returns the number of positives. Difficult objects are left out of training by the caller, as
 * VOC's training sets do. */
int nb_match(const nb_match_cfg *c, const nb_cbox *priors, int P, const nb_box *gt, const int *labels, int G,
             int64_t *conf, float *loc);

#endif
