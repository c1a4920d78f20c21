/* nibble's integer inference (see int8_net.h): the deploy graph compiled into batch-independent steps (each
 * with its own copy of the codes, scales and shapes it needs, so that the graph and the tape are gone after
 * compiling), then instantiated for a batch size (oneDNN primitives and buffers) when a run asks for a new one.
 *
 * Fusion follows the deploy graph's pattern of every quantized layer: conv (batch norm folded, ReLU fused or
 * after it) -> fake_quant becomes one int8 convolution whose output lands on the fake_quant's grid; add
 * (ReLU) -> fake_quant and global_avgpool -> fake_quant one requantizing step each. */
#include "infer/int8_net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "deploy/graph.h"
#include "infer/int8_dnnl.h"
#include "infer/int8_kernels.h"

typedef enum { ST_QUANTIZE, ST_CONV, ST_MAXPOOL, ST_ADD, ST_GAP, ST_CONCAT, ST_SLICE, ST_DEQUANTIZE } step_kind;
static const char *const step_names[] = {"quantize", "conv",   "maxpool", "add",
                                         "global_avgpool", "concat", "slice", "dequantize"};

/* a value the network computes: per image c x h x w, bytes on grid g (NHWC) or floats */
typedef struct {
    const nb_tensor *t; /* the recorded tensor it holds (compiling only) */
    bool q;
    nb_i8_grid g;
    int64_t c, h, w;
    int alias; /* a view: the slot whose buffer it is, or -1 */
    void *buf; /* for the instantiated batch */
} slot;

typedef struct {
    step_kind kind;
    int in0, in1, out;
    bool relu;
    char layer[96];
    nb_i8_conv_spec conv; /* ST_CONV: its own codes, scales and bias */
    int pool_kernel[2], pool_stride[2], pool_pad[2];
    int parts[NB_DEPLOY_MAX_IN], n_parts; /* ST_CONCAT: its inputs' slots */
    bool interleave;
    int64_t start, len;                   /* ST_SLICE: its channels */
    nb_i8_prim *prim; /* for the instantiated batch */
} step;

struct nb_int8_net {
    nb_ctx *ctx;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    slot *slots;
    int n_slots;
    step *steps;
    int n_steps;
    int input, output;
    int64_t batch; /* instantiated for; 0: none yet */
};

/* ---- compiling ---- */

static int new_slot(nb_int8_net *net, const nb_tensor *t, bool q, nb_i8_grid g) {
    net->slots = nb_xrealloc(net->slots, sizeof *net->slots * (size_t)(net->n_slots + 1));
    slot *s = &net->slots[net->n_slots];
    *s = (slot){.t = t, .q = q, .g = g, .c = 1, .h = 1, .w = 1, .alias = -1};
    if (t && t->ndim >= 2) s->c = t->shape[1];
    if (t && t->ndim == 4) s->h = t->shape[2], s->w = t->shape[3];
    return net->n_slots++;
}

static int slot_of(const nb_int8_net *net, const nb_tensor *t) {
    for (int i = net->n_slots; i-- > 0;)
        if (net->slots[i].t == t) return i;
    return -1;
}

static step *new_step(nb_int8_net *net, step_kind kind, const nb_node *n) {
    net->steps = nb_xrealloc(net->steps, sizeof *net->steps * (size_t)(net->n_steps + 1));
    step *s = &net->steps[net->n_steps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->in1 = -1;
    snprintf(s->layer, sizeof s->layer, "%s", n && n->scope[0] ? n->scope : "network");
    return s;
}

/* The nodes that read t (indices into g->nodes), at most max; how many there are */
static int readers(const nb_deploy_graph *g, const nb_tensor *t, int *out, int max) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k].value == t) {
                if (n < max) out[n] = i;
                n++;
                break;
            }
    return n;
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
static int quantized_after(const nb_deploy_graph *g, int i, nb_i8_act *act, bool *used) {
    const nb_tensor *t = g->nodes[i].out;
    int r[2];
    if (readers(g, t, r, 2) != 1) return -1;
    nb_op op = g->nodes[r[0]].node->op;
    int act_node = -1;
    if (op == NB_OP_RELU || op == NB_OP_RELU6) {
        if (*act != NB_I8_ACT_NONE) return -1;
        act_node = r[0];
        t = g->nodes[r[0]].out;
        if (readers(g, t, r, 2) != 1) return -1;
        op = g->nodes[r[0]].node->op;
    }
    if (op != NB_OP_FAKE_QUANT) return -1;
    if (act_node >= 0) {
        *act = g->nodes[act_node].node->op == NB_OP_RELU ? NB_I8_ACT_RELU : NB_I8_ACT_RELU6;
        used[act_node] = true;
    }
    used[r[0]] = true;
    return r[0];
}

static int compile_conv(nb_int8_net *net, const nb_deploy_graph *g, int i, bool *used) {
    nb_ctx *ctx = net->ctx;
    const nb_dnode *d = &g->nodes[i];
    const nb_node *n = d->node;
    bool linear = n->op == NB_OP_LINEAR;
    int x = slot_of(net, d->in[0].value);
    NB_REQUIRE(ctx, x >= 0 && net->slots[x].q, -1, n->scope,
               "its input is not quantized: nibble's integer inference runs full-integer networks only (bin/quantize "
               "with quantize.activations, or compress.methods = qat)");
    const nb_dconst *w = d->in[1].konst >= 0 ? &g->consts[d->in[1].konst] : NULL;
    NB_REQUIRE(ctx, w && w->codes, -1, n->scope, "its weight is float: no integer convolution for it");
    const slot *xs = &net->slots[x];
    step *s = new_step(net, ST_CONV, n);
    nb_i8_conv_spec *c = &s->conv;
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
    c->codes = nb_xmalloc((size_t)(c->o * per));
    memcpy((int8_t *)c->codes, w->codes, (size_t)(c->o * per));
    int64_t ns = w->per_channel ? c->o : 1;
    c->wscale = nb_xmalloc(sizeof(float) * (size_t)ns);
    memcpy((float *)c->wscale, w->scale, sizeof(float) * (size_t)ns);
    c->per_channel = w->per_channel;
    if (d->in[2].konst >= 0) {
        const nb_dconst *b = &g->consts[d->in[2].konst];
        NB_REQUIRE(ctx, b->values, -1, n->scope, "its bias is not a float constant");
        c->bias = nb_xmalloc(sizeof(float) * (size_t)c->o);
        memcpy((float *)c->bias, b->values, sizeof(float) * (size_t)c->o);
    }
    c->in = xs->g;
    c->act = d->bn && d->bn->attr.bn.relu ? NB_I8_ACT_RELU : NB_I8_ACT_NONE;
    int fq = quantized_after(g, i, &c->act, used);
    nb_i8_grid out = {0};
    if (fq >= 0 && grid_of(ctx, g, &g->nodes[fq], &out)) return -1;
    c->out_float = fq < 0;
    c->out = out;
    s->in0 = x;
    s->out = new_slot(net, fq >= 0 ? g->nodes[fq].out : d->out, fq >= 0, out);
    slot *ys = &net->slots[s->out];
    ys->c = c->o;
    ys->h = c->oh;
    ys->w = c->ow;
    return 0;
}

static int compile_node(nb_int8_net *net, const nb_deploy_graph *g, int i, bool *used) {
    nb_ctx *ctx = net->ctx;
    const nb_dnode *d = &g->nodes[i];
    const nb_node *n = d->node;
    int x = d->n_in > 0 && d->in[0].value ? slot_of(net, d->in[0].value) : -1;
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
        nb_i8_act act = NB_I8_ACT_NONE;
        int fq = quantized_after(g, i, &act, used);
        NB_REQUIRE(ctx, fq >= 0 && (add || act == NB_I8_ACT_NONE) && act != NB_I8_ACT_RELU6, -1, n->scope,
                   "%s whose result is not requantized (or passes a ReLU6): no integer step for it",
                   add ? "an add" : "a global average pooling");
        nb_i8_grid gr;
        if (grid_of(ctx, g, &g->nodes[fq], &gr)) return -1;
        step *s = new_step(net, add ? ST_ADD : ST_GAP, n);
        s->in0 = x;
        s->in1 = y;
        s->relu = act == NB_I8_ACT_RELU;
        s->out = new_slot(net, g->nodes[fq].out, true, gr);
        if (!add) net->slots[s->out].c = net->slots[x].c;
        return 0;
    }
    case NB_OP_MAXPOOL2D: {
        NB_REQUIRE(ctx, x >= 0 && net->slots[x].q, -1, n->scope, "max pooling of float values: no integer step for it");
        const nb_pool_attr *a = &n->attr.pool;
        NB_REQUIRE(ctx, (!a->dilation[0] || a->dilation[0] == 1) && (!a->dilation[1] || a->dilation[1] == 1), -1,
                   n->scope, "dilated max pooling has no integer step");
        step *s = new_step(net, ST_MAXPOOL, n);
        for (int k = 0; k < 2; k++) {
            s->pool_kernel[k] = a->kernel[k];
            s->pool_stride[k] = a->stride[k] ? a->stride[k] : a->kernel[k];
            s->pool_pad[k] = a->pad[k];
        }
        s->in0 = x;
        s->out = new_slot(net, d->out, true, net->slots[x].g); /* one grid in and out */
        return 0;
    }
    case NB_OP_CONCAT: {
        NB_REQUIRE(ctx, n->attr.axis.axis == 1 && d->n_in >= 1, -1, n->scope,
                   "a concatenation along axis %d has no integer step (channels only)", n->attr.axis.axis);
        nb_i8_act act = NB_I8_ACT_NONE;
        int fq = quantized_after(g, i, &act, used);
        NB_REQUIRE(ctx, fq >= 0 && act == NB_I8_ACT_NONE, -1, n->scope,
                   "a concatenation whose result is not requantized: no integer step for it");
        nb_i8_grid gr;
        if (grid_of(ctx, g, &g->nodes[fq], &gr)) return -1;
        step *s = new_step(net, ST_CONCAT, n);
        s->interleave = n->attr.axis.interleave;
        int64_t c = 0;
        for (int k = 0; k < d->n_in; k++) {
            int p = slot_of(net, d->in[k].value);
            NB_REQUIRE(ctx, p >= 0 && net->slots[p].q, -1, n->scope, "a concatenation of float values: no integer step");
            s->parts[s->n_parts++] = p;
            c += net->slots[p].c;
        }
        s->in0 = s->parts[0];
        s->out = new_slot(net, g->nodes[fq].out, true, gr);
        net->slots[s->out].c = c;
        return 0;
    }
    case NB_OP_SLICE: {
        const nb_slice_attr *a = &n->attr.slice;
        NB_REQUIRE(ctx, x >= 0 && net->slots[x].q && a->axis == 1, -1, n->scope,
                   "a slice along axis %d (or of float values) has no integer step (channels only)", a->axis);
        step *s = new_step(net, ST_SLICE, n);
        s->in0 = x;
        s->start = a->start;
        s->len = a->len;
        s->out = new_slot(net, d->out, true, net->slots[x].g);
        net->slots[s->out].c = a->len;
        return 0;
    }
    case NB_OP_RESHAPE: { /* a view; bytes in NHWC are the same as NCHW only without a spatial extent */
        NB_REQUIRE(ctx, x >= 0, -1, n->scope, "reshape of a value nibble's inference does not have");
        const slot *xs = &net->slots[x];
        NB_REQUIRE(ctx, !xs->q || (xs->h == 1 && xs->w == 1), -1, n->scope,
                   "a reshape of quantized NHWC values with a spatial extent (%lld x %lld) has no integer step yet",
                   (long long)xs->h, (long long)xs->w);
        int base = xs->alias >= 0 ? xs->alias : x; /* new_slot may move the slots */
        int k = new_slot(net, d->out, xs->q, xs->g);
        net->slots[k].alias = base;
        return 0;
    }
    default:
        NB_FAIL(ctx, n->scope[0] ? n->scope : "network",
                "%s has no integer step in nibble's inference yet (it runs convolutions, linear layers, adds, ReLU and "
                "ReLU6, max and global average pooling, channel concatenations and slices, and reshapes)", nb_op_name(n->op));
        return -1;
    }
}

static int compile(nb_int8_net *net, const nb_deploy_graph *g) {
    bool *used = nb_xcalloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *used);
    net->input = new_slot(net, g->input, false, (nb_i8_grid){0});
    int rc = 0;
    for (int i = 0; i < g->n_nodes && rc == 0; i++)
        if (!used[i]) rc = compile_node(net, g, i, used);
    free(used);
    if (rc) return -1;
    int y = slot_of(net, g->output_value);
    NB_REQUIRE(net->ctx, y >= 0, -1, "network", "its output is not computed by nibble's integer inference");
    if (net->slots[y].q) {
        step *s = new_step(net, ST_DEQUANTIZE, NULL);
        s->in0 = y;
        y = s->out = new_slot(net, NULL, false, (nb_i8_grid){0});
        slot *o = &net->slots[y], *src = &net->slots[net->steps[net->n_steps - 1].in0];
        o->c = src->c;
        o->h = src->h;
        o->w = src->w;
    }
    const slot *o = &net->slots[y];
    NB_REQUIRE(net->ctx, o->h * o->w == 1 || net->steps[net->n_steps - 1].kind == ST_DEQUANTIZE, -1, "network",
               "a float output with a spatial extent is not in NCHW order here");
    net->output = y;
    return 0;
}

/* ---- instantiation for a batch size ---- */

static size_t slot_bytes(const slot *s, int64_t n) { return (size_t)(n * s->c * s->h * s->w) * (s->q ? 1 : 4); }

static void release(nb_int8_net *net) {
    for (int i = 0; i < net->n_steps; i++) {
        nb_i8_prim_free(net->steps[i].prim);
        net->steps[i].prim = NULL;
    }
    for (int i = 0; i < net->n_slots; i++) {
        if (net->slots[i].alias < 0 && i != net->input) free(net->slots[i].buf);
        net->slots[i].buf = NULL;
    }
    net->batch = 0;
}

static int instantiate(nb_int8_net *net, int64_t n) {
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
            s->prim = nb_i8_conv_new(net->ctx, net->eng, &s->conv, s->layer);
        } else if (s->kind == ST_MAXPOOL) {
            s->prim = nb_i8_maxpool_new(net->ctx, net->eng, n, x->c, x->h, x->w, y->h, y->w, s->pool_kernel,
                                        s->pool_stride, s->pool_pad, nb_i8_signed(x->g), s->layer);
        } else {
            continue;
        }
        if (!s->prim) return -1;
    }
    net->batch = n;
    return 0;
}

/* ---- the public face ---- */

nb_int8_net *nb_int8_net_new(nb_model *m, nb_qsim *q, const nb_qweights *w) {
    nb_ctx *ctx = m->ctx;
    NB_REQUIRE(ctx, q, NULL, m->spec.arch,
               "has no quantizers: nibble's integer inference runs full-integer checkpoints (bin/quantize with "
               "quantize.activations, or a compress.methods = qat run)");
    nb_int8_net *net = nb_xcalloc(1, sizeof *net);
    net->ctx = ctx;
    if (dnnl_engine_create(&net->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&net->st, net->eng, dnnl_stream_default_flags) != dnnl_success) {
        NB_FAIL(ctx, "int8 inference", "cannot create a oneDNN CPU engine");
        nb_int8_net_free(net);
        return NULL;
    }
    size_t mark;
    nb_qsim_set_exporting(q, true);
    nb_tensor *x, *y = nb_record_forward(m, 2, &mark, &x); /* as bin/export records it */
    nb_qsim_set_exporting(q, false);
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
        nb_int8_net_free(net);
        return NULL;
    }
    return net;
}

int64_t nb_int8_net_outputs(const nb_int8_net *net) {
    const slot *o = &net->slots[net->output];
    return o->c * o->h * o->w;
}

int nb_int8_net_run(nb_int8_net *net, const float *x, int64_t n, float *y) {
    if (n != net->batch && instantiate(net, n)) return -1;
    net->slots[net->input].buf = (void *)x;
    for (int i = 0; i < net->n_slots; i++)
        if (net->slots[i].alias == net->input) net->slots[i].buf = (void *)x;
    for (int i = 0; i < net->n_steps; i++) {
        step *s = &net->steps[i];
        slot *a = &net->slots[s->in0], *o = &net->slots[s->out];
        int64_t hw = a->h * a->w;
        switch (s->kind) {
        case ST_QUANTIZE: nb_i8_quantize(a->buf, n, a->c, hw, o->g, o->buf); break;
        case ST_DEQUANTIZE: nb_i8_dequantize(a->buf, n, a->c, hw, a->g, o->buf); break;
        case ST_ADD: {
            slot *b = &net->slots[s->in1];
            nb_i8_add(a->buf, a->g, b->buf, b->g, n * a->c * hw, s->relu, o->g, o->buf);
            break;
        }
        case ST_GAP: nb_i8_global_avgpool(a->buf, a->g, n, hw, a->c, o->g, o->buf); break;
        case ST_CONCAT: {
            const void *parts[NB_DEPLOY_MAX_IN];
            int64_t channels[NB_DEPLOY_MAX_IN];
            nb_i8_grid grids[NB_DEPLOY_MAX_IN];
            for (int k = 0; k < s->n_parts; k++) {
                const slot *p = &net->slots[s->parts[k]];
                parts[k] = p->buf;
                channels[k] = p->c;
                grids[k] = p->g;
            }
            nb_i8_concat(parts, channels, grids, s->n_parts, n * hw, s->interleave, o->g, o->buf);
            break;
        }
        case ST_SLICE: nb_i8_slice_channels(a->buf, n * hw, a->c, s->start, s->len, o->buf); break;
        case ST_CONV:
        case ST_MAXPOOL:
            if (nb_i8_prim_run(net->ctx, s->prim, net->st, a->buf, o->buf)) return -1;
            break;
        }
    }
    const slot *o = &net->slots[net->output];
    memcpy(y, o->buf, slot_bytes(o, n));
    return 0;
}

void nb_int8_net_describe(const nb_int8_net *net, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < net->n_steps && used < len; i++) {
        const step *s = &net->steps[i];
        const slot *o = &net->slots[s->out];
        int k = snprintf(buf + used, len - used, "%s %s -> %s%s%s\n", s->layer, step_names[s->kind],
                         o->q ? (nb_i8_signed(o->g) ? "s8" : "u8") : "f32", s->prim ? " " : "",
                         s->prim ? nb_i8_prim_impl(s->prim) : "");
        used += k > 0 ? (size_t)k : 0;
    }
}

void nb_int8_net_free(nb_int8_net *net) {
    if (!net) return;
    release(net);
    for (int i = 0; i < net->n_steps; i++) {
        free((void *)net->steps[i].conv.codes);
        free((void *)net->steps[i].conv.wscale);
        free((void *)net->steps[i].conv.bias);
    }
    free(net->steps);
    free(net->slots);
    if (net->st) dnnl_stream_destroy(net->st);
    if (net->eng) dnnl_engine_destroy(net->eng);
    free(net);
}
