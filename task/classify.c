/* Classification: labels as targets, cross-entropy (with train.label_smoothing) as the loss, top-1 and top-5
 * counted over training and evaluation, best.h5 by validation top-1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/check.h"
#include "core/ops.h"
#include "task/task.h"

typedef struct {
    float label_smoothing;
    float *outputs; /* a training step's logits [batch, classes] */
    int64_t cap;
} classify;

/* Top-1 and top-5 hits of n rows of C logits: classes scoring strictly higher than the true one are counted,
 * so ties count for the true class. */
static void count_correct(const float *logits, const int64_t *y, int n, int C, double *top1, double *top5) {
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * C;
        float target = z[y[i]];
        int above = 0;
        for (int c = 0; c < C; c++) above += z[c] > target;
        *top1 += above == 0;
        *top5 += above < 5;
    }
}

static nb_tensor *classify_targets(nb_task *t, nb_ctx *ctx, const nb_batch *b) {
    (void)t;
    return nb_tensor_from_host(ctx, NB_I64, 1, (int64_t[]){b->n}, b->y);
}

static nb_tensor *classify_loss(nb_task *t, nb_tensor *out, nb_tensor *targets) {
    return nb_cross_entropy(out, targets, ((classify *)t->impl)->label_smoothing);
}

static float *classify_step_outputs(nb_task *t, int64_t n) {
    classify *c = t->impl;
    if (n > c->cap) c->outputs = nb_xrealloc(c->outputs, sizeof(float) * (size_t)(c->cap = n));
    return c->outputs;
}

static void classify_count(nb_task *t, const nb_batch *b) {
    count_correct(((classify *)t->impl)->outputs, b->y, b->n, t->model->spec.num_classes, &t->counts[0], &t->counts[1]);
}

static double classify_train_score(const nb_task *t, int64_t n) { return n ? t->counts[0] / (double)n : NAN; }

static int classify_evaluate(nb_task *t, const nb_dataset *ds, const nb_loader_cfg *lc, nb_eval_result *r) {
    nb_model *m = t->model;
    nb_ctx *ctx = m->ctx;
    nb_loader *l = nb_loader_new(ds, lc);
    bool prev = nb_set_grad_enabled(ctx, false);
    int C = m->spec.num_classes, rc = 0;
    double loss_sum = 0, top1 = 0, top5 = 0;
    int64_t n = 0;
    float *logits = nb_xmalloc(sizeof(float) * (size_t)lc->batch * (size_t)C);
    nb_loader_start(l, 0, 0);
    const nb_batch *b;
    while ((b = nb_loader_next(l))) {
        if (b->n == 0) continue; /* a shard of a batch smaller than the group */
        size_t mark = nb_scope_begin(ctx);
        int64_t xs[4] = {b->n, ds->c, ds->h, ds->w};
        nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, xs, b->x), *y = classify_targets(t, ctx, b);
        nb_tensor *z = m->forward(m, x, false);
        nb_tensor *loss = nb_cross_entropy(z, y, 0.0f);
        if (!loss || nb_tensor_to_host(z, logits, sizeof(float) * (size_t)b->n * (size_t)C)) rc = -1;
        if (!rc) {
            loss_sum += (double)nb_item(loss) * b->n;
            count_correct(logits, b->y, b->n, C, &top1, &top5);
            n += b->n;
        }
        nb_release(x);
        nb_release(y);
        nb_scope_end(ctx, mark);
        if (rc) break;
    }
    nb_loader_free(l);
    free(logits);
    nb_set_grad_enabled(ctx, prev);
    if (rc == 0 && lc->shards > 1 && ctx->comm) { /* each rank evaluated its shard */
        double sums[4] = {loss_sum, top1, top5, (double)n};
        rc = ctx->comm->allreduce_f64(ctx->comm, sums, 4);
        loss_sum = sums[0];
        top1 = sums[1];
        top5 = sums[2];
        n = (int64_t)sums[3];
    }
    r->n = n;
    r->loss = n ? loss_sum / (double)n : NAN;
    r->top1 = n ? top1 / (double)n : NAN;
    r->top5 = n ? top5 / (double)n : NAN;
    r->map07 = r->map = NAN;
    r->score = r->top1;
    return rc;
}

static void classify_eval_fields(const nb_task *t, const nb_eval_result *r, char *buf, size_t n) {
    (void)t;
    snprintf(buf, n, "\"top1\": %.6f, \"top5\": %.6f", r->top1, r->top5);
}

static void classify_epoch_fields(const nb_task *t, double train_score, const nb_eval_result *r, char *buf, size_t n) {
    (void)t;
    snprintf(buf, n, "\"train_top1\": %.6f, \"val_top1\": %.6f, \"val_top5\": %.6f", train_score, r->top1, r->top5);
}

static void classify_epoch_console(const nb_task *t, double train_score, const nb_eval_result *r, char *buf, size_t n) {
    (void)t;
    snprintf(buf, n, " top-1 %.2f%%  val loss %.4f top-1 %.2f%% top-5 %.2f%%", 100 * train_score, r->loss,
             100 * r->top1, 100 * r->top5);
}

static void classify_destroy(nb_task *t) {
    classify *c = t->impl;
    free(c->outputs);
    free(c);
}

nb_task *nb_task_classify(nb_model *m, float label_smoothing) {
    classify *c = nb_xcalloc(1, sizeof *c);
    c->label_smoothing = label_smoothing;
    nb_task *t = nb_xcalloc(1, sizeof *t);
    *t = (nb_task){.name = "classification",
                   .score_key = "val_top1",
                   .model = m,
                   .shard_eval = true,
                   .n_counts = 2,
                   .impl = c,
                   .targets = classify_targets,
                   .loss = classify_loss,
                   .step_outputs = classify_step_outputs,
                   .count = classify_count,
                   .train_score = classify_train_score,
                   .evaluate = classify_evaluate,
                   .eval_fields = classify_eval_fields,
                   .epoch_fields = classify_epoch_fields,
                   .epoch_console = classify_epoch_console,
                   .destroy = classify_destroy};
    return t;
}
