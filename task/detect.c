/* Detection: SSD targets (each default box's matched class and encoded offsets, datasets/det_data.h), the
 * multibox loss (hard negatives per positive: detect.neg_pos), evaluation by VOC mAP of the decoded detections,
 * best.h5 by VOC07 mAP. Nothing is counted during training. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/check.h"
#include "core/ops.h"
#include "datasets/det_data.h"
#include "detect/decode.h"
#include "task/task.h"

static nb_tensor *detect_targets(nb_task *t, nb_ctx *ctx, const nb_batch *b) {
    int P = nb_priors(t->model->priors, NULL, 0);
    return nb_tensor_from_host(ctx, NB_F32, 3, (int64_t[]){b->n, P, 5}, b->targets);
}

static nb_tensor *detect_loss(nb_task *t, nb_tensor *out, nb_tensor *targets) {
    return nb_multibox_loss(out, targets, t->model->spec.det.neg_pos, 1.0f);
}

static float *detect_step_outputs(nb_task *t, int64_t n) {
    (void)t;
    (void)n;
    return NULL;
}

static void detect_count(nb_task *t, const nb_batch *b) {
    (void)t;
    (void)b;
}

static double detect_train_score(const nb_task *t, int64_t n) {
    (void)t;
    (void)n;
    return NAN;
}

/* The multibox loss on the matched targets, and VOC mAP of the decoded detections against every ground-truth
 * object of the images (difficult ones included, as VOC counts them), in the devkit's pixels. */
static int detect_evaluate(nb_task *t, const nb_dataset *ds, const nb_loader_cfg *lc, nb_eval_result *r) {
    nb_model *m = t->model;
    nb_ctx *ctx = m->ctx;
    const nb_det_data *d = ds->det;
    nb_loader *l = nb_loader_new(ds, lc);
    bool prev = nb_set_grad_enabled(ctx, false);
    int C = m->spec.num_classes, P = d->n_priors, D = 4 + C, rc = 0;
    nb_decode_cfg dc = {NB_SSD_VAR_CENTER, NB_SSD_VAR_SIZE, m->spec.det.score_min, m->spec.det.nms_iou, m->spec.det.top_k};
    float *out = nb_xmalloc(sizeof(float) * (size_t)lc->batch * (size_t)D * (size_t)P);
    int64_t cap = 1024, n_det = 0, n_img = 0;
    nb_detection *dets = nb_xmalloc(sizeof(nb_detection) * (size_t)cap);
    double loss_sum = 0;
    nb_loader_start(l, 0, 0);
    const nb_batch *b;
    while ((b = nb_loader_next(l))) {
        if (b->n == 0) continue;
        size_t mark = nb_scope_begin(ctx);
        int64_t xs[4] = {b->n, ds->c, ds->h, ds->w};
        nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, xs, b->x), *y = detect_targets(t, ctx, b);
        nb_tensor *z = m->forward(m, x, false);
        nb_tensor *loss = detect_loss(t, z, y);
        if (!loss || nb_tensor_to_host(z, out, sizeof(float) * (size_t)b->n * (size_t)D * (size_t)P)) rc = -1;
        for (int i = 0; i < b->n && !rc; i++) {
            if (n_det + dc.top_k > cap) {
                cap = 2 * cap + dc.top_k;
                dets = nb_xrealloc(dets, sizeof(nb_detection) * (size_t)cap);
            }
            const nb_voc_image *im = &d->voc.images[b->y[i]];
            int k = nb_decode(&dc, out + (size_t)i * D * P, P, d->priors, P, C, (int)b->y[i], dets + n_det);
            for (int j = 0; j < k; j++) { /* fractions -> the devkit's 1-based pixels */
                nb_box *bx = &dets[n_det + j].box;
                *bx = (nb_box){bx->x1 * (float)im->width + 1, bx->y1 * (float)im->height + 1, bx->x2 * (float)im->width + 1,
                               bx->y2 * (float)im->height + 1};
            }
            n_det += k;
        }
        if (!rc) {
            loss_sum += (double)nb_item(loss) * b->n;
            n_img += b->n;
        }
        nb_release(x);
        nb_release(y);
        nb_scope_end(ctx, mark);
        if (rc) break;
    }
    nb_loader_free(l);
    free(out);
    nb_set_grad_enabled(ctx, prev);
    int64_t n_gt = 0;
    for (int64_t i = 0; i < d->voc.n; i++) n_gt += d->voc.images[i].n_objects;
    nb_gt_object *gt = nb_xmalloc(sizeof(nb_gt_object) * (size_t)(n_gt ? n_gt : 1));
    int64_t g = 0;
    for (int64_t i = 0; i < d->voc.n; i++)
        for (int k = 0; k < d->voc.images[i].n_objects; k++) {
            const nb_voc_object *o = &d->voc.images[i].objects[k];
            gt[g++] = (nb_gt_object){(int)i, o->cls, o->box, o->difficult};
        }
    double *ap = nb_xmalloc(sizeof(double) * (size_t)C);
    nb_voc_eval_cfg e07 = {true, true, 0.5f}, eall = {false, true, 0.5f};
    r->map07 = rc ? NAN : nb_voc_map(&e07, dets, (int)n_det, gt, (int)n_gt, C - 1, ap);
    r->map = rc ? NAN : nb_voc_map(&eall, dets, (int)n_det, gt, (int)n_gt, C - 1, ap);
    r->n = n_img;
    r->loss = n_img ? loss_sum / (double)n_img : NAN;
    r->top1 = r->top5 = NAN;
    r->score = r->map07;
    free(ap);
    free(gt);
    free(dets);
    return rc;
}

static void detect_eval_fields(const nb_task *t, const nb_eval_result *r, char *buf, size_t n) {
    (void)t;
    snprintf(buf, n, "\"map07\": %.6f, \"map\": %.6f", r->map07, r->map);
}

static void detect_epoch_fields(const nb_task *t, double train_score, const nb_eval_result *r, char *buf, size_t n) {
    (void)t;
    (void)train_score;
    snprintf(buf, n, "\"val_map07\": %.6f, \"val_map\": %.6f", r->map07, r->map);
}

static void detect_epoch_console(const nb_task *t, double train_score, const nb_eval_result *r, char *buf, size_t n) {
    (void)t;
    (void)train_score;
    snprintf(buf, n, "  val loss %.4f mAP (VOC07) %.2f%% (all-point) %.2f%%", r->loss, 100 * r->map07, 100 * r->map);
}

static void detect_destroy(nb_task *t) { (void)t; }

nb_task *nb_task_detect(nb_model *m) {
    nb_task *t = nb_xcalloc(1, sizeof *t);
    *t = (nb_task){.name = "detection",
                   .score_key = "val_map07",
                   .model = m,
                   .shard_eval = false,
                   .targets = detect_targets,
                   .loss = detect_loss,
                   .step_outputs = detect_step_outputs,
                   .count = detect_count,
                   .train_score = detect_train_score,
                   .evaluate = detect_evaluate,
                   .eval_fields = detect_eval_fields,
                   .epoch_fields = detect_epoch_fields,
                   .epoch_console = detect_epoch_console,
                   .destroy = detect_destroy};
    return t;
}
