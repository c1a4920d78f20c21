/* Building what a run is made of from its settings: the context, the model, the datasets and their loaders,
 * the optimizer and its schedule; and the configuration of a program that reads a checkpoint. Every program
 * (bin/train, eval, export, predict, quantize, detect) and the distillation teacher assemble through here. */
#ifndef NB_ASSEMBLE_H
#define NB_ASSEMBLE_H

#include <stdbool.h>

#include "core/context.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "models/model.h"
#include "optim/optim.h"
#include "setup/config.h"
#include "setup/settings.h"

/* Training insists on the device it was asked for; evaluation may fall back to the CPU, with a note on
 * stderr, when a CUDA checkpoint meets a machine without a GPU. */
typedef enum { NB_DEVICE_AS_ASKED, NB_DEVICE_OR_CPU } nb_device_policy;
/* Which split of the [data] section. */
typedef enum { NB_SPLIT_TRAIN, NB_SPLIT_VAL } nb_data_split;

/* The configuration of a program that reads a checkpoint: the cfg file when cfg_path is given, else the one
 * the checkpoint carries; then every "section.key=value" among args (other args are skipped). 0; -1 with
 * cfg->err set, or with cfg->err empty after the checkpoint's error was reported on ctx. */
int nb_cfg_for_checkpoint(nb_ctx *ctx, nb_cfg *cfg, const char *ckpt, const char *cfg_path, int n_args,
                          char *const *args);

/* A context on the backend train.device names. */
nb_ctx *nb_ctx_for(const nb_settings *s, nb_device_policy policy);
nb_model *nb_model_for(nb_ctx *ctx, const nb_settings *s);
/* Whether the configuration names validation data (data.val, or a val/ folder beside train/). */
bool nb_has_val(const nb_settings *s);
/* Load a split of the [data] section. */
int nb_data_load(nb_ctx *ctx, const nb_settings *s, nb_data_split split, nb_dataset *ds);
/* Check that a dataset suits the model (channels, size, classes, detection or not) and give detection data the
 * detector's default boxes. */
int nb_data_for_model(nb_ctx *ctx, const nb_settings *s, const nb_model *m, nb_dataset *ds);
/* Loader settings (normalisation, augmentation) for a split. */
int nb_loader_cfg_for(nb_ctx *ctx, const nb_settings *s, const nb_dataset *ds, nb_data_split split, nb_loader_cfg *lc);
/* The optimizer the [optim] section describes, over the model's parameters, and its schedule. */
nb_optim *nb_optim_for(nb_ctx *ctx, const nb_settings *s, nb_model *m);
int nb_schedule_for(nb_ctx *ctx, const nb_settings *s, nb_schedule *sched);

#endif
