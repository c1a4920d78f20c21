/* The model summary (bin/train --summary): one line per layer of a recorded forward pass, with its output
 * shape, its own parameters and its multiply-accumulates, then the totals. */
#include <stdio.h>
#include <string.h>

#include "core/check.h"
#include "models/model.h"

int nb_print_summary(nb_model *m, FILE *f) {
    nb_ctx *ctx = m->ctx;
    size_t mark;
    nb_tensor *x, *y = nb_record_forward(m, 1, &mark, &x);
    if (!y) {
        nb_tape_clear(ctx);
        nb_scope_end(ctx, mark);
        nb_release(x);
        return -1;
    }
    fprintf(f, "%-28s %-18s %12s %10s\n", "layer", "output", "parameters", "MFLOPs");
    size_t n = nb_tape_size(ctx);
    int64_t total_macs = 0;
    for (size_t i = 0; i < n;) {
        const nb_node *nd = nb_tape_node(ctx, i);
        const char *scope = nd->scope;
        int64_t macs = 0;
        const nb_tensor *out = NULL;
        size_t j = i;
        for (; j < n && !strcmp(nb_tape_node(ctx, j)->scope, scope); j++) {
            const nb_node *k = nb_tape_node(ctx, j);
            macs += nb_node_macs(k);
            if (k->op != NB_OP_RELAYOUT && k->op != NB_OP_RESHAPE) out = k->out[0];
        }
        if (!out) out = nb_tape_node(ctx, j - 1)->out[0];
        char shape[64];
        nb_shape_fmt(shape, sizeof shape, out);
        fprintf(f, "%-28s %-18s %12lld %10.3f\n", scope[0] ? scope : "(input)", shape,
                (long long)(scope[0] ? nb_params_count_direct(&m->params, scope) : 0), (double)macs / 1e6);
        total_macs += macs;
        i = j;
    }
    fprintf(f, "%-28s %-18s %12lld %10.3f\n", "total", "", (long long)nb_params_count(&m->params, NULL),
            (double)total_macs / 1e6);
    fprintf(f, "(MFLOPs count multiply-accumulates of convolutions and linear layers per image, as the papers do)\n");
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    return 0;
}
