/* Greedy non-maximum suppression (see nms.h). */
#include "detect/nms.h"

#include <stdlib.h>

#include "core/check.h"

typedef struct {
    float score;
    int index;
} scored;

static int by_score(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->index - y->index;
}

int nb_nms(const nb_box *boxes, const float *scores, int n, float iou_threshold, float min_score, int top_k, int *keep) {
    scored *s = nb_xmalloc(sizeof *s * (size_t)(n ? n : 1));
    int m = 0;
    for (int i = 0; i < n; i++)
        if (scores[i] >= min_score) s[m++] = (scored){scores[i], i};
    qsort(s, (size_t)m, sizeof *s, by_score);
    int kept = 0;
    for (int i = 0; i < m && kept < top_k; i++) {
        nb_box b = boxes[s[i].index];
        int suppressed = 0;
        for (int k = 0; k < kept && !suppressed; k++) suppressed = nb_box_iou(b, boxes[keep[k]]) > iou_threshold;
        if (!suppressed) keep[kept++] = s[i].index;
    }
    free(s);
    return kept;
}
