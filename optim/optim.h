/* Optimizers (SGD with momentum/Nesterov/weight decay, Adam, AdamW), learning-rate schedules and gradient
 * clipping. Optimizer state is a set of named tensors ("momentum_buffer/conv1.weight", "exp_avg/fc.bias",
 * "step/fc.bias") so that a checkpoint can store and restore it exactly. The update arithmetic follows
 * torch.optim's order of operations, and runs on the parameters' backend. */
#ifndef NB_OPTIM_H
#define NB_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/context.h"
#include "core/tensor.h"

typedef enum { NB_OPTIM_SGD = 0, NB_OPTIM_ADAM, NB_OPTIM_ADAMW } nb_optim_kind;

typedef struct {
    nb_optim_kind kind;
    float lr;
    float momentum, dampening; /* SGD */
    int nesterov;
    float weight_decay;
    float beta1, beta2, eps; /* Adam, AdamW */
    int wd_exempt_1d; /* no weight decay on 1-D parameters: batch-norm scales and shifts, biases */
} nb_optim_config;

nb_optim_config nb_optim_defaults(nb_optim_kind kind); /* torch.optim's defaults (lr 0.001 for Adam/AdamW) */

typedef struct {
    nb_tensor *param; /* borrowed */
    nb_tensor *state[2]; /* SGD: momentum buffer; Adam: exp_avg, exp_avg_sq. NULL until the first step. */
    int64_t step;        /* steps this parameter has taken (Adam's bias correction) */
    bool no_decay;
} nb_optim_slot;

typedef struct {
    nb_ctx *ctx;
    nb_optim_config cfg;
    int n;
    nb_optim_slot *slots;
} nb_optim;

/* params must carry unique names (nb_set_name); they are the keys of the state. */
nb_optim *nb_optim_new(nb_ctx *ctx, const nb_optim_config *cfg, nb_tensor *const *params, int n);
void nb_optim_free(nb_optim *o);
/* More parameters for an existing optimizer, without weight decay (compression methods' own parameters:
 * quantizers' step sizes). 0, or -1 after reporting. */
int nb_optim_add(nb_optim *o, nb_tensor *const *params, int n);
void nb_optim_set_lr(nb_optim *o, float lr);
int nb_optim_step(nb_optim *o); /* parameters without a gradient are skipped, as in torch.optim */
void nb_optim_zero_grad(nb_optim *o);

/* Named state, for checkpoints. Each call enumerates what exists now (i from 0 while it returns 0). */
typedef struct {
    char name[NB_NAME_MAX + 32];
    nb_tensor *tensor;  /* a state tensor, or NULL for a step counter */
    int64_t step;       /* the counter's value when tensor is NULL */
} nb_optim_entry;
int nb_optim_state_count(const nb_optim *o);
int nb_optim_state_at(const nb_optim *o, int i, nb_optim_entry *out);
/* Restore one entry by name from host data (plain layout); creates the state tensor when missing. */
int nb_optim_state_load(nb_optim *o, const char *name, const float *data, int64_t numel, int64_t step);

/* Learning-rate schedules as functions of t (epochs, or fractional epochs for per-step schedules),
 * with an optional linear warm-up from warmup_start_factor * base_lr over the first `warmup` units;
 * the main schedule then runs over t - warmup with length total - warmup (as torch's SequentialLR). */
typedef enum { NB_SCHED_CONSTANT = 0, NB_SCHED_STEP, NB_SCHED_MULTISTEP, NB_SCHED_COSINE, NB_SCHED_POLY } nb_sched_kind;

#define NB_SCHED_MAX_MILESTONES 16
typedef struct {
    nb_sched_kind kind;
    double base_lr;
    double step_size, gamma;                        /* step, multistep */
    double milestones[NB_SCHED_MAX_MILESTONES];     /* multistep */
    int n_milestones;
    double total, min_lr, power;                    /* cosine (min_lr), poly (power) */
    double warmup, warmup_start_factor;
} nb_schedule;

double nb_schedule_lr(const nb_schedule *s, double t);
const char *nb_sched_name(nb_sched_kind k);

/* Dynamic loss scaling, as torch.cuda.amp.GradScaler: backward starts from the loss times `scale`, so that
 * small gradients survive a low-precision backward (fp16's 6e-8 floor); the gradients are then multiplied by
 * 1/scale (in f32, as GradScaler's inv_scale) before anything else reads them. A step whose gradients hold an
 * inf or NaN drops them (the optimizer skips parameters without a gradient, as torch.optim does) and multiplies
 * the scale by `backoff`; `interval` steps in a row without one multiply it by `growth`. The same state on
 * every rank: gradients are summed over the ranks before they are checked, and an inf anywhere is everywhere. */
typedef struct {
    double scale;          /* the loss's multiplier now; 0: loss scaling off */
    double growth, backoff;
    int64_t interval;      /* overflow-free steps in a row before the scale grows (0: it never grows) */
    int64_t good;          /* such steps since the last change */
    int64_t skipped;       /* steps skipped for an overflow, over the whole run */
} nb_loss_scaler;

/* After backward from the scaled loss: *overflow tells whether any of o's gradients is not finite; if so the
 * gradients are dropped, else each is multiplied by 1/scale. 0, or -1 after reporting. */
int nb_loss_scale_unscale(const nb_loss_scaler *ls, nb_optim *o, bool *overflow);
/* The scale for the next step, from whether this one overflowed. */
void nb_loss_scale_update(nb_loss_scaler *ls, bool overflow);

/* Scale all gradients so that their joint L2 norm is at most max_norm (torch.nn.utils.clip_grad_norm_);
 * returns the norm before clipping, or a negative value after an error. */
double nb_clip_grad_norm(nb_tensor *const *params, int n, double max_norm);

#endif
