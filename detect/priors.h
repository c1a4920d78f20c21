/* SSD's default boxes (Liu et al. 2016, §2.2): on feature map k of size f_k, a box of scale s_k and one of scale
 * sqrt(s_k s_{k+1}) (both square), and for each extra aspect ratio a a pair of width s_k sqrt(a) and s_k / sqrt(a),
 * centred at ((j + 0.5) / f_k, (i + 0.5) / f_k). Scales are given in pixels of the input, as in the published VOC
 * configuration (min_sizes 30, 60, 111, 162, 213, 264; max_sizes 60 ... 315 at 300x300). */
#ifndef NB_PRIORS_H
#define NB_PRIORS_H

#include <stdbool.h>

#include "detect/boxes.h"

#define NB_PRIOR_MAPS 8
#define NB_PRIOR_RATIOS 4

typedef struct {
    int n_maps;
    int map_size[NB_PRIOR_MAPS];           /* f_k: the square feature map's side */
    float min_size[NB_PRIOR_MAPS], max_size[NB_PRIOR_MAPS]; /* s_k and s_{k+1} in input pixels */
    int n_ratios[NB_PRIOR_MAPS];
    float ratios[NB_PRIOR_MAPS][NB_PRIOR_RATIOS]; /* a > 1; each gives a and 1/a */
    int image_size;
    bool clip; /* clip the boxes to the image */
} nb_prior_cfg;

/* Default boxes per location of map k: 2 + 2 * n_ratios[k]. */
int nb_priors_per_location(const nb_prior_cfg *c, int k);
/* All default boxes, map by map; within a map box type by box type (1:1, the extra 1:1, then each ratio's
 * pair), and row by row within a type: the order in which a head's [N, A * (4 + C), H, W] output, with
 * channels value-major (channel j * A + a), flattens to [N, 4 + C, A * H * W] without a transpose. Writes up
 * to max of them into out and returns how many there are. */
int nb_priors(const nb_prior_cfg *c, nb_cbox *out, int max);

#endif
