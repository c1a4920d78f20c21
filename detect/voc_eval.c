/* VOC mean average precision (see voc_eval.h); follows the devkit's voc_eval.py step by step. */
#include "detect/voc_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

static float iou(nb_box a, nb_box b, bool pixels) {
    float one = pixels ? 1.0f : 0.0f;
    float iw = fminf(a.x2, b.x2) - fmaxf(a.x1, b.x1) + one, ih = fminf(a.y2, b.y2) - fmaxf(a.y1, b.y1) + one;
    if (iw <= 0 || ih <= 0) return 0.0f;
    float inter = iw * ih;
    float uni = (a.x2 - a.x1 + one) * (a.y2 - a.y1 + one) + (b.x2 - b.x1 + one) * (b.y2 - b.y1 + one) - inter;
    return uni > 0 ? inter / uni : 0.0f;
}

double nb_voc_ap(const double *rec, const double *prec, int n, bool voc07) {
    if (voc07) {
        double ap = 0.0;
        for (int t = 0; t <= 10; t++) {
            double thr = t / 10.0, p = 0.0;
            for (int i = 0; i < n; i++)
                if (rec[i] >= thr && prec[i] > p) p = prec[i];
            ap += p / 11.0;
        }
        return ap;
    }
    /* the envelope: precision at recall r is the best precision at any recall >= r */
    double *env = nb_xmalloc(sizeof(double) * (size_t)(n + 1));
    env[n] = 0.0;
    for (int i = n - 1; i >= 0; i--) env[i] = fmax(prec[i], env[i + 1]);
    double ap = 0.0, prev = 0.0;
    for (int i = 0; i < n; i++) {
        ap += (rec[i] - prev) * env[i];
        prev = rec[i];
    }
    free(env);
    return ap;
}

typedef struct {
    float score;
    int order;
} ranked;

static int by_score(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->order - y->order;
}

static double class_ap(const nb_voc_eval_cfg *c, int cls, const nb_detection *dets, int n_dets,
                       const nb_gt_object *gt, int n_gt) {
    int npos = 0;
    for (int g = 0; g < n_gt; g++) npos += gt[g].cls == cls && !gt[g].difficult;
    if (npos == 0) return NAN;
    ranked *r = nb_xmalloc(sizeof *r * (size_t)(n_dets ? n_dets : 1));
    int m = 0;
    for (int d = 0; d < n_dets; d++)
        if (dets[d].cls == cls) r[m++] = (ranked){dets[d].score, d};
    qsort(r, (size_t)m, sizeof *r, by_score);
    bool *taken = nb_xcalloc((size_t)(n_gt ? n_gt : 1), sizeof(bool));
    double *rec = nb_xmalloc(sizeof(double) * (size_t)(m ? m : 1)), *prec = nb_xmalloc(sizeof(double) * (size_t)(m ? m : 1));
    int tp = 0, fp = 0, k = 0;
    for (int i = 0; i < m; i++) {
        const nb_detection *d = &dets[r[i].order];
        float best = -INFINITY;
        int jbest = -1;
        for (int g = 0; g < n_gt; g++) {
            if (gt[g].cls != cls || gt[g].image != d->image) continue;
            float o = iou(d->box, gt[g].box, c->pixel_boxes);
            if (o > best) best = o, jbest = g;
        }
        if (jbest >= 0 && best > c->iou_threshold) {
            if (gt[jbest].difficult) continue; /* neither true nor false: the devkit leaves it out of the curve */
            if (!taken[jbest]) taken[jbest] = true, tp++;
            else fp++;
        } else {
            fp++;
        }
        rec[k] = (double)tp / npos;
        prec[k] = (double)tp / (tp + fp);
        k++;
    }
    double ap = nb_voc_ap(rec, prec, k, c->voc07);
    free(r);
    free(taken);
    free(rec);
    free(prec);
    return ap;
}

double nb_voc_map(const nb_voc_eval_cfg *c, const nb_detection *dets, int n_dets, const nb_gt_object *gt, int n_gt,
                  int n_classes, double *ap) {
    double sum = 0.0;
    int counted = 0;
    for (int k = 0; k < n_classes; k++) {
        ap[k] = class_ap(c, k, dets, n_dets, gt, n_gt);
        if (!isnan(ap[k])) sum += ap[k], counted++;
    }
    return counted ? sum / counted : NAN;
}
