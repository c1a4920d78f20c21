/* The optimizer container: parameter slots, lazily created state, named state for checkpoints, and the
 * per-parameter updates dispatched to the backend's SGD and Adam kernels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arith.h"
#include "core/check.h"
#include "optim/optim.h"

nb_optim_config nb_optim_defaults(nb_optim_kind kind) {
    nb_optim_config c = {.kind = kind, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    if (kind != NB_OPTIM_SGD) c.lr = 1e-3f;
    if (kind == NB_OPTIM_ADAMW) c.weight_decay = 0.01f;
    return c;
}

static int n_states(const nb_optim *o) {
    if (o->cfg.kind == NB_OPTIM_SGD) return o->cfg.momentum != 0.0f ? 1 : 0;
    return 2;
}

static const char *state_name(const nb_optim *o, int k) {
    if (o->cfg.kind == NB_OPTIM_SGD) return "momentum_buffer";
    return k == 0 ? "exp_avg" : "exp_avg_sq";
}

nb_optim *nb_optim_new(nb_ctx *ctx, const nb_optim_config *cfg, nb_tensor *const *params, int n) {
    NB_REQUIRE(ctx, cfg->lr >= 0.0f && cfg->momentum >= 0.0f && cfg->weight_decay >= 0.0f, NULL, "optimizer",
               "lr %g, momentum %g and weight decay %g must be >= 0", (double)cfg->lr, (double)cfg->momentum,
               (double)cfg->weight_decay);
    NB_REQUIRE(ctx, !cfg->nesterov || (cfg->momentum > 0.0f && cfg->dampening == 0.0f), NULL, "optimizer",
               "Nesterov momentum needs momentum > 0 and dampening 0 (got %g, %g)", (double)cfg->momentum,
               (double)cfg->dampening);
    NB_REQUIRE(ctx, cfg->kind == NB_OPTIM_SGD || (cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1),
               NULL, "optimizer", "Adam betas (%g, %g) must be within [0, 1)", (double)cfg->beta1, (double)cfg->beta2);
    for (int i = 0; i < n; i++) {
        NB_REQUIRE(ctx, params[i] && params[i]->dtype == NB_F32, NULL, "optimizer", "parameter %d is missing or not f32", i);
        NB_REQUIRE(ctx, params[i]->name[0], NULL, "optimizer",
                   "parameter %d %s has no name\n  hint: nb_set_name each parameter; names key the saved state", i,
                   NB_SHAPE(params[i]));
        for (int j = 0; j < i; j++)
            NB_REQUIRE(ctx, strcmp(params[i]->name, params[j]->name) != 0, NULL, "optimizer",
                       "two parameters are both named '%s'", params[i]->name);
    }
    nb_optim *o = nb_xcalloc(1, sizeof *o);
    o->ctx = ctx;
    o->cfg = *cfg;
    o->n = n;
    o->slots = nb_xcalloc((size_t)(n ? n : 1), sizeof *o->slots);
    for (int i = 0; i < n; i++) {
        o->slots[i].param = params[i];
        o->slots[i].no_decay = cfg->wd_exempt_1d && params[i]->ndim <= 1;
    }
    return o;
}

int nb_optim_add(nb_optim *o, nb_tensor *const *params, int n) {
    for (int i = 0; i < n; i++) {
        NB_REQUIRE(o->ctx, params[i] && params[i]->dtype == NB_F32 && params[i]->name[0], -1, "optimizer",
                   "added parameter %d is missing, not f32 or unnamed", i);
        for (int j = 0; j < o->n; j++)
            NB_REQUIRE(o->ctx, strcmp(params[i]->name, o->slots[j].param->name) != 0, -1, "optimizer",
                       "two parameters are both named '%s'", params[i]->name);
        o->slots = nb_xrealloc(o->slots, sizeof *o->slots * (size_t)(o->n + 1));
        o->slots[o->n++] = (nb_optim_slot){.param = params[i], .no_decay = true};
    }
    return 0;
}

void nb_optim_free(nb_optim *o) {
    if (!o) return;
    for (int i = 0; i < o->n; i++)
        for (int k = 0; k < 2; k++) nb_release(o->slots[i].state[k]);
    free(o->slots);
    free(o);
}

void nb_optim_set_lr(nb_optim *o, float lr) { o->cfg.lr = lr; }

void nb_optim_zero_grad(nb_optim *o) {
    for (int i = 0; i < o->n; i++) nb_zero_grad(o->slots[i].param);
}

/* State follows the parameter's layout (a convolution may have moved the parameter to a blocked one). */
static int ensure_state(nb_optim_slot *s, int k, bool *created) {
    nb_tensor *p = s->param;
    *created = false;
    if (!s->state[k]) {
        s->state[k] = nb_tensor_like(p);
        if (!s->state[k]) return -1;
        *created = true;
        char name[NB_NAME_MAX];
        snprintf(name, sizeof name, "%s", p->name);
        nb_set_name(s->state[k], name);
        return 0;
    }
    if (s->state[k]->layout != p->layout) return nb_tensor_relayout(s->state[k], p->layout);
    return 0;
}

int nb_optim_step(nb_optim *o) {
    for (int i = 0; i < o->n; i++) {
        nb_optim_slot *s = &o->slots[i];
        nb_tensor *p = s->param, *g = p->grad;
        if (!g) continue;
        if (g->layout != p->layout && nb_tensor_relayout(g, p->layout) != 0) return -1;
        float wd = s->no_decay ? 0.0f : o->cfg.weight_decay;
        s->step++;
        if (o->cfg.kind == NB_OPTIM_SGD) {
            bool fresh = false;
            if (o->cfg.momentum != 0.0f && ensure_state(s, 0, &fresh) != 0) return -1;
            nb_sgd_step a = {.lr = o->cfg.lr,
                             .momentum = o->cfg.momentum,
                             .dampening = o->cfg.dampening,
                             .weight_decay = wd,
                             .nesterov = o->cfg.nesterov,
                             .first_step = fresh};
            if (nb_sgd_update(&a, p, g, s->state[0]) != 0) return -1;
        } else {
            bool fresh;
            if (ensure_state(s, 0, &fresh) != 0 || ensure_state(s, 1, &fresh) != 0) return -1;
            nb_adam_step a = {.lr = o->cfg.lr,
                              .beta1 = o->cfg.beta1,
                              .beta2 = o->cfg.beta2,
                              .eps = o->cfg.eps,
                              .weight_decay = wd,
                              .decoupled = o->cfg.kind == NB_OPTIM_ADAMW,
                              .step = s->step};
            if (nb_adam_update(&a, p, g, s->state[0], s->state[1]) != 0) return -1;
        }
    }
    return 0;
}

int nb_optim_state_count(const nb_optim *o) {
    int c = 0;
    for (int i = 0; i < o->n; i++) {
        for (int k = 0; k < 2; k++) c += o->slots[i].state[k] != NULL;
        c += o->slots[i].step > 0;
    }
    return c;
}

int nb_optim_state_at(const nb_optim *o, int idx, nb_optim_entry *out) {
    int c = 0;
    for (int i = 0; i < o->n; i++) {
        const nb_optim_slot *s = &o->slots[i];
        for (int k = 0; k < 2; k++) {
            if (!s->state[k]) continue;
            if (c++ == idx) {
                snprintf(out->name, sizeof out->name, "%s/%s", state_name(o, k), s->param->name);
                out->tensor = s->state[k];
                out->step = 0;
                return 0;
            }
        }
        if (s->step > 0 && c++ == idx) {
            snprintf(out->name, sizeof out->name, "step/%s", s->param->name);
            out->tensor = NULL;
            out->step = s->step;
            return 0;
        }
    }
    return -1;
}

int nb_optim_state_load(nb_optim *o, const char *name, const float *data, int64_t numel, int64_t step) {
    const char *slash = strchr(name, '/');
    NB_REQUIRE(o->ctx, slash, -1, "optimizer state", "entry '%s' is not of the form kind/parameter", name);
    size_t kl = (size_t)(slash - name);
    const char *pname = slash + 1;
    nb_optim_slot *s = NULL;
    for (int i = 0; i < o->n && !s; i++)
        if (!strcmp(o->slots[i].param->name, pname)) s = &o->slots[i];
    NB_REQUIRE(o->ctx, s, -1, "optimizer state", "entry '%s' names no parameter of this model", name);
    if (kl == 4 && !strncmp(name, "step", 4)) {
        s->step = step;
        return 0;
    }
    int k = -1;
    for (int j = 0; j < n_states(o); j++)
        if (strlen(state_name(o, j)) == kl && !strncmp(name, state_name(o, j), kl)) k = j;
    NB_REQUIRE(o->ctx, k >= 0, -1, "optimizer state", "entry '%s' does not belong to a %s optimizer", name,
               o->cfg.kind == NB_OPTIM_SGD ? "SGD" : "Adam");
    NB_REQUIRE(o->ctx, numel == nb_numel(s->param), -1, "optimizer state",
               "entry '%s' has %lld values but parameter %s is %s", name, (long long)numel, pname, NB_SHAPE(s->param));
    bool fresh;
    if (ensure_state(s, k, &fresh) != 0) return -1;
    return nb_tensor_copy_from_host(s->state[k], data, sizeof(float) * (size_t)numel);
}
