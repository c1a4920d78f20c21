/* Progressive pruning (Zhu & Gupta 2017, "automated gradual pruning"): the sparsity of each pruned layer
 * follows the cubic schedule s_t = s_f + (s_i - s_f)(1 - (t - t0)/(nΔt))³ from step t0 over nΔt steps,
 * recomputing the masks every Δt steps (nΔt = 0: one-shot pruning at t0, then fine-tuning). A mask keeps the
 * most important (1 - s_t) of a layer: by magnitude |w|, or by first-order Taylor importance |g·w|
 * accumulated over the steps since the last update (Molchanov et al. 2017).
 *
 * Granularity: single weights, or whole output channels (filters) of convolutions. A channel is removable
 * only where nothing else depends on its index: nibble walks the recorded tape from each convolution through
 * its batch norm and activation, and prunes channels only where every consumer is a dense convolution (a
 * residual sum, a concatenation or a grouped convolution ties the channel to other layers, so those
 * convolutions are left whole and named). A pruned channel has its filter and its batch norm's scale and
 * shift at zero, so it outputs zeros and an exporter can remove it with the next convolution's input.
 *
 * Masked weights stay zero through every optimizer step (momentum and weight decay included): the masks are
 * applied again after each step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/channel_deps.h"
#include "compress/compressor.h"
#include "core/arith.h"
#include "core/check.h"
#include "core/ops.h"

typedef struct {
    nb_tensor *w;          /* the weight (borrowed) */
    nb_tensor *bn_w, *bn_b; /* channel granularity: the batch norm after it (borrowed) */
    nb_tensor *mask;       /* like w */
    nb_tensor *cmask;      /* channel granularity: [C] for the batch norm */
    nb_tensor *score;      /* Taylor importance accumulated since the last update: like w */
    float target;          /* final sparsity */
} prune_layer;

typedef struct {
    nb_ctx *ctx;
    prune_layer *layers;
    int n;
    bool channels, taylor;
    double s_init;
    int64_t t0, span, every;
    double sparsity; /* measured over the pruned weights at the last update */
} pruner;

static double scheduled(const pruner *p, double s_final, int64_t t) {
    if (p->span <= 0 || t >= p->t0 + p->span) return s_final;
    double r = 1.0 - (double)(t - p->t0) / (double)p->span;
    return s_final + (p->s_init - s_final) * r * r * r;
}

typedef struct {
    float v;
    int64_t i;
} ranked;

static int by_importance(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1; /* most important first */
    return x->i < y->i ? -1 : x->i > y->i;           /* ties by position: deterministic */
}

/* Keep the `keep` most important of n scores: keep_mask[i] = 1 or 0. */
static void keep_top(const float *score, int64_t n, int64_t keep, float *keep_mask) {
    ranked *r = nb_xmalloc(sizeof(ranked) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) r[i] = (ranked){score[i], i};
    qsort(r, (size_t)n, sizeof(ranked), by_importance);
    for (int64_t i = 0; i < n; i++) keep_mask[r[i].i] = i < keep ? 1.0f : 0.0f;
    free(r);
}

static int align(nb_tensor *t, const nb_tensor *like) {
    return t->layout != like->layout ? nb_tensor_relayout(t, like->layout) : 0;
}

static int apply(pruner *p) {
    for (int k = 0; k < p->n; k++) {
        prune_layer *l = &p->layers[k];
        if (align(l->mask, l->w) || nb_mul_inplace(l->w, l->mask)) return -1;
        if (l->cmask && (nb_mul_inplace(l->bn_w, l->cmask) || nb_mul_inplace(l->bn_b, l->cmask))) return -1;
    }
    return 0;
}

/* New masks at sparsity s_t of each layer's target. */
static int update_masks(pruner *p, int64_t t) {
    int64_t zeros = 0, total = 0;
    for (int k = 0; k < p->n; k++) {
        prune_layer *l = &p->layers[k];
        int64_t n = nb_numel(l->w), C = l->w->shape[0], per = n / C;
        float *w = nb_host_copy(l->w), *sc = p->taylor ? nb_host_copy(l->score) : NULL;
        if (!w || (p->taylor && !sc)) return -1;
        float *imp = nb_xmalloc(sizeof(float) * (size_t)n), *m = nb_xmalloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < n; i++) imp[i] = p->taylor ? sc[i] : fabsf(w[i]);
        double s = scheduled(p, l->target, t);
        int rc = 0;
        if (p->channels) {
            float *cimp = nb_xcalloc((size_t)C, sizeof(float)), *cm = nb_xmalloc(sizeof(float) * (size_t)C);
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < per; i++) cimp[c] += imp[c * per + i];
            int64_t keep = (int64_t)llround((1.0 - s) * (double)C);
            if (keep < 1) keep = 1;
            keep_top(cimp, C, keep, cm);
            for (int64_t i = 0; i < n; i++) m[i] = cm[i / per];
            rc = nb_host_store(l->cmask, cm);
            free(cimp);
            free(cm);
        } else {
            keep_top(imp, n, (int64_t)llround((1.0 - s) * (double)n), m);
        }
        for (int64_t i = 0; i < n; i++) zeros += m[i] == 0.0f;
        total += n;
        if (!rc) rc = nb_host_store(l->mask, m);
        if (!rc && p->taylor) {
            memset(sc, 0, sizeof(float) * (size_t)n); /* accumulation restarts */
            rc = nb_host_store(l->score, sc);
        }
        free(w);
        free(sc);
        free(imp);
        free(m);
        if (rc) return -1;
    }
    p->sparsity = total ? (double)zeros / (double)total : 0.0;
    return apply(p);
}

static bool is_update_step(const pruner *p, int64_t t) {
    if (t < p->t0 || t > p->t0 + (p->span > 0 ? p->span : 0)) return false;
    return p->span <= 0 ? t == p->t0 : (t - p->t0) % p->every == 0 || t == p->t0 + p->span;
}

static int prune_batch_begin(nb_compressor *c, nb_step *s) {
    pruner *p = c->impl;
    return is_update_step(p, s->step) ? update_masks(p, s->step) : 0;
}

/* Taylor importance: |g·w| summed over the steps between updates, where the weights live */
static int prune_before_step(nb_compressor *c, nb_step *s) {
    pruner *p = c->impl;
    (void)s;
    if (!p->taylor) return 0;
    for (int k = 0; k < p->n; k++) {
        prune_layer *l = &p->layers[k];
        if (!l->w->grad) continue;
        if (align(l->score, l->w) || align(l->w->grad, l->w) || nb_abs_mul_add(l->score, l->w->grad, l->w)) return -1;
    }
    return 0;
}

static int prune_batch_end(nb_compressor *c, nb_step *s) {
    (void)s;
    pruner *p = c->impl;
    return s->step + 1 > p->t0 ? apply(p) : 0; /* the optimizer step moved masked weights: zero them again */
}

static void prune_state(nb_compressor *c, nb_ckpt_extra *out) {
    pruner *p = c->impl;
    for (int k = 0; k < p->n; k++) {
        prune_layer *l = &p->layers[k];
        nb_ckpt_extra_add(out, l->mask, "compress/prune/mask/%s", l->w->name);
        if (l->cmask) nb_ckpt_extra_add(out, l->cmask, "compress/prune/channel_mask/%s", l->w->name);
        if (l->score) nb_ckpt_extra_add(out, l->score, "compress/prune/score/%s", l->w->name);
    }
}

static void prune_metrics(nb_compressor *c, char *buf, size_t n) {
    pruner *p = c->impl;
    int64_t zeros = 0, total = 0;
    for (int k = 0; k < p->n; k++) {
        float *w = nb_host_copy(p->layers[k].w);
        if (!w) continue;
        for (int64_t i = 0; i < nb_numel(p->layers[k].w); i++) zeros += w[i] == 0.0f;
        total += nb_numel(p->layers[k].w);
        free(w);
    }
    snprintf(buf, n, ", \"sparsity\": %.6f, \"pruned_layers\": %d", total ? (double)zeros / (double)total : 0.0, p->n);
}

static void free_pruner(pruner *p) {
    for (int k = 0; k < p->n; k++) {
        nb_release(p->layers[k].mask);
        nb_release(p->layers[k].cmask);
        nb_release(p->layers[k].score);
    }
    free(p->layers);
    free(p);
}

static void prune_destroy(nb_compressor *c) {
    free_pruner(c->impl);
    free(c);
}

/* ---- channel dependencies, from the tape ---- */

typedef struct {
    nb_tensor *weight; /* a convolution weight whose output channels are removable */
    nb_tensor *bn_w, *bn_b;
} channel_group;

/* The convolutions whose channels only dense convolutions read, each with its batch norm. */
static int channel_groups(nb_ctx *ctx, nb_model *m, channel_group *g, int max) {
    size_t mark;
    nb_tensor *x, *y = nb_record_forward(m, 1, &mark, &x);
    nb_channel_group *deps = nb_xcalloc((size_t)max, sizeof *deps);
    int n = y ? nb_channel_groups(ctx, deps, max) : 0;
    for (int i = 0; i < n; i++) g[i] = (channel_group){deps[i].conv->in[1], deps[i].bn->in[1], deps[i].bn->in[2]};
    free(deps);
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    return y ? n : -1;
}

nb_compressor *nb_prune_new(nb_ctx *ctx, const nb_settings *s, nb_model *m, int64_t steps_per_epoch) {
    const nb_compress_settings *cs = &s->compress;
    double sf = cs->sparsity, si = cs->sparsity_init;
    NB_REQUIRE(ctx, sf >= 0 && sf < 1 && si >= 0 && si <= sf, NULL, "config",
               "compress.sparsity (%g) must be in [0, 1) and compress.sparsity_init (%g) in [0, compress.sparsity]", sf,
               si);
    nb_tensor *sel[512];
    int n = nb_compress_select(cs, cs->prune_layers, m, sel, 512);
    pruner *p = nb_xcalloc(1, sizeof *p);
    p->ctx = ctx;
    p->channels = cs->granularity.id == NB_PRUNE_CHANNEL;
    p->taylor = cs->importance.id == NB_IMPORTANCE_TAYLOR;
    p->s_init = si;
    p->t0 = (int64_t)llround(cs->prune_start * (double)steps_per_epoch);
    p->span = (int64_t)llround(cs->prune_epochs * (double)steps_per_epoch);
    p->every = cs->prune_every;
    if (p->every <= 0) p->every = steps_per_epoch / 4 > 0 ? steps_per_epoch / 4 : 1;
    channel_group groups[512];
    int ng = 0;
    if (p->channels) {
        ng = channel_groups(ctx, m, groups, 512);
        if (ng < 0) {
            free(p);
            return NULL;
        }
    }
    p->layers = nb_xcalloc((size_t)(n ? n : 1), sizeof *p->layers);
    const char *overrides = cs->sparsity_layers;
    char skipped[1024] = "";
    for (int k = 0; k < n; k++) {
        prune_layer l = {.w = sel[k], .target = (float)sf};
        char buf[32];
        const char *o = nb_compress_override(overrides, l.w->name, buf, sizeof buf);
        if (o) {
            char *end;
            double v = strtod(o, &end);
            if (*end || v < 0 || v >= 1) {
                NB_FAIL(ctx, "config", "compress.sparsity_layers: '%s' for %s is not a sparsity in [0, 1)", o, l.w->name);
                free_pruner(p);
                return NULL;
            }
            l.target = (float)v;
        }
        if (p->channels) {
            int gi = -1;
            for (int j = 0; j < ng; j++)
                if (groups[j].weight == l.w) gi = j;
            if (gi < 0) {
                if (strlen(skipped) + strlen(l.w->name) + 3 < sizeof skipped) {
                    if (skipped[0]) strcat(skipped, ", ");
                    strcat(skipped, l.w->name);
                }
                continue;
            }
            l.bn_w = groups[gi].bn_w;
            l.bn_b = groups[gi].bn_b;
            l.cmask = nb_tensor_new(ctx, NB_F32, 1, &l.w->shape[0]);
            if (!l.cmask || nb_fill(l.cmask, 1.0)) {
                free_pruner(p);
                return NULL;
            }
        }
        l.mask = nb_tensor_like(l.w);
        if (!l.mask || nb_fill(l.mask, 1.0)) {
            p->layers[p->n++] = l;
            free_pruner(p);
            return NULL;
        }
        if (p->taylor && !(l.score = nb_tensor_like(l.w))) {
            p->layers[p->n++] = l;
            free_pruner(p);
            return NULL;
        }
        char name[NB_NAME_MAX];
        snprintf(name, sizeof name, "mask of %.80s", l.w->name);
        nb_set_name(l.mask, name);
        if (l.score) {
            snprintf(name, sizeof name, "importance of %.80s", l.w->name);
            nb_set_name(l.score, name);
        }
        if (l.cmask) {
            snprintf(name, sizeof name, "channel mask of %.76s", l.w->name);
            nb_set_name(l.cmask, name);
        }
        p->layers[p->n++] = l;
    }
    if (skipped[0])
        fprintf(stderr, "nibble: note: channel pruning leaves whole the convolutions whose channels a residual sum, "
                        "concatenation or grouped convolution depends on: %s\n",
                skipped);
    if (p->n == 0) {
        NB_FAIL(ctx, "config", "compress.prune_layers = %s selects no %s of %s", cs->prune_layers,
                p->channels ? "convolution whose channels can be removed" : "convolution or linear weight", m->spec.arch);
        free_pruner(p);
        return NULL;
    }
    nb_compressor *c = nb_xcalloc(1, sizeof *c);
    *c = (nb_compressor){.name = "prune", .impl = p, .batch_begin = prune_batch_begin, .before_step = prune_before_step,
                         .batch_end = prune_batch_end, .state = prune_state, .metrics = prune_metrics,
                         .destroy = prune_destroy};
    return c;
}
