/* Which convolutions' output channels can be removed one by one: found on a recorded forward pass (the tape).
 * A channel of convolution C is independent when C feeds only a batch norm, the batch norm (through at most
 * one activation that is zero at zero: ReLU, ReLU6, leaky ReLU, hard-swish, SiLU) feeds only dense
 * convolutions, and nothing else reads it: a residual sum, a concatenation,
 * a grouped or depthwise convolution or a linear layer ties the channel's index to other layers. Channel
 * pruning zeroes such channels (filter, BN scale and shift); export then removes them with the readers'
 * matching input channels, and the network computes the same function. */
#ifndef NB_CHANNEL_DEPS_H
#define NB_CHANNEL_DEPS_H

#include "core/tape.h"
#include "models/model.h"

#define NB_CHANNEL_READERS_MAX 8

typedef struct {
    const nb_node *conv, *bn;
    const nb_node *act;   /* the activation between the batch norm and the readers, or NULL */
    const nb_node *quant; /* a per-tensor activation quantizer after that (fake_quant), or NULL */
    const nb_node *readers[NB_CHANNEL_READERS_MAX];
    int n_readers;
} nb_channel_group;

/* The recorded nodes that read t (up to max of them into out); returns how many there are. */
int nb_tape_consumers(nb_ctx *ctx, const nb_tensor *t, const nb_node **out, int max);

/* The groups on what is recorded on ctx's tape now (a forward pass with nb_set_record_all). Up to max;
 * returns how many. */
int nb_channel_groups(nb_ctx *ctx, nb_channel_group *g, int max);

#endif
