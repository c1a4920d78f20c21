/* Tape to ONNX (see export.h). The model runs once on a batch of two zero images with every op recorded; the
 * nodes the logits depend on become ONNX nodes one for one, in tape order (which is topological). Values are
 * named after the layer that made them; parameters keep their torchvision state_dict names, so an ONNX
 * initializer can be traced back to the checkpoint.
 *
 * Channel removal: for each convolution whose channels only dense convolutions read (compress/channel_deps.h),
 * the channels whose batch-norm scale and shift are both zero output exactly zero after the batch norm (and
 * a ReLU), so they are dropped from the convolution, the batch norm and the readers' input channels. */
#include "deploy/export.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compress/channel_deps.h"
#include "core/check.h"
#include "core/ops.h"
#include "deploy/onnx_builder.h"

#define TRACE_BATCH 2 /* not 1, so that the batch dimension cannot be mistaken for a singleton one */

typedef struct {
    const nb_tensor *t;
    char name[192];
    const uint8_t *keep; /* channels (dim 1) present in the exported value; NULL: all */
    int64_t kept;
} value;

typedef struct {
    nb_ctx *ctx;
    nb_model *m;
    const nb_qweights *q;
    const nb_export_opts *o;
    nb_export_report *r;
    Onnx__GraphProto *g;
    const nb_node **nodes; /* needed nodes, in tape order */
    size_t n_nodes;
    value **vals; /* each allocated on its own: names stay put while the list grows */
    size_t n_vals, cap_vals;
    nb_channel_group *groups;
    int n_groups;
    uint8_t **group_keep; /* per group: kept output channels, or NULL when none was removed */
    const nb_node **folded; /* batch norms folded into their convolution */
    int n_folded;
    int int4_layers;
    const nb_tensor *output;
    int uniq;
} exporter;

/* ---- values ---- */

static value *find(exporter *e, const nb_tensor *t) {
    for (size_t i = 0; i < e->n_vals; i++)
        if (e->vals[i]->t == t) return e->vals[i];
    return NULL;
}

static value *define(exporter *e, const nb_tensor *t, const char *name, const uint8_t *keep, int64_t kept) {
    if (e->n_vals == e->cap_vals) {
        e->cap_vals = e->cap_vals ? 2 * e->cap_vals : 256;
        e->vals = nb_xrealloc(e->vals, e->cap_vals * sizeof *e->vals);
    }
    value *v = e->vals[e->n_vals++] = nb_xmalloc(sizeof *v);
    *v = (value){.t = t, .keep = keep, .kept = kept};
    snprintf(v->name, sizeof v->name, "%s", name);
    return v;
}

static bool is_param(const exporter *e, const nb_tensor *t) {
    for (int i = 0; i < e->m->params.n; i++)
        if (e->m->params.items[i].t == t) return true;
    return false;
}

/* The parameter behind t: t itself, or the parameter a layout conversion (RELAYOUT) copied, so that a weight
 * the backend converted is still written once, under its own name */
static const nb_tensor *param_source(const exporter *e, const nb_tensor *t);

/* A fresh name for a value or constant made inside a layer: "<layer>/<what>_<k>" */
static const char *fresh(exporter *e, const nb_node *n, const char *what, char *buf, size_t len) {
    snprintf(buf, len, "%s%s%s_%d", n && n->scope[0] ? n->scope : "", n && n->scope[0] ? "/" : "", what, e->uniq++);
    return buf;
}

/* The name of an op output: "logits" for the network's output */
static const char *out_name(exporter *e, const nb_node *n, int k, char *buf, size_t len) {
    if (n->out[k] == e->output) {
        snprintf(buf, len, "logits");
        return buf;
    }
    return fresh(e, n, nb_op_name(n->op), buf, len);
}

static float *host(const nb_tensor *t) {
    float *h = nb_xmalloc(sizeof(float) * (size_t)(nb_numel(t) ? nb_numel(t) : 1));
    if (nb_tensor_to_host(t, h, sizeof(float) * (size_t)nb_numel(t))) {
        free(h);
        return NULL;
    }
    return h;
}

/* Rows of a [rows, inner] array whose keep entry is set (all when keep is NULL), in place; returns the rows
 * kept. */
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

/* A float initializer for a tensor with no producer (a parameter, or a constant an op made); its name. */
static const char *leaf(exporter *e, const nb_node *n, const nb_tensor *t) {
    value *v = find(e, t);
    if (v) return v->name;
    char buf[192];
    const char *name = is_param(e, t) ? t->name : fresh(e, n, "const", buf, sizeof buf);
    float *h = host(t);
    if (!h) return NULL;
    ox_init_f32(e->g, name, t->ndim, t->shape, h);
    free(h);
    return define(e, t, name, NULL, 0)->name;
}

static const char *const_f32(exporter *e, const nb_node *n, const char *what, int ndim, const int64_t *dims,
                             const float *v) {
    char buf[192];
    fresh(e, n, what, buf, sizeof buf);
    ox_init_f32(e->g, buf, ndim, dims, v);
    return define(e, NULL, buf, NULL, 0)->name;
}

static const char *const_i64(exporter *e, const nb_node *n, const char *what, int count, const int64_t *v) {
    char buf[192];
    fresh(e, n, what, buf, sizeof buf);
    ox_init_i64(e->g, buf, 1, (int64_t[]){count}, v);
    return define(e, NULL, buf, NULL, 0)->name;
}

/* ---- the graph ---- */

/* An ONNX node named after its layer ("layer1.0.conv1/Conv_12": ONNX wants node names unique) */
static Onnx__NodeProto *node(exporter *e, const nb_node *n, const char *op_type, int n_in, const char *const *in,
                             int n_out, const char *const *out) {
    char name[192];
    return ox_node(e->g, op_type, fresh(e, n, op_type, name, sizeof name), n_in, in, n_out, out);
}

static int consumers(const exporter *e, const nb_tensor *t) {
    int k = 0;
    for (size_t i = 0; i < e->n_nodes; i++)
        for (int j = 0; j < e->nodes[i]->n_in; j++)
            if (e->nodes[i]->in[j] == t) {
                k++;
                break;
            }
    return k;
}

static const nb_node *consumer(const exporter *e, const nb_tensor *t) {
    for (size_t i = 0; i < e->n_nodes; i++)
        for (int j = 0; j < e->nodes[i]->n_in; j++)
            if (e->nodes[i]->in[j] == t) return e->nodes[i];
    return NULL;
}

/* The nodes the output depends on, in tape order */
static void needed_nodes(exporter *e, const nb_tensor *y) {
    size_t n = nb_tape_size(e->ctx), nw = 1, cap = 64;
    const nb_tensor **wanted = nb_xmalloc(cap * sizeof *wanted);
    wanted[0] = y;
    bool *need = nb_xcalloc(n ? n : 1, sizeof *need);
    for (size_t i = n; i-- > 0;) {
        const nb_node *nd = nb_tape_node(e->ctx, i);
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
    e->nodes = nb_xmalloc((n ? n : 1) * sizeof *e->nodes);
    for (size_t i = 0; i < n; i++)
        if (need[i]) e->nodes[e->n_nodes++] = nb_tape_node(e->ctx, i);
    free(need);
    free(wanted);
}

static const nb_tensor *param_source(const exporter *e, const nb_tensor *t) {
    for (int hops = 0; t && hops < 4; hops++) {
        if (is_param(e, t)) return t;
        const nb_node *src = NULL;
        for (size_t i = 0; i < e->n_nodes && !src; i++)
            if (e->nodes[i]->out[0] == t && e->nodes[i]->op == NB_OP_RELAYOUT) src = e->nodes[i];
        t = src ? src->in[0] : NULL;
    }
    return NULL;
}

static int group_of(const exporter *e, const nb_node *conv) {
    for (int i = 0; i < e->n_groups; i++)
        if (e->groups[i].conv == conv) return i;
    return -1;
}

static bool is_folded(const exporter *e, const nb_node *bn) {
    for (int i = 0; i < e->n_folded; i++)
        if (e->folded[i] == bn) return true;
    return false;
}

/* Which channels of each removable group survive: those whose batch-norm scale or shift is not zero */
static int find_removable(exporter *e) {
    e->groups = nb_xcalloc(1024, sizeof *e->groups);
    e->n_groups = e->o->keep_channels ? 0 : nb_channel_groups(e->ctx, e->groups, 1024);
    e->group_keep = nb_xcalloc((size_t)(e->n_groups ? e->n_groups : 1), sizeof *e->group_keep);
    for (int i = 0; i < e->n_groups; i++) {
        const nb_node *bn = e->groups[i].bn;
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
        if (kept == 0) keep[0] = 1, kept = 1; /* a layer with no channel at all is not a network ONNX can hold */
        e->r->prunable_channels += C;
        if (kept < C) {
            e->group_keep[i] = keep;
            e->r->channels_removed += C - kept;
        } else {
            free(keep);
        }
        free(gamma);
        free(beta);
    }
    return 0;
}

/* A weight initializer named `name`: float, or the layer's integer codes through DequantizeLinear. w is
 * [O, rest] after channel removal (O rows, inner per row); out_scale (O values, or NULL) multiplies each output
 * channel (a folded batch norm). in_keep/I/khw: input channels removed from a convolution weight. */
static int weight(exporter *e, const nb_node *n, const nb_tensor *p, const char *wname, float *w, int64_t O,
                  int64_t inner, const uint8_t *out_keep, const uint8_t *in_keep, int64_t I, int64_t khw,
                  const float *out_scale) {
    int64_t n_all = nb_numel(p), O_all = p->shape[0];
    int ndim = p->ndim;
    int64_t dims[NB_MAX_DIMS];
    memcpy(dims, p->shape, sizeof(int64_t) * (size_t)ndim);
    dims[0] = O;
    if (in_keep) dims[1] = inner / khw;
    for (int64_t i = 0; i < O * inner; i++) e->r->zero_weights += w[i] == 0.0f;
    nb_qweight q = {0};
    int found = e->q && !e->o->float_weights ? nb_qweight_find(e->ctx, e->q, p->name, n_all, O_all, &q) : 0;
    if (found < 0) return -1;
    if (!found) {
        if (out_scale)
            for (int64_t o = 0; o < O; o++)
                for (int64_t i = 0; i < inner; i++) w[o * inner + i] *= out_scale[o];
        ox_init_f32(e->g, wname, ndim, dims, w);
        e->r->float_weights += O * inner;
        return 0;
    }
    /* the float weights must be the codes times the scales, or the file would compute another network */
    float *full = host(p);
    int64_t per = n_all / O_all;
    double worst = 0;
    for (int64_t i = 0; full && i < n_all; i++) {
        float a = q.alpha[q.n_alpha == 1 ? 0 : i / per];
        double d = fabs((double)full[i] - (double)a * q.codes[i]);
        if (d > worst) worst = d;
    }
    double amax = 0;
    for (int64_t c = 0; c < q.n_alpha; c++) amax = fmax(amax, fabs((double)q.alpha[c]));
    free(full);
    if (worst > 1e-6 * amax) {
        NB_FAIL(e->ctx, e->q->path,
                "%s is not on its codebook (max |W - alpha*codes| = %.3g, alpha up to %.3g): the %s record is older "
                "than the weights (a checkpoint from the middle of training?); export it with --float, or "
                "finish training",
                p->name, worst, amax, q.method);
        nb_qweight_free(&q);
        return -1;
    }
    if (out_keep) keep_rows_i8(q.codes, O_all, per, out_keep);
    if (in_keep) keep_in_channels_i8(q.codes, O, per / khw, khw, in_keep);
    bool per_channel = q.n_alpha > 1 || out_scale;
    float *scale = nb_xmalloc(sizeof(float) * (size_t)O);
    for (int64_t o = 0, k = 0; o < O_all; o++) {
        if (out_keep && !out_keep[o]) continue;
        scale[k] = q.alpha[q.n_alpha == 1 ? 0 : o] * (out_scale ? out_scale[k] : 1.0f);
        k++;
    }
    (void)I;
    bool int4 = e->o->opset >= 21;
    for (int64_t i = 0; i < O * inner && int4; i++) int4 = q.codes[i] >= -8 && q.codes[i] <= 7;
    char cn[256], sn[256], zn[256];
    snprintf(cn, sizeof cn, "%s.codes", wname);
    snprintf(sn, sizeof sn, "%s.scale", wname);
    snprintf(zn, sizeof zn, "%s.zero_point", wname);
    int8_t *zero = nb_xcalloc((size_t)O, 1);
    int64_t sdim[1] = {O};
    if (int4) {
        ox_init_i4(e->g, cn, ndim, dims, q.codes);
        ox_init_i4(e->g, zn, per_channel, sdim, zero);
        e->int4_layers++;
    } else {
        ox_init_i8(e->g, cn, ndim, dims, q.codes);
        ox_init_i8(e->g, zn, per_channel, sdim, zero);
    }
    ox_init_f32(e->g, sn, per_channel, sdim, scale);
    Onnx__NodeProto *dq = node(e, n, "DequantizeLinear", 3, (const char *[]){cn, sn, zn}, 1,
                                  (const char *[]){wname});
    if (per_channel) ox_attr_int(dq, "axis", 0);
    e->r->quantized_layers++;
    e->r->quantized_weights += O * inner;
    if (!strstr(e->r->methods, q.method) && strlen(e->r->methods) + strlen(q.method) + 3 < sizeof e->r->methods) {
        if (e->r->methods[0]) strcat(e->r->methods, ", ");
        strcat(e->r->methods, q.method);
    }
    free(zero);
    free(scale);
    nb_qweight_free(&q);
    return 0;
}

/* Convolutions that use weight wt (more than one: a head shared across scales) */
static int conv_uses(const exporter *e, const nb_tensor *wt) {
    int k = 0;
    for (size_t i = 0; i < e->n_nodes; i++)
        k += e->nodes[i]->op == NB_OP_CONV2D && e->nodes[i]->in[1] && param_source(e, e->nodes[i]->in[1]) == wt;
    return k;
}

/* Conv, with the batch norm after it folded in when asked, and pruned channels removed */
static int export_conv(exporter *e, const nb_node *n) {
    const nb_tensor *x = n->in[0], *wt = param_source(e, n->in[1]), *bt = n->in[2] ? param_source(e, n->in[2]) : NULL;
    value *xv = find(e, x);
    const nb_conv_attr *a = &n->attr.conv;
    NB_REQUIRE(e->ctx, wt && (bt || !n->in[2]), -1, n->scope,
               "the convolution's weight or bias is not a parameter of the model (only parameters are exported)");
    int gi = group_of(e, n);
    const uint8_t *out_keep = gi >= 0 ? e->group_keep[gi] : NULL;
    if (xv->keep && a->groups != 1) {
        NB_FAIL(e->ctx, n->scope, "pruned channels reach a grouped convolution (an exporter bug)");
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
    if (e->o->fold_bn && consumers(e, n->out[0]) == 1) {
        bn = consumer(e, n->out[0]);
        if (bn->op != NB_OP_BATCHNORM2D || bn->attr.bn.training) bn = NULL;
    }
    float *scale = NULL;
    bool has_bias = bt != NULL;
    if (bn) { /* y = s*(Wx + b - mean) + beta with s = gamma / sqrt(var + eps) */
        float *g = bn->in[1] ? host(bn->in[1]) : NULL, *be = bn->in[2] ? host(bn->in[2]) : NULL;
        float *mu = host(bn->in[3]), *var = host(bn->in[4]);
        scale = nb_xmalloc(sizeof(float) * (size_t)O_all);
        for (int64_t o = 0; o < O_all; o++) {
            scale[o] = (g ? g[o] : 1.0f) / sqrtf(var[o] + bn->attr.bn.eps);
            b[o] = (be ? be[o] : 0.0f) + (b[o] - mu[o]) * scale[o];
        }
        free(g);
        free(be);
        free(mu);
        free(var);
        has_bias = true;
        e->folded[e->n_folded++] = bn;
        e->r->folded_bn++;
    }
    int64_t O = keep_rows(w, O_all, I * khw, out_keep);
    keep_rows(b, O_all, 1, out_keep);
    if (scale) keep_rows(scale, O_all, 1, out_keep);
    int64_t inner = I * khw;
    if (xv->keep) {
        keep_in_channels(w, O, I, khw, xv->keep);
        inner = xv->kept * khw;
    }
    /* a weight shared by several convolutions is written once, unless a use changes it (a folded batch norm
     * of its own, removed channels): that use gets initializers of its own */
    char bname[256], wname[256];
    bool shared = conv_uses(e, wt) > 1, changed = scale || out_keep || xv->keep;
    char codes_name[280];
    snprintf(codes_name, sizeof codes_name, "%s.codes", wt->name); /* a quantized weight's initializer */
    bool reuse = shared && !changed && (ox_has_init(e->g, wt->name) || ox_has_init(e->g, codes_name));
    if (shared && changed) fresh(e, n, "weight", wname, sizeof wname);
    else snprintf(wname, sizeof wname, "%s", wt->name);
    int rc = reuse ? 0 : weight(e, n, wt, wname, w, O, inner, out_keep, xv->keep, I, khw, scale);
    if (rc == 0 && has_bias) {
        snprintf(bname, sizeof bname, "%s", bt ? bt->name : "");
        if (!bt || (shared && changed)) fresh(e, n, "bias", bname, sizeof bname);
        if (!(reuse && bt && ox_has_init(e->g, bname))) ox_init_f32(e->g, bname, 1, (int64_t[]){O}, b);
    }
    free(w);
    free(b);
    free(scale);
    if (rc) return -1;
    char yname[192], rname[192];
    const nb_tensor *y = bn ? bn->out[0] : n->out[0];
    bool relu = bn && bn->attr.bn.relu;
    if (bn && !relu && y == e->output)
        snprintf(yname, sizeof yname, "logits");
    else
        fresh(e, n, "Conv", yname, sizeof yname);
    const char *in[3] = {xv->name, wname, bname};
    Onnx__NodeProto *c = node(e, n, "Conv", has_bias ? 3 : 2, in, 1, (const char *[]){yname});
    ox_attr_ints(c, "kernel_shape", (int64_t[]){wt->shape[2], wt->shape[3]}, 2);
    ox_attr_ints(c, "strides", (int64_t[]){a->stride[0], a->stride[1]}, 2);
    ox_attr_ints(c, "pads", (int64_t[]){a->pad[0], a->pad[1], a->pad[0], a->pad[1]}, 4);
    ox_attr_ints(c, "dilations", (int64_t[]){a->dilation[0], a->dilation[1]}, 2);
    ox_attr_int(c, "group", a->groups);
    if (!bn) {
        define(e, n->out[0], yname, out_keep, O);
        return 0;
    }
    if (relu) {
        if (y == e->output)
            snprintf(rname, sizeof rname, "logits");
        else
            fresh(e, bn, "Relu", rname, sizeof rname);
        node(e, bn, "Relu", 1, (const char *[]){yname}, 1, (const char *[]){rname});
        define(e, y, rname, out_keep, O);
    } else {
        define(e, y, yname, out_keep, O);
    }
    return 0;
}

static int export_batchnorm(exporter *e, const nb_node *n) {
    if (is_folded(e, n)) return 0;
    value *xv = find(e, n->in[0]);
    int64_t C = n->in[0]->shape[1];
    const char *names[5] = {xv->name};
    const char *what[4] = {"scale", "bias", "mean", "var"};
    for (int k = 1; k < 5; k++) {
        const nb_tensor *p = n->in[k];
        float *h = p ? host(p) : nb_xmalloc(sizeof(float) * (size_t)C);
        if (!h) return -1;
        if (!p)
            for (int64_t c = 0; c < C; c++) h[c] = k == 1 ? 1.0f : 0.0f;
        int64_t kept = keep_rows(h, C, 1, xv->keep);
        char buf[192];
        const char *name = p && is_param(e, p) ? p->name : fresh(e, n, what[k - 1], buf, sizeof buf);
        ox_init_f32(e->g, name, 1, (int64_t[]){kept}, h);
        names[k] = define(e, p, name, NULL, 0)->name;
        free(h);
    }
    char y[192], r[192];
    bool relu = n->attr.bn.relu;
    if (!relu)
        out_name(e, n, 0, y, sizeof y);
    else
        fresh(e, n, "BatchNormalization", y, sizeof y);
    Onnx__NodeProto *b = node(e, n, "BatchNormalization", 5, names, 1, (const char *[]){y});
    ox_attr_float(b, "epsilon", n->attr.bn.eps);
    if (relu) {
        out_name(e, n, 0, r, sizeof r);
        node(e, n, "Relu", 1, (const char *[]){y}, 1, (const char *[]){r});
        define(e, n->out[0], r, xv->keep, xv->kept);
    } else {
        define(e, n->out[0], y, xv->keep, xv->kept);
    }
    return 0;
}

static int export_linear(exporter *e, const nb_node *n) {
    value *xv = find(e, n->in[0]);
    const nb_tensor *wp = param_source(e, n->in[1]), *wt = wp ? wp : n->in[1], *bt = n->in[2];
    if (bt && param_source(e, bt)) bt = param_source(e, bt);
    if (xv->keep) {
        NB_FAIL(e->ctx, n->scope, "pruned channels reach a linear layer (an exporter bug)");
        return -1;
    }
    /* a weight the model made (adaptive pooling's averaging matrix) is a constant, not a parameter */
    const char *wname;
    if (is_param(e, wt) && !find(e, wt)) {
        float *w = host(wt);
        if (!w) return -1;
        int rc = weight(e, n, wt, wt->name, w, wt->shape[0], wt->shape[1], NULL, NULL, wt->shape[1], 1, NULL);
        free(w);
        if (rc) return -1;
        wname = define(e, wt, wt->name, NULL, 0)->name;
    } else {
        wname = leaf(e, n, wt);
    }
    const char *bname = bt ? leaf(e, n, bt) : NULL;
    if (!wname || (bt && !bname)) return -1;
    char y[192];
    out_name(e, n, 0, y, sizeof y);
    const char *in[3] = {xv->name, wname, bname};
    Onnx__NodeProto *g = node(e, n, "Gemm", bt ? 3 : 2, in, 1, (const char *[]){y});
    ox_attr_int(g, "transB", 1);
    define(e, n->out[0], y, NULL, 0);
    return 0;
}

/* y = x reshaped (symbolic batch: the first dimension is -1) */
static const char *reshape(exporter *e, const nb_node *n, const char *x, int ndim, const int64_t *shape, char *y,
                           size_t len) {
    int64_t s[NB_MAX_DIMS + 1];
    memcpy(s, shape, sizeof(int64_t) * (size_t)ndim);
    s[0] = -1;
    const char *sn = const_i64(e, n, "shape", ndim, s);
    fresh(e, n, "Reshape", y, len);
    node(e, n, "Reshape", 2, (const char *[]){x, sn}, 1, (const char *[]){y});
    return y;
}

/* ShuffleNet's channel shuffle: [N, g, C/g, H, W] -> transpose groups and channels -> [N, C, H, W] */
static void shuffle(exporter *e, const nb_node *n, const char *x, const nb_tensor *shape_of, int groups,
                    const char *y) {
    const int64_t *s = shape_of->shape;
    char a[192], b[192];
    reshape(e, n, x, 5, (int64_t[]){s[0], groups, s[1] / groups, s[2], s[3]}, a, sizeof a);
    fresh(e, n, "Transpose", b, sizeof b);
    Onnx__NodeProto *t = node(e, n, "Transpose", 1, (const char *[]){a}, 1, (const char *[]){b});
    ox_attr_ints(t, "perm", (int64_t[]){0, 2, 1, 3, 4}, 5);
    const char *sn = const_i64(e, n, "shape", 4, (int64_t[]){-1, s[1], s[2], s[3]});
    node(e, n, "Reshape", 2, (const char *[]){b, sn}, 1, (const char *[]){y});
}

static int export_pool(exporter *e, const nb_node *n, const char *x, const char *y) {
    const nb_pool_attr *a = &n->attr.pool;
    if (n->op == NB_OP_GLOBAL_AVGPOOL) {
        node(e, n, "GlobalAveragePool", 1, &x, 1, &y);
        return 0;
    }
    bool max = n->op == NB_OP_MAXPOOL2D;
    Onnx__NodeProto *p = node(e, n, max ? "MaxPool" : "AveragePool", 1, &x, 1, &y);
    ox_attr_ints(p, "kernel_shape", (int64_t[]){a->kernel[0], a->kernel[1]}, 2);
    ox_attr_ints(p, "strides", (int64_t[]){a->stride[0], a->stride[1]}, 2);
    ox_attr_ints(p, "pads", (int64_t[]){a->pad[0], a->pad[1], a->pad[0], a->pad[1]}, 4);
    if (max) {
        ox_attr_ints(p, "dilations", (int64_t[]){a->dilation[0], a->dilation[1]}, 2);
        ox_attr_int(p, "ceil_mode", a->ceil_mode);
    } else {
        NB_REQUIRE(e->ctx, a->dilation[0] == 1 && a->dilation[1] == 1, -1, n->scope,
                   "dilated average pooling has no ONNX export before opset 19");
        ox_attr_int(p, "count_include_pad", !a->exclude_pad);
    }
    return 0;
}

static int export_node(exporter *e, const nb_node *n) {
    switch (n->op) {
    case NB_OP_CONV2D: return export_conv(e, n);
    case NB_OP_BATCHNORM2D: return export_batchnorm(e, n);
    case NB_OP_LINEAR: return export_linear(e, n);
    default: break;
    }
    /* a parameter converted to the backend's layout: its readers write the parameter itself */
    if (n->op == NB_OP_RELAYOUT && param_source(e, n->in[0])) return 0;
    /* ops with activations from earlier nodes (or constants) as inputs */
    const char *in[8];
    const value *first = NULL;
    NB_REQUIRE(e->ctx, n->n_in <= 8, -1, n->scope, "%s has %d inputs", nb_op_name(n->op), n->n_in);
    for (int k = 0; k < n->n_in; k++) {
        value *v = n->in[k] ? find(e, n->in[k]) : NULL;
        if (!v && n->in[k]) {
            const nb_tensor *p = param_source(e, n->in[k]);
            in[k] = leaf(e, n, p ? p : n->in[k]);
            if (!in[k]) return -1;
        } else {
            in[k] = v ? v->name : "";
        }
        if (k == 0) first = v;
    }
    const uint8_t *keep = first ? first->keep : NULL;
    int64_t kept = first ? first->kept : 0;
    bool channelwise = n->op == NB_OP_RELU || n->op == NB_OP_RELU6 || n->op == NB_OP_LEAKY_RELU ||
                       n->op == NB_OP_SIGMOID || n->op == NB_OP_HARDSWISH || n->op == NB_OP_DROPOUT ||
                       n->op == NB_OP_RELAYOUT;
    if (!channelwise)
        for (int k = 0; k < n->n_in; k++) {
            value *v = n->in[k] ? find(e, n->in[k]) : NULL;
            NB_REQUIRE(e->ctx, !v || !v->keep, -1, n->scope, "pruned channels reach %s (an exporter bug)",
                       nb_op_name(n->op));
        }
    /* identities at inference */
    if (n->op == NB_OP_RELAYOUT || n->op == NB_OP_DROPOUT) {
        define(e, n->out[0], in[0], keep, kept);
        return 0;
    }
    char y[192], t[192];
    out_name(e, n, 0, y, sizeof y);
    const nb_tensor *x = n->in[0];
    switch (n->op) {
    case NB_OP_RELU: node(e, n, "Relu", 1, in, 1, (const char *[]){y}); break;
    case NB_OP_SIGMOID: node(e, n, "Sigmoid", 1, in, 1, (const char *[]){y}); break;
    case NB_OP_HARDSWISH:
        NB_REQUIRE(e->ctx, e->o->opset >= 14, -1, n->scope, "HardSwish needs opset 14 or later (--opset)");
        node(e, n, "HardSwish", 1, in, 1, (const char *[]){y});
        break;
    case NB_OP_LEAKY_RELU:
        ox_attr_float(node(e, n, "LeakyRelu", 1, in, 1, (const char *[]){y}), "alpha",
                      n->attr.eltwise.alpha);
        break;
    case NB_OP_RELU6: {
        const char *lo = const_f32(e, n, "min", 0, NULL, (float[]){0.0f});
        const char *hi = const_f32(e, n, "max", 0, NULL, (float[]){6.0f});
        node(e, n, "Clip", 3, (const char *[]){in[0], lo, hi}, 1, (const char *[]){y});
        break;
    }
    case NB_OP_MAXPOOL2D:
    case NB_OP_AVGPOOL2D:
    case NB_OP_GLOBAL_AVGPOOL:
        if (export_pool(e, n, in[0], y)) return -1;
        break;
    case NB_OP_ADD:
    case NB_OP_SCALE: {
        const nb_add_attr *a = &n->attr.add;
        const char *terms[2] = {in[0], n->op == NB_OP_ADD ? in[1] : NULL};
        const float coef[2] = {a->alpha, a->beta};
        char scaled[2][192];
        for (int k = 0; k < (n->op == NB_OP_ADD ? 2 : 1); k++) {
            if (coef[k] == 1.0f && n->op == NB_OP_ADD) continue;
            const char *c = const_f32(e, n, "coefficient", 0, NULL, &coef[k]);
            if (n->op == NB_OP_SCALE) {
                node(e, n, "Mul", 2, (const char *[]){terms[k], c}, 1, (const char *[]){y});
                break;
            }
            fresh(e, n, "Mul", scaled[k], sizeof scaled[k]);
            node(e, n, "Mul", 2, (const char *[]){terms[k], c}, 1, (const char *[]){scaled[k]});
            terms[k] = scaled[k];
        }
        if (n->op == NB_OP_SCALE) break;
        if (a->relu) {
            fresh(e, n, "Add", t, sizeof t);
            node(e, n, "Add", 2, terms, 1, (const char *[]){t});
            node(e, n, "Relu", 1, (const char *[]){t}, 1, (const char *[]){y});
        } else {
            node(e, n, "Add", 2, terms, 1, (const char *[]){y});
        }
        break;
    }
    case NB_OP_MUL_CHANNEL: node(e, n, "Mul", 2, in, 1, (const char *[]){y}); break;
    case NB_OP_CONCAT: {
        bool inter = n->attr.axis.interleave;
        if (inter) fresh(e, n, "Concat", t, sizeof t);
        Onnx__NodeProto *c = node(e, n, "Concat", n->n_in, in, 1, (const char *[]){inter ? t : y});
        ox_attr_int(c, "axis", n->attr.axis.axis);
        if (inter) shuffle(e, n, t, n->out[0], n->n_in, y);
        break;
    }
    case NB_OP_SLICE: {
        const nb_slice_attr *a = &n->attr.slice;
        const char *st = const_i64(e, n, "starts", 1, &a->start);
        const char *en = const_i64(e, n, "ends", 1, (int64_t[]){a->start + a->len});
        const char *ax = const_i64(e, n, "axes", 1, (int64_t[]){a->axis});
        NB_REQUIRE(e->ctx, a->axis != 0, -1, n->scope, "a slice of the batch dimension has no symbolic-batch export");
        node(e, n, "Slice", 4, (const char *[]){in[0], st, en, ax}, 1, (const char *[]){y});
        break;
    }
    case NB_OP_CHANNEL_SHUFFLE: shuffle(e, n, in[0], x, n->attr.shuffle.groups, y); break;
    case NB_OP_RESHAPE: {
        const nb_tensor *o = n->out[0];
        int64_t rest = 1;
        for (int k = 1; k < x->ndim; k++) rest *= x->shape[k];
        if (o->ndim == 2 && o->shape[0] == x->shape[0] && o->shape[1] == rest) {
            ox_attr_int(node(e, n, "Flatten", 1, in, 1, (const char *[]){y}), "axis", 1);
        } else {
            const char *sn = const_i64(e, n, "shape", o->ndim, (int64_t[]){-1, o->shape[1], o->shape[2], o->shape[3],
                                                                           o->shape[4], o->shape[5]});
            node(e, n, "Reshape", 2, (const char *[]){in[0], sn}, 1, (const char *[]){y});
        }
        break;
    }
    case NB_OP_SOFTMAX:
    case NB_OP_LOG_SOFTMAX:
        ox_attr_int(node(e, n, n->op == NB_OP_SOFTMAX ? "Softmax" : "LogSoftmax", 1, in, 1,
                            (const char *[]){y}),
                    "axis", n->attr.axis.axis);
        break;
    default:
        NB_FAIL(e->ctx, n->scope[0] ? n->scope : "export", "op %s has no ONNX export (known: conv2d, linear, "
                "batchnorm2d, relu, relu6, leaky_relu, sigmoid, hardswish, pooling, add, scale, mul_channel, "
                "concat, slice, channel_shuffle, reshape, softmax, log_softmax, dropout)",
                nb_op_name(n->op));
        return -1;
    }
    define(e, n->out[0], y, channelwise ? keep : NULL, channelwise ? kept : 0);
    return 0;
}

static int write_file(nb_ctx *ctx, const char *path, const uint8_t *buf, size_t bytes) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    NB_REQUIRE(ctx, f, -1, path, "cannot create %s", tmp);
    bool ok = fwrite(buf, 1, bytes, f) == bytes;
    ok = (fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        NB_FAIL(ctx, path, "cannot write the model (disk full?)");
        return -1;
    }
    return 0;
}

int nb_export_onnx(nb_model *m, const nb_qweights *q, const nb_export_opts *o, const char *path, nb_export_report *r) {
    nb_ctx *ctx = m->ctx;
    memset(r, 0, sizeof *r);
    NB_REQUIRE(ctx, o->opset >= 13 && o->opset <= 21, -1, "export",
               "opset %d is not supported (13 to 21: per-channel DequantizeLinear needs 13, int4 weights 21)",
               o->opset);
    exporter e = {.ctx = ctx, .m = m, .q = q, .o = o, .r = r};
    size_t mark;
    nb_tensor *x, *y = nb_record_forward(m, TRACE_BATCH, &mark, &x);
    int rc = y ? 0 : -1;
    Onnx__ModelProto *mp = NULL;
    if (rc == 0) {
        e.output = y;
        needed_nodes(&e, y);
        e.folded = nb_xcalloc(e.n_nodes ? e.n_nodes : 1, sizeof *e.folded);
        rc = find_removable(&e);
    }
    if (rc == 0) {
        mp = ox_model_new(m->spec.arch, o->opset >= 21 ? 10 : 8, o->opset);
        e.g = mp->graph;
        define(&e, x, "input", NULL, 0);
        ox_graph_io(e.g, 0, "input", OX_FLOAT, 4, x->shape, "N");
        for (size_t i = 0; i < e.n_nodes && rc == 0; i++) rc = export_node(&e, e.nodes[i]);
    }
    if (rc == 0) {
        value *yv = find(&e, y);
        if (strcmp(yv->name, "logits"))
            ox_node(e.g, "Identity", "output", 1, (const char *[]){yv->name}, 1, (const char *[]){"logits"});
        if (o->softmax) {
            Onnx__NodeProto *sm = ox_node(e.g, "Softmax", "output/Softmax", 1, (const char *[]){"logits"}, 1,
                                          (const char *[]){"probabilities"});
            ox_attr_int(sm, "axis", 1);
        }
        ox_graph_io(e.g, 1, o->softmax ? "probabilities" : "logits", OX_FLOAT, y->ndim, y->shape, "N");
        r->int_bits = r->quantized_layers ? (e.int4_layers == r->quantized_layers ? 4 : 8) : 0;
        char buf[1536];
        mp->doc_string = strdup("exported by nibble's bin/export from a recorded forward pass");
        ox_metadata(mp, "nibble.arch", m->spec.arch);
        snprintf(buf, sizeof buf, "%d", m->spec.num_classes);
        ox_metadata(mp, "nibble.num_classes", buf);
        if (o->input_doc) ox_metadata(mp, "nibble.input", o->input_doc);
        for (const char *const *kv = o->meta; kv && kv[0] && kv[1]; kv += 2) ox_metadata(mp, kv[0], kv[1]);
        snprintf(buf, sizeof buf, "%d layers as int%d codes + DequantizeLinear (%s), %lld weights as float",
                 r->quantized_layers, r->int_bits ? r->int_bits : 8, r->methods[0] ? r->methods : "none",
                 (long long)r->float_weights);
        ox_metadata(mp, "nibble.quantization", buf);
        int64_t stored = r->quantized_weights + r->float_weights;
        snprintf(buf, sizeof buf, "%lld of %lld prunable channels removed; %.2f%% of the stored weights are zero",
                 (long long)r->channels_removed, (long long)r->prunable_channels,
                 stored ? 100.0 * (double)r->zero_weights / (double)stored : 0.0);
        ox_metadata(mp, "nibble.pruning", buf);
        if (m->priors) { /* a detector's raw output and what a deployment needs to decode it */
            const nb_prior_cfg *pc = m->priors;
            ox_metadata(mp, "nibble.output",
                        "logits [N, 4 + C, P]: per default box p, 4 box offsets (dx, dy, dw, dh) then C class scores "
                        "(class 0 the background) along axis 1. Decode: softmax over the scores; centre = prior "
                        "centre + 0.1 * (dx, dy) * prior size; size = prior size * exp(0.2 * (dw, dh)); then "
                        "per-class NMS. Default boxes in nibble.priors, in the order of P");
            int k = snprintf(buf, sizeof buf, "{\"image_size\": %d, \"clip\": %s, \"variances\": [0.1, 0.2], \"order\": "
                                              "\"map, box type, row, column\", \"maps\": [",
                             pc->image_size, pc->clip ? "true" : "false");
            for (int i = 0; i < pc->n_maps && k < (int)sizeof buf - 120; i++) {
                k += snprintf(buf + k, sizeof buf - (size_t)k, "%s{\"size\": %d, \"min\": %g, \"max\": %g, \"ratios\": [",
                              i ? ", " : "", pc->map_size[i], (double)pc->min_size[i], (double)pc->max_size[i]);
                for (int r2 = 0; r2 < pc->n_ratios[i]; r2++)
                    k += snprintf(buf + k, sizeof buf - (size_t)k, "%s%g", r2 ? ", " : "", (double)pc->ratios[i][r2]);
                k += snprintf(buf + k, sizeof buf - (size_t)k, "]}");
            }
            snprintf(buf + k, sizeof buf - (size_t)k, "], \"types\": \"1:1 at min, 1:1 at sqrt(min*max), then a and "
                                                      "1/a for each ratio\"}");
            ox_metadata(mp, "nibble.priors", buf);
        }
        size_t bytes;
        uint8_t *packed = ox_pack(mp, &bytes);
        r->nodes = (int64_t)e.g->n_node;
        r->initializers = (int64_t)e.g->n_initializer;
        r->bytes = (int64_t)bytes;
        rc = write_file(ctx, path, packed, bytes);
        free(packed);
    }
    ox_model_free(mp);
    for (int i = 0; i < e.n_groups; i++) free(e.group_keep[i]);
    free(e.group_keep);
    free(e.groups);
    free(e.folded);
    free(e.nodes);
    for (size_t i = 0; i < e.n_vals; i++) free(e.vals[i]);
    free(e.vals);
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    return rc;
}
