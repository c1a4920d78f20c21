/* A model's named tensors: parameters (trained) and buffers (BN running statistics, counters), under
 * torchvision's state_dict names, in registration order. Checkpoints, optimizers, summaries and weight
 * loading all go through this list. */
#ifndef NB_PARAMS_H
#define NB_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/context.h"
#include "core/tensor.h"

typedef enum { NB_PARAM = 0, NB_BUFFER = 1 } nb_param_kind;

typedef struct {
    nb_tensor *t; /* owned */
    nb_param_kind kind;
} nb_param_entry;

typedef struct {
    nb_ctx *ctx;
    nb_param_entry *items;
    int n, cap;
    uint64_t seed; /* initialisers draw from a stream keyed by the parameter's name */
} nb_params;

void nb_params_init(nb_params *ps, nb_ctx *ctx, uint64_t seed);
void nb_params_free(nb_params *ps);
/* New zero tensor named "<prefix>.<name>" (or just name when prefix is empty). */
nb_tensor *nb_params_add(nb_params *ps, const char *prefix, const char *name, nb_param_kind kind, nb_dtype dt,
                         int ndim, const int64_t *shape);
nb_tensor *nb_params_find(const nb_params *ps, const char *name);
int64_t nb_params_count(const nb_params *ps, const char *prefix); /* trainable elements under prefix */
int64_t nb_params_count_direct(const nb_params *ps, const char *layer); /* "<layer>.weight", not deeper names */

/* Initialisers, as torch.nn.init; each draws from Philox keyed by (seed, hash of the tensor's name), so a
 * parameter's initial values do not depend on what was created before it. */
int nb_init_kaiming_normal_fan_out(nb_params *ps, nb_tensor *w); /* ResNet convs: std = sqrt(2 / fan_out) */
int nb_init_uniform(nb_params *ps, nb_tensor *t, float bound);   /* U(-bound, bound) */
uint64_t nb_name_hash(const char *s);

#endif
