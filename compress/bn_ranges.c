/* Data-free activation ranges from batch-norm statistics (see bn_ranges.h): the recorded forward pass walked
 * op by op, each value's channels carried as a Gaussian (mean, variance) clipped to hard bounds [lo, hi]. */
#include "compress/bn_ranges.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/compressor.h"
#include "compress/gaussian.h"
#include "core/check.h"
#include "core/tape.h"

/* a value's channels (dim 1; the features of a 2-D value): channel c is clip(N(mu[c], var[c]), lo[c], hi[c]) */
typedef struct {
    const nb_tensor *t;
    int64_t C;
    double *mu, *var, *lo, *hi;
} moments;

typedef struct {
    moments *v;
    size_t n, cap;
    /* what the quantizers observed: (point, tensor) in forward order */
    int *point;
    const nb_tensor **seen;
    size_t n_seen, cap_seen;
} walk;

static moments *add_value(walk *w, const nb_tensor *t, int64_t C) {
    if (w->n == w->cap) w->v = nb_xrealloc(w->v, sizeof *w->v * (w->cap = w->cap ? 2 * w->cap : 256));
    moments *m = &w->v[w->n++];
    m->t = t;
    m->C = C;
    m->mu = nb_xcalloc((size_t)(4 * C), sizeof(double));
    m->var = m->mu + C;
    m->lo = m->var + C;
    m->hi = m->lo + C;
    for (int64_t c = 0; c < C; c++) {
        m->lo[c] = -INFINITY;
        m->hi[c] = INFINITY;
    }
    return m;
}

static const moments *find(const walk *w, const nb_tensor *t) {
    for (size_t i = w->n; i-- > 0;)
        if (w->v[i].t == t) return &w->v[i];
    return NULL;
}

static void observed(void *user, int point, nb_tensor *t) {
    walk *w = user;
    if (w->n_seen == w->cap_seen) {
        w->cap_seen = w->cap_seen ? 2 * w->cap_seen : 64;
        w->point = nb_xrealloc(w->point, sizeof *w->point * w->cap_seen);
        w->seen = nb_xrealloc(w->seen, sizeof *w->seen * w->cap_seen);
    }
    w->point[w->n_seen] = point;
    w->seen[w->n_seen++] = t;
}

/* channel c of m as a plain mean and variance (its clipping applied) */
static void effective(const moments *m, int64_t c, double *E, double *V) {
    nb_censored_gaussian(m->mu[c], sqrt(m->var[c]), m->lo[c], m->hi[c], E, V);
}

/* f(x) of an element-wise op */
static double eltwise(nb_op op, float alpha, double x) {
    switch (op) {
    case NB_OP_LEAKY_RELU: return x > 0 ? x : alpha * x;
    case NB_OP_SIGMOID: return 1 / (1 + exp(-x));
    case NB_OP_HARDSIGMOID: return fmin(fmax(x + 3, 0), 6) / 6;
    case NB_OP_HARDSWISH: return x * fmin(fmax(x + 3, 0), 6) / 6;
    case NB_OP_SQUARE: return x * x;
    case NB_OP_SILU: return x / (1 + exp(-x));
    default: return x;
    }
}

/* y = f(x) for an element-wise op without a closed form: E[f(X)] and E[f(X)^2] by quadrature over the
 * clipped Gaussian, the bounds through f's extremes on [lo, hi] */
static void through(nb_op op, float alpha, const moments *x, int64_t c, moments *y) {
    enum { K = 401 };
    double mu = x->mu[c], s = sqrt(x->var[c]), e1 = 0, e2 = 0, wsum = 0, lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < K; i++) {
        double t = -8.0 + 16.0 * i / (K - 1), w = nb_gauss_pdf(t);
        double v = eltwise(op, alpha, fmin(fmax(mu + s * t, x->lo[c]), x->hi[c]));
        e1 += w * v;
        e2 += w * v * v;
        wsum += w;
    }
    y->mu[c] = e1 / wsum;
    y->var[c] = fmax(e2 / wsum - y->mu[c] * y->mu[c], 0);
    /* the extremes of f over [lo, hi] (f is monotone there but for leaky/hardswish/square/silu's one turn: at
     * -1.5, 0 and -1.2785) */
    double pts[5] = {x->lo[c], x->hi[c], fmin(fmax(-1.5, x->lo[c]), x->hi[c]), fmin(fmax(0, x->lo[c]), x->hi[c]),
                     fmin(fmax(-1.2785, x->lo[c]), x->hi[c])};
    for (int k = 0; k < 5; k++) {
        double v = isinf(pts[k]) ? eltwise(op, alpha, pts[k] < 0 ? -1e30 : 1e30) : eltwise(op, alpha, pts[k]);
        if (isnan(v)) continue;
        lo = fmin(lo, v);
        hi = fmax(hi, v);
    }
    y->lo[c] = lo <= -1e29 ? -INFINITY : lo;
    y->hi[c] = hi >= 1e29 ? INFINITY : hi;
}

static int64_t channels_of(const nb_tensor *t) { return t->ndim >= 2 ? t->shape[1] : 1; }

/* all of x's channels as one mixture, for each of y's */
static void pooled(const moments *x, moments *y) {
    double e1 = 0, e2 = 0, lo = INFINITY, hi = -INFINITY;
    for (int64_t c = 0; c < x->C; c++) {
        double E, V;
        effective(x, c, &E, &V);
        e1 += E / (double)x->C;
        e2 += (V + E * E) / (double)x->C;
        lo = fmin(lo, x->lo[c]);
        hi = fmax(hi, x->hi[c]);
    }
    for (int64_t c = 0; c < y->C; c++) {
        y->mu[c] = e1;
        y->var[c] = fmax(e2 - e1 * e1, 0);
        y->lo[c] = lo;
        y->hi[c] = hi;
    }
}

static void copy_channel(const moments *x, int64_t from, moments *y, int64_t to) {
    y->mu[to] = x->mu[from];
    y->var[to] = x->var[from];
    y->lo[to] = x->lo[from];
    y->hi[to] = x->hi[from];
}

/* a convolution or linear layer: sums of its inputs' moments with the weights, independence assumed */
static int weighted(nb_ctx *ctx, const nb_node *n, const moments *x, moments *y) {
    const nb_tensor *wt = n->in[1], *bt = n->n_in > 2 ? n->in[2] : NULL;
    float *w = nb_host_copy(wt), *b = bt ? nb_host_copy(bt) : NULL;
    NB_REQUIRE(ctx, w && (!bt || b), -1, n->scope, "data-free ranges: cannot read the weights");
    int64_t O = wt->shape[0], I = wt->shape[1], K = 1;
    for (int k = 2; k < wt->ndim; k++) K *= wt->shape[k];
    int groups = n->op == NB_OP_CONV2D && n->attr.conv.groups > 1 ? n->attr.conv.groups : 1;
    double *E = nb_xmalloc(sizeof(double) * 2 * (size_t)x->C), *V = E + x->C;
    for (int64_t c = 0; c < x->C; c++) effective(x, c, &E[c], &V[c]);
    for (int64_t o = 0; o < O; o++) {
        int64_t first = (o / (O / groups)) * I;
        double mu = b ? b[o] : 0, var = 0;
        for (int64_t i = 0; i < I; i++)
            for (int64_t k = 0; k < K; k++) {
                double wv = w[(o * I + i) * K + k];
                mu += wv * E[first + i];
                var += wv * wv * V[first + i];
            }
        y->mu[o] = mu;
        y->var[o] = var;
    }
    free(E);
    free(w);
    free(b);
    return 0;
}

static int batchnorm(nb_ctx *ctx, const nb_node *n, moments *y) {
    float *g = n->in[1] ? nb_host_copy(n->in[1]) : NULL, *b = n->in[2] ? nb_host_copy(n->in[2]) : NULL;
    NB_REQUIRE(ctx, (!n->in[1] || g) && (!n->in[2] || b), -1, n->scope, "data-free ranges: cannot read the batch norm");
    for (int64_t c = 0; c < y->C; c++) {
        y->mu[c] = b ? b[c] : 0;
        y->var[c] = g ? (double)g[c] * g[c] : 1;
        if (n->attr.bn.relu) y->lo[c] = 0;
    }
    free(g);
    free(b);
    return 0;
}

/* y's moments from node n's inputs; the inputs that are values of the pass have theirs in w */
static int step(nb_ctx *ctx, walk *w, const nb_node *n) {
    const nb_tensor *out = n->out[0];
    const moments *x = n->n_in && n->in[0] ? find(w, n->in[0]) : NULL;
    nb_op op = n->op;
    if (op == NB_OP_CONCAT) {
        moments *y = add_value(w, out, channels_of(out));
        const nb_axis_attr *a = &n->attr.axis;
        if (a->axis != 1) { /* along space: each channel the parts' mixture (as many elements of each) */
            for (int64_t c = 0; c < y->C; c++) {
                double e1 = 0, e2 = 0;
                y->lo[c] = INFINITY;
                y->hi[c] = -INFINITY;
                for (int j = 0; j < n->n_in; j++) {
                    const moments *p = find(w, n->in[j]);
                    NB_REQUIRE(ctx, p && p->C == y->C, -1, n->scope, "data-free ranges: input %d of the concatenation "
                               "has no moments of its channels", j);
                    double E, V;
                    effective(p, c, &E, &V);
                    e1 += E / n->n_in;
                    e2 += (V + E * E) / n->n_in;
                    y->lo[c] = fmin(y->lo[c], p->lo[c]);
                    y->hi[c] = fmax(y->hi[c], p->hi[c]);
                }
                y->mu[c] = e1;
                y->var[c] = fmax(e2 - e1 * e1, 0);
            }
            return 0;
        }
        int64_t at = 0;
        for (int j = 0; j < n->n_in; j++) {
            const moments *p = find(w, n->in[j]);
            NB_REQUIRE(ctx, p, -1, n->scope, "data-free ranges: input %d of the concatenation has no moments", j);
            for (int64_t c = 0; c < p->C; c++, at++) copy_channel(p, c, y, a->interleave ? c * n->n_in + j : at);
        }
        return 0;
    }
    if (!x) return 0; /* an op on parameters (a weight's own arithmetic): no activation to carry */
    moments *y = add_value(w, out, channels_of(out));
    x = find(w, n->in[0]); /* add_value may have moved the array */
    switch (op) {
    case NB_OP_CONV2D:
    case NB_OP_LINEAR: return weighted(ctx, n, x, y);
    case NB_OP_BATCHNORM2D: return batchnorm(ctx, n, y);
    case NB_OP_RELU:
    case NB_OP_RELU6:
        for (int64_t c = 0; c < y->C; c++) {
            copy_channel(x, c, y, c);
            y->lo[c] = fmax(y->lo[c], 0);
            if (op == NB_OP_RELU6) y->hi[c] = fmin(y->hi[c], 6);
        }
        return 0;
    case NB_OP_LEAKY_RELU:
    case NB_OP_SIGMOID:
    case NB_OP_HARDSIGMOID:
    case NB_OP_HARDSWISH:
    case NB_OP_SQUARE:
    case NB_OP_SILU:
        for (int64_t c = 0; c < y->C; c++) through(op, n->attr.eltwise.alpha, x, c, y);
        return 0;
    case NB_OP_MAXPOOL2D:
    case NB_OP_DROPOUT:
    case NB_OP_RELAYOUT:
    case NB_OP_FAKE_QUANT:
        for (int64_t c = 0; c < y->C; c++) copy_channel(x, c, y, c);
        return 0;
    case NB_OP_AVGPOOL2D:
    case NB_OP_GLOBAL_AVGPOOL: /* the mean kept; the variance too (neighbours are correlated: an upper bound) */
        for (int64_t c = 0; c < y->C; c++) {
            effective(x, c, &y->mu[c], &y->var[c]);
            y->lo[c] = x->lo[c];
            y->hi[c] = x->hi[c];
        }
        return 0;
    case NB_OP_ADD:
    case NB_OP_SCALE: {
        const nb_add_attr *a = &n->attr.add;
        const moments *z = op == NB_OP_ADD ? find(w, n->in[1]) : NULL;
        NB_REQUIRE(ctx, op == NB_OP_SCALE || (z && z->C == x->C), -1, n->scope,
                   "data-free ranges: the add's second input has no moments of the same channels");
        for (int64_t c = 0; c < y->C; c++) {
            double E1, V1, E2 = 0, V2 = 0, b = op == NB_OP_ADD ? a->beta : 0;
            effective(x, c, &E1, &V1);
            if (z) effective(z, c, &E2, &V2);
            y->mu[c] = a->alpha * E1 + b * E2;
            y->var[c] = a->alpha * a->alpha * V1 + b * b * V2;
            double l1 = a->alpha >= 0 ? a->alpha * x->lo[c] : a->alpha * x->hi[c];
            double h1 = a->alpha >= 0 ? a->alpha * x->hi[c] : a->alpha * x->lo[c];
            double l2 = !z ? 0 : b >= 0 ? b * z->lo[c] : b * z->hi[c], h2 = !z ? 0 : b >= 0 ? b * z->hi[c] : b * z->lo[c];
            y->lo[c] = isnan(l1 + l2) ? -INFINITY : l1 + l2;
            y->hi[c] = isnan(h1 + h2) ? INFINITY : h1 + h2;
            if (op == NB_OP_ADD && a->relu) y->lo[c] = fmax(y->lo[c], 0);
        }
        return 0;
    }
    case NB_OP_MUL_CHANNEL: {
        const moments *s = find(w, n->in[1]);
        NB_REQUIRE(ctx, s && s->C == x->C, -1, n->scope, "data-free ranges: the channel scale has no moments");
        for (int64_t c = 0; c < y->C; c++) {
            double Ex, Vx, Es, Vs;
            effective(x, c, &Ex, &Vx);
            effective(s, c, &Es, &Vs);
            y->mu[c] = Ex * Es;
            y->var[c] = fmax((Vx + Ex * Ex) * (Vs + Es * Es) - Ex * Ex * Es * Es, 0);
            bool pos = x->lo[c] >= 0 && s->lo[c] >= 0;
            y->lo[c] = pos ? x->lo[c] * s->lo[c] : -INFINITY;
            y->hi[c] = pos && !isnan(x->hi[c] * s->hi[c]) ? x->hi[c] * s->hi[c] : INFINITY;
        }
        return 0;
    }
    case NB_OP_SLICE: {
        const nb_slice_attr *a = &n->attr.slice;
        for (int64_t c = 0; c < y->C; c++) copy_channel(x, a->axis == 1 ? a->start + c : c, y, c);
        return 0;
    }
    case NB_OP_CHANNEL_SHUFFLE: {
        int64_t g = n->attr.shuffle.groups, per = x->C / g;
        for (int64_t k = 0; k < per; k++)
            for (int64_t j = 0; j < g; j++) copy_channel(x, j * per + k, y, k * g + j);
        return 0;
    }
    case NB_OP_RESHAPE: {
        const nb_tensor *in = n->in[0];
        int64_t rest = 1;
        for (int k = 2; k < in->ndim; k++) rest *= in->shape[k];
        if (in->ndim >= 2 && out->ndim >= 2 && out->shape[1] == x->C) /* channels where they were */
            for (int64_t c = 0; c < y->C; c++) copy_channel(x, c, y, c);
        else if (out->ndim == 2 && out->shape[1] == x->C * rest) /* flattened: feature f is channel f / rest */
            for (int64_t f = 0; f < y->C; f++) copy_channel(x, f / rest, y, f);
        else
            pooled(x, y);
        return 0;
    }
    default:
        NB_FAIL(ctx, n->scope[0] ? n->scope : nb_op_name(op),
                "data-free ranges from batch-norm statistics have no rule for the %s op (quantize.data_free = zeroq "
                "distils images instead)", nb_op_name(op));
        return -1;
    }
}

int nb_bn_ranges(nb_qsim *q, nb_model *m, const nb_bn_ranges_cfg *cfg) {
    nb_ctx *ctx = m->ctx;
    NB_REQUIRE(ctx, cfg->sigmas > 0, -1, "config", "quantize.bn_sigmas = %g: it must be above 0", cfg->sigmas);
    NB_REQUIRE(ctx, cfg->channels == m->spec.in_channels && cfg->channels <= 16, -1, "config",
               "data-free ranges: %d input channels' pixel ranges for a model of %d", cfg->channels,
               m->spec.in_channels);
    walk w = {0};
    nb_qsim_observe_with(q, observed, &w);
    nb_qsim_calibrate_begin(q, 0);
    size_t mark;
    nb_tensor *x, *y = nb_record_forward(m, 2, &mark, &x);
    nb_qsim_observe_with(q, NULL, NULL);
    int rc = y ? 0 : -1;
    if (rc == 0) {
        moments *in = add_value(&w, x, cfg->channels);
        for (int64_t c = 0; c < in->C; c++) {
            in->var[c] = 1; /* normalised pixels: mean 0, variance 1, within the normalised [0, 1] */
            in->lo[c] = cfg->input_lo[c];
            in->hi[c] = cfg->input_hi[c];
        }
    }
    for (size_t i = 0, n = nb_tape_size(ctx); rc == 0 && i < n; i++) {
        const nb_node *node = nb_tape_node(ctx, i);
        if (nb_op_deploy_of(node->op) == NB_DEPLOY_TRAINING || node->n_out < 1) continue;
        rc = step(ctx, &w, node);
    }
    for (size_t i = 0; rc == 0 && i < w.n_seen; i++) {
        const moments *v = find(&w, w.seen[i]);
        if (!v) {
            NB_FAIL(ctx, nb_qsim_point_name(q, w.point[i]),
                    "data-free ranges: the value this quantizer sees was not computed by a recorded op");
            rc = -1;
            break;
        }
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t c = 0; c < v->C; c++) {
            double s = sqrt(v->var[c]);
            lo = fmin(lo, fmax(v->lo[c], v->mu[c] - cfg->sigmas * s));
            hi = fmax(hi, fmin(v->hi[c], v->mu[c] + cfg->sigmas * s));
        }
        nb_qsim_set_range(q, w.point[i], lo, hi);
    }
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    for (size_t i = 0; i < w.n; i++) free(w.v[i].mu);
    free(w.v);
    free(w.point);
    free(w.seen);
    if (rc) {
        nb_qsim_calibrate_end(q); /* leaves calibration mode; the caller reports the failure */
        return -1;
    }
    return nb_qsim_calibrate_end(q);
}
