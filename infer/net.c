/* nibble's inference (see net.h): the deploy graph compiled into batch-independent steps (each with its own
 * copy of the codes, weights, scales and shapes it needs, so that the graph and the tape are gone after
 * compiling), then instantiated for a batch size (oneDNN primitives and buffers) when a run asks for a new one.
 *
 * Fusion follows the deploy graph's pattern of every quantized layer: conv (batch norm folded, ReLU fused or
 * after it) -> fake_quant becomes one int8 convolution whose output lands on the fake_quant's grid; add
 * (ReLU) -> fake_quant and global_avgpool -> fake_quant one requantizing step each. A float network (no
 * quantizers) compiles the same graph into the same steps in float: conv (ReLU or ReLU6) one oneDNN float
 * convolution, add (ReLU) one step, on NHWC floats, so that float and integer are measured on one engine. */
#include "infer/net.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/ops.h"
#include "deploy/graph.h"
#include "infer/onednn.h"
#include "infer/float_kernels.h"
#include "infer/int8_kernels.h"

typedef enum {
    ST_QUANTIZE, ST_CONV, ST_MAXPOOL, ST_ADD, ST_GAP, ST_CONCAT, ST_SLICE, ST_DEQUANTIZE, ST_ACT, ST_TO_NHWC, ST_TO_NCHW,
    ST_GATHER, ST_CONCAT_ROWS
} step_kind;
static const char *const step_names[] = {"quantize",   "conv",    "maxpool", "add",    "global_avgpool",
                                         "concat",     "slice",   "dequantize", "activation", "to_nhwc",
                                         "to_nchw",    "upsample_nearest", "concat_rows"};

/* a value the network computes: per image c x h x w (a 3-D value [n, c, h] has w 1), bytes on grid g or
 * floats, in NHWC order, or in NCHW order (nchw: the network's input and output, and what a reshape of values
 * with a spatial extent reads) */
typedef struct {
    const nb_tensor *t; /* the recorded tensor it holds (compiling only) */
    bool q;
    bool nchw;
    nb_i8_grid g;
    int64_t c, h, w;
    int alias; /* a view: the slot whose buffer it is, or -1 */
    void *buf; /* for the instantiated batch */
} slot;

typedef struct {
    step_kind kind;
    int in0, in1, out;
    bool relu, relu6;
    float alpha, beta; /* ST_ADD in float: alpha a + beta b */
    char layer[96];
    nb_infer_conv conv; /* ST_CONV: its own codes, scales and bias */
    int pool_kernel[2], pool_stride[2], pool_pad[2];
    int parts[NB_DEPLOY_MAX_IN], n_parts; /* ST_CONCAT: its inputs' slots */
    bool interleave;
    int64_t start, len;                   /* ST_SLICE: its channels */
    int32_t *src;                         /* ST_GATHER: the input pixel of each output pixel */
    nb_infer_prim *prim; /* for the instantiated batch */
    double seconds;      /* time spent in it while profiling */
    int64_t runs;
} step;

struct nb_infer_net {
    nb_ctx *ctx;
    bool integer; /* a full-integer network (every step on integers), else a float one */
    dnnl_engine_t eng;
    dnnl_stream_t st;
    slot *slots;
    int n_slots;
    step *steps;
    int n_steps;
    int input, output;
    int64_t batch; /* instantiated for; 0: none yet */
    bool profile;  /* time every step */
};

/* ---- compiling ---- */

static int new_slot(nb_infer_net *net, const nb_tensor *t, bool q, nb_i8_grid g) {
    net->slots = nb_xrealloc(net->slots, sizeof *net->slots * (size_t)(net->n_slots + 1));
    slot *s = &net->slots[net->n_slots];
    *s = (slot){.t = t, .q = q, .g = g, .c = 1, .h = 1, .w = 1, .alias = -1};
    if (t && t->ndim >= 2) s->c = t->shape[1];
    if (t && t->ndim >= 3) s->h = t->shape[2];
    if (t && t->ndim == 4) s->w = t->shape[3];
    return net->n_slots++;
}

static int slot_of(const nb_infer_net *net, const nb_tensor *t) {
    for (int i = net->n_slots; i-- > 0;)
        if (net->slots[i].t == t) return i;
    return -1;
}

static step *new_step(nb_infer_net *net, step_kind kind, const nb_node *n) {
    net->steps = nb_xrealloc(net->steps, sizeof *net->steps * (size_t)(net->n_steps + 1));
    step *s = &net->steps[net->n_steps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->in1 = -1;
    snprintf(s->layer, sizeof s->layer, "%s", n && n->scope[0] ? n->scope : "network");
    return s;
}

/* A step of kind ST_TO_NCHW (the same values) or ST_DEQUANTIZE (as floats) that writes slot x's values in NCHW
 * order into a new slot of x's shape; returns that slot. n: the layer it belongs to (NULL: the network). */
static int nchw_step(nb_infer_net *net, step_kind kind, int x, const nb_node *n) {
    step *s = new_step(net, kind, n);
    bool q = kind == ST_TO_NCHW && net->slots[x].q;
    s->in0 = x;
    s->out = new_slot(net, NULL, q, q ? net->slots[x].g : (nb_i8_grid){0});
    slot *o = &net->slots[s->out], *src = &net->slots[x];
    o->c = src->c;
    o->h = src->h;
    o->w = src->w;
    o->nchw = true;
    return s->out;
}

/* A per-tensor fake_quant node's grid */
static int grid_of(nb_ctx *ctx, const nb_deploy_graph *g, const nb_dnode *d, nb_i8_grid *out) {
    const nb_fake_quant_attr *a = &d->node->attr.fake_quant;
    NB_REQUIRE(ctx, a->axis < 0 && d->in[1].konst >= 0 && d->in[2].konst >= 0, -1, d->node->scope,
               "an activation quantized per channel has no integer step in nibble's inference");
    NB_REQUIRE(ctx, a->qmin >= -128 && a->qmax <= 255 && (a->qmin >= 0 || a->qmax <= 127), -1, d->node->scope,
               "activation grid [%d, %d] does not fit 8 bits", a->qmin, a->qmax);
    float z = g->consts[d->in[2].konst].values[0];
    z = z < (float)a->qmin ? (float)a->qmin : z > (float)a->qmax ? (float)a->qmax : z;
    *out = (nb_i8_grid){.scale = g->consts[d->in[1].konst].values[0], .zero = (int)nearbyintf(z), .qmin = a->qmin,
                        .qmax = a->qmax};
    return 0;
}

/* After node i's output: an optional ReLU or ReLU6 (its only reader) and then the one fake_quant reading that.
 * Returns the fake_quant's index (-1: none follows), sets *act and marks the nodes used. */
static int quantized_after(const nb_deploy_graph *g, int i, nb_infer_act *act, bool *used) {
    const nb_tensor *t = g->nodes[i].out;
    int r[2];
    if (nb_deploy_readers(g, t, r, 2) != 1) return -1;
    nb_op op = g->nodes[r[0]].node->op;
    int act_node = -1;
    if (op == NB_OP_RELU || op == NB_OP_RELU6) {
        if (*act != NB_INFER_ACT_NONE) return -1;
        act_node = r[0];
        t = g->nodes[r[0]].out;
        if (nb_deploy_readers(g, t, r, 2) != 1) return -1;
        op = g->nodes[r[0]].node->op;
    }
    if (op != NB_OP_FAKE_QUANT) return -1;
    if (act_node >= 0) {
        *act = g->nodes[act_node].node->op == NB_OP_RELU ? NB_INFER_ACT_RELU : NB_INFER_ACT_RELU6;
        used[act_node] = true;
    }
    used[r[0]] = true;
    return r[0];
}

/* Float networks: the ReLU or ReLU6 that is the only reader of node i's output, fused into node i's step (none
 * when *act already holds one). Returns its index (-1: none), sets *act and marks it used. */
static int act_after(const nb_deploy_graph *g, int i, nb_infer_act *act, bool *used) {
    int r[2];
    if (*act != NB_INFER_ACT_NONE || nb_deploy_readers(g, g->nodes[i].out, r, 2) != 1) return -1;
    nb_op op = g->nodes[r[0]].node->op;
    if (op != NB_OP_RELU && op != NB_OP_RELU6) return -1;
    *act = op == NB_OP_RELU ? NB_INFER_ACT_RELU : NB_INFER_ACT_RELU6;
    used[r[0]] = true;
    return r[0];
}

static int compile_conv(nb_infer_net *net, const nb_deploy_graph *g, int i, bool *used) {
    nb_ctx *ctx = net->ctx;
    const nb_dnode *d = &g->nodes[i];
    const nb_node *n = d->node;
    bool linear = n->op == NB_OP_LINEAR;
    int x = slot_of(net, d->in[0].value);
    NB_REQUIRE(ctx, x >= 0 && net->slots[x].q == net->integer, -1, n->scope,
               "its input is not quantized: nibble's integer inference runs full-integer networks only (bin/quantize "
               "with quantize.activations, or compress.methods = qat)");
    const nb_dconst *w = d->in[1].konst >= 0 ? &g->consts[d->in[1].konst] : NULL;
    NB_REQUIRE(ctx, w && (w->codes || (!net->integer && w->values)), -1, n->scope,
               "its weight is float: no integer convolution for it");
    const slot *xs = &net->slots[x];
    NB_REQUIRE(ctx, !xs->nchw || xs->h * xs->w == 1, -1, n->scope,
               "its input is in NCHW order (a reshape's result with a spatial extent): no step for it");
    step *s = new_step(net, ST_CONV, n);
    nb_infer_conv *c = &s->conv;
    c->c = xs->c * xs->h * xs->w;
    c->h = c->w = 1;
    c->o = w->dims[0];
    c->kh = c->kw = 1;
    c->oh = c->ow = 1;
    c->groups = 1;
    c->stride[0] = c->stride[1] = c->dilation[0] = c->dilation[1] = 1;
    if (!linear) {
        const nb_conv_attr *a = &n->attr.conv;
        c->c = xs->c;
        c->h = xs->h;
        c->w = xs->w;
        c->kh = w->dims[2];
        c->kw = w->dims[3];
        c->oh = d->out->shape[2];
        c->ow = d->out->shape[3];
        c->groups = a->groups ? a->groups : 1;
        for (int k = 0; k < 2; k++) {
            c->stride[k] = a->stride[k] ? a->stride[k] : 1;
            c->dilation[k] = a->dilation[k] ? a->dilation[k] : 1;
            c->pad[k] = a->pad[k];
        }
    }
    int64_t per = 1;
    for (int k = 1; k < w->ndim; k++) per *= w->dims[k];
    if (net->integer) {
        c->codes = nb_xmalloc((size_t)(c->o * per));
        memcpy((int8_t *)c->codes, w->codes, (size_t)(c->o * per));
        int64_t ns = w->per_channel ? c->o : 1;
        c->wscale = nb_xmalloc(sizeof(float) * (size_t)ns);
        memcpy((float *)c->wscale, w->scale, sizeof(float) * (size_t)ns);
        c->per_channel = w->per_channel;
    } else { /* the float weight, or the one its codes stand for (a weight-only compressed network) */
        float *fw = nb_xmalloc(sizeof(float) * (size_t)(c->o * per));
        for (int64_t k = 0; k < c->o * per; k++)
            fw[k] = w->values ? w->values[k] : w->scale[w->per_channel ? k / per : 0] * (float)w->codes[k];
        c->weights = fw;
        c->f32 = true;
    }
    if (d->in[2].konst >= 0) {
        const nb_dconst *b = &g->consts[d->in[2].konst];
        NB_REQUIRE(ctx, b->values, -1, n->scope, "its bias is not a float constant");
        c->bias = nb_xmalloc(sizeof(float) * (size_t)c->o);
        memcpy((float *)c->bias, b->values, sizeof(float) * (size_t)c->o);
    }
    c->in = xs->g;
    c->act = d->bn && d->bn->attr.bn.relu ? NB_INFER_ACT_RELU : NB_INFER_ACT_NONE;
    s->in0 = x;
    /* the node whose value the step computes: the quantizer after it (integer), or the ReLU it fuses (float) */
    int last = net->integer ? quantized_after(g, i, &c->act, used) : act_after(g, i, &c->act, used);
    bool quantized = net->integer && last >= 0;
    nb_i8_grid out = {0};
    if (quantized && grid_of(ctx, g, &g->nodes[last], &out)) return -1;
    c->out_float = !quantized;
    c->out = out;
    s->out = new_slot(net, g->nodes[last >= 0 ? last : i].out, quantized, out);
    slot *ys = &net->slots[s->out];
    ys->c = c->o;
    ys->h = c->oh;
    ys->w = c->ow;
    return 0;
}

/* Nearest upsampling as the models record it (core/ops_nn.c, spatial_map): reshape [N, C, h, w] to [N C, h w] at
 * node i, a linear layer by a constant [oh ow, h w] matrix whose every row is one-hot, in a full-integer network
 * the quantizer after it, and a reshape to [N, C, oh, ow]. Returns the last reshape's index and the input pixel
 * of each output pixel (*src, oh ow of them) and the quantizer's index (*quant, -1: none), or -1 when the nodes
 * are not that. */
static int nearest_upsampling(const nb_infer_net *net, const nb_deploy_graph *g, int i, int32_t **src, int *quant,
                              bool *used) {
    const nb_dnode *d = &g->nodes[i];
    const nb_tensor *x = d->in[0].value;
    int r[2];
    if (!x || x->ndim != 4 || d->out->ndim != 2 || nb_deploy_readers(g, d->out, r, 2) != 1) return -1;
    const nb_dnode *lin = &g->nodes[r[0]];
    if (lin->node->op != NB_OP_LINEAR || lin->in[0].value != d->out || lin->in[1].konst < 0 || lin->in[2].konst >= 0)
        return -1;
    const nb_dconst *m = &g->consts[lin->in[1].konst];
    int64_t px = x->shape[2] * x->shape[3], po = m->dims[0];
    if (!m->values || m->ndim != 2 || m->dims[1] != px) return -1;
    int fq = -1, k = r[0];
    if (nb_deploy_readers(g, lin->out, r, 2) != 1) return -1;
    if (net->integer && g->nodes[r[0]].node->op == NB_OP_FAKE_QUANT) {
        fq = k = r[0];
        if (nb_deploy_readers(g, g->nodes[k].out, r, 2) != 1) return -1;
    }
    const nb_dnode *back = &g->nodes[r[0]];
    const nb_tensor *y = back->out;
    if (back->node->op != NB_OP_RESHAPE || y->ndim != 4 || y->shape[0] != x->shape[0] || y->shape[1] != x->shape[1] ||
        y->shape[2] * y->shape[3] != po)
        return -1;
    int32_t *idx = nb_xmalloc(sizeof(int32_t) * (size_t)po);
    if (!nb_dconst_selects(m, idx)) {
        free(idx);
        return -1;
    }
    used[r[0]] = true;
    used[lin - g->nodes] = true;
    if (fq >= 0) used[fq] = true;
    *src = idx;
    *quant = fq;
    return r[0];
}

/* The nearest upsampling from node i to node last (see nearest_upsampling): one gather of whole pixels, on the
 * quantizer's grid after it (in a full-integer network) */
static int compile_gather(nb_infer_net *net, const nb_deploy_graph *g, int i, int last, int32_t *src, int quant) {
    nb_ctx *ctx = net->ctx;
    const nb_dnode *d = &g->nodes[i];
    int x = slot_of(net, d->in[0].value);
    if (x < 0 || net->slots[x].q != net->integer || (net->slots[x].nchw && net->slots[x].h * net->slots[x].w > 1)) {
        free(src);
        NB_FAIL(ctx, d->node->scope, "nearest upsampling of values nibble's inference does not have in NHWC order");
        return -1;
    }
    nb_i8_grid gr = net->slots[x].g; /* the quantizer's between the linear layer and the reshape, where there is one */
    if (quant >= 0 && grid_of(ctx, g, &g->nodes[quant], &gr)) {
        free(src);
        return -1;
    }
    step *s = new_step(net, ST_GATHER, d->node);
    s->in0 = x;
    s->src = src;
    s->out = new_slot(net, g->nodes[last].out, net->integer, gr);
    net->slots[s->out].c = net->slots[x].c;
    return 0;
}

/* A concatenation along the last axis of a 3-D value ([N, D, L]: the detectors' outputs), in NCHW order; in a
 * full-integer network onto the grid of the quantizer after it */
static int compile_concat_rows(nb_infer_net *net, const nb_deploy_graph *g, int i, bool *used) {
    nb_ctx *ctx = net->ctx;
    const nb_dnode *d = &g->nodes[i];
    const nb_node *n = d->node;
    NB_REQUIRE(ctx, d->out->ndim == 3 && n->attr.axis.axis == 2 && !n->attr.axis.interleave, -1, n->scope,
               "a concatenation along axis %d of a %d-D value has no step in nibble's inference (channels, or the last "
               "axis of a 3-D value)", n->attr.axis.axis, d->out->ndim);
    nb_i8_grid gr = {0};
    nb_infer_act act = NB_INFER_ACT_NONE;
    int fq = net->integer ? quantized_after(g, i, &act, used) : -1;
    NB_REQUIRE(ctx, act == NB_INFER_ACT_NONE, -1, n->scope, "a concatenation followed by an activation: no step for it");
    if (fq >= 0 && grid_of(ctx, g, &g->nodes[fq], &gr)) return -1;
    int parts[NB_DEPLOY_MAX_IN];
    for (int k = 0; k < d->n_in; k++) {
        int p = slot_of(net, d->in[k].value);
        NB_REQUIRE(ctx, p >= 0 && net->slots[p].q == net->integer && net->slots[p].nchw &&
                            net->slots[p].c == d->out->shape[1],
                   -1, n->scope, "a concatenation of values nibble's inference does not have in NCHW order");
        if (net->integer && fq < 0) p = nchw_step(net, ST_DEQUANTIZE, p, n); /* a float result: parts dequantized */
        parts[k] = p;
    }
    step *s = new_step(net, ST_CONCAT_ROWS, n);
    memcpy(s->parts, parts, sizeof(int) * (size_t)d->n_in);
    s->n_parts = d->n_in;
    s->in0 = s->parts[0];
    s->out = new_slot(net, fq >= 0 ? g->nodes[fq].out : d->out, fq >= 0, gr);
    net->slots[s->out].nchw = true;
    return 0;
}

/* A float network's add, ReLU, ReLU6 or global average pooling (an integer network fuses them with the
 * quantizer after them); x the slot of its first input (compile_node's) */
static int compile_float_node(nb_infer_net *net, const nb_deploy_graph *g, int i, int x, bool *used) {
    nb_ctx *ctx = net->ctx;
    const nb_dnode *d = &g->nodes[i];
    const nb_node *n = d->node;
    NB_REQUIRE(ctx, x >= 0, -1, n->scope[0] ? n->scope : "network", "%s reads a value nibble's inference does not have",
               nb_op_name(n->op));
    step *s;
    switch (n->op) {
    case NB_OP_ADD: {
        int y = slot_of(net, d->in[1].value);
        NB_REQUIRE(ctx, y >= 0, -1, n->scope, "an add reads a value nibble's inference does not have");
        nb_infer_act act = NB_INFER_ACT_NONE;
        int a = act_after(g, i, &act, used);
        s = new_step(net, ST_ADD, n);
        s->in1 = y;
        s->alpha = n->attr.add.alpha;
        s->beta = n->attr.add.beta;
        s->relu = act == NB_INFER_ACT_RELU || n->attr.add.relu; /* a residual join's own ReLU, or the one after */
        s->relu6 = act == NB_INFER_ACT_RELU6;
        s->in0 = x;
        s->out = new_slot(net, a >= 0 ? g->nodes[a].out : d->out, false, (nb_i8_grid){0});
        break;
    }
    case NB_OP_RELU:
    case NB_OP_RELU6:
        s = new_step(net, ST_ACT, n);
        s->relu6 = n->op == NB_OP_RELU6;
        s->in0 = x;
        s->out = new_slot(net, d->out, false, (nb_i8_grid){0});
        break;
    case NB_OP_GLOBAL_AVGPOOL:
        s = new_step(net, ST_GAP, n);
        s->in0 = x;
        s->out = new_slot(net, d->out, false, (nb_i8_grid){0});
        net->slots[s->out].h = net->slots[s->out].w = 1;
        break;
    default: return -1; /* not reached: compile_node sends only these */
    }
    net->slots[s->out].c = net->slots[x].c; /* the channels pruning kept */
    return 0;
}

static int compile_node(nb_infer_net *net, const nb_deploy_graph *g, int i, bool *used) {
    nb_ctx *ctx = net->ctx;
    const nb_dnode *d = &g->nodes[i];
    const nb_node *n = d->node;
    int x = d->n_in > 0 && d->in[0].value ? slot_of(net, d->in[0].value) : -1;
    if (!net->integer && (n->op == NB_OP_ADD || n->op == NB_OP_RELU || n->op == NB_OP_RELU6 ||
                          n->op == NB_OP_GLOBAL_AVGPOOL))
        return compile_float_node(net, g, i, x, used);
    switch (n->op) {
    case NB_OP_CONV2D:
    case NB_OP_LINEAR: return compile_conv(net, g, i, used);
    case NB_OP_FAKE_QUANT: {
        nb_i8_grid gr;
        if (grid_of(ctx, g, d, &gr)) return -1;
        NB_REQUIRE(ctx, x >= 0 && !net->slots[x].q, -1, n->scope,
                   "a quantized value requantized on its own: no integer step for it in nibble's inference");
        step *s = new_step(net, ST_QUANTIZE, n);
        s->in0 = x;
        s->out = new_slot(net, d->out, true, gr);
        return 0;
    }
    case NB_OP_ADD:
    case NB_OP_GLOBAL_AVGPOOL: {
        bool add = n->op == NB_OP_ADD;
        int y = add ? slot_of(net, d->in[1].value) : -1;
        NB_REQUIRE(ctx, x >= 0 && net->slots[x].q && (!add || (y >= 0 && net->slots[y].q)), -1, n->scope,
                   "%s of float values: no integer step for it", add ? "an add" : "a global average pooling");
        NB_REQUIRE(ctx, !add || (n->attr.add.alpha == 1.0f && n->attr.add.beta == 1.0f), -1, n->scope,
                   "a weighted add (%g a + %g b) has no integer step", n->attr.add.alpha, n->attr.add.beta);
        nb_infer_act act = add && n->attr.add.relu ? NB_INFER_ACT_RELU : NB_INFER_ACT_NONE;
        int fq = quantized_after(g, i, &act, used);
        NB_REQUIRE(ctx, fq >= 0 && (add || act == NB_INFER_ACT_NONE) && act != NB_INFER_ACT_RELU6, -1, n->scope,
                   "%s whose result is not requantized (or passes a ReLU6): no integer step for it",
                   add ? "an add" : "a global average pooling");
        nb_i8_grid gr;
        if (grid_of(ctx, g, &g->nodes[fq], &gr)) return -1;
        step *s = new_step(net, add ? ST_ADD : ST_GAP, n);
        s->in0 = x;
        s->in1 = y;
        s->relu = act == NB_INFER_ACT_RELU;
        s->out = new_slot(net, g->nodes[fq].out, true, gr);
        net->slots[s->out].c = net->slots[x].c; /* the channels pruning kept */
        return 0;
    }
    case NB_OP_MAXPOOL2D: {
        NB_REQUIRE(ctx, x >= 0 && net->slots[x].q == net->integer, -1, n->scope,
                   "max pooling of float values: no integer step for it");
        const nb_pool_attr *a = &n->attr.pool;
        NB_REQUIRE(ctx, (!a->dilation[0] || a->dilation[0] == 1) && (!a->dilation[1] || a->dilation[1] == 1), -1,
                   n->scope, "dilated max pooling has no step in nibble's inference");
        step *s = new_step(net, ST_MAXPOOL, n);
        for (int k = 0; k < 2; k++) {
            s->pool_kernel[k] = a->kernel[k];
            s->pool_stride[k] = a->stride[k] ? a->stride[k] : a->kernel[k];
            s->pool_pad[k] = a->pad[k];
        }
        s->in0 = x;
        s->out = new_slot(net, d->out, net->integer, net->slots[x].g); /* one grid in and out */
        net->slots[s->out].c = net->slots[x].c;
        return 0;
    }
    case NB_OP_CONCAT: {
        if (n->attr.axis.axis != 1) return compile_concat_rows(net, g, i, used);
        nb_infer_act act = NB_INFER_ACT_NONE;
        int fq = net->integer ? quantized_after(g, i, &act, used) : -1;
        NB_REQUIRE(ctx, (fq >= 0) == net->integer && act == NB_INFER_ACT_NONE, -1, n->scope,
                   "a concatenation whose result is not requantized: no integer step for it");
        nb_i8_grid gr = {0};
        if (fq >= 0 && grid_of(ctx, g, &g->nodes[fq], &gr)) return -1;
        step *s = new_step(net, ST_CONCAT, n);
        s->interleave = n->attr.axis.interleave;
        int64_t c = 0;
        for (int k = 0; k < d->n_in; k++) {
            int p = slot_of(net, d->in[k].value);
            NB_REQUIRE(ctx, p >= 0 && net->slots[p].q == net->integer, -1, n->scope,
                       "a concatenation of float values: no integer step");
            s->parts[s->n_parts++] = p;
            c += net->slots[p].c;
        }
        s->in0 = s->parts[0];
        s->out = new_slot(net, fq >= 0 ? g->nodes[fq].out : d->out, net->integer, gr);
        net->slots[s->out].c = c;
        return 0;
    }
    case NB_OP_SLICE: {
        const nb_slice_attr *a = &n->attr.slice;
        NB_REQUIRE(ctx, x >= 0 && net->slots[x].q == net->integer && a->axis == 1, -1, n->scope,
                   "a slice along axis %d (or of float values) has no integer step (channels only)", a->axis);
        step *s = new_step(net, ST_SLICE, n);
        s->in0 = x;
        s->start = a->start;
        s->len = a->len;
        s->out = new_slot(net, d->out, net->integer, net->slots[x].g);
        net->slots[s->out].c = a->len;
        return 0;
    }
    case NB_OP_RESHAPE: { /* a view: NCHW order first where the values have a spatial extent */
        NB_REQUIRE(ctx, x >= 0, -1, n->scope, "reshape of a value nibble's inference does not have");
        int32_t *src = NULL;
        int quant = -1, last = nearest_upsampling(net, g, i, &src, &quant, used);
        if (last >= 0) return compile_gather(net, g, i, last, src, quant);
        NB_REQUIRE(ctx, d->in[0].value->shape[0] == d->out->shape[0], -1, n->scope,
                   "a reshape that moves values across images ([%lld, ...] to [%lld, ...]) has no step in nibble's "
                   "inference", (long long)d->in[0].value->shape[0], (long long)d->out->shape[0]);
        const slot *xs = &net->slots[x];
        if (!xs->nchw && xs->h * xs->w > 1) { /* NHWC values flattened in NCHW order (AlexNet's, the detectors') */
            x = nchw_step(net, ST_TO_NCHW, x, n);
            xs = &net->slots[x];
        }
        int base = xs->alias >= 0 ? xs->alias : x; /* new_slot may move the slots */
        int k = new_slot(net, d->out, xs->q, xs->g);
        net->slots[k].alias = base;
        net->slots[k].nchw = true;
        return 0;
    }
    default:
        NB_FAIL(ctx, n->scope[0] ? n->scope : "network",
                "%s has no step in nibble's inference yet (it runs convolutions, linear layers, adds, ReLU and ReLU6, "
                "max and global average pooling, channel concatenations and slices, reshapes and nearest upsampling)",
                nb_op_name(n->op));
        return -1;
    }
}

static int compile(nb_infer_net *net, const nb_deploy_graph *g) {
    bool *used = nb_xcalloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *used);
    /* the input: NCHW floats, quantized to NHWC bytes by the fake_quant that reads it, or made NHWC floats */
    net->input = new_slot(net, net->integer ? g->input : NULL, false, (nb_i8_grid){0});
    net->slots[net->input].nchw = true;
    if (!net->integer) {
        const nb_tensor *t = g->input;
        net->slots[net->input].c = t->shape[1];
        net->slots[net->input].h = t->ndim == 4 ? t->shape[2] : 1;
        net->slots[net->input].w = t->ndim == 4 ? t->shape[3] : 1;
        step *s = new_step(net, ST_TO_NHWC, NULL);
        s->in0 = net->input;
        s->out = new_slot(net, t, false, (nb_i8_grid){0});
    }
    int rc = 0;
    for (int i = 0; i < g->n_nodes && rc == 0; i++)
        if (!used[i]) rc = compile_node(net, g, i, used);
    free(used);
    if (rc) return -1;
    int y = slot_of(net, g->output_value);
    NB_REQUIRE(net->ctx, y >= 0, -1, "network", "its output is not computed by nibble's integer inference");
    if (net->slots[y].q) y = nchw_step(net, ST_DEQUANTIZE, y, NULL);
    if (!net->slots[y].nchw && net->slots[y].h * net->slots[y].w > 1) { /* NHWC floats back to NCHW */
        NB_REQUIRE(net->ctx, net->slots[y].alias < 0, -1, "network",
                   "its output is a reshape of NHWC values with a spatial extent: not in NCHW order here");
        y = nchw_step(net, ST_TO_NCHW, y, NULL);
    }
    net->output = y;
    return 0;
}

/* ---- instantiation for a batch size ---- */

static size_t slot_bytes(const slot *s, int64_t n) { return (size_t)(n * s->c * s->h * s->w) * (s->q ? 1 : 4); }

static void release(nb_infer_net *net) {
    for (int i = 0; i < net->n_steps; i++) {
        nb_infer_prim_free(net->steps[i].prim);
        net->steps[i].prim = NULL;
    }
    for (int i = 0; i < net->n_slots; i++) {
        if (net->slots[i].alias < 0 && i != net->input) free(net->slots[i].buf);
        net->slots[i].buf = NULL;
    }
    net->batch = 0;
}

static int instantiate(nb_infer_net *net, int64_t n) {
    release(net);
    for (int i = 0; i < net->n_slots; i++)
        if (net->slots[i].alias < 0 && i != net->input) net->slots[i].buf = nb_xmalloc(slot_bytes(&net->slots[i], n));
    for (int i = 0; i < net->n_slots; i++)
        if (net->slots[i].alias >= 0) net->slots[i].buf = net->slots[net->slots[i].alias].buf;
    for (int i = 0; i < net->n_steps; i++) {
        step *s = &net->steps[i];
        const slot *x = &net->slots[s->in0], *y = &net->slots[s->out];
        if (s->kind == ST_CONV) {
            s->conv.n = n;
            s->prim = nb_infer_conv_new(net->ctx, net->eng, &s->conv, s->layer);
        } else if (s->kind == ST_MAXPOOL) {
            nb_infer_type t = !x->q ? NB_INFER_F32 : nb_i8_signed(x->g) ? NB_INFER_S8 : NB_INFER_U8;
            s->prim = nb_infer_maxpool_new(net->ctx, net->eng, n, x->c, x->h, x->w, y->h, y->w, s->pool_kernel,
                                           s->pool_stride, s->pool_pad, t, s->layer);
        } else {
            continue;
        }
        if (!s->prim) return -1;
    }
    net->batch = n;
    return 0;
}

/* ---- the public face ---- */

/* q: the simulation of a full-integer network, or NULL for a float one */
static nb_infer_net *net_new(nb_model *m, nb_qsim *q, const nb_qweights *w) {
    nb_ctx *ctx = m->ctx;
    nb_infer_net *net = nb_xcalloc(1, sizeof *net);
    net->ctx = ctx;
    net->integer = q != NULL;
    if (dnnl_engine_create(&net->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&net->st, net->eng, dnnl_stream_default_flags) != dnnl_success) {
        NB_FAIL(ctx, "inference", "cannot create a oneDNN CPU engine");
        nb_infer_net_free(net);
        return NULL;
    }
    size_t mark;
    if (q) nb_qsim_set_exporting(q, true);
    nb_tensor *x, *y = nb_record_forward(m, 2, &mark, &x); /* as bin/export records it */
    if (q) nb_qsim_set_exporting(q, false);
    nb_deploy_graph g;
    nb_lower_opts lo = {.fold_bn = true, .qsim = q};
    int rc = y && nb_deploy_lower(m, x, y, w, &lo, &g) == 0 ? 0 : -1;
    if (rc == 0) {
        rc = compile(net, &g);
        nb_deploy_free(&g);
    }
    nb_tape_clear(ctx);
    nb_scope_end(ctx, mark);
    nb_release(x);
    for (int i = 0; i < net->n_slots; i++) net->slots[i].t = NULL; /* the record is gone */
    if (rc) {
        nb_infer_net_free(net);
        return NULL;
    }
    return net;
}

nb_infer_net *nb_infer_net_new(nb_model *m, nb_qsim *q, const nb_qweights *w) {
    NB_REQUIRE(m->ctx, q, NULL, m->spec.arch,
               "has no quantizers: nibble's integer inference runs full-integer checkpoints (bin/quantize with "
               "quantize.activations, or a compress.methods = qat run)");
    return net_new(m, q, w);
}

nb_infer_net *nb_infer_net_new_float(nb_model *m, const nb_qweights *w) { return net_new(m, NULL, w); }

int64_t nb_infer_net_outputs(const nb_infer_net *net) {
    const slot *o = &net->slots[net->output];
    return o->c * o->h * o->w;
}

int nb_infer_net_run(nb_infer_net *net, const float *x, int64_t n, float *y) {
    if (n != net->batch && instantiate(net, n)) return -1;
    net->slots[net->input].buf = (void *)x;
    for (int i = 0; i < net->n_slots; i++)
        if (net->slots[i].alias == net->input) net->slots[i].buf = (void *)x;
    for (int i = 0; i < net->n_steps; i++) {
        step *s = &net->steps[i];
        slot *a = &net->slots[s->in0], *o = &net->slots[s->out];
        int64_t hw = a->h * a->w;
        double t0 = net->profile ? omp_get_wtime() : 0;
        switch (s->kind) {
        case ST_QUANTIZE: nb_i8_quantize(a->buf, n, a->c, hw, o->g, o->buf); break;
        case ST_DEQUANTIZE: /* to NCHW floats (values in NCHW order already: one channel of everything) */
            if (a->nchw) nb_i8_dequantize(a->buf, n, 1, a->c * hw, a->g, o->buf);
            else nb_i8_dequantize(a->buf, n, a->c, hw, a->g, o->buf);
            break;
        case ST_TO_NHWC: nb_f32_to_nhwc(a->buf, n, a->c, hw, o->buf); break;
        case ST_TO_NCHW:
            if (a->q) nb_i8_to_nchw(a->buf, n, a->c, hw, o->buf);
            else nb_f32_to_nchw(a->buf, n, a->c, hw, o->buf);
            break;
        case ST_GATHER:
            if (a->q) nb_i8_gather_pixels(a->buf, a->g, n, hw, a->c, s->src, o->h * o->w, o->g, o->buf);
            else nb_f32_gather_pixels(a->buf, n, hw, a->c, s->src, o->h * o->w, o->buf);
            break;
        case ST_CONCAT_ROWS: {
            const void *parts[NB_DEPLOY_MAX_IN];
            const float *fparts[NB_DEPLOY_MAX_IN];
            int64_t lens[NB_DEPLOY_MAX_IN];
            nb_i8_grid grids[NB_DEPLOY_MAX_IN];
            for (int k = 0; k < s->n_parts; k++) {
                const slot *p = &net->slots[s->parts[k]];
                parts[k] = fparts[k] = p->buf;
                lens[k] = p->h * p->w;
                grids[k] = p->g;
            }
            if (o->q) nb_i8_concat_rows(parts, lens, grids, s->n_parts, n * o->c, o->g, o->buf);
            else nb_f32_concat_rows(fparts, lens, s->n_parts, n * o->c, o->buf);
            break;
        }
        case ST_ACT: nb_f32_act(a->buf, n * a->c * hw, s->relu6, o->buf); break;
        case ST_ADD: {
            slot *b = &net->slots[s->in1];
            if (a->q) nb_i8_add(a->buf, a->g, b->buf, b->g, n * a->c * hw, s->relu, o->g, o->buf);
            else nb_f32_add(a->buf, s->alpha, b->buf, s->beta, n * a->c * hw, s->relu, s->relu6, o->buf);
            break;
        }
        case ST_GAP:
            if (a->q) nb_i8_global_avgpool(a->buf, a->g, n, hw, a->c, o->g, o->buf);
            else nb_f32_global_avgpool(a->buf, n, hw, a->c, o->buf);
            break;
        case ST_CONCAT: {
            const void *parts[NB_DEPLOY_MAX_IN];
            const float *fparts[NB_DEPLOY_MAX_IN];
            int64_t channels[NB_DEPLOY_MAX_IN];
            nb_i8_grid grids[NB_DEPLOY_MAX_IN];
            for (int k = 0; k < s->n_parts; k++) {
                const slot *p = &net->slots[s->parts[k]];
                parts[k] = p->buf;
                fparts[k] = p->buf;
                channels[k] = p->c;
                grids[k] = p->g;
            }
            if (o->q) nb_i8_concat(parts, channels, grids, s->n_parts, n * hw, s->interleave, o->g, o->buf);
            else nb_f32_concat(fparts, channels, s->n_parts, n * hw, s->interleave, o->buf);
            break;
        }
        case ST_SLICE:
            if (a->q) nb_i8_slice_channels(a->buf, n * hw, a->c, s->start, s->len, o->buf);
            else nb_f32_slice_channels(a->buf, n * hw, a->c, s->start, s->len, o->buf);
            break;
        case ST_CONV:
        case ST_MAXPOOL:
            if (nb_infer_prim_run(net->ctx, s->prim, net->st, a->buf, o->buf)) return -1;
            break;
        }
        if (net->profile) {
            s->seconds += omp_get_wtime() - t0;
            s->runs++;
        }
    }
    const slot *o = &net->slots[net->output];
    memcpy(y, o->buf, slot_bytes(o, n));
    return 0;
}

void nb_infer_net_describe(const nb_infer_net *net, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < net->n_steps && used < len; i++) {
        const step *s = &net->steps[i];
        const slot *o = &net->slots[s->out];
        char shape[96] = "";
        if (s->kind == ST_CONV) /* what the layer computes after pruning: its input and output channels */
            snprintf(shape, sizeof shape, " [in %lld, out %lld, %lldx%lld, groups %d]", (long long)s->conv.c,
                     (long long)s->conv.o, (long long)s->conv.kh, (long long)s->conv.kw, s->conv.groups);
        char took[48] = "";
        if (s->runs) snprintf(took, sizeof took, "  %.3f ms", 1000 * s->seconds / (double)s->runs);
        int k = snprintf(buf + used, len - used, "%s %s%s -> %s%s%s%s\n", s->layer, step_names[s->kind], shape,
                         o->q ? (nb_i8_signed(o->g) ? "s8" : "u8") : "f32", s->prim ? " " : "",
                         s->prim ? nb_infer_prim_impl(s->prim) : "", took);
        used += k > 0 ? (size_t)k : 0;
    }
}

/* ---- the network as a model ---- */

typedef struct {
    nb_infer_net *net;
    int ndim;
    int64_t dims[3]; /* of one image's output: [classes], or a detector's [4 + C, P] */
} infer_model;

static nb_tensor *infer_forward(nb_model *m, nb_tensor *x, bool training) {
    infer_model *im = m->impl;
    nb_ctx *ctx = m->ctx;
    NB_REQUIRE(ctx, x && !training, NULL, "inference", "nibble's inference runs evaluation only");
    int64_t n = x->shape[0], per = nb_infer_net_outputs(im->net);
    float *xh = nb_xmalloc(sizeof(float) * (size_t)nb_numel(x)), *yh = nb_xmalloc(sizeof(float) * (size_t)(n * per));
    nb_tensor *y = NULL;
    if (nb_tensor_to_host(x, xh, sizeof(float) * (size_t)nb_numel(x)) == 0 && nb_infer_net_run(im->net, xh, n, yh) == 0) {
        int64_t shape[4] = {n, im->dims[0], im->dims[1], im->dims[2]};
        nb_tensor *h = nb_tensor_from_host(ctx, NB_F32, 1 + im->ndim, shape, yh);
        y = h ? nb_reshape(h, 1 + im->ndim, shape) : NULL; /* an op's output: the caller's scope owns it */
        nb_release(h);
    }
    free(xh);
    free(yh);
    return y;
}

nb_model *nb_infer_model(nb_model *m, nb_infer_net *net) {
    nb_model *w = nb_model_alloc(m->ctx, &m->spec, sizeof(infer_model), infer_forward, NULL);
    infer_model *im = w->impl;
    im->net = net;
    w->priors = m->priors;
    int64_t per = nb_infer_net_outputs(net);
    im->ndim = m->priors ? 2 : 1;
    im->dims[0] = m->priors ? 4 + m->spec.num_classes : per;
    im->dims[1] = m->priors ? per / im->dims[0] : 1;
    im->dims[2] = 1;
    return w;
}

void nb_infer_net_profile(nb_infer_net *net, bool on) {
    net->profile = on;
    for (int i = 0; i < net->n_steps && on; i++) net->steps[i].seconds = 0, net->steps[i].runs = 0;
}

void nb_infer_net_free(nb_infer_net *net) {
    if (!net) return;
    release(net);
    for (int i = 0; i < net->n_steps; i++) {
        free((void *)net->steps[i].conv.codes);
        free((void *)net->steps[i].conv.weights);
        free(net->steps[i].src);
        free((void *)net->steps[i].conv.wscale);
        free((void *)net->steps[i].conv.bias);
    }
    free(net->steps);
    free(net->slots);
    if (net->st) dnnl_stream_destroy(net->st);
    if (net->eng) dnnl_engine_destroy(net->eng);
    free(net);
}
