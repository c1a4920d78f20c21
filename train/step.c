/* The training step (see step.h). */
#include "train/step.h"

#include <math.h>
#include <stdlib.h>

#include "core/arith.h"
#include "core/check.h"
#include "core/ops.h"

/* The step's loss scaler, or NULL when loss scaling is off */
static nb_loss_scaler *scaler_of(const nb_step_parts *p) { return p->scaler && p->scaler->scale > 0 ? p->scaler : NULL; }

/* Forward and backward at the current weights: the loss (with the hooks' changes) and the gradients. */
static int forward_backward(const nb_step_parts *p, nb_step *s, float *loss, bool keep_outputs) {
    nb_model *m = p->model;
    /* mixed precision covers the ops of the forward pass and the loss (a teacher's forward included); the
     * outputs come back in f32 for the loss and the counts, and backward creates no ops */
    nb_dtype was = nb_set_autocast(s->ctx, p->precision);
    nb_tensor *z = nb_cast(m->forward(m, s->x, true), NB_F32);
    nb_tensor *l = p->task->loss(p->task, z, s->y);
    s->logits = z;
    s->loss = l;
    int hook = l && p->compress ? nb_compress_step(p->compress, NB_HOOK_BEFORE_BACKWARD, s) : 0;
    nb_set_autocast(s->ctx, was);
    if (hook) return -1;
    l = s->loss;
    *loss = l ? nb_item(l) : NAN;
    if (!l) return -1;
    nb_comm *comm = s->ctx->comm;
    if (comm && comm->size > 1) { /* the group's loss: every rank agrees on it, and on whether it is finite */
        double v = isfinite(*loss) ? (double)*loss * comm->share : INFINITY;
        if (comm->allreduce_f64(comm, &v, 1)) return -1;
        *loss = (float)v;
    }
    if (!isfinite(*loss)) return 1;
    float *outputs = keep_outputs ? p->task->step_outputs(p->task, nb_numel(z)) : NULL;
    if (outputs && nb_tensor_to_host(z, outputs, sizeof(float) * (size_t)nb_numel(z))) return -1;
    nb_optim_zero_grad(p->optim);
    nb_loss_scaler *ls = scaler_of(p);
    if (!ls) return nb_backward(l, NULL);
    /* backward from scale * loss: its gradient with respect to the loss is the scale, as GradScaler's
     * scaler.scale(loss).backward() */
    float seed = (float)ls->scale;
    nb_tensor *g = nb_tensor_from_host(s->ctx, NB_F32, l->ndim, l->shape, &seed);
    int rc = g ? nb_backward(l, g) : -1;
    nb_release(g);
    bool overflow = false;
    if (rc == 0) rc = nb_loss_scale_unscale(ls, p->optim, &overflow);
    return rc ? rc : overflow ? 2 : 0;
}

/* Korpelevich's extragradient: step to W - lr * g, take the gradient there, come back to W. */
static int extrapolate(const nb_step_parts *p, nb_step *s) {
    nb_optim *o = p->optim;
    nb_tensor *small[256];
    nb_tensor **saved = o->n <= 256 ? small : nb_xmalloc(sizeof(nb_tensor *) * (size_t)o->n);
    int rc = 0;
    for (int i = 0; i < o->n; i++) {
        nb_tensor *w = o->slots[i].param;
        saved[i] = w->grad ? nb_tensor_clone(w) : NULL;
        if (w->grad && (!saved[i] || (w->grad->layout != w->layout && nb_tensor_relayout(w->grad, w->layout)) ||
                        nb_axpby(w, -(float)s->lr, w->grad, 1.0f)))
            rc = -1;
    }
    float unused;
    /* an overflow at the extrapolated point (2) leaves no gradients, but the hooks run and W comes back */
    int fb = rc == 0 ? forward_backward(p, s, &unused, false) : rc;
    rc = fb == 2 ? 0 : fb;
    if (rc == 0) rc = nb_compress_step(p->compress, NB_HOOK_BEFORE_STEP, s);
    for (int i = 0; i < o->n; i++) {
        if (saved[i] && rc == 0) rc = nb_tensor_copy(o->slots[i].param, saved[i]);
        nb_release(saved[i]);
    }
    if (saved != small) free(saved);
    return rc ? rc : fb;
}

static int clip_gradients(nb_optim *o, double clip_norm) {
    nb_tensor *small[256] = {0};
    nb_tensor **ps = o->n <= 256 ? small : nb_xmalloc(sizeof(nb_tensor *) * (size_t)o->n);
    for (int i = 0; i < o->n; i++) ps[i] = o->slots[i].param;
    int rc = nb_clip_grad_norm(ps, o->n, clip_norm) < 0 ? -1 : 0;
    if (ps != small) free(ps);
    return rc;
}

int nb_train_step(nb_ctx *ctx, const nb_step_parts *p, nb_tensor *x, nb_tensor *y, int64_t step, int64_t epoch,
                  float *loss) {
    size_t mark = nb_scope_begin(ctx);
    nb_compress_set *set = p->compress && p->compress->n ? p->compress : NULL;
    nb_step s = {.ctx = ctx, .model = p->model, .optim = p->optim, .x = x, .y = y, .step = step, .epoch = epoch,
                 .lr = p->optim->cfg.lr};
    int rc = set ? nb_compress_step(set, NB_HOOK_BATCH_BEGIN, &s) : 0;
    if (!rc) rc = forward_backward(p, &s, loss, true);
    /* past an overflow (2) the step goes on without gradients: the hooks' per-step work (ADMM restoring its
     * float weights, pruning's masks) must still happen, and the optimizer skips every parameter */
    bool overflow = rc == 2;
    if (overflow) rc = 0;
    if (!rc && set) rc = nb_compress_step(set, NB_HOOK_BEFORE_STEP, &s);
    if (!rc && set && set->extragradient && !overflow) {
        nb_tape_clear(ctx);
        rc = extrapolate(p, &s);
        if (rc == 2) {
            overflow = true;
            rc = 0;
        }
    }
    if (!rc && p->clip_norm > 0) rc = clip_gradients(p->optim, p->clip_norm);
    if (!rc) rc = nb_optim_step(p->optim);
    if (!rc && set) rc = nb_compress_step(set, NB_HOOK_BATCH_END, &s);
    if (!rc && scaler_of(p)) nb_loss_scale_update(p->scaler, overflow);
    if (!rc && overflow) rc = 2;
    nb_tape_clear(ctx); /* a failed step may leave records behind */
    nb_scope_end(ctx, mark);
    return rc;
}
