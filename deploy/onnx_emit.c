/* The deploy graph (deploy/graph.h) as an ONNX model: one rule per inference op of core/op_table.h
 * (onnx_<name>, bound to the table below, so that an op added to the table without a rule does not compile),
 * names for every value and constant, the integer codes of quantized layers through DequantizeLinear, and the
 * metadata a deployment reads. Values are named after the layer that made them ("layer1.0.conv1/Conv_12"),
 * parameters keep their torchvision state_dict names, so an initializer can be traced back to the checkpoint. */
#include "deploy/onnx_emit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "deploy/mnn_params.h"
#include "deploy/onnx_builder.h"
#include "detect/boxes.h"

/* An activation's quantization as written: the initializers of its QuantizeLinear/DequantizeLinear */
typedef struct {
    char scale[192], zero_point[192];
    float s, z;
    int qmin, qmax;
    bool per_tensor;
} qparams;

typedef struct {
    const nb_tensor *t;
    char name[192];
    int q; /* the value is on a quantized grid: its index in emitter.qs, or -1 */
    /* the ONNX tensor holds the value's channels (dim 1) in another order: its channel p is the value's channel
     * perm[p] (an interleaving concatenation leaves its inputs side by side, see onnx_concat); NULL: in order */
    int64_t *perm;
    /* the value is never written whole: its channels are these tensors side by side (a slice of reordered
     * channels that only interleaving concatenations read, which take the pieces as inputs of their own) */
    char (*piece)[192];
    int n_pieces;
} named;

typedef struct {
    nb_ctx *ctx;
    const nb_deploy_graph *g;
    const nb_export_opts *o;
    Onnx__GraphProto *gp;
    named *vals; /* the names of the values written so far */
    size_t n_vals, cap_vals;
    char (*const_names)[192]; /* per constant: its initializer's name, "" until written */
    char use_names[NB_DEPLOY_MAX_IN][192]; /* MNN's forms: a shared weight's DequantizeLinear for this reader */
    int int4_layers;
    int uniq;
    qparams *qs; /* the activation grids written so far */
    int n_qs;
    char *layers; /* JSON: how each convolution and linear layer is quantized (nibble.layers) */
    size_t layers_len;
    nb_export_report *r;
} emitter;

/* ---- names ---- */

static const char *value_name(const emitter *e, const nb_tensor *t) {
    for (size_t i = 0; i < e->n_vals; i++)
        if (e->vals[i].t == t) return e->vals[i].name;
    return NULL;
}

static named *lookup(const emitter *e, const nb_tensor *t) {
    for (size_t i = 0; i < e->n_vals; i++)
        if (e->vals[i].t == t) return &e->vals[i];
    return NULL;
}

/* t is written under name; q: its grid (an index into e->qs), or -1 */
static void define_q(emitter *e, const nb_tensor *t, const char *name, int q) {
    named *v = lookup(e, t);
    if (!v) {
        if (e->n_vals == e->cap_vals) e->vals = nb_xrealloc(e->vals, (e->cap_vals = e->cap_vals ? 2 * e->cap_vals : 256) * sizeof *e->vals);
        v = &e->vals[e->n_vals++];
        v->perm = NULL;
        v->piece = NULL;
        v->n_pieces = 0;
    }
    v->t = t;
    v->q = q;
    snprintf(v->name, sizeof v->name, "%s", name);
}

static void define(emitter *e, const nb_tensor *t, const char *name) { define_q(e, t, name, -1); }

/* channel orders (see "channel orders" below) */
static const int64_t *perm_of(const emitter *e, const nb_tensor *t) {
    const named *v = t ? lookup(e, t) : NULL;
    return v ? v->perm : NULL;
}

static void set_perm(emitter *e, const nb_tensor *t, int64_t *perm) {
    named *v = lookup(e, t);
    free(v->perm);
    v->perm = perm;
}

static int64_t *perm_copy(const int64_t *p, int64_t n) {
    int64_t *c = nb_xmalloc(sizeof(int64_t) * (size_t)n);
    memcpy(c, p, sizeof(int64_t) * (size_t)n);
    return c;
}


/* A fresh name for a value or constant made inside a layer: "<layer>/<what>_<k>" */
static const char *fresh(emitter *e, const nb_node *n, const char *what, char *buf, size_t len) {
    snprintf(buf, len, "%s%s%s_%d", n && n->scope[0] ? n->scope : "", n && n->scope[0] ? "/" : "", what, e->uniq++);
    return buf;
}

/* The name of a node's result: "logits" for the network's output */
static const char *out_name(emitter *e, const nb_node *n, char *buf, size_t len) {
    if (n->out[0] == e->g->output) {
        snprintf(buf, len, "logits");
        return buf;
    }
    return fresh(e, n, nb_op_name(n->op), buf, len);
}

/* An ONNX node named after its layer ("layer1.0.conv1/Conv_12": ONNX wants node names unique) */
static Onnx__NodeProto *node(emitter *e, const nb_node *n, const char *op_type, int n_in, const char *const *in,
                             int n_out, const char *const *out) {
    char name[192];
    return ox_node(e->gp, op_type, fresh(e, n, op_type, name, sizeof name), n_in, in, n_out, out);
}

static const char *const_f32(emitter *e, const nb_node *n, const char *what, int ndim, const int64_t *dims,
                             const float *v, char *buf, size_t len) {
    fresh(e, n, what, buf, len);
    ox_init_f32(e->gp, buf, ndim, dims, v);
    return buf;
}

static const char *const_i64(emitter *e, const nb_node *n, const char *what, int count, const int64_t *v, char *buf,
                             size_t len) {
    fresh(e, n, what, buf, len);
    ox_init_i64(e->gp, buf, 1, (int64_t[]){count}, v);
    return buf;
}

/* ---- constants ---- */

/* What a constant written for input k of d is called when not by its parameter's name (NULL: by it). */
static const char *const_what(const nb_dnode *d, int k, const nb_dconst *c) {
    static const char *const bn_what[4] = {"scale", "bias", "mean", "var"};
    switch (d->node->op) {
    case NB_OP_CONV2D: /* a shared weight that this use changed gets a name of its own, and its bias too */
        if (k == 1) return d->shared_weight && c->changed ? "weight" : NULL;
        return !c->is_param || (d->shared_weight && c->changed) ? "bias" : NULL;
    case NB_OP_BATCHNORM2D: return c->is_param ? NULL : bn_what[k - 1];
    default: return c->is_param ? NULL : "const";
    }
}

/* MNN's forms: a quantized weight that is not a convolution's (a linear layer's, 2-D) is written as float */
static bool mnn_float(const emitter *e, const nb_dconst *c) { return e->o->mnn && c->codes && c->ndim != 4; }

/* A float initializer, or a quantized one: the codes (int8, int4 from opset 21 where they fit), a zero point
 * and the scales, through DequantizeLinear into `name` */
static void write_const(emitter *e, const nb_node *n, const nb_dconst *c, const char *name) {
    if (c->values) {
        ox_init_f32(e->gp, name, c->ndim, c->dims, c->values);
        return;
    }
    if (mnn_float(e, c)) { /* MNN folds a per-channel DequantizeLinear of a 2-D weight with a wrong broadcast */
        int64_t O = c->dims[0], per = 1;
        for (int k = 1; k < c->ndim; k++) per *= c->dims[k];
        float *v = nb_xmalloc(sizeof(float) * (size_t)(O * per));
        for (int64_t i = 0; i < O * per; i++) v[i] = c->scale[c->per_channel ? i / per : 0] * (float)c->codes[i];
        ox_init_f32(e->gp, name, c->ndim, c->dims, v);
        free(v);
        return;
    }
    int64_t O = c->dims[0], sdim[1] = {O};
    /* MNN reads a per-tensor scale as output channel 0's (the others' weights become 0) and has no int4 */
    bool int4 = !e->o->mnn && e->o->opset >= 21 && c->fits_int4, per_channel = c->per_channel || e->o->mnn;
    float *scale = c->scale;
    if (per_channel && !c->per_channel) {
        scale = nb_xmalloc(sizeof(float) * (size_t)O);
        for (int64_t o = 0; o < O; o++) scale[o] = c->scale[0];
    }
    char cn[256], sn[256], zn[256];
    snprintf(cn, sizeof cn, "%s.codes", name);
    snprintf(sn, sizeof sn, "%s.scale", name);
    snprintf(zn, sizeof zn, "%s.zero_point", name);
    int8_t *zero = nb_xcalloc((size_t)O, 1);
    if (int4) {
        ox_init_i4(e->gp, cn, c->ndim, c->dims, c->codes);
        ox_init_i4(e->gp, zn, per_channel, sdim, zero);
        e->int4_layers++;
    } else {
        ox_init_i8(e->gp, cn, c->ndim, c->dims, c->codes);
        ox_init_i8(e->gp, zn, per_channel, sdim, zero);
    }
    ox_init_f32(e->gp, sn, per_channel, sdim, scale);
    Onnx__NodeProto *dq = node(e, n, "DequantizeLinear", 3, (const char *[]){cn, sn, zn}, 1, (const char *[]){name});
    if (per_channel) ox_attr_int(dq, "axis", 0);
    if (scale != c->scale) free(scale);
    free(zero);
}

/* The name of input k of d: a value's, or a constant's, written at its first use */
static const char *input_name(emitter *e, const nb_dnode *d, int k) {
    const nb_dinput *in = &d->in[k];
    if (in->konst < 0) {
        const char *v = in->value ? value_name(e, in->value) : NULL;
        return v ? v : "";
    }
    char *name = e->const_names[in->konst];
    if (!name[0]) {
        const nb_dconst *c = &e->g->consts[in->konst];
        const char *what = const_what(d, k, c);
        if (what) fresh(e, d->node, what, name, sizeof e->const_names[0]);
        else snprintf(name, sizeof e->const_names[0], "%s", c->source->name);
        write_const(e, d->node, c, name);
    } else if (e->o->mnn && e->g->consts[in->konst].codes && !mnn_float(e, &e->g->consts[in->konst])) {
        /* MNN mishandles one DequantizeLinear read by more than 4 convolutions (LRSSD's shared head): each
         * reader gets its own over the same codes */
        char cn[256], sn[256], zn[256], *use = e->use_names[k];
        snprintf(cn, sizeof cn, "%s.codes", name);
        snprintf(sn, sizeof sn, "%s.scale", name);
        snprintf(zn, sizeof zn, "%s.zero_point", name);
        fresh(e, d->node, "weight", use, sizeof e->use_names[k]);
        ox_attr_int(node(e, d->node, "DequantizeLinear", 3, (const char *[]){cn, sn, zn}, 1, (const char *[]){use}),
                    "axis", 0);
        return use;
    }
    return name;
}

/* The name of a reordered copy of constant c (see "channel orders"): its parameter's state_dict name with
 * ".permuted_<k>" (the parameter itself may be written too, for a reader that takes it in order) */
static const char *permuted_name(emitter *e, const nb_node *n, const nb_dconst *c, const char *what, char *buf, size_t len) {
    if (!c->is_param || !c->source) return fresh(e, n, what, buf, len);
    snprintf(buf, len, "%s.permuted_%d", c->source->name, e->uniq++);
    return buf;
}

/* A layer's entry in nibble.layers: its weight's storage and its input's grid */
static void describe_layer(emitter *e, const nb_dnode *d, int q, bool int_bias) {
    const nb_dconst *w = d->in[1].konst >= 0 ? &e->g->consts[d->in[1].konst] : NULL;
    char buf[512], wdesc[128], xdesc[160];
    if (w && w->codes)
        snprintf(wdesc, sizeof wdesc, "int8 codes on [%d, %d], %s scales (%s)", w->qmin || w->qmax ? w->qmin : -128,
                 w->qmin || w->qmax ? w->qmax : 127, w->per_channel ? "per-channel" : "per-tensor", w->method);
    else
        snprintf(wdesc, sizeof wdesc, "float");
    if (q >= 0)
        snprintf(xdesc, sizeof xdesc, "%s on [%d, %d], scale %.6g, zero point %g", e->qs[q].qmin < 0 ? "int8" : "uint8", e->qs[q].qmin, e->qs[q].qmax,
                 (double)e->qs[q].s, (double)e->qs[q].z);
    else
        snprintf(xdesc, sizeof xdesc, "float");
    int k = snprintf(buf, sizeof buf, "%s\"%s\": {\"weight\": \"%s\", \"input\": \"%s\", \"bias\": \"%s\"}",
                     e->layers_len ? ", " : "{", d->node->scope[0] ? d->node->scope : nb_op_name(d->node->op), wdesc,
                     xdesc, int_bias ? "int32" : d->in[2].konst >= 0 ? "float" : "none");
    e->layers = nb_xrealloc(e->layers, e->layers_len + (size_t)k + 2);
    memcpy(e->layers + e->layers_len, buf, (size_t)k + 1);
    e->layers_len += (size_t)k;
}

/* ---- the rules: one per inference op ---- */

typedef int (*onnx_rule)(emitter *e, const nb_dnode *d, const char *const *in);

/* Conv, with a folded batch norm's ReLU after it */
static int onnx_conv2d(emitter *e, const nb_dnode *d, const char *const *in) {
    const nb_node *n = d->node, *bn = d->bn;
    const nb_conv_attr *a = &n->attr.conv;
    const nb_dconst *w = &e->g->consts[d->in[1].konst];
    char yname[192], rname[192];
    bool relu = bn && bn->attr.bn.relu, has_bias = d->in[2].konst >= 0;
    if (bn && !relu && d->out == e->g->output)
        snprintf(yname, sizeof yname, "logits");
    else
        fresh(e, n, "Conv", yname, sizeof yname);
    Onnx__NodeProto *c = node(e, n, "Conv", has_bias ? 3 : 2, in, 1, (const char *[]){yname});
    ox_attr_ints(c, "kernel_shape", (int64_t[]){w->dims[2], w->dims[3]}, 2);
    ox_attr_ints(c, "strides", (int64_t[]){a->stride[0], a->stride[1]}, 2);
    ox_attr_ints(c, "pads", (int64_t[]){a->pad[0], a->pad[1], a->pad[0], a->pad[1]}, 4);
    ox_attr_ints(c, "dilations", (int64_t[]){a->dilation[0], a->dilation[1]}, 2);
    ox_attr_int(c, "group", a->groups);
    if (!relu) {
        define(e, d->out, yname);
        return 0;
    }
    if (d->out == e->g->output)
        snprintf(rname, sizeof rname, "logits");
    else
        fresh(e, bn, "Relu", rname, sizeof rname);
    node(e, bn, "Relu", 1, (const char *[]){yname}, 1, (const char *[]){rname});
    define(e, d->out, rname);
    return 0;
}

static int onnx_batchnorm2d(emitter *e, const nb_dnode *d, const char *const *in) {
    const nb_node *n = d->node;
    char y[192], r[192];
    bool relu = n->attr.bn.relu;
    if (!relu)
        out_name(e, n, y, sizeof y);
    else
        fresh(e, n, "BatchNormalization", y, sizeof y);
    Onnx__NodeProto *b = node(e, n, "BatchNormalization", 5, in, 1, (const char *[]){y});
    ox_attr_float(b, "epsilon", n->attr.bn.eps);
    if (relu) {
        out_name(e, n, r, sizeof r);
        node(e, n, "Relu", 1, (const char *[]){y}, 1, (const char *[]){r});
        define(e, d->out, r);
    } else {
        define(e, d->out, y);
    }
    return 0;
}

/* A linear layer by a constant that selects (nearest upsampling's pixel map, deploy/graph.h): no bias, not a
 * parameter */
static bool selection(const emitter *e, const nb_dnode *d) {
    if (d->node->op != NB_OP_LINEAR || d->in[1].konst < 0 || d->in[2].konst >= 0) return false;
    const nb_dconst *w = &e->g->consts[d->in[1].konst];
    return !w->is_param && nb_dconst_selects(w, NULL);
}

static int onnx_linear(emitter *e, const nb_dnode *d, const char *const *in) {
    char y[192];
    out_name(e, d->node, y, sizeof y);
    if (selection(e, d)) {
        /* a Gather of the selected columns: engines move the integers as they are, where a Gemm by a float
         * constant is one ONNX Runtime quantizes on a grid of its own (QGemm), rounding differently */
        const nb_dconst *w = &e->g->consts[d->in[1].konst];
        int64_t rows = w->dims[0];
        int32_t *idx = nb_xmalloc(sizeof(int32_t) * (size_t)rows);
        int64_t *idx64 = nb_xmalloc(sizeof(int64_t) * (size_t)rows);
        nb_dconst_selects(w, idx);
        for (int64_t r = 0; r < rows; r++) idx64[r] = idx[r];
        char ix[192];
        const_i64(e, d->node, "indices", (int)rows, idx64, ix, sizeof ix);
        free(idx);
        free(idx64);
        ox_attr_int(node(e, d->node, "Gather", 2, (const char *[]){in[0], ix}, 1, (const char *[]){y}), "axis", 1);
        define(e, d->out, y);
        return 0;
    }
    Onnx__NodeProto *g = node(e, d->node, "Gemm", d->in[2].konst >= 0 ? 3 : 2, in, 1, (const char *[]){y});
    ox_attr_int(g, "transB", 1);
    define(e, d->out, y);
    return 0;
}

/* one ONNX op of the same inputs */
static int single(emitter *e, const nb_dnode *d, const char *op_type, const char *const *in) {
    char y[192];
    out_name(e, d->node, y, sizeof y);
    node(e, d->node, op_type, d->n_in, in, 1, (const char *[]){y});
    define(e, d->out, y);
    return 0;
}

static int onnx_relu(emitter *e, const nb_dnode *d, const char *const *in) { return single(e, d, "Relu", in); }
static int onnx_sigmoid(emitter *e, const nb_dnode *d, const char *const *in) { return single(e, d, "Sigmoid", in); }
static int onnx_mul_channel(emitter *e, const nb_dnode *d, const char *const *in) { return single(e, d, "Mul", in); }

static int onnx_hardswish(emitter *e, const nb_dnode *d, const char *const *in) {
    char y[192];
    out_name(e, d->node, y, sizeof y);
    NB_REQUIRE(e->ctx, e->o->opset >= 14, -1, d->node->scope, "HardSwish needs opset 14 or later (--opset)");
    node(e, d->node, "HardSwish", 1, in, 1, (const char *[]){y});
    define(e, d->out, y);
    return 0;
}

/* x * sigmoid(x): what PyTorch exports SiLU as (ONNX has no op of its own for it before opset 24) */
static int onnx_silu(emitter *e, const nb_dnode *d, const char *const *in) {
    char y[192], sg[192];
    out_name(e, d->node, y, sizeof y);
    fresh(e, d->node, "Sigmoid", sg, sizeof sg);
    node(e, d->node, "Sigmoid", 1, in, 1, (const char *[]){sg});
    node(e, d->node, "Mul", 2, (const char *[]){in[0], sg}, 1, (const char *[]){y});
    define(e, d->out, y);
    return 0;
}

static int onnx_hardsigmoid(emitter *e, const nb_dnode *d, const char *const *in) {
    char y[192];
    out_name(e, d->node, y, sizeof y);
    /* max(0, min(1, alpha x + beta)) with ONNX's beta 0.5: relu6(x + 3) / 6 */
    ox_attr_float(node(e, d->node, "HardSigmoid", 1, in, 1, (const char *[]){y}), "alpha", 1.0f / 6.0f);
    define(e, d->out, y);
    return 0;
}

static int onnx_square(emitter *e, const nb_dnode *d, const char *const *in) {
    char y[192];
    out_name(e, d->node, y, sizeof y);
    node(e, d->node, "Mul", 2, (const char *[]){in[0], in[0]}, 1, (const char *[]){y});
    define(e, d->out, y);
    return 0;
}

static int onnx_leaky_relu(emitter *e, const nb_dnode *d, const char *const *in) {
    char y[192];
    out_name(e, d->node, y, sizeof y);
    ox_attr_float(node(e, d->node, "LeakyRelu", 1, in, 1, (const char *[]){y}), "alpha", d->node->attr.eltwise.alpha);
    define(e, d->out, y);
    return 0;
}

/* Whether a ReLU6 changes no code of the quantizer that alone reads it: a grid starting at 0 (zero point at its
 * bottom) on which 6 rounds to the top code or beyond. LSQ trains such steps a hair above 6 / 255, where
 * ONNX Runtime keeps the Clip (its range is narrower than the grid's by 0.0002), and its extended optimizer then
 * fails on the pattern ("two nodes with same node name"); without the Clip the codes are the same. */
static bool clip_changes_no_code(const emitter *e, const nb_dnode *d) {
    const nb_dnode *reader = NULL;
    for (int i = 0; i < e->g->n_nodes; i++)
        for (int k = 0; k < e->g->nodes[i].n_in; k++)
            if (e->g->nodes[i].in[k].value == d->out) {
                if (reader) return false;
                reader = &e->g->nodes[i];
                break;
            }
    if (e->o->mnn || !reader || reader->node->op != NB_OP_FAKE_QUANT) return false;
    const nb_fake_quant_attr *a = &reader->node->attr.fake_quant;
    if (a->axis >= 0 || reader->in[1].konst < 0 || reader->in[2].konst < 0) return false;
    float s = e->g->consts[reader->in[1].konst].values[0], z = e->g->consts[reader->in[2].konst].values[0];
    z = fminf(fmaxf(nearbyintf(z), (float)a->qmin), (float)a->qmax);
    return s > 0 && z == (float)a->qmin && nearbyintf(6.0f * (1.0f / s)) + z >= (float)a->qmax;
}

static int onnx_relu6(emitter *e, const nb_dnode *d, const char *const *in) {
    char y[192], lo[192], hi[192];
    if (clip_changes_no_code(e, d)) {
        define(e, d->out, in[0]);
        return 0;
    }
    out_name(e, d->node, y, sizeof y);
    const_f32(e, d->node, "min", 0, NULL, (float[]){0.0f}, lo, sizeof lo);
    const_f32(e, d->node, "max", 0, NULL, (float[]){6.0f}, hi, sizeof hi);
    node(e, d->node, "Clip", 3, (const char *[]){in[0], lo, hi}, 1, (const char *[]){y});
    define(e, d->out, y);
    return 0;
}

static int pool(emitter *e, const nb_dnode *d, const char *const *in) {
    const nb_node *n = d->node;
    const nb_pool_attr *a = &n->attr.pool;
    char y[192];
    out_name(e, n, y, sizeof y);
    const char *yp = y;
    if (n->op == NB_OP_GLOBAL_AVGPOOL) {
        node(e, n, "GlobalAveragePool", 1, in, 1, &yp);
        define(e, d->out, y);
        return 0;
    }
    bool max = n->op == NB_OP_MAXPOOL2D;
    Onnx__NodeProto *p = node(e, n, max ? "MaxPool" : "AveragePool", 1, in, 1, &yp);
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
    define(e, d->out, y);
    return 0;
}

static int onnx_maxpool2d(emitter *e, const nb_dnode *d, const char *const *in) { return pool(e, d, in); }
static int onnx_avgpool2d(emitter *e, const nb_dnode *d, const char *const *in) { return pool(e, d, in); }
static int onnx_global_avgpool(emitter *e, const nb_dnode *d, const char *const *in) { return pool(e, d, in); }

/* alpha*a + beta*b (Muls by the coefficients that are not 1, an Add, and a ReLU for a residual join), or
 * alpha*x for scale */
static int arithmetic(emitter *e, const nb_dnode *d, const char *const *in) {
    const nb_node *n = d->node;
    const nb_add_attr *a = &n->attr.add;
    bool add = n->op == NB_OP_ADD;
    char y[192], t[192], scaled[2][192], c[192];
    out_name(e, n, y, sizeof y);
    const char *terms[2] = {in[0], add ? in[1] : NULL};
    const float coef[2] = {a->alpha, a->beta};
    for (int k = 0; k < (add ? 2 : 1); k++) {
        if (coef[k] == 1.0f && add) continue;
        const_f32(e, n, "coefficient", 0, NULL, &coef[k], c, sizeof c);
        if (!add) {
            node(e, n, "Mul", 2, (const char *[]){terms[k], c}, 1, (const char *[]){y});
            break;
        }
        fresh(e, n, "Mul", scaled[k], sizeof scaled[k]);
        node(e, n, "Mul", 2, (const char *[]){terms[k], c}, 1, (const char *[]){scaled[k]});
        terms[k] = scaled[k];
    }
    if (add && a->relu) {
        fresh(e, n, "Add", t, sizeof t);
        node(e, n, "Add", 2, terms, 1, (const char *[]){t});
        node(e, n, "Relu", 1, (const char *[]){t}, 1, (const char *[]){y});
    } else if (add) {
        node(e, n, "Add", 2, terms, 1, (const char *[]){y});
    }
    define(e, d->out, y);
    return 0;
}

static int onnx_add(emitter *e, const nb_dnode *d, const char *const *in) { return arithmetic(e, d, in); }
static int onnx_scale(emitter *e, const nb_dnode *d, const char *const *in) { return arithmetic(e, d, in); }

/* y = x reshaped (symbolic batch: the first dimension is -1) */
static const char *reshape(emitter *e, const nb_node *n, const char *x, int ndim, const int64_t *shape, char *y,
                           size_t len) {
    int64_t s[NB_MAX_DIMS + 1];
    memcpy(s, shape, sizeof(int64_t) * (size_t)ndim);
    s[0] = -1;
    char sn[192];
    const_i64(e, n, "shape", ndim, s, sn, sizeof sn);
    fresh(e, n, "Reshape", y, len);
    node(e, n, "Reshape", 2, (const char *[]){x, sn}, 1, (const char *[]){y});
    return y;
}

/* ShuffleNet's channel shuffle: [N, g, C/g, H, W] -> transpose groups and channels -> [N, C, H, W] */
static void shuffle(emitter *e, const nb_node *n, const char *x, const nb_tensor *shape_of, int groups, const char *y) {
    const int64_t *s = shape_of->shape;
    char a[192], b[192], sn[192];
    reshape(e, n, x, 5, (int64_t[]){s[0], groups, s[1] / groups, s[2], s[3]}, a, sizeof a);
    fresh(e, n, "Transpose", b, sizeof b);
    Onnx__NodeProto *t = node(e, n, "Transpose", 1, (const char *[]){a}, 1, (const char *[]){b});
    ox_attr_ints(t, "perm", (int64_t[]){0, 2, 1, 3, 4}, 5);
    const_i64(e, n, "shape", 4, (int64_t[]){-1, s[1], s[2], s[3]}, sn, sizeof sn);
    node(e, n, "Reshape", 2, (const char *[]){b, sn}, 1, (const char *[]){y});
}

/* A concatenation; one that interleaves its g inputs' channels (channel k g + j of the result is channel k of
 * input j: ShuffleNet's concatenation and shuffle) is written as the plain concatenation, with the order its
 * channels lie in (see "channel orders") */
static int onnx_concat(emitter *e, const nb_dnode *d, const char *const *in) {
    const nb_node *n = d->node;
    char y[192];
    out_name(e, n, y, sizeof y);
    bool inter = n->attr.axis.interleave;
    if (inter && e->o->mnn) { /* MNN's forms: the concatenation and a shuffle, channels in order (MNN's
                               * parameter file names each layer's scales in its weight's own order) */
        char cat[192];
        fresh(e, n, "Concat", cat, sizeof cat);
        ox_attr_int(node(e, n, "Concat", d->n_in, in, 1, (const char *[]){cat}), "axis", n->attr.axis.axis);
        shuffle(e, n, cat, n->out[0], d->n_in, y);
        define(e, d->out, y);
        return 0;
    }
    int n_parts = 0;
    for (int j = 0; j < d->n_in; j++) {
        const named *v = lookup(e, d->in[j].value);
        n_parts += v && v->n_pieces ? v->n_pieces : 1;
    }
    const char **parts = nb_xmalloc(sizeof *parts * (size_t)n_parts);
    n_parts = 0;
    for (int j = 0; j < d->n_in; j++) {
        const named *v = lookup(e, d->in[j].value);
        if (v && v->n_pieces)
            for (int i = 0; i < v->n_pieces; i++) parts[n_parts++] = v->piece[i];
        else
            parts[n_parts++] = in[j];
    }
    ox_attr_int(node(e, n, "Concat", n_parts, parts, 1, (const char *[]){y}), "axis", n->attr.axis.axis);
    free(parts);
    define(e, d->out, y);
    if (!inter) return 0;
    NB_REQUIRE(e->ctx, n->attr.axis.axis == 1, -1, n->scope, "an interleaving concatenation exports on channels only");
    int64_t C = n->out[0]->shape[1], g = d->n_in, *perm = nb_xmalloc(sizeof(int64_t) * (size_t)C), at = 0;
    for (int j = 0; j < d->n_in; j++) {
        const int64_t *pj = perm_of(e, d->in[j].value), Cj = n->in[j]->shape[1];
        for (int64_t p = 0; p < Cj; p++) perm[at++] = (pj ? pj[p] : p) * g + j;
    }
    set_perm(e, d->out, perm);
    return 0;
}

static int onnx_channel_shuffle(emitter *e, const nb_dnode *d, const char *const *in) {
    char y[192];
    out_name(e, d->node, y, sizeof y);
    shuffle(e, d->node, in[0], d->node->in[0], d->node->attr.shuffle.groups, y);
    define(e, d->out, y);
    return 0;
}

static int onnx_slice(emitter *e, const nb_dnode *d, const char *const *in) {
    const nb_node *n = d->node;
    const nb_slice_attr *a = &n->attr.slice;
    char y[192], st[192], en[192], ax[192];
    out_name(e, n, y, sizeof y);
    const_i64(e, n, "starts", 1, &a->start, st, sizeof st);
    const_i64(e, n, "ends", 1, (int64_t[]){a->start + a->len}, en, sizeof en);
    const_i64(e, n, "axes", 1, (int64_t[]){a->axis}, ax, sizeof ax);
    NB_REQUIRE(e->ctx, a->axis != 0, -1, n->scope, "a slice of the batch dimension has no symbolic-batch export");
    node(e, n, "Slice", 4, (const char *[]){in[0], st, en, ax}, 1, (const char *[]){y});
    define(e, d->out, y);
    return 0;
}

static int onnx_reshape(emitter *e, const nb_dnode *d, const char *const *in) {
    const nb_node *n = d->node;
    const nb_tensor *x = n->in[0], *o = n->out[0];
    char y[192], sn[192];
    out_name(e, n, y, sizeof y);
    int64_t rest = 1;
    for (int k = 1; k < x->ndim; k++) rest *= x->shape[k];
    if (o->ndim == 2 && o->shape[0] == x->shape[0] && o->shape[1] == rest) {
        ox_attr_int(node(e, n, "Flatten", 1, in, 1, (const char *[]){y}), "axis", 1);
    } else {
        const_i64(e, n, "shape", o->ndim, (int64_t[]){-1, o->shape[1], o->shape[2], o->shape[3], o->shape[4], o->shape[5]},
                  sn, sizeof sn);
        node(e, n, "Reshape", 2, (const char *[]){in[0], sn}, 1, (const char *[]){y});
    }
    define(e, d->out, y);
    return 0;
}

static int softmax_like(emitter *e, const nb_dnode *d, const char *op_type, const char *const *in) {
    char y[192];
    out_name(e, d->node, y, sizeof y);
    ox_attr_int(node(e, d->node, op_type, 1, in, 1, (const char *[]){y}), "axis", d->node->attr.axis.axis);
    define(e, d->out, y);
    return 0;
}

static int onnx_softmax(emitter *e, const nb_dnode *d, const char *const *in) { return softmax_like(e, d, "Softmax", in); }
static int onnx_log_softmax(emitter *e, const nb_dnode *d, const char *const *in) {
    return softmax_like(e, d, "LogSoftmax", in);
}

/* QuantizeLinear then DequantizeLinear: the grid as ONNX computes it (x / s rounded half to even, plus z,
 * saturated to the zero point's type: uint8 for grids from 0, int8 for signed ones). A grid narrower than its
 * type is clipped on the integers, between the two: clamp(clamp(q, 0, 255), qmin, qmax) is the simulation's
 * clamp(q, qmin, qmax) exactly, and ONNX Runtime still sees a Conv's output QuantizeLinear and its next input
 * DequantizeLinear, so 2- to 7-bit activations run in its int8 kernels (a float Clip before QuantizeLinear,
 * the earlier form, kept every convolution in float) */
static int onnx_fake_quant(emitter *e, const nb_dnode *d, const char *const *in) {
    const nb_node *n = d->node;
    const nb_fake_quant_attr *a = &n->attr.fake_quant;
    NB_REQUIRE(e->ctx, d->in[1].konst >= 0 && d->in[2].konst >= 0, -1, n->scope,
               "fake_quant: the step size and zero point must be constants of the model to be exported");
    const nb_dconst *sc = &e->g->consts[d->in[1].konst], *zc = &e->g->consts[d->in[2].konst];
    bool u8 = a->qmin >= 0, per_channel = a->axis >= 0;
    NB_REQUIRE(e->ctx, u8 ? a->qmax <= 255 : a->qmin >= -128 && a->qmax <= 127, -1, n->scope,
               "fake_quant: the grid [%d, %d] is wider than 8 bits, which QuantizeLinear stores", a->qmin, a->qmax);
    bool full = u8 ? a->qmin == 0 && a->qmax == 255 : a->qmin == -128 && a->qmax == 127;
    NB_REQUIRE(e->ctx, full || !per_channel, -1, n->scope,
               "fake_quant: a per-channel grid narrower than 8 bits ([%d, %d]) has no ONNX export", a->qmin, a->qmax);
    int64_t groups = sc->dims[0], dims[1] = {groups};
    if (e->o->mnn) { /* MNN's forms: the value stays float here, its grid goes to the parameter file */
        e->qs = nb_xrealloc(e->qs, sizeof *e->qs * (size_t)(e->n_qs + 1));
        e->qs[e->n_qs] = (qparams){.s = sc->values[0], .z = zc->values[0], .qmin = a->qmin, .qmax = a->qmax,
                                   .per_tensor = !per_channel};
        define_q(e, d->out, in[0], e->n_qs++);
        return 0;
    }
    char y[192], sn[192], zn[192], q[192], clipped[192], lo[192], hi[192];
    out_name(e, n, y, sizeof y);
    fresh(e, n, "scale", sn, sizeof sn);
    ox_init_f32(e->gp, sn, per_channel, dims, sc->values);
    fresh(e, n, "zero_point", zn, sizeof zn);
    uint8_t *zu = nb_xmalloc((size_t)groups);
    float *zf = nb_xmalloc(sizeof(float) * (size_t)groups);
    for (int64_t c = 0; c < groups; c++) {
        zf[c] = fminf(fmaxf(nearbyintf(zc->values[c]), (float)a->qmin), (float)a->qmax);
        zu[c] = u8 ? (uint8_t)zf[c] : (uint8_t)(int8_t)zf[c];
    }
    if (u8) ox_init_u8(e->gp, zn, per_channel, dims, zu);
    else ox_init_i8(e->gp, zn, per_channel, dims, (const int8_t *)zu);
    free(zu);
    free(zf);
    fresh(e, n, "QuantizeLinear", q, sizeof q);
    Onnx__NodeProto *qn = node(e, n, "QuantizeLinear", 3, (const char *[]){in[0], sn, zn}, 1, (const char *[]){q});
    const char *codes = q;
    if (!full) { /* the grid's ends as integers of the zero point's type */
        fresh(e, n, "min", lo, sizeof lo);
        fresh(e, n, "max", hi, sizeof hi);
        if (u8) {
            ox_init_u8(e->gp, lo, 0, NULL, (const uint8_t[]){(uint8_t)a->qmin});
            ox_init_u8(e->gp, hi, 0, NULL, (const uint8_t[]){(uint8_t)a->qmax});
        } else {
            ox_init_i8(e->gp, lo, 0, NULL, (const int8_t[]){(int8_t)a->qmin});
            ox_init_i8(e->gp, hi, 0, NULL, (const int8_t[]){(int8_t)a->qmax});
        }
        fresh(e, n, "Clip", clipped, sizeof clipped);
        node(e, n, "Clip", 3, (const char *[]){q, lo, hi}, 1, (const char *[]){clipped});
        codes = clipped;
    }
    Onnx__NodeProto *dq = node(e, n, "DequantizeLinear", 3, (const char *[]){codes, sn, zn}, 1, (const char *[]){y});
    if (per_channel) {
        ox_attr_int(qn, "axis", a->axis);
        ox_attr_int(dq, "axis", a->axis);
    }
    e->qs = nb_xrealloc(e->qs, sizeof *e->qs * (size_t)(e->n_qs + 1));
    qparams *qp = &e->qs[e->n_qs];
    snprintf(qp->scale, sizeof qp->scale, "%s", sn);
    snprintf(qp->zero_point, sizeof qp->zero_point, "%s", zn);
    qp->s = sc->values[0];
    qp->z = zc->values[0];
    qp->qmin = a->qmin;
    qp->qmax = a->qmax;
    qp->per_tensor = !per_channel; /* a narrower grid too: its Clip is on the integers */
    e->r->activation_qdq++;
    define_q(e, d->out, y, e->n_qs++);
    return 0;
}

/* After an op that keeps its input's grid (a view, max pooling): the same QuantizeLinear/DequantizeLinear
 * pair on its output, which tells the engine that the op may run on the integers (ONNX Runtime drops pairs of
 * equal scales around it) */
static void keep_grid(emitter *e, const nb_dnode *d, int q) {
    const named *v = lookup(e, d->out);
    if (!v || d->out == e->g->output) return; /* the network's output is float whatever it is */
    if (e->o->mnn) { /* MNN's forms: the grid is in the parameter file */
        char x[192];
        snprintf(x, sizeof x, "%s", v->name);
        define_q(e, d->out, x, q);
        return;
    }
    char qn[192], y[192], x[192];
    snprintf(x, sizeof x, "%s", v->name);
    fresh(e, d->node, "QuantizeLinear", qn, sizeof qn);
    fresh(e, d->node, "DequantizeLinear", y, sizeof y);
    node(e, d->node, "QuantizeLinear", 3, (const char *[]){x, e->qs[q].scale, e->qs[q].zero_point}, 1, (const char *[]){qn});
    node(e, d->node, "DequantizeLinear", 3, (const char *[]){qn, e->qs[q].scale, e->qs[q].zero_point}, 1, (const char *[]){y});
    define_q(e, d->out, y, q);
}

/* A convolution's or linear layer's bias as the integer kernels take it: int32 in steps of x_scale * w_scale
 * (zero point 0), when its input is on a per-tensor grid and its weight is stored as codes; "" otherwise */
static const char *int32_bias_of(emitter *e, const nb_dnode *d, const nb_dconst *w, const nb_dconst *b, char *name,
                                 size_t len) {
    const named *x = lookup(e, d->in[0].value);
    if (!x || x->q < 0 || !e->qs[x->q].per_tensor || !w->codes || !b->values) return "";
    int64_t O = w->dims[0];
    float sx = e->qs[x->q].s;
    int32_t *v = nb_xmalloc(sizeof(int32_t) * (size_t)O), *z = nb_xcalloc((size_t)O, sizeof(int32_t));
    float *s = nb_xmalloc(sizeof(float) * (size_t)O);
    for (int64_t o = 0; o < O; o++) {
        s[o] = sx * w->scale[w->per_channel ? o : 0];
        double q = nearbyint((double)b->values[o] / (double)s[o]);
        v[o] = (int32_t)fmin(fmax(q, -2147483648.0), 2147483647.0);
    }
    char vn[256], sn[256], zn[256];
    fresh(e, d->node, "bias", name, len);
    if (e->o->mnn) { /* MNN's forms: float, but the int32 steps' values, which MNN's own rounding keeps */
        float *f = nb_xmalloc(sizeof(float) * (size_t)O);
        for (int64_t o = 0; o < O; o++) f[o] = (float)((double)v[o] * (double)s[o]);
        ox_init_f32(e->gp, name, 1, (int64_t[]){O}, f);
        free(f);
        free(v);
        free(z);
        free(s);
        return name;
    }
    snprintf(vn, sizeof vn, "%s.int32", name);
    snprintf(sn, sizeof sn, "%s.scale", name);
    snprintf(zn, sizeof zn, "%s.zero_point", name);
    ox_init_i32(e->gp, vn, 1, (int64_t[]){O}, v);
    ox_init_f32(e->gp, sn, 1, (int64_t[]){O}, s);
    ox_init_i32(e->gp, zn, 1, (int64_t[]){O}, z);
    ox_attr_int(node(e, d->node, "DequantizeLinear", 3, (const char *[]){vn, sn, zn}, 1, (const char *[]){name}), "axis", 0);
    free(v);
    free(z);
    free(s);
    e->r->int32_biases++;
    return name;
}

static const char *int32_bias(emitter *e, const nb_dnode *d, char *name, size_t len) {
    if (d->in[2].konst < 0 || d->in[1].konst < 0 || !d->in[0].value) return "";
    return int32_bias_of(e, d, &e->g->consts[d->in[1].konst], &e->g->consts[d->in[2].konst], name, len);
}

/* ---- channel orders ----
 * An interleaving concatenation (ShuffleNet's concatenation and channel shuffle) is written as a plain
 * concatenation, and its readers take the channels where they lie: a dense convolution reorders its weight's
 * input channels, a depthwise one its rows (scales and bias with them) and passes the order on, element-wise
 * ops pass it on, a slice of channels takes the runs of the tensor that hold them. No Transpose or Reshape is
 * left in the graph, so ONNX Runtime keeps its integer kernels' NHWC layout across the shuffle (it moves its
 * layout transposes through Slice and Concat, not through the Reshape-Transpose-Reshape of a shuffle). Any
 * other reader gets the channels in order, by a Gather. */

/* The same QuantizeLinear/DequantizeLinear pair as grid q after x, inside a data movement (a slice, a gather,
 * a concatenation of slices), so that the engine runs it on the integers; x itself when q < 0 */
static const char *on_grid(emitter *e, const nb_node *n, const char *x, int q, char *buf, size_t len) {
    if (q < 0 || e->o->mnn) return x;
    char qn[192];
    fresh(e, n, "QuantizeLinear", qn, sizeof qn);
    fresh(e, n, "DequantizeLinear", buf, len);
    node(e, n, "QuantizeLinear", 3, (const char *[]){x, e->qs[q].scale, e->qs[q].zero_point}, 1, (const char *[]){qn});
    node(e, n, "DequantizeLinear", 3, (const char *[]){qn, e->qs[q].scale, e->qs[q].zero_point}, 1, (const char *[]){buf});
    return buf;
}

/* t's channels put in order for a reader that needs them so (a Gather on axis 1) */
static void in_order(emitter *e, const nb_node *n, const nb_tensor *t) {
    named *v = lookup(e, t);
    int64_t C = t->shape[1], *inv = nb_xmalloc(sizeof(int64_t) * (size_t)C);
    for (int64_t p = 0; p < C; p++) inv[v->perm[p]] = p;
    char ix[192], g[192], y[192];
    const_i64(e, n, "indices", (int)C, inv, ix, sizeof ix);
    fresh(e, n, "Gather", g, sizeof g);
    ox_attr_int(node(e, n, "Gather", 2, (const char *[]){v->name, ix}, 1, (const char *[]){g}), "axis", 1);
    snprintf(v->name, sizeof v->name, "%s", on_grid(e, n, g, v->q, y, sizeof y));
    free(inv);
    free(v->perm);
    v->perm = NULL;
}

/* A copy of constant c whose entry p along axis (0: output channels, with their scales; 1: input channels) is
 * c's entry perm[p]; permuted_free releases it */
static nb_dconst permuted(const nb_dconst *c, int axis, const int64_t *perm) {
    int64_t outer = 1, inner = 1, D = c->dims[axis];
    for (int k = 0; k < axis; k++) outer *= c->dims[k];
    for (int k = axis + 1; k < c->ndim; k++) inner *= c->dims[k];
    size_t row = (size_t)inner * (c->values ? sizeof(float) : 1);
    const uint8_t *src = c->values ? (const uint8_t *)c->values : (const uint8_t *)c->codes;
    uint8_t *dst = nb_xmalloc((size_t)(outer * D) * row);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t p = 0; p < D; p++) memcpy(dst + (size_t)(o * D + p) * row, src + (size_t)(o * D + perm[p]) * row, row);
    nb_dconst pc = *c;
    if (c->values) pc.values = (float *)dst;
    else pc.codes = (int8_t *)dst;
    if (!c->values && axis == 0 && c->per_channel) {
        pc.scale = nb_xmalloc(sizeof(float) * (size_t)D);
        for (int64_t p = 0; p < D; p++) pc.scale[p] = c->scale[perm[p]];
    }
    return pc;
}

static void permuted_free(nb_dconst *pc, const nb_dconst *c) {
    free(pc->values != c->values ? pc->values : NULL);
    free(pc->codes != c->codes ? pc->codes : NULL);
    free(pc->scale != c->scale ? pc->scale : NULL);
}

/* Whether d reads its input 0 with the channels in any order: element-wise ops, which pass the order on, and
 * dense or depthwise (*depthwise) convolutions, whose weights are reordered to match */
static bool reads_any_order(const emitter *e, const nb_dnode *d, bool *depthwise) {
    const nb_node *n = d->node;
    *depthwise = false;
    switch (n->op) {
    case NB_OP_RELU:
    case NB_OP_RELU6:
    case NB_OP_LEAKY_RELU:
    case NB_OP_SIGMOID:
    case NB_OP_HARDSWISH:
    case NB_OP_HARDSIGMOID:
    case NB_OP_SILU:
    case NB_OP_SQUARE: return true;
    case NB_OP_FAKE_QUANT: return n->attr.fake_quant.axis < 0;
    case NB_OP_CONV2D: {
        const nb_dconst *w = &e->g->consts[d->in[1].konst];
        int64_t C = n->in[0]->shape[1], groups = n->attr.conv.groups;
        *depthwise = groups > 1 && groups == C && w->dims[0] == C && w->dims[1] == 1 && !d->keep;
        return groups == 1 || *depthwise;
    }
    default: return false;
    }
}

/* Whether only interleaving concatenations read t */
static bool only_interleaved(const emitter *e, const nb_tensor *t) {
    if (t == e->g->output_value) return false;
    for (int i = 0; i < e->g->n_nodes; i++) {
        const nb_dnode *d = &e->g->nodes[i];
        for (int k = 0; k < d->n_in; k++)
            if (d->in[k].value == t && !(d->node->op == NB_OP_CONCAT && d->node->attr.axis.interleave)) return false;
    }
    return true;
}

/* A slice of channels from a tensor whose channels are out of order: the runs of the tensor that hold them,
 * each a Slice, concatenated when there are several, or left as pieces when only interleaving concatenations
 * read it (ShuffleNet's half that skips the branch: one copy fewer per unit); the result keeps the order they
 * lie in. 1: left as pieces, each on the input's grid already; 0: written whole */
static int permuted_slice(emitter *e, const nb_dnode *d) {
    const nb_node *n = d->node;
    const named *x = lookup(e, d->in[0].value);
    const int64_t *perm = x->perm, C = d->node->in[0]->shape[1], a = n->attr.slice.start, len = n->attr.slice.len;
    int64_t *pos = nb_xmalloc(sizeof(int64_t) * (size_t)len), *out = nb_xmalloc(sizeof(int64_t) * (size_t)len), k = 0;
    for (int64_t p = 0; p < C; p++)
        if (perm[p] >= a && perm[p] < a + len) {
            pos[k] = p;
            out[k++] = perm[p] - a;
        }
    int runs = 0, n_runs = 1;
    for (int64_t i = 1; i < len; i++) n_runs += pos[i] != pos[i - 1] + 1;
    char (*piece)[192] = nb_xmalloc(sizeof *piece * (size_t)n_runs), y[192], ax[192];
    const char **pieces = nb_xmalloc(sizeof *pieces * (size_t)n_runs);
    const_i64(e, n, "axes", 1, (int64_t[]){1}, ax, sizeof ax);
    for (int64_t i = 0; i < len; runs++) {
        int64_t j = i + 1;
        while (j < len && pos[j] == pos[j - 1] + 1) j++;
        char st[192], en[192], sl[192];
        const_i64(e, n, "starts", 1, &pos[i], st, sizeof st);
        const_i64(e, n, "ends", 1, (int64_t[]){pos[j - 1] + 1}, en, sizeof en);
        fresh(e, n, "Slice", sl, sizeof sl);
        node(e, n, "Slice", 4, (const char *[]){x->name, st, en, ax}, 1, (const char *[]){sl});
        /* the pieces of several runs on the grid before their concatenation; the result's pair (one run: the
         * Slice's) is keep_grid's, after the node */
        snprintf(piece[runs], sizeof piece[runs], "%s", n_runs > 1 ? on_grid(e, n, sl, x->q, y, sizeof y) : sl);
        pieces[runs] = piece[runs];
        i = j;
    }
    bool as_pieces = n_runs > 1 && only_interleaved(e, d->out);
    if (n_runs > 1 && !as_pieces) {
        fresh(e, n, "Concat", y, sizeof y);
        ox_attr_int(node(e, n, "Concat", n_runs, pieces, 1, (const char *[]){y}), "axis", 1);
    } else {
        snprintf(y, sizeof y, "%s", pieces[0]);
    }
    define_q(e, d->out, y, as_pieces ? x->q : -1);
    if (as_pieces) {
        named *v = lookup(e, d->out);
        v->piece = piece;
        v->n_pieces = n_runs;
        piece = NULL;
    }
    bool ordered = true;
    for (int64_t i = 0; i < len; i++) ordered = ordered && out[i] == i;
    if (!ordered) set_perm(e, d->out, out);
    else free(out);
    free(pos);
    free(piece);
    free(pieces);
    return as_pieces;
}

/* every inference op of the table has its rule; identities never reach the emitter, losses have no rule */
#define ONNX_RULE(E, name, attr, cost, impl, deploy, quant) [NB_OP_##E] = ONNX_RULE_##deploy(name),
#define ONNX_RULE_EXPORT(name) onnx_##name
#define ONNX_RULE_IDENTITY(name) NULL
#define ONNX_RULE_TRAINING(name) NULL
static const onnx_rule rules[NB_OP_COUNT] = {NB_OP_TABLE(ONNX_RULE)};

static int emit_node(emitter *e, const nb_dnode *d) {
    const nb_node *n = d->node;
    onnx_rule rule = rules[n->op];
    if (!rule) {
        NB_FAIL(e->ctx, n->scope[0] ? n->scope : "export", "op %s has no ONNX export (a training op: %s)",
                nb_op_name(n->op), nb_op_deploy_of(n->op) == NB_DEPLOY_TRAINING ? "a loss" : "an identity");
        return -1;
    }
    /* channels out of order (see "channel orders"): a reader that cannot take them so gets them in order */
    bool depthwise = false, channel_slice = n->op == NB_OP_SLICE && n->attr.slice.axis == 1;
    bool interleave = n->op == NB_OP_CONCAT && n->attr.axis.interleave;
    bool any_order = d->n_in && perm_of(e, d->in[0].value) && reads_any_order(e, d, &depthwise);
    for (int k = 0; k < d->n_in && !interleave && !channel_slice; k++)
        if (perm_of(e, d->in[k].value) && !(k == 0 && any_order)) in_order(e, n, d->in[k].value);
    const int64_t *xp = d->n_in ? perm_of(e, d->in[0].value) : NULL;
    const named *x = d->n_in && d->in[0].value ? lookup(e, d->in[0].value) : NULL;
    int q = x ? x->q : -1;
    nb_op_quant role = nb_op_quant_of(n->op);
    if (xp && channel_slice) {
        if (permuted_slice(e, d) == 0 && q >= 0) keep_grid(e, d, q);
        return 0;
    }
    /* a convolution of reordered channels: its weight's input channels reordered, or a depthwise one's rows
     * with their scales and bias */
    bool conv = xp && n->op == NB_OP_CONV2D, pbias = conv && depthwise && d->in[2].konst >= 0;
    const nb_dconst *w = conv ? &e->g->consts[d->in[1].konst] : NULL, *b = pbias ? &e->g->consts[d->in[2].konst] : NULL;
    nb_dconst pw = conv ? permuted(w, depthwise ? 0 : 1, xp) : (nb_dconst){0};
    nb_dconst pb = pbias ? permuted(b, 0, xp) : (nb_dconst){0};
    /* fake quantization writes its step size and zero point as QuantizeLinear's, not as float initializers;
     * an integer layer's bias is int32 */
    int n_named = n->op == NB_OP_FAKE_QUANT ? 1 : d->n_in;
    const char *in[NB_DEPLOY_MAX_IN];
    char bias[192], wname[192];
    bool int_bias = false;
    for (int k = 0; k < n_named; k++) {
        in[k] = NULL;
        if (conv && k == 1) {
            write_const(e, n, &pw, permuted_name(e, n, w, "weight", wname, sizeof wname));
            in[k] = wname;
            continue;
        }
        if (k == 2 && role == NB_QUANT_WEIGHTED)
            in[k] = pbias ? int32_bias_of(e, d, &pw, &pb, bias, sizeof bias) : int32_bias(e, d, bias, sizeof bias);
        if (in[k] && in[k][0]) {
            int_bias = true;
        } else if (pbias && k == 2) {
            write_const(e, n, &pb, permuted_name(e, n, b, "bias", bias, sizeof bias));
            in[k] = bias;
        } else if (k == 1 && selection(e, d)) {
            in[k] = ""; /* written as the indices of a Gather, not as a matrix */
        } else {
            in[k] = input_name(e, d, k);
        }
    }
    if (role == NB_QUANT_WEIGHTED) describe_layer(e, d, q, int_bias);
    int rc = rule(e, d, in);
    if (rc == 0 && q >= 0 && (role == NB_QUANT_KEEP || role == NB_QUANT_SHARED)) keep_grid(e, d, q);
    /* element-wise ops and depthwise convolutions leave the channels where they were */
    if (rc == 0 && any_order && (!conv || depthwise)) set_perm(e, d->out, perm_copy(xp, n->in[0]->shape[1]));
    if (conv) permuted_free(&pw, w);
    if (pbias) permuted_free(&pb, b);
    return rc;
}

/* ---- the model ---- */

static void metadata(emitter *e, Onnx__ModelProto *mp, const nb_export_report *r) {
    const nb_model *m = e->g->model;
    const nb_export_opts *o = e->o;
    char buf[1536];
    mp->doc_string = strdup("exported by nibble's bin/export from a recorded forward pass");
    ox_metadata(mp, "nibble.arch", m->spec.arch);
    snprintf(buf, sizeof buf, "%d", m->spec.num_classes);
    ox_metadata(mp, "nibble.num_classes", buf);
    if (o->input_doc) ox_metadata(mp, "nibble.input", o->input_doc);
    for (const char *const *kv = o->meta; kv && kv[0] && kv[1]; kv += 2) ox_metadata(mp, kv[0], kv[1]);
    if (r->activation_qdq)
        snprintf(buf, sizeof buf, "full integer: %d layers as int%d codes + DequantizeLinear (%s), %lld weights as "
                 "float; %lld activations quantized (uint8 QuantizeLinear/DequantizeLinear pairs), %lld int32 biases: "
                 "nibble.layers says how each layer is stored",
                 r->quantized_layers, r->int_bits ? r->int_bits : 8, r->methods[0] ? r->methods : "none",
                 (long long)r->float_weights, (long long)r->activation_qdq, (long long)r->int32_biases);
    else
        snprintf(buf, sizeof buf, "%d layers as int%d codes + DequantizeLinear (%s), %lld weights as float",
                 r->quantized_layers, r->int_bits ? r->int_bits : 8, r->methods[0] ? r->methods : "none",
                 (long long)r->float_weights);
    ox_metadata(mp, "nibble.quantization", buf);
    if (r->activation_qdq && e->layers) {
        e->layers = nb_xrealloc(e->layers, e->layers_len + 2);
        strcpy(e->layers + e->layers_len, "}");
        ox_metadata(mp, "nibble.layers", e->layers);
    }
    int64_t stored = r->quantized_weights + r->float_weights;
    snprintf(buf, sizeof buf, "%lld of %lld prunable channels removed; %.2f%% of the stored weights are zero",
             (long long)r->channels_removed, (long long)r->prunable_channels,
             stored ? 100.0 * (double)r->zero_weights / (double)stored : 0.0);
    ox_metadata(mp, "nibble.pruning", buf);
    if (!m->priors) return;
    /* a detector's raw output and what a deployment needs to decode it */
    const nb_prior_cfg *pc = m->priors;
    snprintf(buf, sizeof buf,
             "logits [N, 4 + C, P]: per default box p, 4 box offsets (dx, dy, dw, dh) then C class scores (class 0 "
             "the background) along axis 1. Decode: softmax over the scores; centre = prior centre + %g * (dx, dy) * "
             "prior size; size = prior size * exp(%g * (dw, dh)); then per-class NMS. Default boxes in nibble.priors, "
             "in the order of P",
             (double)NB_SSD_VAR_CENTER, (double)NB_SSD_VAR_SIZE);
    ox_metadata(mp, "nibble.output", buf);
    int k = snprintf(buf, sizeof buf, "{\"image_size\": %d, \"clip\": %s, \"variances\": [%g, %g], \"order\": "
                                      "\"map, box type, row, column\", \"maps\": [",
                     pc->image_size, pc->clip ? "true" : "false", (double)NB_SSD_VAR_CENTER, (double)NB_SSD_VAR_SIZE);
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

static const char *emitted_name(void *e, const nb_tensor *v) { return value_name(e, v); }

uint8_t *nb_onnx_emit(nb_ctx *ctx, const nb_deploy_graph *g, const nb_export_opts *o, nb_export_report *r,
                      size_t *bytes, char **mnn_params) {
    emitter e = {.ctx = ctx, .g = g, .o = o, .r = r};
    e.const_names = nb_xcalloc((size_t)(g->n_consts ? g->n_consts : 1), sizeof *e.const_names);
    const nb_deploy_stats *st = &g->stats;
    *r = (nb_export_report){.quantized_layers = st->quantized_layers,
                            .quantized_weights = st->quantized_weights,
                            .float_weights = st->float_weights,
                            .zero_weights = st->zero_weights,
                            .channels_removed = st->channels_removed,
                            .prunable_channels = st->prunable_channels,
                            .folded_bn = st->folded_bn};
    snprintf(r->methods, sizeof r->methods, "%s", st->methods);
    Onnx__ModelProto *mp = ox_model_new(g->model->spec.arch, o->opset >= 21 ? 10 : 8, o->opset);
    e.gp = mp->graph;
    define(&e, g->input, "input");
    ox_graph_io(e.gp, 0, "input", OX_FLOAT, 4, g->input->shape, "N");
    int rc = 0;
    for (int i = 0; i < g->n_nodes && rc == 0; i++) rc = emit_node(&e, &g->nodes[i]);
    uint8_t *packed = NULL;
    if (rc == 0) {
        if (perm_of(&e, g->output_value)) {
            /* its producer wrote "logits" in the permuted order: that name now belongs to the Gather's result */
            ox_rename(e.gp, "logits", "logits/permuted");
            for (size_t i = 0; i < e.n_vals; i++)
                if (!strcmp(e.vals[i].name, "logits")) snprintf(e.vals[i].name, sizeof e.vals[i].name, "logits/permuted");
            in_order(&e, NULL, g->output_value);
        }
        const char *yv = value_name(&e, g->output_value);
        if (strcmp(yv, "logits"))
            ox_node(e.gp, "Identity", "output", 1, (const char *[]){yv}, 1, (const char *[]){"logits"});
        if (o->softmax) {
            Onnx__NodeProto *sm = ox_node(e.gp, "Softmax", "output/Softmax", 1, (const char *[]){"logits"}, 1,
                                          (const char *[]){"probabilities"});
            ox_attr_int(sm, "axis", 1);
        }
        ox_graph_io(e.gp, 1, o->softmax ? "probabilities" : "logits", OX_FLOAT, g->output->ndim, g->output->shape, "N");
        r->int_bits = r->quantized_layers ? (e.int4_layers == r->quantized_layers ? 4 : 8) : 0;
        metadata(&e, mp, r);
        packed = ox_pack(mp, bytes);
        if (mnn_params) *mnn_params = nb_mnn_params(g, emitted_name, &e, &r->mnn_layers);
        r->nodes = (int64_t)e.gp->n_node;
        r->initializers = (int64_t)e.gp->n_initializer;
        r->bytes = (int64_t)*bytes;
    }
    ox_model_free(mp);
    free(e.const_names);
    for (size_t i = 0; i < e.n_vals; i++) {
        free(e.vals[i].perm);
        free(e.vals[i].piece);
    }
    free(e.vals);
    free(e.qs);
    free(e.layers);
    return packed;
}
