/* Ground truth to default boxes (see match.h). */
#include "detect/match.h"

#include <stdlib.h>
#include <string.h>

#include "core/check.h"

int nb_match(const nb_match_cfg *c, const nb_cbox *priors, int P, const nb_box *gt, const int *labels, int G,
             int64_t *conf, float *loc) {
    memset(loc, 0, sizeof(float) * 4 * (size_t)P);
    for (int p = 0; p < P; p++) conf[p] = 0;
    if (G == 0) return 0;
    float *best_iou = nb_xmalloc(sizeof(float) * (size_t)P);
    int *best_gt = nb_xmalloc(sizeof(int) * (size_t)P);
    int *best_prior = nb_xmalloc(sizeof(int) * (size_t)G);
    float *best_prior_iou = nb_xmalloc(sizeof(float) * (size_t)G);
    for (int g = 0; g < G; g++) best_prior_iou[g] = -1.0f, best_prior[g] = 0;
    for (int p = 0; p < P; p++) {
        nb_box pb = nb_box_corners(priors[p]);
        best_iou[p] = -1.0f;
        best_gt[p] = 0;
        for (int g = 0; g < G; g++) {
            float iou = nb_box_iou(gt[g], pb);
            /* strict comparisons: ties go to the earlier box, so the result does not depend on anything else */
            if (iou > best_iou[p]) best_iou[p] = iou, best_gt[p] = g;
            if (iou > best_prior_iou[g]) best_prior_iou[g] = iou, best_prior[g] = p;
        }
    }
    /* each ground truth keeps its best default box, whatever the threshold (later ones win a shared box) */
    for (int g = 0; g < G; g++) {
        best_iou[best_prior[g]] = 2.0f;
        best_gt[best_prior[g]] = g;
    }
    int pos = 0;
    for (int p = 0; p < P; p++) {
        if (best_iou[p] < c->threshold) continue;
        int g = best_gt[p];
        conf[p] = labels[g];
        nb_box_encode(gt[g], priors[p], c->var_center, c->var_size, loc + 4 * (size_t)p);
        pos++;
    }
    free(best_iou);
    free(best_gt);
    free(best_prior);
    free(best_prior_iou);
    return pos;
}
