/* Checkpoints as HDF5 files that h5py reads without nibble: /model/<state_dict name> for every parameter
 * and buffer in torchvision's layouts, /optim/<kind>/<parameter> for optimizer state, /state/<counter> for the
 * training position, and the resolved config as the root attribute `config`. Written to a temporary file,
 * flushed and renamed, so a crash never leaves a broken checkpoint behind. */
#ifndef NB_CHECKPOINT_H
#define NB_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/context.h"
#include "layers/params.h"
#include "optim/optim.h"

typedef struct {
    int64_t epoch;       /* completed epochs */
    int64_t batch;       /* next batch within the current epoch */
    int64_t global_step; /* optimizer steps taken */
    int64_t images_seen;
    double best_top1;    /* best validation top-1 so far (-1: none) */
    int64_t best_epoch;
    double seconds;      /* training time so far, summed over resumed sessions */
    int64_t ranks;       /* data-parallel ranks that trained it (a resume must use as many) */
    nb_loss_scaler scaler; /* dynamic loss scaling's state (scale 0: off); its factors come from the config */
} nb_train_state;

/* Further named tensors a checkpoint carries (compression state: ADMM's G and U, pruning masks, integer
 * codes and scales), at paths such as "compress/admm/G/layer1.0.conv1.weight". The tensors belong to
 * whoever listed them; a load fills them in place. */
typedef struct {
    char path[NB_NAME_MAX + 64];
    nb_tensor *tensor;
} nb_ckpt_entry;

typedef struct {
    nb_ckpt_entry *items;
    int n, cap;
} nb_ckpt_extra;

void nb_ckpt_extra_add(nb_ckpt_extra *x, nb_tensor *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void nb_ckpt_extra_free(nb_ckpt_extra *x);

/* o, st and extra may be NULL (weights-only files such as exports of PyTorch models). */
int nb_ckpt_save(nb_ctx *ctx, const char *path, const nb_params *ps, const nb_optim *o, const nb_train_state *st,
                 const char *config_text, const nb_ckpt_extra *extra);
/* Fill every tensor of extra from its path in the checkpoint (shapes must match). */
int nb_ckpt_load_extra(nb_ctx *ctx, const char *path, const nb_ckpt_extra *extra);

/* Load /model into ps. NB_NAMES_ALL: every name must match both ways (missing and unexpected names are listed);
 * NB_NAMES_PRESENT: the parameters the file names are filled and the rest left alone (a classifier's backbone
 * for a detector). Shapes must always match. Reports and returns -1 on any mismatch, leaving ps unchanged. */
typedef enum { NB_NAMES_ALL, NB_NAMES_PRESENT } nb_names_match;
int nb_ckpt_load_model(nb_ctx *ctx, const char *path, nb_params *ps, nb_names_match match);
int nb_ckpt_load_optim(nb_ctx *ctx, const char *path, nb_optim *o);
/* The training position; and loss scaling's scale and counters where st->scaler is on (the resuming run's
 * config) and the file has them (a run that turns loss scaling on at a resume starts from its first scale). */
int nb_ckpt_load_state(nb_ctx *ctx, const char *path, nb_train_state *st);
/* The `config` attribute (malloc'd), or NULL with an error. */
char *nb_ckpt_read_config(nb_ctx *ctx, const char *path);

#endif
