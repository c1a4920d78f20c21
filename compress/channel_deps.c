/* Channel dependencies read off the tape (see channel_deps.h). */
#include "compress/channel_deps.h"

#include <stdbool.h>

#include "core/context.h"

int nb_tape_consumers(nb_ctx *ctx, const nb_tensor *t, const nb_node **out, int max) {
    int n = 0;
    for (size_t i = 0; i < nb_tape_size(ctx); i++) {
        const nb_node *nd = nb_tape_node(ctx, i);
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] == t) {
                if (n < max) out[n] = nd;
                n++;
                break;
            }
    }
    return n;
}

int nb_channel_groups(nb_ctx *ctx, nb_channel_group *g, int max) {
    int n = 0;
    for (size_t i = 0; i < nb_tape_size(ctx) && n < max; i++) {
        const nb_node *conv = nb_tape_node(ctx, i);
        if (conv->op != NB_OP_CONV2D || conv->attr.conv.groups != 1) continue;
        const nb_node *c1[2];
        if (nb_tape_consumers(ctx, conv->out[0], c1, 2) != 1 || c1[0]->op != NB_OP_BATCHNORM2D || !c1[0]->in[1] ||
            !c1[0]->in[2])
            continue;
        nb_channel_group grp = {.conv = conv, .bn = c1[0]};
        const nb_tensor *t = grp.bn->out[0];
        const nb_node *c2[NB_CHANNEL_READERS_MAX];
        int k = nb_tape_consumers(ctx, t, c2, NB_CHANNEL_READERS_MAX);
        /* an activation with f(0) = 0 keeps a removed channel (its batch norm's output is 0) at zero */
        bool zero_at_zero = k == 1 && (c2[0]->op == NB_OP_RELU || c2[0]->op == NB_OP_RELU6 ||
                                       c2[0]->op == NB_OP_LEAKY_RELU || c2[0]->op == NB_OP_HARDSWISH ||
                                       c2[0]->op == NB_OP_SILU);
        if (zero_at_zero) {
            grp.act = c2[0];
            t = grp.act->out[0];
            k = nb_tape_consumers(ctx, t, c2, NB_CHANNEL_READERS_MAX);
        }
        /* a full-integer network's activation quantizer: one grid for every channel, on which zero is exact, so a
         * removed channel (all zero) stays zero through it */
        if (k == 1 && c2[0]->op == NB_OP_FAKE_QUANT && c2[0]->attr.fake_quant.axis < 0) {
            grp.quant = c2[0];
            t = grp.quant->out[0];
            k = nb_tape_consumers(ctx, t, c2, NB_CHANNEL_READERS_MAX);
        }
        bool dense = k > 0 && k <= NB_CHANNEL_READERS_MAX;
        for (int j = 0; j < k && dense; j++)
            dense = c2[j]->op == NB_OP_CONV2D && c2[j]->in[0] == t && c2[j]->attr.conv.groups == 1;
        if (!dense) continue;
        for (int j = 0; j < k; j++) grp.readers[j] = c2[j];
        grp.n_readers = k;
        g[n++] = grp;
    }
    return n;
}

