/* Decoding and per-class NMS (see decode.h). */
#include "detect/decode.h"

#include <math.h>
#include <stdlib.h>

#include "core/check.h"
#include "detect/nms.h"

static int by_score(const void *a, const void *b) {
    const nb_detection *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->cls != y->cls) return x->cls - y->cls;
    return (x->box.x1 > y->box.x1) - (x->box.x1 < y->box.x1);
}

int nb_decode(const nb_decode_cfg *c, const float *pred, int stride, const nb_cbox *priors, int P, int C, int image,
              nb_detection *out) {
    float *prob = nb_xmalloc(sizeof(float) * (size_t)P * (size_t)C);
    nb_box *boxes = nb_xmalloc(sizeof(nb_box) * (size_t)P);
    for (int p = 0; p < P; p++) {
        double m = -INFINITY, s = 0.0;
        for (int k = 0; k < C; k++) m = fmax(m, pred[(4 + k) * (size_t)stride + p]);
        for (int k = 0; k < C; k++) s += exp(pred[(4 + k) * (size_t)stride + p] - m);
        for (int k = 0; k < C; k++) prob[(size_t)k * P + p] = (float)(exp(pred[(4 + k) * (size_t)stride + p] - m) / s);
        float t[4] = {pred[p], pred[(size_t)stride + p], pred[2 * (size_t)stride + p], pred[3 * (size_t)stride + p]};
        nb_box b = nb_box_decode(t, priors[p], c->var_center, c->var_size);
        boxes[p] = (nb_box){fminf(fmaxf(b.x1, 0), 1), fminf(fmaxf(b.y1, 0), 1), fminf(fmaxf(b.x2, 0), 1),
                            fminf(fmaxf(b.y2, 0), 1)};
    }
    int cap = c->top_k * (C - 1), n = 0;
    nb_detection *all = nb_xmalloc(sizeof(nb_detection) * (size_t)(cap ? cap : 1));
    int *keep = nb_xmalloc(sizeof(int) * (size_t)P);
    for (int k = 1; k < C; k++) {
        int kept = nb_nms(boxes, prob + (size_t)k * P, P, c->nms_iou, c->score_min, c->top_k, keep);
        for (int i = 0; i < kept; i++)
            all[n++] = (nb_detection){image, k - 1, prob[(size_t)k * P + keep[i]], boxes[keep[i]]};
    }
    qsort(all, (size_t)n, sizeof *all, by_score);
    if (n > c->top_k) n = c->top_k;
    for (int i = 0; i < n; i++) out[i] = all[i];
    free(prob);
    free(boxes);
    free(all);
    free(keep);
    return n;
}
