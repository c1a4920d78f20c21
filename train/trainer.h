/* The training loop behind bin/train: builds the model, data, optimizer and schedule from a configuration,
 * trains with a progress line, evaluates each epoch, writes checkpoints, metrics and charts into the run
 * directory, and resumes bit for bit. Everything that can fail on bad input is checked before anything in
 * the run directory is written. */
#ifndef NB_TRAINER_H
#define NB_TRAINER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/context.h"
#include "compress/compressor.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "models/model.h"
#include "optim/optim.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/dist.h"

typedef struct {
    double loss, top1, top5;
    int64_t n;
    double map07, map; /* detectors: VOC07 11-point and all-point mAP (top1 = map07, so best.h5 follows it) */
} nb_eval_result;

typedef struct {
    nb_ctx *ctx;
    nb_cfg *cfg;
    char out[512];
    nb_model *model;
    nb_optim *optim;
    nb_schedule sched;
    nb_dataset train, val;
    nb_loader *loader;
    nb_train_state st;
    bool has_val;
    const volatile sig_atomic_t *stop; /* set by SIGINT: save and exit */
    char *config_text;
    int64_t steps_limit;
    bool quiet;
    nb_compress_set compress; /* the [compress] methods, called at the trainer's hook points */
    nb_dist *dist;            /* the data-parallel group (NULL or a group of one: this process alone) */
    bool writer;              /* rank 0: the one process that writes checkpoints, metrics and charts */
} nb_trainer;

/* Build everything from cfg; resume continues the run in the run directory. dist: the data-parallel group
 * (NULL: this process alone). 0, or -1 after reporting. */
int nb_trainer_setup(nb_trainer *t, nb_ctx *ctx, nb_cfg *cfg, bool resume, nb_dist *dist);
/* Train to the configured end. 0 when finished, 1 when stopped by a signal (state saved), -1 on error. */
int nb_trainer_run(nb_trainer *t);
void nb_trainer_free(nb_trainer *t);

/* One optimizer step on a batch: forward in training mode, cross-entropy, backward, optional gradient
 * clipping, update. The loss (and the logits [n, classes] when logits is not NULL) come back on the host.
 * Returns 0, 1 when the loss is not finite (nothing is updated), or -1 after reporting an error. */
int nb_train_step(nb_ctx *ctx, nb_model *m, nb_optim *o, nb_tensor *x, nb_tensor *y, float label_smoothing,
                  double clip_norm, float *loss, float *logits);
/* The same with the compressors' hooks (batch begin, before backward, before the optimizer step, batch end)
 * around it; step and epoch are the position the hooks see. With set->extragradient, the gradient that
 * updates the weights is taken at an extrapolated point W - lr * g (Korpelevich), as ADMM's W-step may. */
int nb_train_step_hooked(nb_ctx *ctx, nb_model *m, nb_optim *o, nb_tensor *x, nb_tensor *y, float label_smoothing,
                         double clip_norm, nb_compress_set *set, int64_t step, int64_t epoch, float *loss,
                         float *logits);
/* The optimizer the [optim] section describes, over the model's parameters. */
nb_optim *nb_optim_from_cfg(nb_ctx *ctx, const nb_cfg *cfg, nb_model *m);

/* The configuration of a program that reads a checkpoint: the cfg file when cfg_path is given, else the one
 * the checkpoint carries; then every "section.key=value" among args (other args are skipped). 0; -1 with
 * cfg->err set, or with cfg->err empty after the checkpoint's error was reported on ctx. */
int nb_cfg_for_checkpoint(nb_ctx *ctx, nb_cfg *cfg, const char *ckpt, const char *cfg_path, int n_args,
                          char *const *args);
/* A context on the backend train.device names. For evaluation (`fallback`), a CUDA checkpoint on a machine
 * without a GPU runs on the CPU after a note on stderr; training insists on the device it was asked for. */
nb_ctx *nb_ctx_from_cfg(const nb_cfg *cfg, bool fallback);
nb_model *nb_model_from_cfg(nb_ctx *ctx, const nb_cfg *cfg);
/* Load the [data] section's training or validation set. */
/* Whether the configuration names validation data (data.val, or a val/ folder beside train/). */
bool nb_cfg_has_val(const nb_cfg *cfg);
int nb_data_from_cfg(nb_ctx *ctx, const nb_cfg *cfg, bool val, nb_dataset *ds);
/* Check that a dataset suits the model (channels, size, classes, detection or not) and give detection data the
 * detector's default boxes. */
int nb_data_for_model(nb_ctx *ctx, const nb_cfg *cfg, const nb_model *m, nb_dataset *ds);
/* Loader settings (normalisation, augmentation) for the configured data. */
int nb_loader_cfg_from(nb_ctx *ctx, const nb_cfg *cfg, const nb_dataset *ds, bool train, nb_loader_cfg *lc);
/* Loss, top-1 and top-5 of the model on a dataset (evaluation mode, no gradients). */
int nb_evaluate(nb_ctx *ctx, nb_model *m, const nb_dataset *ds, const nb_loader_cfg *lc, nb_eval_result *r);
/* Per-layer table: name, output shape, parameters, MFLOPs (multiply-accumulates), and totals. */
int nb_print_summary(nb_ctx *ctx, nb_model *m, FILE *f);

#endif
