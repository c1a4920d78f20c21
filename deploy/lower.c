/* Lowering a recorded forward pass into the deploy graph (see graph.h): which nodes, which channels, which
 * constants. Nothing here knows a file format; deploy/onnx_emit.c names and writes what this decides. */
#include "deploy/graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/channel_deps.h"
#include "core/check.h"

#define MAX_GROUPS 1024

/* a value the graph computes: a node's result, the graph input, or an alias of either (an identity's output) */
typedef struct {
    const nb_tensor *t, *resolved; /* resolved: what computes it; NULL when it is a constant */
    int konst;                     /* the constant an identity passed on, or -1 */
    const uint8_t *keep;
    int64_t kept;
} value;

/* what the graph keeps of lowering: the channel groups and their keep masks, which nodes point into */
typedef struct {
    nb_channel_group *groups;
    int n_groups;
    uint8_t **group_keep; /* per group: kept output channels, or NULL when none was removed */
} kept_channels;

typedef struct {
    nb_ctx *ctx;
    nb_deploy_graph *g;
    const nb_qweights *q;
    const nb_lower_opts *o;
    const nb_node **nodes; /* needed nodes, in tape order */
    size_t n_nodes;
    kept_channels *kc;
    const nb_node **folded; /* batch norms folded into their convolution */
    int n_folded;
    value *vals;
    size_t n_vals, cap_vals;
} lowerer;

/* ---- values ---- */

static value *find(lowerer *l, const nb_tensor *t) {
    for (size_t i = 0; i < l->n_vals; i++)
        if (l->vals[i].t == t) return &l->vals[i];
    return NULL;
}

static void define(lowerer *l, const nb_tensor *t, nb_dinput as, const uint8_t *keep, int64_t kept) {
    if (l->n_vals == l->cap_vals) l->vals = nb_xrealloc(l->vals, (l->cap_vals = l->cap_vals ? 2 * l->cap_vals : 256) * sizeof *l->vals);
    l->vals[l->n_vals++] = (value){t, as.value, as.konst, keep, kept};
}

static nb_dinput computed(const nb_tensor *t) { return (nb_dinput){t, -1}; }
static nb_dinput input_of(const value *v) { return (nb_dinput){v->resolved, v->konst}; }

static bool is_param(const lowerer *l, const nb_tensor *t) {
    const nb_params *ps = &l->g->model->params;
    for (int i = 0; i < ps->n; i++)
        if (ps->items[i].t == t) return true;
    return false;
}

/* The parameter behind t: t itself, or the parameter a layout conversion (RELAYOUT) copied, so that a weight
 * the backend converted is still written once, under its own name */
static const nb_tensor *param_source(const lowerer *l, const nb_tensor *t) {
    for (int hops = 0; t && hops < 4; hops++) {
        if (is_param(l, t)) return t;
        const nb_node *src = NULL;
        for (size_t i = 0; i < l->n_nodes && !src; i++)
            if (l->nodes[i]->out[0] == t && l->nodes[i]->op == NB_OP_RELAYOUT) src = l->nodes[i];
        t = src ? src->in[0] : NULL;
    }
    return NULL;
}

static float *host(const nb_tensor *t) {
    float *h = nb_xmalloc(sizeof(float) * (size_t)(nb_numel(t) ? nb_numel(t) : 1));
    if (nb_tensor_to_host(t, h, sizeof(float) * (size_t)nb_numel(t))) {
        free(h);
        return NULL;
    }
    return h;
}

/* ---- constants ---- */

static int add_const(lowerer *l, const nb_tensor *source, bool changed, int ndim, const int64_t *dims, float *values) {
    nb_deploy_graph *g = l->g;
    if (g->n_consts == g->cap_consts)
        g->consts = nb_xrealloc(g->consts, sizeof *g->consts * (size_t)(g->cap_consts = g->cap_consts ? 2 * g->cap_consts : 64));
    nb_dconst *c = &g->consts[g->n_consts];
    *c = (nb_dconst){.source = source, .is_param = source && is_param(l, source), .changed = changed, .ndim = ndim,
                     .values = values};
    memcpy(c->dims, dims, sizeof(int64_t) * (size_t)ndim);
    return g->n_consts++;
}

/* The constant made earlier that holds tensor t as it is, or -1. */
static int unchanged_const(const lowerer *l, const nb_tensor *t) {
    for (int i = 0; i < l->g->n_consts; i++)
        if (l->g->consts[i].source == t && !l->g->consts[i].changed) return i;
    return -1;
}

/* The constant that holds tensor t unchanged (a parameter, or a tensor the model made), made at its first
 * use and shared after. */
static int leaf(lowerer *l, const nb_tensor *t) {
    int k = unchanged_const(l, t);
    if (k >= 0) return k;
    float *h = host(t);
    return h ? add_const(l, t, false, t->ndim, t->shape, h) : -1;
}

static int64_t keep_rows(float *v, int64_t rows, int64_t inner, const uint8_t *keep) {
    if (!keep) return rows;
    int64_t k = 0;
    for (int64_t r = 0; r < rows; r++)
        if (keep[r]) memmove(v + k++ * inner, v + r * inner, sizeof(float) * (size_t)inner);
    return k;
}

/* Input channels of a [O, I, kh*kw] convolution weight, in place */
static void keep_in_channels(float *w, int64_t O, int64_t I, int64_t khw, const uint8_t *keep) {
    int64_t k = 0;
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++)
            if (keep[i]) memmove(w + k++ * khw, w + (o * I + i) * khw, sizeof(float) * (size_t)khw);
}

static void keep_rows_i8(int8_t *v, int64_t rows, int64_t inner, const uint8_t *keep) {
    int64_t k = 0;
    for (int64_t r = 0; r < rows; r++)
        if (keep[r]) memmove(v + k++ * inner, v + r * inner, (size_t)inner);
}

static void keep_in_channels_i8(int8_t *w, int64_t O, int64_t I, int64_t khw, const uint8_t *keep) {
    int64_t k = 0;
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++)
            if (keep[i]) memmove(w + k++ * khw, w + (o * I + i) * khw, (size_t)khw);
}

/* A conv or linear weight constant from parameter p: w holds its values [O, inner] after channel removal
 * (taken); out_scale (O values, or NULL) multiplies each output channel (a folded batch norm); in_keep/khw:
 * input channels removed from a convolution weight. The checkpoint's integer codes replace the values where
 * it has them, after a check that they reproduce the weights. */
/* The codes of the folded weight v [O, inner] on the simulation's grid, as its fake quantizer rounds them:
 * round(v * (1 / s)) clamped, s per kept output channel (scale holds one per original channel, or one) */
static int sim_codes(lowerer *l, const nb_tensor *p, bool changed, const float *v, int64_t O, int64_t inner,
                     const uint8_t *out_keep, const float *scale, int64_t n_scale, int qmin, int qmax) {
    nb_deploy_graph *g = l->g;
    int64_t dims[NB_MAX_DIMS];
    memcpy(dims, p->shape, sizeof(int64_t) * (size_t)p->ndim);
    dims[0] = O;
    dims[1] = p->ndim > 1 ? inner / (nb_numel(p) / p->shape[0] / p->shape[1]) : dims[1];
    int id = add_const(l, p, true, p->ndim, dims, NULL);
    nb_dconst *c = &g->consts[id];
    c->codes = nb_xmalloc((size_t)(O * inner > 0 ? O * inner : 1));
    c->scale = nb_xmalloc(sizeof(float) * (size_t)(O ? O : 1));
    for (int64_t o = 0, orig = 0; o < O; o++, orig++) {
        while (out_keep && !out_keep[orig]) orig++;
        float s = scale[n_scale == 1 ? 0 : orig], inv = 1.0f / s;
        c->scale[o] = s;
        for (int64_t i = 0; i < inner; i++)
            c->codes[o * inner + i] = (int8_t)fminf(fmaxf(nearbyintf(v[o * inner + i] * inv), (float)qmin), (float)qmax);
    }
    c->per_channel = true; /* one scale per channel even when they are equal: what MNN reads correctly */
    c->qmin = qmin;
    c->qmax = qmax;
    c->fits_int4 = qmin >= -8 && qmax <= 7;
    snprintf(c->method, sizeof c->method, "full-integer");
    g->stats.quantized_layers++;
    g->stats.quantized_weights += O * inner;
    if (!strstr(g->stats.methods, c->method) && strlen(g->stats.methods) + strlen(c->method) + 3 < sizeof g->stats.methods) {
        if (g->stats.methods[0]) strcat(g->stats.methods, ", ");
        strcat(g->stats.methods, c->method);
    }
    (void)changed;
    return id;
}

static int weight(lowerer *l, const nb_tensor *p, bool changed, float *w, int64_t O, int64_t inner,
                  const uint8_t *out_keep, const uint8_t *in_keep, int64_t khw, const float *out_scale,
                  const nb_tensor *bn_gamma) {
    nb_deploy_graph *g = l->g;
    nb_deploy_stats *st = &g->stats;
    int64_t n_all = nb_numel(p), O_all = p->shape[0];
    int64_t dims[NB_MAX_DIMS];
    memcpy(dims, p->shape, sizeof(int64_t) * (size_t)p->ndim);
    dims[0] = O;
    if (in_keep) dims[1] = inner / khw;
    for (int64_t i = 0; i < O * inner; i++) st->zero_weights += w[i] == 0.0f;
    int64_t n_scale;
    int qmin, qmax;
    float *sim = l->o->qsim && !l->o->float_weights
                     ? nb_qsim_weight_scales(l->o->qsim, p, bn_gamma, &n_scale, &qmin, &qmax)
                     : NULL;
    if (!sim && l->o->qsim && nb_qsim_quantizes(l->o->qsim, p)) {
        NB_FAIL(l->ctx, p->name, "the simulation quantized this weight with %s batch norm folded in, the export "
                "does not: export with --fold-bn", bn_gamma ? "no" : "a");
        free(w);
        return -1;
    }
    if (sim) { /* the weights as the simulation quantized them: folded by the same float products */
        if (out_scale)
            for (int64_t o = 0; o < O; o++)
                for (int64_t i = 0; i < inner; i++) w[o * inner + i] *= out_scale[o];
        int id = sim_codes(l, p, changed, w, O, inner, out_keep, sim, n_scale, qmin, qmax);
        free(sim);
        free(w);
        return id;
    }
    nb_qweight q = {0};
    int found = l->q && !l->o->float_weights ? nb_qweight_find(l->ctx, l->q, p->name, n_all, O_all, &q) : 0;
    if (found < 0) {
        free(w);
        return -1;
    }
    if (!found) {
        if (out_scale)
            for (int64_t o = 0; o < O; o++)
                for (int64_t i = 0; i < inner; i++) w[o * inner + i] *= out_scale[o];
        st->float_weights += O * inner;
        return add_const(l, p, changed, p->ndim, dims, w);
    }
    free(w);
    /* the float weights must be the codes times the scales, or the file would compute another network; each
     * within float rounding of its own alpha*code (int8's codes reach 127 alphas: an absolute bound on alpha
     * refused them for the last bits of the product) */
    float *full = host(p);
    int64_t per = n_all / O_all;
    double worst = 0, excess = 0;
    for (int64_t i = 0; full && i < n_all; i++) {
        float a = q.alpha[q.n_alpha == 1 ? 0 : i / per];
        double d = fabs((double)full[i] - (double)a * q.codes[i]);
        worst = fmax(worst, d);
        excess = fmax(excess, d / (1e-6 * fabs((double)a) * fmax(abs(q.codes[i]), 1)));
    }
    double amax = 0;
    for (int64_t c = 0; c < q.n_alpha; c++) amax = fmax(amax, fabs((double)q.alpha[c]));
    free(full);
    if (!(excess <= 1.0)) {
        NB_FAIL(l->ctx, l->q->path,
                "%s is not on its codebook (max |W - alpha*codes| = %.3g, alpha up to %.3g): the %s record is older "
                "than the weights (a checkpoint from the middle of training?); export it with --float, or "
                "finish training",
                p->name, worst, amax, q.method);
        nb_qweight_free(&q);
        return -1;
    }
    if (out_keep) keep_rows_i8(q.codes, O_all, per, out_keep);
    if (in_keep) keep_in_channels_i8(q.codes, O, per / khw, khw, in_keep);
    float *scale = nb_xmalloc(sizeof(float) * (size_t)O);
    for (int64_t o = 0, k = 0; o < O_all; o++) {
        if (out_keep && !out_keep[o]) continue;
        scale[k] = q.alpha[q.n_alpha == 1 ? 0 : o] * (out_scale ? out_scale[k] : 1.0f);
        k++;
    }
    int id = add_const(l, p, changed, p->ndim, dims, NULL);
    nb_dconst *c = &g->consts[id];
    int64_t count = O * inner;
    c->codes = nb_xmalloc((size_t)(count > 0 ? count : 1));
    memcpy(c->codes, q.codes, (size_t)count);
    c->scale = scale;
    c->per_channel = q.n_alpha > 1 || out_scale;
    c->fits_int4 = true;
    for (int64_t i = 0; i < O * inner && c->fits_int4; i++) c->fits_int4 = q.codes[i] >= -8 && q.codes[i] <= 7;
    snprintf(c->method, sizeof c->method, "%s", q.method);
    st->quantized_layers++;
    st->quantized_weights += O * inner;
    if (!strstr(st->methods, q.method) && strlen(st->methods) + strlen(q.method) + 3 < sizeof st->methods) {
        if (st->methods[0]) strcat(st->methods, ", ");
        strcat(st->methods, q.method);
    }
    nb_qweight_free(&q);
    return id;
}

/* ---- which nodes, which channels ---- */

/* The nodes the output depends on, in tape order */
static void needed_nodes(lowerer *l, const nb_tensor *y) {
    nb_ctx *ctx = l->ctx;
    size_t n = nb_tape_size(ctx), nw = 1, cap = 64;
    const nb_tensor **wanted = nb_xmalloc(cap * sizeof *wanted);
    wanted[0] = y;
    bool *need = nb_xcalloc(n ? n : 1, sizeof *need);
    for (size_t i = n; i-- > 0;) {
        const nb_node *nd = nb_tape_node(ctx, i);
        for (int k = 0; k < nd->n_out && !need[i]; k++)
            for (size_t j = 0; j < nw; j++)
                if (nd->out[k] == wanted[j]) need[i] = true;
        if (!need[i]) continue;
        for (int k = 0; k < nd->n_in; k++) {
            if (!nd->in[k]) continue;
            if (nw == cap) wanted = nb_xrealloc(wanted, (cap *= 2) * sizeof *wanted);
            wanted[nw++] = nd->in[k];
        }
    }
    l->nodes = nb_xmalloc((n ? n : 1) * sizeof *l->nodes);
    for (size_t i = 0; i < n; i++)
        if (need[i]) l->nodes[l->n_nodes++] = nb_tape_node(ctx, i);
    free(need);
    free(wanted);
}

static int consumers(const lowerer *l, const nb_tensor *t) {
    int k = 0;
    for (size_t i = 0; i < l->n_nodes; i++)
        for (int j = 0; j < l->nodes[i]->n_in; j++)
            if (l->nodes[i]->in[j] == t) {
                k++;
                break;
            }
    return k;
}

static const nb_node *consumer(const lowerer *l, const nb_tensor *t) {
    for (size_t i = 0; i < l->n_nodes; i++)
        for (int j = 0; j < l->nodes[i]->n_in; j++)
            if (l->nodes[i]->in[j] == t) return l->nodes[i];
    return NULL;
}

static int group_of(const lowerer *l, const nb_node *conv) {
    for (int i = 0; i < l->kc->n_groups; i++)
        if (l->kc->groups[i].conv == conv) return i;
    return -1;
}

static bool is_folded(const lowerer *l, const nb_node *bn) {
    for (int i = 0; i < l->n_folded; i++)
        if (l->folded[i] == bn) return true;
    return false;
}

/* Which channels of each removable group survive: those whose batch-norm scale or shift is not zero */
static int find_removable(lowerer *l) {
    kept_channels *kc = l->kc;
    nb_deploy_stats *st = &l->g->stats;
    kc->groups = nb_xcalloc(MAX_GROUPS, sizeof *kc->groups);
    kc->n_groups = l->o->keep_channels ? 0 : nb_channel_groups(l->ctx, kc->groups, MAX_GROUPS);
    kc->group_keep = nb_xcalloc((size_t)(kc->n_groups ? kc->n_groups : 1), sizeof *kc->group_keep);
    for (int i = 0; i < kc->n_groups; i++) {
        const nb_node *bn = kc->groups[i].bn;
        int64_t C = bn->in[1]->shape[0];
        float *gamma = host(bn->in[1]), *beta = host(bn->in[2]);
        if (!gamma || !beta) {
            free(gamma);
            free(beta);
            return -1;
        }
        uint8_t *keep = nb_xmalloc((size_t)C);
        int64_t kept = 0;
        for (int64_t c = 0; c < C; c++) kept += keep[c] = gamma[c] != 0.0f || beta[c] != 0.0f;
        if (kept == 0) keep[0] = 1, kept = 1; /* a layer with no channel at all is not a network a file can hold */
        st->prunable_channels += C;
        if (kept < C) {
            kc->group_keep[i] = keep;
            st->channels_removed += C - kept;
        } else {
            free(keep);
        }
        free(gamma);
        free(beta);
    }
    return 0;
}

static nb_dnode *add_node(lowerer *l, const nb_node *n, const nb_tensor *out) {
    nb_deploy_graph *g = l->g;
    nb_dnode *d = &g->nodes[g->n_nodes++];
    *d = (nb_dnode){.node = n, .out = out};
    return d;
}

/* Convolutions that use weight wt (more than one: a head shared across scales) */
static int conv_uses(const lowerer *l, const nb_tensor *wt) {
    int k = 0;
    for (size_t i = 0; i < l->n_nodes; i++)
        k += l->nodes[i]->op == NB_OP_CONV2D && l->nodes[i]->in[1] && param_source(l, l->nodes[i]->in[1]) == wt;
    return k;
}

/* ---- the ops that carry weights ---- */

/* A convolution, with the batch norm after it folded in when asked, and pruned channels removed */
static int lower_conv(lowerer *l, const nb_node *n) {
    nb_deploy_graph *g = l->g;
    const nb_tensor *wt = param_source(l, n->in[1]), *bt = n->in[2] ? param_source(l, n->in[2]) : NULL;
    value *xv = find(l, n->in[0]);
    const nb_conv_attr *a = &n->attr.conv;
    NB_REQUIRE(l->ctx, wt && (bt || !n->in[2]), -1, n->scope,
               "the convolution's weight or bias is not a parameter of the model (only parameters are exported)");
    int gi = group_of(l, n);
    const uint8_t *out_keep = gi >= 0 ? l->kc->group_keep[gi] : NULL;
    if (xv->keep && a->groups != 1) {
        NB_FAIL(l->ctx, n->scope, "pruned channels reach a grouped convolution (an exporter bug)");
        return -1;
    }
    int64_t O_all = wt->shape[0], I = wt->shape[1], khw = wt->shape[2] * wt->shape[3];
    float *w = host(wt), *b = bt ? host(bt) : nb_xcalloc((size_t)O_all, sizeof(float));
    if (!w || !b) {
        free(w);
        free(b);
        return -1;
    }
    const nb_node *bn = NULL;
    if (l->o->fold_bn && consumers(l, n->out[0]) == 1) {
        bn = consumer(l, n->out[0]);
        if (bn->op != NB_OP_BATCHNORM2D || bn->attr.bn.training) bn = NULL;
    }
    float *scale = NULL;
    bool has_bias = bt != NULL;
    if (bn) { /* y = s*(Wx + b - mean) + beta with s = gamma / sqrt(var + eps) */
        float *gm = bn->in[1] ? host(bn->in[1]) : NULL, *be = bn->in[2] ? host(bn->in[2]) : NULL;
        float *mu = host(bn->in[3]), *var = host(bn->in[4]);
        scale = nb_xmalloc(sizeof(float) * (size_t)O_all);
        for (int64_t o = 0; o < O_all; o++) {
            scale[o] = (gm ? gm[o] : 1.0f) / sqrtf(var[o] + bn->attr.bn.eps);
            b[o] = (be ? be[o] : 0.0f) + (b[o] - mu[o]) * scale[o];
        }
        free(gm);
        free(be);
        free(mu);
        free(var);
        has_bias = true;
        l->folded[l->n_folded++] = bn;
        g->stats.folded_bn++;
    }
    int64_t O = keep_rows(w, O_all, I * khw, out_keep);
    keep_rows(b, O_all, 1, out_keep);
    if (scale) keep_rows(scale, O_all, 1, out_keep);
    int64_t inner = I * khw;
    if (xv->keep) {
        keep_in_channels(w, O, I, khw, xv->keep);
        inner = xv->kept * khw;
    }
    /* a weight shared by several convolutions is one constant, unless a use changes it (a folded batch norm of
     * its own, removed channels): that use gets constants of its own */
    bool changed = scale || out_keep || xv->keep, shared = conv_uses(l, wt) > 1;
    int wid = shared && !changed ? unchanged_const(l, wt) : -1, bid = -1, rc = 0;
    if (wid >= 0) {
        free(w);
        if (bt) bid = unchanged_const(l, bt);
    } else {
        wid = weight(l, wt, changed, w, O, inner, out_keep, xv->keep, khw, scale, bn ? bn->in[1] : NULL);
        rc = wid < 0 ? -1 : 0;
    }
    if (rc == 0 && has_bias && bid < 0) {
        float *bc = nb_xmalloc(sizeof(float) * (size_t)(O ? O : 1));
        memcpy(bc, b, sizeof(float) * (size_t)O);
        bid = add_const(l, bt, !bt || changed, 1, (int64_t[]){O}, bc);
    }
    free(b);
    free(scale);
    if (rc) return -1;
    nb_dnode *d = add_node(l, n, bn ? bn->out[0] : n->out[0]);
    d->bn = bn;
    d->n_in = 3;
    d->in[0] = input_of(xv);
    d->in[1] = (nb_dinput){NULL, wid};
    d->in[2] = (nb_dinput){NULL, has_bias ? bid : -1};
    d->keep = out_keep;
    d->kept = O;
    d->shared_weight = shared;
    define(l, d->out, computed(d->out), out_keep, O);
    return 0;
}

static int lower_batchnorm(lowerer *l, const nb_node *n) {
    if (is_folded(l, n)) return 0;
    value *xv = find(l, n->in[0]);
    int64_t C = n->in[0]->shape[1];
    nb_dnode *d = add_node(l, n, n->out[0]);
    d->n_in = 5;
    d->in[0] = input_of(xv);
    for (int k = 1; k < 5; k++) {
        const nb_tensor *p = n->in[k];
        float *h = p ? host(p) : nb_xmalloc(sizeof(float) * (size_t)C);
        if (!h) return -1;
        if (!p)
            for (int64_t c = 0; c < C; c++) h[c] = k == 1 ? 1.0f : 0.0f;
        int64_t kept = keep_rows(h, C, 1, xv->keep);
        d->in[k] = (nb_dinput){NULL, add_const(l, p, xv->keep != NULL, 1, (int64_t[]){kept}, h)};
    }
    d->keep = xv->keep;
    d->kept = xv->kept;
    define(l, n->out[0], computed(n->out[0]), xv->keep, xv->kept);
    return 0;
}

static int lower_linear(lowerer *l, const nb_node *n) {
    value *xv = find(l, n->in[0]);
    const nb_tensor *wp = param_source(l, n->in[1]), *wt = wp ? wp : n->in[1], *bt = n->in[2];
    if (bt && param_source(l, bt)) bt = param_source(l, bt);
    if (xv->keep) {
        NB_FAIL(l->ctx, n->scope, "pruned channels reach a linear layer (an exporter bug)");
        return -1;
    }
    /* a weight the model made (adaptive pooling's averaging matrix) is a constant, not a parameter */
    int wid = unchanged_const(l, wt);
    if (is_param(l, wt) && wid < 0) {
        float *w = host(wt);
        if (!w) return -1;
        wid = weight(l, wt, false, w, wt->shape[0], wt->shape[1], NULL, NULL, 1, NULL, NULL);
    } else if (wid < 0) {
        wid = leaf(l, wt);
    }
    int bid = bt ? leaf(l, bt) : -1;
    if (wid < 0 || (bt && bid < 0)) return -1;
    nb_dnode *d = add_node(l, n, n->out[0]);
    d->n_in = 3;
    d->in[0] = input_of(xv);
    d->in[1] = (nb_dinput){NULL, wid};
    d->in[2] = (nb_dinput){NULL, bid};
    define(l, n->out[0], computed(n->out[0]), NULL, 0);
    return 0;
}

/* ---- everything else ---- */

/* element by element, so pruned channels pass through: the activations and the inference identities */
/* n computes each channel from the same channel alone, the same way for every channel: removed channels stay
 * removed through it (a per-tensor quantizer too: zero is on its grid) */
static bool channelwise(const nb_node *n) {
    return !strcmp(nb_op_attr_member(n->op), "eltwise") || nb_op_deploy_of(n->op) == NB_DEPLOY_IDENTITY ||
           (n->op == NB_OP_FAKE_QUANT && n->attr.fake_quant.axis < 0);
}

static int lower_node(lowerer *l, const nb_node *n) {
    switch (n->op) {
    case NB_OP_CONV2D: return lower_conv(l, n);
    case NB_OP_BATCHNORM2D: return lower_batchnorm(l, n);
    case NB_OP_LINEAR: return lower_linear(l, n);
    default: break;
    }
    /* a parameter converted to the backend's layout: its readers take the parameter itself */
    if (n->op == NB_OP_RELAYOUT && param_source(l, n->in[0])) return 0;
    NB_REQUIRE(l->ctx, n->n_in <= NB_DEPLOY_MAX_IN, -1, n->scope, "%s has %d inputs", nb_op_name(n->op), n->n_in);
    nb_dinput in[NB_DEPLOY_MAX_IN];
    const value *first = NULL;
    for (int k = 0; k < n->n_in; k++) {
        value *v = n->in[k] ? find(l, n->in[k]) : NULL;
        if (!v && n->in[k]) {
            const nb_tensor *p = param_source(l, n->in[k]);
            in[k] = (nb_dinput){NULL, leaf(l, p ? p : n->in[k])};
            if (in[k].konst < 0) return -1;
        } else {
            in[k] = v ? input_of(v) : (nb_dinput){NULL, -1};
        }
        if (k == 0) first = v;
    }
    const uint8_t *keep = first ? first->keep : NULL;
    int64_t kept = first ? first->kept : 0;
    bool chw = channelwise(n);
    if (!chw)
        for (int k = 0; k < n->n_in; k++) {
            value *v = n->in[k] ? find(l, n->in[k]) : NULL;
            NB_REQUIRE(l->ctx, !v || !v->keep, -1, n->scope, "pruned channels reach %s (an exporter bug)",
                       nb_op_name(n->op));
        }
    if (nb_op_deploy_of(n->op) == NB_DEPLOY_IDENTITY) {
        define(l, n->out[0], in[0], keep, kept);
        return 0;
    }
    nb_dnode *d = add_node(l, n, n->out[0]);
    d->n_in = n->n_in;
    memcpy(d->in, in, sizeof(nb_dinput) * (size_t)n->n_in);
    d->keep = chw ? keep : NULL;
    d->kept = chw ? kept : 0;
    define(l, n->out[0], computed(n->out[0]), d->keep, d->kept);
    return 0;
}

int nb_deploy_lower(nb_model *m, const nb_tensor *x, const nb_tensor *y, const nb_qweights *q, const nb_lower_opts *o,
                    nb_deploy_graph *g) {
    memset(g, 0, sizeof *g);
    g->model = m;
    g->input = x;
    g->output = y;
    kept_channels *kc = nb_xcalloc(1, sizeof *kc);
    g->impl = kc;
    lowerer l = {.ctx = m->ctx, .g = g, .q = q, .o = o, .kc = kc};
    needed_nodes(&l, y);
    l.folded = nb_xcalloc(l.n_nodes ? l.n_nodes : 1, sizeof *l.folded);
    g->nodes = nb_xcalloc(l.n_nodes ? l.n_nodes : 1, sizeof *g->nodes);
    int rc = find_removable(&l);
    define(&l, x, computed(x), NULL, 0);
    for (size_t i = 0; i < l.n_nodes && rc == 0; i++) rc = lower_node(&l, l.nodes[i]);
    if (rc == 0) g->output_value = find(&l, y)->resolved;
    free(l.folded);
    free(l.nodes);
    free(l.vals);
    return rc;
}

void nb_deploy_free(nb_deploy_graph *g) {
    for (int i = 0; i < g->n_consts; i++) {
        free(g->consts[i].values);
        free(g->consts[i].codes);
        free(g->consts[i].scale);
    }
    free(g->consts);
    free(g->nodes);
    kept_channels *kc = g->impl;
    if (kc) {
        for (int i = 0; i < kc->n_groups; i++) free(kc->group_keep[i]);
        free(kc->group_keep);
        free(kc->groups);
        free(kc);
    }
    memset(g, 0, sizeof *g);
}
