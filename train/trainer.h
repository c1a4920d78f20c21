/* bin/train's run: its parts assembled from the configuration (model, data, optimizer, schedule, task,
 * compressors, the data-parallel group) and its training state, resumed bit for bit from last.h5. Everything
 * that can fail on bad input is checked before anything in the run directory is written. nb_trainer_run
 * (train/loop.c) trains it. */
#ifndef NB_TRAINER_H
#define NB_TRAINER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "compress/compressor.h"
#include "core/context.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "models/model.h"
#include "optim/optim.h"
#include "setup/checkpoint.h"
#include "setup/config.h"
#include "setup/settings.h"
#include "task/task.h"
#include "train/dist.h"
#include "train/run_dir.h"

typedef struct {
    nb_ctx *ctx;
    const nb_cfg *cfg; /* as written: its resolved text goes into every checkpoint */
    nb_settings set;   /* the same, typed */
    char out[512];     /* the run directory */
    nb_model *model;
    nb_optim *optim;
    nb_schedule sched;
    nb_task *task;
    nb_dataset train, val;
    bool has_val;
    nb_loader *loader;
    nb_loader_cfg val_loader; /* evaluation's, sharded over the ranks where the task allows */
    int64_t epochs;           /* train.epochs, or as many as train.steps needs */
    nb_train_state st;
    const volatile sig_atomic_t *stop; /* set by SIGINT: save and exit */
    char *config_text;
    bool quiet;
    nb_method_set methods;    /* compress.methods, parsed and checked */
    nb_compress_set compress; /* the methods, called at the loop's hook points */
    nb_dist *dist;            /* the data-parallel group (NULL or a group of one: this process alone) */
    bool writer;              /* rank 0: the one process that writes checkpoints, metrics and charts */
} nb_trainer;

/* Build everything from cfg; NB_RUN_RESUME continues the run in the run directory. dist: the data-parallel
 * group (NULL: this process alone). 0, or -1 after reporting. */
int nb_trainer_setup(nb_trainer *t, nb_ctx *ctx, const nb_cfg *cfg, nb_run_start start, nb_dist *dist);
/* Train to the configured end. 0 when finished, 1 when stopped by a signal (state saved), -1 on error. */
int nb_trainer_run(nb_trainer *t);
/* A checkpoint of the run (model, optimizer, state, compressors' state, configuration) as out/name; rank 0
 * alone writes. */
int nb_trainer_save(nb_trainer *t, const char *name);
void nb_trainer_free(nb_trainer *t);

#endif
