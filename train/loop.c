/* The epoch loop of bin/train (nb_trainer_run): train an epoch, then evaluate and checkpoint it, until the
 * configured end, a step limit or a signal. What a step does is train/step.c; what the epoch reports is the
 * task's (task/task.h); the progress lines are train/progress.c. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "core/check.h"
#include "train/progress.h"
#include "train/step.h"
#include "train/trainer.h"

/* How an epoch's batches ended. */
typedef enum { NB_EPOCH_DONE, NB_EPOCH_STOPPED, NB_EPOCH_INTERRUPTED, NB_EPOCH_FAILED } nb_epoch_end;

/* The training loss summed over an epoch's images. */
typedef struct {
    double loss;
    int64_t n;
} epoch_sums;

/* Whether the run must stop now: a Ctrl-C, which reaches the ranks at different moments, so they agree. */
static int interrupted(nb_trainer *t, bool *stop) {
    if (nb_dist_size(t->dist) == 1) {
        *stop = t->stop && *t->stop;
        return 0;
    }
    double any = t->stop && *t->stop;
    if (nb_dist_sum(t->dist, &any, 1)) return -1;
    *stop = any > 0;
    return 0;
}

/* One optimizer step on batch b of epoch e, with the loss into *lv. */
static int train_batch(nb_trainer *t, int64_t e, const nb_batch *b, float *lv) {
    nb_ctx *ctx = t->ctx;
    int64_t nb = nb_loader_batches(t->loader);
    nb_dist_set_share(t->dist, b->n, b->global_n);
    double te = t->set.optim.schedule_unit.id == NB_PER_STEP ? (double)e + (double)b->index / (double)nb : (double)e;
    nb_optim_set_lr(t->optim, (float)nb_schedule_lr(&t->sched, te));
    nb_ctx_seed(ctx, (uint64_t)t->set.train.seed, (uint64_t)t->st.global_step); /* dropout masks: the step's alone */
    nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, (int64_t[]){b->n, t->train.c, t->train.h, t->train.w}, b->x);
    nb_tensor *y = t->task->targets(t->task, ctx, b);
    nb_step_parts parts = {t->model, t->optim, t->task, &t->compress, t->set.optim.clip_norm,
                           t->set.train.precision.id == NB_PRECISION_BF16 ? NB_BF16 : NB_F32, &t->st.scaler};
    int rc = nb_train_step(ctx, &parts, x, y, t->st.global_step, e, lv);
    if (rc == 2) rc = 0; /* an overflow under loss scaling: skipped, counted in t->st.scaler, and the run goes on */
    nb_release(x);
    nb_release(y);
    if (rc == 1) {
        NB_FAIL(ctx, "train", "the loss is %f at epoch %lld, batch %lld (step %lld); stopping. The last good "
                              "checkpoint, %s/last.h5, is kept\n  hint: lower optim.lr or add optim.clip_norm",
                (double)*lv, (long long)e, (long long)b->index, (long long)t->st.global_step, t->out);
        return -1;
    }
    if (rc == 0) t->task->count(t->task, b);
    return rc;
}

/* The batches of epoch e from where the state stands, with progress and mid-epoch checkpoints. */
static nb_epoch_end train_epoch(nb_trainer *t, int64_t e, nb_progress *pr, epoch_sums *sums) {
    int ranks = nb_dist_size(t->dist);
    int64_t save_every = t->set.train.save_every, steps = t->set.train.steps;
    nb_epoch_end end = NB_EPOCH_DONE;
    nb_loader_start(t->loader, e, e == t->st.epoch ? t->st.batch : 0);
    nb_progress_epoch(pr);
    const nb_batch *b;
    while ((b = nb_loader_next(t->loader))) {
        if (b->global_n < ranks) { /* a last batch too small to give every rank a sample is skipped */
            t->st.batch = b->index + 1;
            continue;
        }
        float lv;
        if (train_batch(t, e, b, &lv)) {
            end = NB_EPOCH_FAILED;
            break;
        }
        t->st.batch = b->index + 1;
        t->st.global_step++;
        t->st.images_seen += b->global_n;
        sums->loss += (double)lv * b->global_n; /* lv is the group's loss */
        sums->n += b->global_n;
        nb_progress_step(pr, e, b, lv, (float)t->optim->cfg.lr);
        bool limit = steps > 0 && t->st.global_step >= steps, stop;
        if (interrupted(t, &stop)) {
            end = NB_EPOCH_FAILED;
            break;
        }
        if (((save_every > 0 && t->st.global_step % save_every == 0) || limit || stop) && nb_trainer_save(t, "last.h5")) {
            end = NB_EPOCH_FAILED;
            break;
        }
        if (stop) {
            nb_progress_interrupted(pr, e);
            end = NB_EPOCH_INTERRUPTED;
            break;
        }
        if (limit) {
            end = NB_EPOCH_STOPPED;
            break;
        }
    }
    nb_loader_stop(t->loader);
    nb_progress_line_end(pr);
    return end;
}

/* The end of a complete epoch e: the compressors' epoch end (and at the last epoch, their final form), the
 * ranks brought to one network, evaluation of the compressed network, the metrics line, best.h5 and last.h5. */
static int finish_epoch(nb_trainer *t, int64_t e, nb_progress *pr, const epoch_sums *sums) {
    nb_model *m = t->model;
    nb_task *task = t->task;
    int ranks = nb_dist_size(t->dist);
    t->st.epoch = e + 1;
    t->st.batch = 0;
    if (nb_compress_epoch(&t->compress, NB_AT_END, e) || (e + 1 == t->epochs && nb_compress_finish(&t->compress)))
        return -1;
    int consistent = 1;
    if (ranks > 1) {
        consistent = nb_dist_consistent(t->dist, &m->params);
        if (consistent == 0 && t->writer)
            fprintf(stderr, "nibble: warning: the ranks' parameters differ after epoch %lld (they should be "
                            "identical); continuing from rank 0's\n",
                    (long long)e + 1);
        /* rank 0's batch-norm statistics for everyone, so that the evaluation shards and the checkpoint
         * describe one network (with per-rank batch norm the ranks' running statistics differ) */
        if ((task->n_counts && nb_dist_sum(t->dist, task->counts, task->n_counts)) ||
            nb_dist_sync_params(t->dist, &m->params))
            return -1;
    }
    /* evaluation and best.h5 see the compressed network */
    nb_eval_result ev = {.loss = NAN, .score = NAN, .top1 = NAN, .top5 = NAN, .map07 = NAN, .map = NAN};
    if (nb_compress_eval(&t->compress, NB_AT_BEGIN) ||
        (t->has_val && task->evaluate(task, &t->val, &t->val_loader, &ev)))
        return -1;
    nb_progress_report_skipped(pr);
    double train_loss = sums->n ? sums->loss / (double)sums->n : NAN, train_score = task->train_score(task, sums->n);
    bool best = t->has_val && ev.score > t->st.best_top1;
    if (best) {
        t->st.best_top1 = ev.score;
        t->st.best_epoch = e + 1;
    }
    char extra[600];
    nb_compress_metrics(&t->compress, extra, 512);
    if (ranks > 1)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", \"ranks\": %d, \"ranks_consistent\": %s", ranks,
                 consistent == 1 ? "true" : "false");
    if (nb_progress_epoch_end(pr, e, nb_schedule_lr(&t->sched, (double)(e + 1)), train_loss, train_score, &ev, best,
                              extra))
        return -1;
    if ((best && nb_trainer_save(t, "best.h5")) || nb_compress_eval(&t->compress, NB_AT_END) ||
        nb_trainer_save(t, "last.h5"))
        return -1;
    nb_progress_chart(pr);
    return 0;
}

int nb_trainer_run(nb_trainer *t) {
    nb_progress pr;
    if (nb_progress_open(&pr, t)) return -1;
    int rc = 0;
    for (int64_t e = t->st.epoch; e < t->epochs && rc == 0; e++) {
        epoch_sums sums = {0};
        memset(t->task->counts, 0, sizeof t->task->counts);
        if (nb_compress_epoch(&t->compress, NB_AT_BEGIN, e)) {
            rc = -1;
            break;
        }
        nb_epoch_end end = train_epoch(t, e, &pr, &sums);
        if (end == NB_EPOCH_FAILED) rc = -1;
        if (end == NB_EPOCH_INTERRUPTED) rc = 1;
        /* a run stopped by train.steps inside an epoch ends there; at an epoch's end it still evaluates */
        bool stopped = end != NB_EPOCH_DONE;
        if (rc || (stopped && t->st.batch != nb_loader_batches(t->loader))) break;
        if (finish_epoch(t, e, &pr, &sums)) rc = -1;
        if (stopped) break;
    }
    nb_progress_close(&pr);
    return rc;
}
