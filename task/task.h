/* What a model learns, as the training loop and evaluation see it: how a batch becomes targets, the loss, what
 * the loop counts during training, evaluation, and the fields an epoch reports. The loop has no branch for any
 * one task; classification (task/classify.c) and detection (task/detect.c) implement this interface. */
#ifndef NB_TASK_H
#define NB_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "models/model.h"
#include "setup/settings.h"

typedef struct {
    double loss;       /* mean over the evaluated images */
    double score;      /* what best.h5 follows (the task's score_key): top-1, or VOC07 mAP */
    double top1, top5; /* classification (NAN otherwise) */
    double map07, map; /* detection: VOC07 11-point and all-point mAP (NAN otherwise) */
    int64_t n;
} nb_eval_result;

#define NB_TASK_COUNTS 2

typedef struct nb_task nb_task;
struct nb_task {
    const char *name;      /* "classification", "detection" */
    const char *score_key; /* the metrics field best.h5 follows: "val_top1", "val_map07" */
    nb_model *model;
    /* whether data-parallel ranks evaluate a shard each (mAP needs every image's detections on one rank) */
    bool shard_eval;
    /* what the training loop counts over an epoch (classification: top-1 and top-5 hits), summed over the
     * ranks by the loop */
    double counts[NB_TASK_COUNTS];
    int n_counts;
    void *impl;

    /* the batch's targets where the model runs: labels i64 [n], or SSD targets f32 [n, P, 5] */
    nb_tensor *(*targets)(nb_task *t, nb_ctx *ctx, const nb_batch *b);
    /* the training loss of the model's output against the targets */
    nb_tensor *(*loss)(nb_task *t, nb_tensor *out, nb_tensor *targets);
    /* a host buffer for a training step's n output values, or NULL when counting needs none */
    float *(*step_outputs)(nb_task *t, int64_t n);
    /* after a training step: add the batch to counts (from step_outputs) */
    void (*count)(nb_task *t, const nb_batch *b);
    /* the training-set score of an epoch of n images from counts (NAN when the task has none) */
    double (*train_score)(const nb_task *t, int64_t n);
    /* evaluation mode, no gradients, over a dataset */
    int (*evaluate)(nb_task *t, const nb_dataset *ds, const nb_loader_cfg *lc, nb_eval_result *r);
    /* JSON fields of an evaluation (bin/eval), and of an epoch's metrics line with the training score; each
     * as "\"key\": value, ..." */
    void (*eval_fields)(const nb_task *t, const nb_eval_result *r, char *buf, size_t n);
    void (*epoch_fields)(const nb_task *t, double train_score, const nb_eval_result *r, char *buf, size_t n);
    /* the console line's part after the training loss */
    void (*epoch_console)(const nb_task *t, double train_score, const nb_eval_result *r, char *buf, size_t n);
    void (*destroy)(nb_task *t);
};

/* The task of model m: detection for a detector (m->priors), else classification (train.label_smoothing). */
nb_task *nb_task_for(nb_model *m, const nb_settings *s);
nb_task *nb_task_classify(nb_model *m, float label_smoothing);
nb_task *nb_task_detect(nb_model *m);
void nb_task_free(nb_task *t);

#endif
