/* ZeroQ's distilled inputs (see zeroq.h). The batch norms are found by the context's op hooks, which see the
 * input of every batch norm as the forward pass reaches it, whatever the model: there each layer's statistics
 * loss is built from differentiable ops, so that backward reaches the pixels. */
#include "compress/zeroq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/ops.h"
#include "core/rng.h"
#include "optim/optim.h"

typedef struct {
    nb_tensor *loss; /* the sum so far over the batch norms reached (NULL before the first) */
    int layers;
} distill;

/* The mean over the batch of an [N, C, 1, 1] tensor, as [C]: transposed by a channel shuffle (of N groups)
 * into [1, C, N, 1], then averaged over its N "rows" */
static nb_tensor *batch_mean(nb_tensor *t, int64_t N, int64_t C) {
    nb_tensor *flat = nb_reshape(t, 4, (int64_t[]){1, N * C, 1, 1});
    nb_tensor *tr = N > 1 ? nb_channel_shuffle(flat, (int)N) : flat;
    nb_tensor *m = nb_global_avgpool(nb_reshape(tr, 4, (int64_t[]){1, C, N, 1}));
    return nb_reshape(m, 1, &C);
}

/* (mean_c - running_mean_c)^2 and (var_c - running_var_c)^2 averaged over channels, for a batch norm's input */
static int on_inputs(void *user, nb_op op, nb_tensor **in, int n_in) {
    distill *d = user;
    if (op != NB_OP_BATCHNORM2D || n_in < 5 || !in[3] || !in[4]) return 0;
    nb_tensor *z = nb_to_plain(in[0]);
    if (!z) return -1;
    int64_t N = z->shape[0], C = z->shape[1];
    nb_tensor *mu = batch_mean(nb_global_avgpool(z), N, C);
    nb_tensor *e2 = batch_mean(nb_global_avgpool(nb_square(z)), N, C);
    nb_tensor *var = nb_add_scaled(e2, 1.0f, nb_square(mu), -1.0f);
    nb_tensor *term = nb_add(nb_mse(mu, in[3]), nb_mse(var, in[4]));
    if (!term) return -1;
    d->loss = d->loss ? nb_add(d->loss, term) : term;
    d->layers++;
    return d->loss ? 0 : -1;
}

int nb_zeroq_distill(nb_model *m, const nb_zeroq_cfg *cfg, float *out, double *first_loss, double *final_loss) {
    nb_ctx *ctx = m->ctx;
    int64_t shape[4] = {cfg->images, m->spec.in_channels, m->spec.input_size, m->spec.input_size};
    int64_t n = shape[0] * shape[1] * shape[2] * shape[3];
    NB_REQUIRE(ctx, cfg->images > 0 && cfg->steps > 0, -1, "zeroq", "needs images (%d) and steps (%d) above 0",
               cfg->images, cfg->steps);
    /* standard normal pixels in the normalised space, from the seed alone */
    float *h = nb_xmalloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) h[i] = nb_philox_normal(cfg->seed, 0x2e40, (uint64_t)i);
    nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, shape, h);
    free(h);
    if (!x) return -1;
    nb_set_name(x, "zeroq.images");
    nb_set_requires_grad(x, true);
    nb_optim_config oc = nb_optim_defaults(NB_OPTIM_ADAM);
    oc.lr = cfg->lr;
    nb_optim *opt = nb_optim_new(ctx, &oc, &x, 1);
    /* only the pixels learn: the parameters' gradients would be work thrown away */
    bool *had = nb_xcalloc((size_t)(m->params.n ? m->params.n : 1), sizeof *had);
    for (int i = 0; i < m->params.n; i++) {
        had[i] = m->params.items[i].t->requires_grad;
        nb_set_requires_grad(m->params.items[i].t, false);
    }
    bool prev = nb_set_grad_enabled(ctx, true);
    int rc = opt ? 0 : -1;
    for (int step = 0; step < cfg->steps && rc == 0; step++) {
        size_t mark = nb_scope_begin(ctx);
        distill d = {0};
        nb_op_hooks saved = ctx->op_hooks;
        ctx->op_hooks = (nb_op_hooks){.on_inputs = on_inputs, .user = &d};
        nb_optim_zero_grad(opt);
        nb_tensor *y = m->forward(m, x, false);
        ctx->op_hooks = saved;
        if (!y || !d.loss) {
            if (y) NB_FAIL(ctx, m->spec.arch, "has no batch norm whose statistics distilled inputs could match");
            rc = -1;
        }
        if (rc == 0) {
            double v = nb_item(d.loss);
            if (step == 0 && first_loss) *first_loss = v;
            if (final_loss) *final_loss = v;
            rc = nb_backward(d.loss, NULL) || nb_optim_step(opt) ? -1 : 0;
            if (!cfg->quiet && (step % 50 == 0 || step == cfg->steps - 1))
                fprintf(stderr, "\rdistilling %d images: step %d/%d, batch-norm statistics loss %.5g (%d layers)  ",
                        cfg->images, step + 1, cfg->steps, v, d.layers);
        }
        nb_tape_clear(ctx);
        nb_scope_end(ctx, mark);
    }
    if (!cfg->quiet) fprintf(stderr, "\n");
    nb_set_grad_enabled(ctx, prev);
    for (int i = 0; i < m->params.n; i++) nb_set_requires_grad(m->params.items[i].t, had[i]);
    free(had);
    if (rc == 0 && nb_tensor_to_host(x, out, sizeof(float) * (size_t)n)) rc = -1;
    nb_optim_free(opt);
    nb_release(x);
    return rc;
}
