/* Quantization simulation (see qsim.h): the quantizers placed by the op hooks, found again by their order in
 * each forward pass; calibration; the weights' step sizes; checkpoint state. */
#include "compress/qsim.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/channel_deps.h"
#include "compress/compressor.h"
#include "core/arith.h"
#include "core/check.h"
#include "core/ops.h"
#include "formats/h5_checksum.h"
#include "formats/h5_read.h"

#define HIST_BINS 2048

/* an activation quantizer */
typedef struct {
    char name[NB_NAME_MAX]; /* "<layer>.in", "<scope>.add.out", ... */
    nb_op op;               /* the op it was placed for */
    int bits;               /* 0: left float (an output the network returns) */
    int qmin, qmax;
    bool ready;             /* calibrated (or loaded) */
    nb_tensor *scale, *zero_point, *grid; /* [1], [1], [3]: qmin, qmax, ready */
    const nb_tensor *raw;   /* discovery: the tensor it quantizes */
    double lo, hi;          /* calibration: the range seen */
    bool seen;
    bool set_by_layer;      /* placement: a layer reading it has set its width */
    int share;              /* the quantizer whose step size, zero point and grid it uses (itself, or the first
                               of a concatenation's group: cfg.shared_concat); a member holds the owner's tensors */
    double *hist;           /* calibration pass 1: HIST_BINS counts over [lo, hi] */
} qpoint;

/* a weight quantizer: one per parameter and folded batch norm */
typedef struct {
    nb_tensor *w; /* the parameter (borrowed) */
    int bits, qmin, qmax;
    bool ready;
    nb_tensor *scale, *zero, *grid; /* [O] or [1] */
    nb_tensor *gamma, *var;         /* the batch norm folded into it (borrowed), or NULL */
    nb_tensor *beta, *mean;
    float eps;
    nb_tensor *sf, *inv;            /* [1, O, 1, 1]: its fold factors, recomputed every pass */
} qweight;

/* a convolution or linear layer as the forward pass reaches it */
typedef struct {
    char layer[128];
    int weight;         /* its weight quantizer, or -1 */
    int codebook;       /* or, for a weight a codebook method owns (cfg.skip_weights), its record in q->cb */
    int in_point;       /* the quantizer of its input */
    const nb_tensor *w; /* discovery: the weight as passed, and the output */
    const nb_tensor *out;
    nb_tensor *bias;    /* evaluation: the bias that makes it the deployed layer's (int32 bias), and when */
    int64_t bias_generation;
} occurrence;

typedef struct {
    nb_tensor *key, *val; /* val: key on its grid (key itself when it already is, and while discovering) */
    int point;
} entry;

enum { RUN, DISCOVER, OBSERVE };

struct nb_qsim {
    nb_model *m;
    nb_ctx *ctx;
    nb_qsim_cfg cfg;
    qpoint *points;
    int n_points, cap_points;
    qweight *weights;
    int n_weights;
    /* the weights a codebook method owns: not quantized here, but their scale (alpha, from the checkpoint's
     * compress/<method>/alpha/<weight>) and batch norm give the int32 bias the deployed layer adds */
    qweight *cb;
    int n_cb;
    occurrence *occ;
    int n_occ, cap_occ;
    /* the forward pass now running */
    int mode, pass;
    bool exporting;
    bool evaluating;     /* batch norms use their running statistics: the network is the deployed one */
    int64_t generation;  /* counts changes of weights or step sizes (training passes, calibration, loads) */
    int next_point, next_occ;
    entry *cache;
    int n_cache, cap_cache;
    int pending; /* a SHARED op's quantizer, for its output */
    /* discovery with cfg.shared_concat: the quantizers of the concatenation now running, and the pairs that
     * must share a grid (joined in place_points, where the widths are known) */
    int cat_in[16], n_cat_in;
    int (*ties)[2];
    int n_ties, cap_ties;
    /* calibration by a rule instead of observed values (nb_qsim_observe_with) */
    nb_qsim_observer observer;
    void *observer_user;
};

/* ---- the forward pass's quantized tensors ---- */

/* The entry of t, or of the tensor t is a layout copy of (entries of point -1 say "key copies val") */
static entry *lookup(nb_qsim *q, const nb_tensor *t) {
    for (int hops = 0; t && hops < 8; hops++) {
        entry *e = NULL;
        for (int i = q->n_cache; i-- > 0 && !e;)
            if (q->cache[i].key == t) e = &q->cache[i];
        if (!e || e->point >= 0) return e;
        t = e->val;
    }
    return NULL;
}

/* The tensor t copies (through layout copies), or t */
static nb_tensor *source_of(nb_qsim *q, nb_tensor *t) {
    for (int hops = 0; hops < 8; hops++) {
        int i = q->n_cache;
        while (i-- > 0 && !(q->cache[i].key == t && q->cache[i].point < 0)) {}
        if (i < 0) return t;
        t = q->cache[i].val;
    }
    return t;
}

/* held until the pass ends, so that no pointer is reused for another tensor meanwhile */
static void remember(nb_qsim *q, nb_tensor *key, nb_tensor *val, int point) {
    if (q->n_cache == q->cap_cache)
        q->cache = nb_xrealloc(q->cache, sizeof *q->cache * (size_t)(q->cap_cache = q->cap_cache ? 2 * q->cap_cache : 128));
    nb_retain(key);
    nb_retain(val);
    q->cache[q->n_cache++] = (entry){key, val, point};
}

static void forget_all(nb_qsim *q) {
    for (int i = 0; i < q->n_cache; i++) {
        nb_release(q->cache[i].key);
        nb_release(q->cache[i].val);
    }
    q->n_cache = 0;
}

/* ---- activation quantizers ---- */

static int act_grid_max(int bits) { return (1 << bits) - 1; }

/* The quantizer the pass reaches next: made while discovering, checked against the placement after */
static int next_point(nb_qsim *q, nb_op op, const char *role, const nb_tensor *raw) {
    int k = q->next_point++;
    const char *scope = q->ctx->scope_name;
    if (q->mode == DISCOVER) {
        if (q->n_points == q->cap_points)
            q->points = nb_xrealloc(q->points, sizeof *q->points * (size_t)(q->cap_points = q->cap_points ? 2 * q->cap_points : 64));
        qpoint *p = &q->points[q->n_points++];
        memset(p, 0, sizeof *p);
        p->op = op;
        p->raw = raw;
        p->bits = q->cfg.abits;
        p->share = k;
        char base[NB_NAME_MAX];
        snprintf(base, sizeof base, "%.60s%s%.30s", scope[0] ? scope : "input", role[0] ? "." : "", role);
        snprintf(p->name, sizeof p->name, "%s", base);
        for (int dup = 2, clash = 1; clash; dup++) { /* a layer read twice (a shared head) */
            clash = 0;
            for (int i = 0; i < q->n_points - 1 && !clash; i++) clash = !strcmp(q->points[i].name, p->name);
            if (clash) snprintf(p->name, sizeof p->name, "%.80s#%d", base, dup);
        }
        return k;
    }
    if (k >= q->n_points || q->points[k].op != op) {
        NB_FAIL(q->ctx, scope[0] ? scope : "quantization",
                "the forward pass reached activation quantizer %d at a %s op, where the simulation placed %s: the "
                "network's ops must not depend on its input or mode",
                k, nb_op_name(op), k < q->n_points ? q->points[k].name : "none");
        return -1;
    }
    return k;
}

static void observe(nb_qsim *q, qpoint *p, nb_tensor *t) {
    nb_tensor *v = nb_to_plain(t);
    if (!v) return;
    if (q->pass == 0) {
        double lo, hi;
        if (nb_range(v, &lo, &hi)) return;
        p->lo = p->seen ? fmin(p->lo, lo) : lo;
        p->hi = p->seen ? fmax(p->hi, hi) : hi;
        p->seen = true;
        return;
    }
    float *h = nb_host_copy(v);
    if (!h) return;
    if (!p->hist) p->hist = nb_xcalloc(HIST_BINS, sizeof *p->hist);
    double w = p->hi - p->lo;
    for (int64_t i = 0, n = nb_numel(v); i < n && w > 0; i++) {
        int b = (int)((h[i] - p->lo) / w * HIST_BINS);
        p->hist[b < 0 ? 0 : b >= HIST_BINS ? HIST_BINS - 1 : b] += 1.0;
    }
    free(h);
}

static nb_tensor *quantize_point(nb_qsim *q, nb_tensor *t, int k) {
    qpoint *p = &q->points[k];
    if (q->mode == DISCOVER || p->bits == 0) return t;
    if (q->mode == OBSERVE) {
        if (q->observer) q->observer(q->observer_user, k, t);
        else observe(q, p, t);
        return t;
    }
    NB_REQUIRE(q->ctx, p->ready, NULL, p->name,
               "activation quantizer has no range: calibrate first (bin/quantize with quantize.activations, or "
               "compress.methods = qat, which calibrates on its first batch)");
    /* LSQ's step-size gradient scale 1/sqrt(N Q_P), N the elements the step size quantizes */
    float gf = q->cfg.learn ? (float)(1.0 / sqrt((double)nb_numel(t) * p->qmax)) : 1.0f;
    return nb_fake_quant(t, p->scale, p->zero_point,
                         (nb_fake_quant_attr){.qmin = p->qmin, .qmax = p->qmax, .axis = -1, .grad_factor = gf});
}

/* t on its grid: the same quantized tensor for every reader of t in this pass */
static nb_tensor *act(nb_qsim *q, nb_tensor *t, nb_op op, const char *role, int *point) {
    entry *e = lookup(q, t);
    if (e) {
        *point = e->point;
        return e->val;
    }
    int k = next_point(q, op, role, t);
    if (k < 0) return NULL;
    nb_tensor *y = quantize_point(q, t, k), *s = source_of(q, t);
    if (!y) return NULL;
    remember(q, t, y, k);
    if (s != t) remember(q, s, y, k); /* the other copies of the same tensor find it */
    if (y != t) remember(q, y, y, k);
    *point = k;
    return y;
}

/* ---- weight quantizers ---- */

/* 8 bits symmetric on [-127, 127]; fewer as LSQ's [-2^(b-1), 2^(b-1) - 1]; reduced: 8 bits as 7 */
static int weight_grid_min(int bits, bool reduce) { return bits >= 8 && !reduce ? -127 : -(1 << ((bits < 8 ? bits : 7) - 1)); }
static int weight_grid_max(int bits, bool reduce) { return bits >= 8 && !reduce ? 127 : (1 << ((bits < 8 ? bits : 7) - 1)) - 1; }

static nb_tensor *quantize_weight(nb_qsim *q, int wi, nb_tensor *w) {
    qweight *qw = &q->weights[wi];
    NB_REQUIRE(q->ctx, qw->ready, NULL, qw->w->name, "weight quantizer has no step sizes");
    int64_t O = w->shape[0], per = nb_numel(w) / (q->cfg.per_channel ? O : 1);
    float gf = q->cfg.learn ? (float)(1.0 / sqrt((double)per * qw->qmax)) : 1.0f;
    nb_fake_quant_attr a = {.qmin = qw->qmin, .qmax = qw->qmax, .axis = q->cfg.per_channel ? 0 : -1, .grad_factor = gf};
    if (!qw->gamma) return nb_fake_quant(w, qw->scale, qw->zero, a);
    /* fold, quantize, unfold: conv(x, Q(W sf)) / sf, so that the batch norm after still sees the
     * convolution's own scale (its statistics, its gradients) and, with running statistics, computes
     * exactly the folded network */
    if (nb_bn_fold(qw->sf, qw->inv, qw->gamma, qw->var, qw->eps)) return NULL;
    nb_tensor *w4 = nb_reshape(w, 4, (int64_t[]){1, O, w->shape[1] * w->shape[2], w->shape[3]});
    nb_tensor *ws = nb_mul_channel(w4, qw->sf);
    a.axis = q->cfg.per_channel ? 1 : -1;
    nb_tensor *wq = nb_fake_quant(ws, qw->scale, qw->zero, a);
    nb_tensor *wb = nb_mul_channel(wq, qw->inv);
    return wb ? nb_reshape(wb, 4, w->shape) : NULL;
}

/* The bias that makes an evaluation pass compute the deployed layer exactly: the engine adds the folded bias
 * b = beta + (b_conv - mean) sf rounded to int32 steps of x_scale * w_scale (deploy/onnx_emit.c), where the
 * simulation's batch norm adds b itself. The layer's bias input becomes b_conv + (b_q - b) / sf, so that the
 * batch norm after it lands on b_q; without a batch norm it is b_q. *bias is left alone when the input is not
 * quantized. 0, or -1 after reporting. */
static int deployed_bias(nb_qsim *q, occurrence *o, nb_tensor **bias_in) {
    /* a codebook weight's scale is alpha, the unfolded weight's: the folded one's is alpha sf */
    bool codebook = o->weight < 0;
    qweight *qw = codebook ? &q->cb[o->codebook] : &q->weights[o->weight];
    qpoint *p = &q->points[o->in_point];
    nb_tensor *bias = *bias_in;
    if (!p->bits || !p->ready) return 0;
    if (o->bias && o->bias_generation == q->generation) {
        *bias_in = o->bias;
        return 0;
    }
    int64_t O = qw->w->shape[0];
    float sx, *sw = nb_host_copy(qw->scale), *bc = bias ? nb_host_copy(bias) : nb_xcalloc((size_t)O, sizeof(float));
    float *g = qw->gamma ? nb_host_copy(qw->gamma) : NULL, *v = qw->gamma ? nb_host_copy(qw->var) : NULL;
    float *be = qw->gamma ? nb_host_copy(qw->beta) : NULL, *mu = qw->gamma ? nb_host_copy(qw->mean) : NULL;
    float *out = nb_xmalloc(sizeof(float) * (size_t)O);
    int rc = sw && bc && (!qw->gamma || (g && v && be && mu)) ? nb_tensor_to_host(p->scale, &sx, sizeof sx) : -1;
    for (int64_t c = 0; rc == 0 && c < O; c++) {
        float sf = g ? g[c] / sqrtf(v[c] + qw->eps) : 1.0f, b = g ? be[c] + (bc[c] - mu[c]) * sf : bc[c];
        float sb = sx * (sw[nb_numel(qw->scale) == 1 ? 0 : c] * (codebook && g ? sf : 1.0f));
        float bq = (float)(nearbyint((double)b / (double)sb) * (double)sb);
        out[c] = !g ? bq : sf != 0.0f ? bc[c] + (bq - b) / sf : bc[c];
    }
    if (rc == 0 && !o->bias && !(o->bias = nb_tensor_new(q->ctx, NB_F32, 1, &O))) rc = -1;
    if (rc == 0) rc = nb_host_store(o->bias, out);
    o->bias_generation = q->generation;
    free(sw);
    free(bc);
    free(g);
    free(v);
    free(be);
    free(mu);
    free(out);
    if (rc == 0) *bias_in = o->bias;
    return rc ? -1 : 0;
}

/* ---- shared grids ---- */

/* Quantizers a and b must share one grid (discovery: joined in place_points) */
static void tie(nb_qsim *q, int a, int b) {
    if (a == b) return;
    if (q->n_ties == q->cap_ties)
        q->ties = nb_xrealloc(q->ties, sizeof *q->ties * (size_t)(q->cap_ties = q->cap_ties ? 2 * q->cap_ties : 32));
    q->ties[q->n_ties][0] = a;
    q->ties[q->n_ties++][1] = b;
}

static int owner(const nb_qsim *q, int k) {
    while (q->points[k].share != k) k = q->points[k].share;
    return k;
}

/* Join the tied quantizers that are quantized (a float one, such as an output the network returns, stays out):
 * each group's owner is its first quantizer, and every member takes the widest width of the group */
static void join_ties(nb_qsim *q) {
    for (int t = 0; t < q->n_ties; t++) {
        int a = q->ties[t][0], b = q->ties[t][1];
        if (!q->points[a].bits || !q->points[b].bits) continue;
        a = owner(q, a);
        b = owner(q, b);
        if (a == b) continue;
        if (b < a) {
            int c = a;
            a = b;
            b = c;
        }
        q->points[b].share = a;
        if (q->points[b].bits > q->points[a].bits) q->points[a].bits = q->points[b].bits;
    }
    for (int k = 0; k < q->n_points; k++) {
        q->points[k].share = owner(q, k);
        if (q->points[k].share != k) q->points[k].bits = q->points[q->points[k].share].bits;
    }
}

/* ---- the hooks ---- */

static int on_inputs(void *user, nb_op op, nb_tensor **in, int n_in) {
    nb_qsim *q = user;
    int pt = -1;
    char role[48];
    switch (nb_op_quant_of(op)) {
    case NB_QUANT_WEIGHTED: {
        int k = q->next_occ++;
        if (q->mode == DISCOVER) {
            if (q->n_occ == q->cap_occ)
                q->occ = nb_xrealloc(q->occ, sizeof *q->occ * (size_t)(q->cap_occ = q->cap_occ ? 2 * q->cap_occ : 64));
            occurrence *o = &q->occ[q->n_occ++];
            memset(o, 0, sizeof *o);
            snprintf(o->layer, sizeof o->layer, "%s", q->ctx->scope_name);
            o->w = in[1];
            o->weight = -1;
            o->codebook = -1;
        } else if (k >= q->n_occ) {
            NB_FAIL(q->ctx, q->ctx->scope_name, "the forward pass reached more layers than the simulation placed");
            return -1;
        }
        if (!(in[0] = act(q, in[0], op, "in", &pt))) return -1;
        if (q->mode == DISCOVER) q->occ[k].in_point = pt;
        int wi = q->occ[k].weight, ci = q->occ[k].codebook;
        if (q->mode != RUN || q->exporting) return 0;
        if (wi >= 0 && !(in[1] = quantize_weight(q, wi, in[1]))) return -1;
        /* a codebook weight's bias is the deployed one once its alpha is known (read from a checkpoint) */
        bool scaled = wi >= 0 || (ci >= 0 && q->cb[ci].scale);
        if (scaled && q->evaluating && n_in > 2 && deployed_bias(q, &q->occ[k], &in[2])) return -1;
        return 0;
    }
    case NB_QUANT_REQUANT:
        q->n_cat_in = 0;
        /* a concatenation's inputs share its output's grid (quantize.concat_grid = shared): each one must be
         * remembered until the output's quantizer exists, never some of them */
        NB_REQUIRE(q->ctx, op != NB_OP_CONCAT || n_in <= (int)(sizeof q->cat_in / sizeof *q->cat_in), -1,
                   q->ctx->scope_name, "a concatenation of %d inputs: the quantization simulation ties at most %d to "
                   "one grid", n_in, (int)(sizeof q->cat_in / sizeof *q->cat_in));
        for (int i = 0; i < n_in; i++) {
            if (!in[i]) continue;
            if (n_in == 1) snprintf(role, sizeof role, "%s.in", nb_op_name(op));
            else snprintf(role, sizeof role, "%s.in%d", nb_op_name(op), i);
            if (!(in[i] = act(q, in[i], op, role, &pt))) return -1;
            if (op == NB_OP_CONCAT) q->cat_in[q->n_cat_in++] = pt;
        }
        return 0;
    case NB_QUANT_SHARED: {
        entry *e = lookup(q, in[0]);
        if (e) {
            in[0] = e->val;
            q->pending = e->point;
            return 0;
        }
        if (!(in[0] = act(q, in[0], op, nb_op_name(op), &pt))) return -1;
        q->pending = pt;
        return 0;
    }
    case NB_QUANT_KEEP: { /* a view reads the quantized tensor, as every other reader does: one grid per tensor */
        entry *e = n_in ? lookup(q, in[0]) : NULL;
        if (e) {
            in[0] = e->val;
            return 0;
        }
        /* a view the model takes of a float tensor (a detector's predictions sliced and reshaped): quantized at
         * its source, where the engine needs the quantizer right after the op that made it; layout copies and
         * leaves (parameters, the input) are not such views */
        if (op == NB_OP_RELAYOUT || !in[0] || in[0]->is_leaf) return 0;
        /* dropout is an op in training alone: it may place no quantizer evaluation does not (a float input is
         * quantized by its reader after it, as in evaluation) */
        if (op == NB_OP_DROPOUT) return 0;
        snprintf(role, sizeof role, "%s.in", nb_op_name(op));
        return (in[0] = act(q, in[0], op, role, &pt)) ? 0 : -1;
    }
    case NB_QUANT_FLOAT: break;
    }
    return 0;
}

static int on_output(void *user, nb_op op, nb_tensor *in0, nb_tensor **out) {
    nb_qsim *q = user;
    char role[48];
    int pt;
    switch (nb_op_quant_of(op)) {
    case NB_QUANT_WEIGHTED:
        if (q->mode == DISCOVER) q->occ[q->next_occ - 1].out = *out;
        return 0;
    case NB_QUANT_REQUANT: {
        snprintf(role, sizeof role, "%s.out", nb_op_name(op));
        nb_tensor *y = act(q, *out, op, role, &pt);
        if (!y) return -1;
        *out = y;
        if (op == NB_OP_CONCAT && q->mode == DISCOVER && q->cfg.shared_concat)
            for (int i = 0; i < q->n_cat_in; i++) tie(q, q->cat_in[i], pt);
        q->n_cat_in = 0;
        return 0;
    }
    case NB_QUANT_SHARED: /* max pooling keeps its input's grid: the maximum of grid values is one */
        if (q->pending >= 0) remember(q, *out, *out, q->pending);
        q->pending = -1;
        return 0;
    case NB_QUANT_KEEP: { /* a view of a quantized tensor is quantized, by the same quantizer */
        entry *e = in0 ? lookup(q, in0) : NULL;
        if (e) remember(q, *out, *out, e->point);
        else if (op == NB_OP_RELAYOUT && in0) remember(q, *out, in0, -1); /* a copy of a float tensor */
        return 0;
    }
    case NB_QUANT_FLOAT: break;
    }
    return 0;
}

static nb_tensor *sim_forward(nb_model *m, nb_tensor *x, bool training) {
    nb_qsim *q = m->wrapper;
    nb_ctx *ctx = m->ctx;
    q->next_point = q->next_occ = 0;
    q->pending = -1;
    q->evaluating = !training;
    if (training) q->generation++;
    nb_op_hooks saved = ctx->op_hooks;
    ctx->op_hooks = (nb_op_hooks){on_inputs, on_output, q};
    nb_tensor *y = m->wrapped_forward(m, x, training);
    ctx->op_hooks = saved;
    forget_all(q);
    if (y && q->mode != DISCOVER && (q->next_point != q->n_points || q->next_occ != q->n_occ)) {
        NB_FAIL(ctx, m->spec.arch, "the forward pass reached %d activation quantizers and %d layers; the simulation "
                "placed %d and %d", q->next_point, q->next_occ, q->n_points, q->n_occ);
        return NULL;
    }
    return y;
}

/* ---- placement ---- */

static int set_grid(nb_tensor *grid, int qmin, int qmax, bool ready);

static const nb_node *producer(nb_ctx *ctx, const nb_tensor *t) {
    for (size_t i = nb_tape_size(ctx); i-- > 0;) {
        const nb_node *n = nb_tape_node(ctx, i);
        for (int k = 0; k < n->n_out; k++)
            if (n->out[k] == t) return n;
    }
    return NULL;
}

static bool is_param(const nb_model *m, const nb_tensor *t) {
    for (int i = 0; i < m->params.n; i++)
        if (m->params.items[i].t == t) return true;
    return false;
}

static bool listed(const char *list, const char *name) {
    char buf[NB_CFG_VALUE_MAX];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
        if (!strcmp(tok, name)) return true;
    return false;
}

/* A tensor the network returns as it is, or through views only: quantizing it would only coarsen the output */
static bool returned(nb_ctx *ctx, const nb_tensor *t, const nb_tensor *y) {
    for (int hops = 0; y && hops < 64; hops++) {
        if (y == t) return true;
        const nb_node *n = producer(ctx, y);
        if (!n || nb_op_quant_of(n->op) != NB_QUANT_KEEP) return false;
        y = n->in[0];
    }
    return false;
}

/* The layers that produce the output without another layer after them (a classifier's last linear layer, a
 * detector's predictors): set in last[] */
static void last_layers(nb_qsim *q, const nb_tensor *y, bool *last) {
    nb_ctx *ctx = q->ctx;
    size_t n = nb_tape_size(ctx), nw = 1, cap = 64;
    const nb_tensor **wanted = nb_xmalloc(cap * sizeof *wanted);
    wanted[0] = y;
    for (size_t i = n; i-- > 0;) {
        const nb_node *nd = nb_tape_node(ctx, i);
        bool need = false;
        for (size_t j = 0; j < nw && !need; j++) need = nd->out[0] == wanted[j];
        if (!need) continue;
        if (nb_op_quant_of(nd->op) == NB_QUANT_WEIGHTED) {
            for (int k = 0; k < q->n_occ; k++)
                if (q->occ[k].out == nd->out[0]) last[k] = true;
            continue;
        }
        for (int k = 0; k < nd->n_in; k++) {
            if (!nd->in[k]) continue;
            if (nw == cap) wanted = nb_xrealloc(wanted, (cap *= 2) * sizeof *wanted);
            wanted[nw++] = nd->in[k];
        }
    }
    free(wanted);
}

static int layer_bits(const nb_qsim *q, const char *layer, bool end, int dflt) {
    char buf[64];
    if (!strcmp(q->cfg.layer_bits, "default")) return end ? 8 : dflt;
    const char *v = nb_compress_override(q->cfg.layer_bits, layer, buf, sizeof buf);
    return v ? atoi(v) : dflt;
}

static nb_tensor *f32(nb_ctx *ctx, int64_t n, const char *fmt, const char *name) {
    nb_tensor *t = nb_tensor_new(ctx, NB_F32, 1, &n);
    char full[NB_NAME_MAX + 32];
    snprintf(full, sizeof full, fmt, name);
    if (t) nb_set_name(t, full);
    return t;
}

/* The record of (w, the batch norm folded into it) in recs: *index is its place; the new record when it was
 * not there yet (w and the batch norm's tensors set), NULL when it was */
static qweight *record(qweight *recs, int *n, const nb_tensor *w, const nb_node *bn, int *index) {
    int k = 0;
    while (k < *n && !(recs[k].w == w && recs[k].gamma == (bn ? bn->in[1] : NULL))) k++;
    *index = k;
    if (k < *n) return NULL;
    qweight *r = &recs[(*n)++];
    r->w = (nb_tensor *)w;
    if (bn) {
        r->gamma = bn->in[1];
        r->beta = bn->in[2];
        r->mean = bn->in[3];
        r->var = bn->in[4];
        r->eps = bn->attr.bn.eps;
    }
    return r;
}

/* The weight quantizers: one per (parameter, folded batch norm), read off the recorded pass */
static int place_weights(nb_qsim *q, const bool *last) {
    nb_ctx *ctx = q->ctx;
    q->weights = nb_xcalloc((size_t)(q->n_occ ? q->n_occ : 1), sizeof *q->weights);
    q->cb = nb_xcalloc((size_t)(q->n_occ ? q->n_occ : 1), sizeof *q->cb);
    for (int k = 0; k < q->n_occ; k++) {
        occurrence *o = &q->occ[k];
        const nb_tensor *w = o->w;
        for (int hops = 0; w && !is_param(q->m, w) && hops < 4; hops++) {
            const nb_node *src = producer(ctx, w);
            w = src && src->op == NB_OP_RELAYOUT ? src->in[0] : NULL;
        }
        bool end = k == 0 || last[k];
        int bits = layer_bits(q, o->layer, end, q->cfg.abits);
        qpoint *in = &q->points[o->in_point];
        /* an input several layers read keeps the widest of their widths (0, float, only when all ask for it) */
        if (!strcmp(q->cfg.layer_bits, "default") || in->set_by_layer) in->bits = bits > in->bits ? bits : in->bits;
        else in->bits = bits;
        in->set_by_layer = true;
        if (!w) continue;
        const nb_node *bn = NULL, *c[2], *made = producer(ctx, o->out);
        if (made && made->op == NB_OP_CONV2D && nb_tape_consumers(ctx, o->out, c, 2) == 1 &&
            c[0]->op == NB_OP_BATCHNORM2D && c[0]->in[1] && !c[0]->attr.bn.training)
            bn = c[0];
        if (listed(q->cfg.skip_weights, w->name)) {
            record(q->cb, &q->n_cb, w, bn, &o->codebook);
            continue;
        }
        int wbits = layer_bits(q, o->layer, end, q->cfg.wbits);
        if (wbits == 0) { /* "layer=0": the layer stays float, its input too */
            o->weight = -1;
            continue;
        }
        qweight *qw = record(q->weights, &q->n_weights, w, bn, &o->weight);
        if (!qw) continue;
        int64_t O = w->shape[0], ns = q->cfg.per_channel ? O : 1;
        qw->bits = wbits;
        NB_REQUIRE(ctx, qw->bits >= 2 && qw->bits <= 8, -1, o->layer, "weight bits %d: 2 to 8 are supported", qw->bits);
        qw->qmin = weight_grid_min(qw->bits, q->cfg.reduce_range);
        qw->qmax = weight_grid_max(qw->bits, q->cfg.reduce_range);
        qw->scale = f32(ctx, ns, "quant.weight.%s.scale", w->name);
        qw->zero = f32(ctx, ns, "quant.weight.%s.zero_point", w->name);
        qw->grid = f32(ctx, 3, "quant.weight.%s.grid", w->name);
        if (!qw->scale || !qw->zero || !qw->grid) return -1;
        if (q->cfg.learn) nb_set_requires_grad(qw->scale, true);
        if (bn) {
            qw->sf = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){1, O, 1, 1});
            qw->inv = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){1, O, 1, 1});
            if (!qw->sf || !qw->inv) return -1;
        }
    }
    return 0;
}

static int place_points(nb_qsim *q, const nb_tensor *y) {
    nb_ctx *ctx = q->ctx;
    for (int k = 0; k < q->n_points; k++) {
        qpoint *p = &q->points[k];
        nb_op_quant role = nb_op_quant_of(p->op);
        bool output = (role == NB_QUANT_REQUANT && strstr(p->name, ".out")) || role == NB_QUANT_KEEP;
        if (output && returned(ctx, p->raw, y)) p->bits = 0;
        p->raw = NULL;
    }
    join_ties(q);
    for (int k = 0; k < q->n_points; k++) {
        qpoint *p = &q->points[k];
        if (p->bits == 0) continue;
        if (p->share != k) { /* a member of a shared grid: the owner's tensors, under its own name too */
            qpoint *o = &q->points[p->share];
            p->qmin = o->qmin;
            p->qmax = o->qmax;
            nb_retain(p->scale = o->scale);
            nb_retain(p->zero_point = o->zero_point);
            nb_retain(p->grid = o->grid);
            continue;
        }
        NB_REQUIRE(ctx, p->bits >= 2 && p->bits <= 8, -1, p->name, "activation bits %d: 2 to 8 are supported", p->bits);
        p->qmin = q->cfg.symmetric_act ? -(1 << (p->bits - 1)) : 0;
        p->qmax = q->cfg.symmetric_act ? (1 << (p->bits - 1)) - 1 : act_grid_max(p->bits);
        p->scale = f32(ctx, 1, "quant.act.%s.scale", p->name);
        p->zero_point = f32(ctx, 1, "quant.act.%s.zero_point", p->name);
        p->grid = f32(ctx, 3, "quant.act.%s.grid", p->name);
        if (!p->scale || !p->zero_point || !p->grid || set_grid(p->grid, p->qmin, p->qmax, false)) return -1;
        if (q->cfg.learn) nb_set_requires_grad(p->scale, true);
    }
    return 0;
}

/* the compression methods that keep the weights they select on a codebook of their own (compress/<name>/alpha) */
static const char *const codebook_methods[] = {"admm", "twn", "bwn"};
#define N_CODEBOOK_METHODS (int)(sizeof codebook_methods / sizeof *codebook_methods)

bool nb_qsim_cfg_from(const nb_settings *s, const nb_model *m, nb_qsim_cfg *out) {
    memset(out, 0, sizeof *out);
    const nb_compress_settings *c = &s->compress;
    const nb_quantize_settings *qs = &s->quantize;
    bool qat = false, codebook = false;
    char buf[NB_CFG_VALUE_MAX];
    snprintf(buf, sizeof buf, "%s", c->methods);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        qat = qat || !strcmp(tok, "qat");
        for (int j = 0; j < N_CODEBOOK_METHODS; j++) codebook = codebook || !strcmp(tok, codebook_methods[j]);
    }
    out->range = (nb_qrange)qs->range.id;
    out->percentile = qs->percentile;
    out->reduce_range = qs->reduce_range;
    out->symmetric_act = qs->activation_grid.id == NB_ACT_GRID_SYMMETRIC;
    out->shared_concat = qs->concat_grid.id == NB_CONCAT_GRID_SHARED;
    if (qat) {
        /* the weights a codebook method owns stay on its codebook, in training and in every reader of its
         * checkpoints alike: qat quantizes the rest */
        nb_tensor *sel[512];
        int n = codebook ? nb_compress_select(c, c->layers, m, sel, 512) : 0;
        for (int k = 0; k < n; k++) {
            size_t used = strlen(out->skip_weights);
            snprintf(out->skip_weights + used, sizeof out->skip_weights - used, "%s%s", used ? "," : "", sel[k]->name);
        }
        out->wbits = (int)c->wbits;
        out->abits = (int)c->abits;
        snprintf(out->layer_bits, sizeof out->layer_bits, "%s", c->qat_layers);
        out->per_channel = c->qat_scale.id == NB_SCALE_CHANNEL;
        out->learn = true;
        return true;
    }
    if (qs->activations <= 0) return false;
    out->wbits = (int)qs->weights;
    out->abits = (int)qs->activations;
    snprintf(out->layer_bits, sizeof out->layer_bits, "%s", c->qat_layers);
    out->per_channel = c->qat_scale.id == NB_SCALE_CHANNEL;
    return true;
}

nb_qsim *nb_qsim_new(nb_model *m, const nb_qsim_cfg *cfg) {
    nb_ctx *ctx = m->ctx;
    NB_REQUIRE(ctx, !m->wrapper, NULL, m->spec.arch, "the model already runs a quantization simulation");
    NB_REQUIRE(ctx, cfg->abits >= 2 && cfg->abits <= 8 && cfg->wbits >= 2 && cfg->wbits <= 8, NULL, "config",
               "weight bits %d and activation bits %d: 2 to 8 are supported", cfg->wbits, cfg->abits);
    nb_qsim *q = nb_xcalloc(1, sizeof *q);
    q->m = m;
    q->ctx = ctx;
    q->cfg = *cfg;
    m->wrapped_forward = m->forward;
    m->wrapper = q;
    m->forward = sim_forward;
    q->mode = DISCOVER;
    size_t mark;
    nb_tensor *x, *y = nb_record_forward(m, 2, &mark, &x);
    int rc = y ? 0 : -1;
    bool *last = nb_xcalloc((size_t)(q->n_occ ? q->n_occ : 1), sizeof *last);
    if (rc == 0) last_layers(q, y, last);
    if (rc == 0) rc = place_weights(q, last);
    if (rc == 0) rc = place_points(q, y);
    free(last);
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    q->mode = RUN;
    if (rc == 0) rc = nb_qsim_init_weights(q);
    if (rc) {
        nb_qsim_free(q);
        return NULL;
    }
    return q;
}

void nb_qsim_free(nb_qsim *q) {
    if (!q) return;
    nb_model *m = q->m;
    if (m->wrapper == q) {
        m->forward = m->wrapped_forward;
        m->wrapped_forward = NULL;
        m->wrapper = NULL;
    }
    forget_all(q);
    for (int k = 0; k < q->n_points; k++) {
        qpoint *p = &q->points[k];
        nb_release(p->scale);
        nb_release(p->zero_point);
        nb_release(p->grid);
        free(p->hist);
    }
    for (int k = 0; k < q->n_weights; k++) {
        qweight *w = &q->weights[k];
        nb_release(w->scale);
        nb_release(w->zero);
        nb_release(w->grid);
        nb_release(w->sf);
        nb_release(w->inv);
    }
    for (int k = 0; k < q->n_cb; k++) nb_release(q->cb[k].scale);
    free(q->cb);
    for (int k = 0; k < q->n_occ; k++) nb_release(q->occ[k].bias);
    free(q->points);
    free(q->ties);
    free(q->weights);
    free(q->occ);
    free(q->cache);
    free(q);
}

/* ---- step sizes ---- */

static int set_grid(nb_tensor *grid, int qmin, int qmax, bool ready) {
    float g[3] = {(float)qmin, (float)qmax, ready ? 1.0f : 0.0f};
    return nb_host_store(grid, g);
}

/* Expected squared error of quantizing the histogram's values to step s over [a, b] (the clip range) */
static double hist_mse(const double *hist, double lo, double hi, double a, double b, double s) {
    double w = (hi - lo) / HIST_BINS, e = 0;
    for (int i = 0; i < HIST_BINS; i++) {
        if (hist[i] == 0) continue;
        double c = lo + (i + 0.5) * w, d = c < a ? a - c : c > b ? c - b : 0;
        e += hist[i] * (d > 0 ? d * d : s * s / 12.0);
    }
    return e;
}

/* The value below which a share `frac` of the histogram lies */
static double hist_quantile(const double *hist, double lo, double hi, double frac) {
    double total = 0, acc = 0, w = (hi - lo) / HIST_BINS;
    for (int i = 0; i < HIST_BINS; i++) total += hist[i];
    for (int i = 0; i < HIST_BINS; i++) {
        if (acc + hist[i] >= frac * total) return lo + (i + (hist[i] > 0 ? (frac * total - acc) / hist[i] : 0)) * w;
        acc += hist[i];
    }
    return hi;
}

void nb_qsim_calibrate_begin(nb_qsim *q, int pass) {
    q->mode = OBSERVE;
    q->pass = pass;
    if (pass == 0)
        for (int k = 0; k < q->n_points; k++) {
            q->points[k].lo = q->points[k].hi = 0;
            q->points[k].seen = false;
            free(q->points[k].hist);
            q->points[k].hist = NULL;
        }
}

void nb_qsim_observe_with(nb_qsim *q, nb_qsim_observer fn, void *user) {
    q->observer = fn;
    q->observer_user = user;
}

void nb_qsim_set_range(nb_qsim *q, int point, double lo, double hi) {
    qpoint *p = &q->points[point];
    p->lo = lo;
    p->hi = hi;
    p->seen = true;
}

const char *nb_qsim_point_name(const nb_qsim *q, int point) { return q->points[point].name; }

/* The step of p's grid over [lo, hi] (lo <= 0 <= hi): the range over the levels, or, on a symmetric grid (zero
 * point 0), the larger side over qmax */
static double grid_step(const qpoint *p, double lo, double hi) {
    return p->qmin < 0 ? fmax(-lo, hi) / p->qmax : (hi - lo) / (p->qmax - p->qmin);
}

int nb_qsim_calibrate_end(nb_qsim *q) {
    q->mode = RUN;
    /* each quantizer's range by the rule; a shared grid then spans its members' ranges */
    double *los = nb_xcalloc((size_t)q->n_points + 1, sizeof *los), *his = nb_xcalloc((size_t)q->n_points + 1, sizeof *his);
    bool *neg = nb_xcalloc((size_t)q->n_points + 1, sizeof *neg);
    for (int k = 0; k < q->n_points; k++) {
        qpoint *p = &q->points[k];
        if (p->bits == 0) continue;
        double lo = fmin(p->lo, 0), hi = fmax(p->hi, 0);
        bool nonneg = p->lo >= 0;
        if (p->hist && q->cfg.range == NB_QRANGE_PERCENTILE) {
            double tail = (100.0 - q->cfg.percentile) / 100.0;
            hi = fmax(hist_quantile(p->hist, p->lo, p->hi, 1.0 - tail), 0);
            if (!nonneg) lo = fmin(hist_quantile(p->hist, p->lo, p->hi, tail), 0);
        } else if (p->hist && q->cfg.range == NB_QRANGE_MSE) {
            double best = INFINITY, bl = lo, bh = hi;
            for (int t = 100; t >= 20; t--) {
                double a = lo * t / 100.0, b = hi * t / 100.0, s = grid_step(p, a, b);
                double e = s > 0 ? hist_mse(p->hist, p->lo, p->hi, a, b, s) : INFINITY;
                if (e < best) best = e, bl = a, bh = b;
            }
            lo = bl;
            hi = bh;
        }
        free(p->hist);
        p->hist = NULL;
        int o = p->share;
        bool first = o == k;
        los[o] = first ? lo : fmin(los[o], lo);
        his[o] = first ? hi : fmax(his[o], hi);
        neg[o] = (!first && neg[o]) || !nonneg;
    }
    int rc = 0;
    for (int k = 0; k < q->n_points && rc == 0; k++) {
        qpoint *p = &q->points[k];
        if (p->bits == 0) continue;
        p->ready = true;
        if (p->share != k) continue; /* the owner's tensors: filled below or above */
        double lo = los[k], hi = his[k];
        float s = (float)grid_step(p, lo, hi), z = 0.0f;
        if (!(s > 1e-12f)) s = 1e-8f; /* a tensor that was always zero */
        if (neg[k] && p->qmin >= 0) z = fminf(fmaxf(nearbyintf((float)(p->qmin - lo / s)), (float)p->qmin), (float)p->qmax);
        if (nb_fill(p->scale, s) || nb_fill(p->zero_point, z) || set_grid(p->grid, p->qmin, p->qmax, true)) rc = -1;
    }
    free(los);
    free(his);
    free(neg);
    q->generation++;
    return rc;
}

int nb_qsim_calibrate(nb_qsim *q, const nb_dataset *ds, const nb_loader_cfg *lc, int64_t images, bool quiet) {
    nb_model *m = q->m;
    nb_ctx *ctx = q->ctx;
    NB_REQUIRE(ctx, images > 0, -1, "calibration", "needs at least one image (quantize.calibration = %lld)",
               (long long)images);
    int passes = q->cfg.range == NB_QRANGE_MINMAX ? 1 : 2, rc = 0;
    bool prev = nb_set_grad_enabled(ctx, false);
    nb_loader *l = nb_loader_new(ds, lc);
    for (int pass = 0; pass < passes && rc == 0; pass++) {
        nb_qsim_calibrate_begin(q, pass);
        nb_loader_start(l, 0, 0);
        int64_t seen = 0;
        const nb_batch *b;
        while (rc == 0 && seen < images && (b = nb_loader_next(l))) {
            int n = (int)(images - seen < b->n ? images - seen : b->n);
            size_t mark = nb_scope_begin(ctx);
            nb_tensor *x = nb_tensor_from_host(ctx, NB_F32, 4, (int64_t[]){n, ds->c, ds->h, ds->w}, b->x);
            rc = x && m->forward(m, x, false) ? 0 : -1;
            nb_release(x);
            nb_scope_end(ctx, mark);
            seen += n;
            if (!quiet) fprintf(stderr, "\rcalibration pass %d/%d: %lld/%lld images", pass + 1, passes, (long long)seen, (long long)images);
        }
        nb_loader_stop(l);
    }
    if (!quiet) fprintf(stderr, "\n");
    nb_loader_free(l);
    nb_set_grad_enabled(ctx, prev);
    if (rc) {
        q->mode = RUN;
        return -1;
    }
    return nb_qsim_calibrate_end(q);
}

int nb_qsim_calibrate_images(nb_qsim *q, const float *x, int64_t n, int batch, bool quiet) {
    nb_model *m = q->m;
    nb_ctx *ctx = q->ctx;
    int64_t C = m->spec.in_channels, S = m->spec.input_size, per = C * S * S;
    int passes = q->cfg.range == NB_QRANGE_MINMAX ? 1 : 2, rc = 0;
    bool prev = nb_set_grad_enabled(ctx, false);
    for (int pass = 0; pass < passes && rc == 0; pass++) {
        nb_qsim_calibrate_begin(q, pass);
        for (int64_t i = 0; i < n && rc == 0; i += batch) {
            int64_t k = n - i < batch ? n - i : batch;
            size_t mark = nb_scope_begin(ctx);
            nb_tensor *t = nb_tensor_from_host(ctx, NB_F32, 4, (int64_t[]){k, C, S, S}, x + i * per);
            rc = t && m->forward(m, t, false) ? 0 : -1;
            nb_release(t);
            nb_scope_end(ctx, mark);
            if (!quiet) fprintf(stderr, "\rcalibration pass %d/%d: %lld/%lld images", pass + 1, passes, (long long)(i + k), (long long)n);
        }
    }
    if (!quiet) fprintf(stderr, "\n");
    nb_set_grad_enabled(ctx, prev);
    if (rc) {
        q->mode = RUN;
        return -1;
    }
    return nb_qsim_calibrate_end(q);
}

/* Host values of w with its batch norm folded in, as the simulation and the lowering compute them */
static float *folded_weight(const qweight *qw) {
    float *w = nb_host_copy(qw->w);
    if (!w || !qw->gamma) return w;
    float *g = nb_host_copy(qw->gamma), *v = nb_host_copy(qw->var);
    int64_t O = qw->w->shape[0], per = nb_numel(qw->w) / O;
    for (int64_t o = 0; g && v && o < O; o++) {
        float sf = g[o] / sqrtf(v[o] + qw->eps);
        for (int64_t i = 0; i < per; i++) w[o * per + i] *= sf;
    }
    free(g);
    free(v);
    return w;
}

/* The step size for values v[0..n) on [qmin, qmax]: the largest magnitude at 8 bits, the clip that minimises
 * the squared error below (low-bit grids are too coarse to reach the extremes) */
static float weight_step(const float *v, int64_t n, int qmin, int qmax, int bits) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)v[i]));
    if (m == 0) return 1.0f;
    if (bits >= 8) return (float)(m / qmax);
    double best = INFINITY, bs = m / qmax;
    for (int t = 100; t >= 10; t--) {
        double s = m * t / 100.0 / qmax, e = 0;
        for (int64_t i = 0; i < n; i++) {
            double c = fmin(fmax(nearbyint(v[i] / s), qmin), qmax) * s - v[i];
            e += c * c;
        }
        if (e < best) best = e, bs = s;
    }
    return (float)bs;
}

int nb_qsim_init_weights(nb_qsim *q) {
    for (int k = 0; k < q->n_weights; k++) {
        qweight *qw = &q->weights[k];
        float *w = folded_weight(qw);
        if (!w) return -1;
        int64_t O = qw->w->shape[0], n = nb_numel(qw->w), ns = q->cfg.per_channel ? O : 1, per = n / ns;
        float *s = nb_xmalloc(sizeof(float) * (size_t)ns);
        for (int64_t c = 0; c < ns; c++) s[c] = weight_step(w + c * per, per, qw->qmin, qw->qmax, qw->bits);
        int rc = nb_host_store(qw->scale, s) || nb_fill(qw->zero, 0.0) || set_grid(qw->grid, qw->qmin, qw->qmax, true);
        free(s);
        free(w);
        if (rc) return -1;
        qw->ready = true;
    }
    q->generation++;
    return 0;
}

/* ---- state ---- */

int nb_qsim_params(nb_qsim *q, nb_tensor **out, int max) {
    int n = 0;
    if (!q->cfg.learn) return 0;
    for (int k = 0; k < q->n_points; k++)
        if (q->points[k].bits && q->points[k].share == k) { /* a shared step size is trained once */
            if (n < max) out[n] = q->points[k].scale;
            n++;
        }
    for (int k = 0; k < q->n_weights; k++) {
        if (n < max) out[n] = q->weights[k].scale;
        n++;
    }
    return n;
}

void nb_qsim_state(nb_qsim *q, nb_ckpt_extra *out) {
    for (int k = 0; k < q->n_points; k++) {
        qpoint *p = &q->points[k];
        if (!p->bits) continue;
        nb_ckpt_extra_add(out, p->scale, "quant/act/%s/scale", p->name);
        nb_ckpt_extra_add(out, p->zero_point, "quant/act/%s/zero_point", p->name);
        nb_ckpt_extra_add(out, p->grid, "quant/act/%s/grid", p->name);
    }
    for (int k = 0; k < q->n_weights; k++) {
        qweight *w = &q->weights[k];
        const char *bn = w->gamma ? w->gamma->name : "";
        nb_ckpt_extra_add(out, w->scale, "quant/weight/%s%s%s/scale", w->w->name, bn[0] ? "+" : "", bn);
        nb_ckpt_extra_add(out, w->zero, "quant/weight/%s%s%s/zero_point", w->w->name, bn[0] ? "+" : "", bn);
        nb_ckpt_extra_add(out, w->grid, "quant/weight/%s%s%s/grid", w->w->name, bn[0] ? "+" : "", bn);
    }
}

static int read_grid(nb_ctx *ctx, const nb_tensor *grid, const char *name, const char *source, int *qmin, int *qmax,
                     bool *ready) {
    float g[3];
    if (nb_tensor_to_host(grid, g, sizeof g)) return -1;
    NB_REQUIRE(ctx, g[0] < g[1] && g[0] >= -128 && g[1] <= 255 && (g[2] == 0 || g[2] == 1), -1, source,
               "quantizer %s: grid [%g, %g] (calibrated %g) is not an integer grid of at most 8 bits", name,
               (double)g[0], (double)g[1], (double)g[2]);
    *qmin = (int)g[0];
    *qmax = (int)g[1];
    *ready = g[2] == 1;
    return 0;
}

int nb_qsim_sync(nb_qsim *q, const char *source) {
    bool all = true;
    q->generation++;
    for (int k = 0; k < q->n_points; k++) {
        qpoint *p = &q->points[k];
        if (!p->bits) continue;
        if (read_grid(q->ctx, p->grid, p->name, source, &p->qmin, &p->qmax, &p->ready)) return -1;
        NB_REQUIRE(q->ctx, p->qmin == 0 || p->qmin == -p->qmax - 1, -1, source,
                   "activation quantizer %s: grid [%d, %d] is neither unsigned from 0 nor symmetric", p->name, p->qmin,
                   p->qmax);
        p->bits = 0;
        while ((1 << p->bits) - 1 < p->qmax - p->qmin) p->bits++;
        all = all && p->ready;
    }
    for (int k = 0; k < q->n_weights; k++) {
        qweight *w = &q->weights[k];
        if (read_grid(q->ctx, w->grid, w->w->name, source, &w->qmin, &w->qmax, &w->ready)) return -1;
        all = all && w->ready;
    }
    return all ? 1 : 0;
}

int nb_qsim_check_ready(nb_qsim *q, const char *source) {
    int rc = nb_qsim_sync(q, source);
    if (rc != 0) return rc < 0 ? -1 : 0;
    for (int k = 0; k < q->n_points; k++)
        NB_REQUIRE(q->ctx, !q->points[k].bits || q->points[k].ready, -1, source,
                   "activation quantizer %s was never calibrated (its grid is there, its range is not)\n  hint: "
                   "bin/quantize with quantize.activations calibrates; a qat run calibrates on its first batch",
                   q->points[k].name);
    for (int k = 0; k < q->n_weights; k++)
        NB_REQUIRE(q->ctx, q->weights[k].ready, -1, source, "the weight quantizer of %s was never calibrated",
                   q->weights[k].w->name);
    return 0;
}

void nb_qsim_set_exporting(nb_qsim *q, bool on) { q->exporting = on; }

float *nb_qsim_weight_scales(const nb_qsim *q, const nb_tensor *w, const nb_tensor *bn_gamma, int64_t *n_scale,
                             int *qmin, int *qmax) {
    for (int k = 0; q && k < q->n_weights; k++) {
        const qweight *qw = &q->weights[k];
        if (qw->w != w || qw->gamma != bn_gamma) continue;
        *n_scale = nb_numel(qw->scale);
        *qmin = qw->qmin;
        *qmax = qw->qmax;
        return nb_host_copy(qw->scale);
    }
    return NULL;
}

bool nb_qsim_quantizes(const nb_qsim *q, const nb_tensor *w) {
    for (int k = 0; q && k < q->n_weights; k++)
        if (q->weights[k].w == w) return true;
    return false;
}

/* The codebook weights' alphas as their method stored them (compress/<method>/alpha/<weight>): what the
 * deployed layers' int32 biases step by. A weight without one keeps its float bias. 0, or -1 after reporting
 * a record of the wrong size. */
static int load_codebook_scales(nb_qsim *q, const char *ckpt) {
    int rc = 0;
    if (!q->n_cb) return 0;
    H5E_BEGIN_TRY {
        hid_t f = nb_h5_open_quiet(ckpt);
        for (int k = 0; f >= 0 && rc == 0 && k < q->n_cb; k++) {
            qweight *cw = &q->cb[k];
            for (int j = 0; j < N_CODEBOOK_METHODS && !cw->scale && rc == 0; j++) {
                char group[64], path[NB_NAME_MAX + 64];
                snprintf(group, sizeof group, "compress/%s/alpha", codebook_methods[j]);
                snprintf(path, sizeof path, "%s/%s", group, cw->w->name);
                if (H5Lexists(f, "compress", H5P_DEFAULT) <= 0 || H5Lexists(f, group, H5P_DEFAULT) <= 0 ||
                    H5Lexists(f, path, H5P_DEFAULT) <= 0)
                    continue;
                hid_t d = H5Dopen2(f, path, H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : -1;
                hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
                int64_t O = cw->w->shape[0];
                if (n != 1 && n != O) {
                    NB_FAIL(q->ctx, ckpt, "%s: %lld scales for a weight of %lld output channels", path, (long long)n,
                            (long long)O);
                    rc = -1;
                } else {
                    float *a = nb_xmalloc(sizeof(float) * (size_t)n);
                    cw->scale = f32(q->ctx, n, "quant.codebook.%s.alpha", cw->w->name);
                    if (!cw->scale || nb_h5_dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, a) < 0 ||
                        nb_host_store(cw->scale, a)) {
                        NB_FAIL(q->ctx, ckpt, "%s: unreadable", path);
                        rc = -1;
                    }
                    free(a);
                }
                if (sp >= 0) H5Sclose(sp);
                if (d >= 0) H5Dclose(d);
            }
        }
        if (f >= 0) H5Fclose(f);
    }
    H5E_END_TRY;
    return rc;
}

/* A checkpoint made with separate concatenation grids, read with shared ones, would load one of the group's step
 * sizes into all of them: each member's stored step size and zero point must be its owner's */
static int check_shared_grids(nb_qsim *q, const char *ckpt) {
    int rc = 0;
    H5E_BEGIN_TRY {
        hid_t f = nb_h5_open_quiet(ckpt);
        for (int k = 0; f >= 0 && rc == 0 && k < q->n_points; k++) {
            qpoint *p = &q->points[k];
            if (!p->bits || p->share == k) continue;
            float own[2], stored[2] = {NAN, NAN};
            const char *what[2] = {"scale", "zero_point"};
            for (int j = 0; j < 2; j++) {
                char path[NB_NAME_MAX + 32];
                snprintf(path, sizeof path, "quant/act/%s/%s", p->name, what[j]);
                if (nb_h5_read_exact(q->ctx, ckpt, f, path, H5T_NATIVE_FLOAT, &stored[j], 1)) stored[j] = NAN;
            }
            if (nb_tensor_to_host(p->scale, &own[0], sizeof own[0]) || nb_tensor_to_host(p->zero_point, &own[1], sizeof own[1]))
                rc = -1;
            else if (!(stored[0] == own[0] && stored[1] == own[1])) {
                NB_FAIL(q->ctx, ckpt,
                        "activation quantizers %s and %s share one grid (quantize.concat_grid = shared), but the "
                        "checkpoint holds different step sizes for them (%g and %g): it was quantized with separate "
                        "concatenation grids; read it with quantize.concat_grid=separate",
                        q->points[p->share].name, p->name, (double)own[0], (double)stored[0]);
                rc = -1;
            }
        }
        if (f >= 0) H5Fclose(f);
    }
    H5E_END_TRY;
    return rc;
}

int nb_qsim_for_checkpoint(nb_model *m, const nb_settings *s, const char *ckpt, nb_qsim **out) {
    nb_ctx *ctx = m->ctx;
    *out = NULL;
    if (nb_h5_verify(ctx, ckpt) < 0) return -1; /* the opens below trust the file */
    H5E_BEGIN_TRY {
        hid_t f = nb_h5_open_quiet(ckpt);
        htri_t has = f >= 0 ? H5Lexists(f, "quant", H5P_DEFAULT) : 0;
        if (f >= 0) H5Fclose(f);
        if (has <= 0) return 0;
    }
    H5E_END_TRY;
    nb_qsim_cfg cfg;
    NB_REQUIRE(ctx, nb_qsim_cfg_from(s, m, &cfg), -1, ckpt,
               "holds quantizers (quant/), but its configuration asks for no quantization (compress.methods = qat "
               "or quantize.activations)");
    cfg.learn = false;
    nb_qsim *q = nb_qsim_new(m, &cfg);
    if (!q) return -1;
    nb_ckpt_extra extra = {0};
    nb_qsim_state(q, &extra);
    int rc = nb_ckpt_load_extra(ctx, ckpt, &extra);
    nb_ckpt_extra_free(&extra);
    if (rc == 0) rc = nb_qsim_check_ready(q, ckpt);
    if (rc == 0) rc = check_shared_grids(q, ckpt);
    if (rc == 0) rc = load_codebook_scales(q, ckpt);
    if (rc) {
        nb_qsim_free(q);
        return -1;
    }
    *out = q;
    return 0;
}

void nb_qsim_describe(const nb_qsim *q, char *buf, size_t n) {
    int signed_acts = 0, active = 0;
    for (int k = 0; k < q->n_points; k++) active += q->points[k].bits > 0;
    float z;
    for (int k = 0; k < q->n_points; k++)
        if (q->points[k].bits && nb_tensor_to_host(q->points[k].zero_point, &z, sizeof z) == 0) signed_acts += z != 0.0f;
    snprintf(buf, n, "{\"activation_quantizers\": %d, \"with_zero_point\": %d, \"weight_quantizers\": %d, "
                     "\"layers\": %d, \"per_channel\": %s, \"wbits\": %d, \"abits\": %d}",
             active, signed_acts, q->n_weights, q->n_occ, q->cfg.per_channel ? "true" : "false", q->cfg.wbits,
             q->cfg.abits);
}
