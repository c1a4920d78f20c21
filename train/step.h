/* One optimizer step: the training step bin/train runs for every batch, with the compressors' hooks around it.
 * Tests and benchmarks run the same step. */
#ifndef NB_STEP_H
#define NB_STEP_H

#include <stdint.h>

#include "compress/compressor.h"
#include "core/context.h"
#include "models/model.h"
#include "optim/optim.h"
#include "task/task.h"

/* What a step trains and how. compress may be NULL (no compression); clip_norm 0: no gradient clipping. */
typedef struct {
    nb_model *model;
    nb_optim *optim;
    nb_task *task; /* the loss, and where the outputs go for counting */
    nb_compress_set *compress;
    double clip_norm;
    nb_dtype precision; /* NB_BF16: forward and loss in mixed precision (core/autocast.c); 0 (NB_F32): f32 */
    nb_loss_scaler *scaler; /* dynamic loss scaling (optim/optim.h), updated by each step; NULL or scale 0: off */
} nb_step_parts;

/* One optimizer step on a batch (x, and the task's targets y): the compressors' hooks (batch begin, before
 * backward, before the optimizer step, batch end) around forward in training mode, the task's loss, backward,
 * optional gradient clipping and the update; step and epoch are the position the hooks see. With
 * compress->extragradient, the gradient that updates the weights is taken at an extrapolated point W - lr * g
 * (Korpelevich), as ADMM's W-step may. The loss comes back on the host, and the outputs into the task's
 * step_outputs when it has one. With a loss scaler, backward runs from the scaled loss and the gradients are
 * unscaled before the hooks see them; a step whose gradients overflowed drops them, so the hooks see none and
 * nothing is updated (the step is counted, as GradScaler's skipped optimizer.step). Returns 0, 2 when it was
 * skipped so, 1 when the loss is not finite (nothing is updated), or -1 after reporting an error. */
int nb_train_step(nb_ctx *ctx, const nb_step_parts *p, nb_tensor *x, nb_tensor *y, int64_t step, int64_t epoch,
                  float *loss);

#endif
