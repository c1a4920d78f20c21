/* An ONNX file as a nibble model (see onnx_import.h): the file read and checked, its values and steps built
 * (onnx_graph.h), the parameters registered under their initializers' names as the first pass meets them, new
 * layers where model.num_classes or model.in_channels ask for them, and the forward pass that runs the steps.
 * The first pass runs at import on a batch of two zero images: it folds the constant nodes, and every node
 * nibble cannot run, or whose shapes disagree, is reported then, naming the node. */
#include "import/onnx_import.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "import/onnx_graph.h"

#define TRACE_BATCH 2 /* not 1, so that the batch cannot pass for a singleton dimension */

typedef struct {
    ox_graph g;
    int classifier; /* the step whose output the graph's output is (through shape ops), or -1 */
    int first_conv; /* the convolution that reads the graph's input, or -1 */
    int64_t num_classes_was, in_channels_was;
} onnx_impl;

/* ---- values ---- */

static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

int ox_value_index(const ox_graph *g, const char *name) {
    if (!g->hash_cap) return -1;
    for (uint64_t h = name_hash(name) & (uint64_t)(g->hash_cap - 1);; h = (h + 1) & (uint64_t)(g->hash_cap - 1)) {
        int k = g->hash[h];
        if (!k) return -1;
        if (!strcmp(g->v[k - 1].name, name)) return k - 1;
    }
}

/* value k into the first free slot of its probe sequence */
static void hash_insert(ox_graph *g, int k) {
    uint64_t h = name_hash(g->v[k].name) & (uint64_t)(g->hash_cap - 1);
    while (g->hash[h]) h = (h + 1) & (uint64_t)(g->hash_cap - 1);
    g->hash[h] = k + 1;
}

static void rehash(ox_graph *g) {
    free(g->hash);
    g->hash_cap = 64;
    while (g->hash_cap < 2 * g->cap_values) g->hash_cap *= 2;
    g->hash = nb_xcalloc((size_t)g->hash_cap, sizeof *g->hash);
    for (int k = 0; k < g->n_values; k++) hash_insert(g, k);
}

static int add_value(ox_graph *g, const char *name, int producer) {
    if (g->n_values == g->cap_values) {
        g->cap_values = g->cap_values ? 2 * g->cap_values : 256;
        g->v = nb_xrealloc(g->v, sizeof *g->v * (size_t)g->cap_values);
    }
    ox_value *v = &g->v[g->n_values++];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->producer = producer;
    if (2 * g->n_values > g->hash_cap) rehash(g);
    else hash_insert(g, g->n_values - 1);
    return g->n_values - 1;
}

/* what defines value k, for a name collision's message */
static void definer(const ox_graph *g, int k, char *buf, size_t n) {
    const ox_value *v = &g->v[k];
    if (v->init) snprintf(buf, n, "an initializer");
    else if (v->producer >= 0) snprintf(buf, n, "node '%s' (%s)", g->steps[v->producer].node->name, g->steps[v->producer].node->op_type);
    else snprintf(buf, n, "the graph input");
}

static const char *node_name(const Onnx__NodeProto *n) { return n->name && n->name[0] ? n->name : "(unnamed)"; }

/* ---- reading the file ---- */

/* dimension k of a declared value of ndim dimensions, when the file fixes it; else 0 */
static int64_t fixed_dim(const Onnx__ValueInfoProto *v, int k, int ndim) {
    const Onnx__TypeProto__Tensor *t =
        v->type && v->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? v->type->tensor_type : NULL;
    if (!t || !t->shape || (int)t->shape->n_dim != ndim) return 0;
    const Onnx__TensorShapeProto__Dimension *d = t->shape->dim[k];
    return d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? d->dim_value : 0;
}

/* whether every input of s is known at import */
static bool inputs_const(const ox_graph *g, const ox_step *s) {
    for (int k = 0; k < s->n_in; k++)
        if (s->in[k] >= 0 && g->v[s->in[k]].kind != OXV_CONST) return false;
    return true;
}


static int read_graph(nb_ctx *ctx, ox_graph *g) {
    const Onnx__ModelProto *p = g->proto;
    const char *L = g->label;
    NB_REQUIRE(ctx, p->graph, -1, L, "the model has no graph");
    const Onnx__GraphProto *gp = p->graph;
    g->opset = -1;
    for (size_t k = 0; k < p->n_opset_import; k++) {
        const char *d = p->opset_import[k]->domain;
        if (!d || !d[0] || !strcmp(d, "ai.onnx")) g->opset = p->opset_import[k]->version;
    }
    NB_REQUIRE(ctx, g->opset >= 11 && g->opset <= 21, -1, L,
               "opset %lld of the default domain; nibble imports opsets 11 to 21 (torch.onnx.export(..., "
               "opset_version=13 to 17))", (long long)g->opset);
    for (size_t k = 0; k < gp->n_initializer; k++) {
        const Onnx__TensorProto *t = gp->initializer[k];
        NB_REQUIRE(ctx, t->name && t->name[0], -1, L, "initializer %zu has no name", k);
        int at = ox_value_index(g, t->name);
        NB_REQUIRE(ctx, at < 0, -1, L, "name collision: two initializers are named '%s'", t->name);
        int v = add_value(g, t->name, -1);
        g->v[v].init = t;
        if (ox_read_initializer(ctx, g, &g->v[v])) return -1;
    }
    g->input = -1;
    for (size_t k = 0; k < gp->n_input; k++) {
        const Onnx__ValueInfoProto *in = gp->input[k];
        int at = ox_value_index(g, in->name);
        if (at >= 0 && g->v[at].init) continue; /* IR 3 lists initializers as inputs too */
        NB_REQUIRE(ctx, at < 0, -1, L, "name collision: two graph inputs are named '%s'", in->name);
        NB_REQUIRE(ctx, g->input < 0, -1, L, "graph inputs '%s' and '%s': nibble's models read one image batch",
                   g->v[g->input].name, in->name);
        g->input = add_value(g, in->name, -1);
        g->v[g->input].kind = OXV_RUNTIME;
        const Onnx__TypeProto__Tensor *tt =
            in->type && in->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? in->type->tensor_type : NULL;
        NB_REQUIRE(ctx, tt && tt->elem_type == 1, -1, L, "graph input '%s' is not a float32 tensor", in->name);
        NB_REQUIRE(ctx, !tt->shape || tt->shape->n_dim == 4, -1, L, "graph input '%s' has %zu dimensions; nibble's "
                   "models read [N, C, H, W] images", in->name, tt->shape->n_dim);
        g->input_batch = fixed_dim(in, 0, 4);
        g->input_channels = fixed_dim(in, 1, 4);
    }
    NB_REQUIRE(ctx, g->input >= 0, -1, L, "the graph has no input besides its initializers");
    NB_REQUIRE(ctx, gp->n_output == 1, -1, L, "the graph has %zu outputs; nibble's models have one", gp->n_output);
    g->n_steps = (int)gp->n_node;
    g->steps = nb_xcalloc((size_t)(g->n_steps ? g->n_steps : 1), sizeof *g->steps);
    char sup[1024];
    for (int i = 0; i < g->n_steps; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        ox_step *s = &g->steps[i];
        s->node = n;
        s->relu_out = -1;
        const char *op = n->op_type ? n->op_type : "";
        const char *dom = n->domain ? n->domain : "";
        if (dom[0] && strcmp(dom, "ai.onnx")) {
            NB_FAIL(ctx, L, "node '%s' (%s, domain %s): nibble runs ops of the default ONNX domain only", node_name(n), op, dom);
            return -1;
        }
        NB_REQUIRE(ctx, n->n_input <= OX_MAX_IN && n->n_output <= OX_MAX_OUT, -1, L,
                   "node '%s' (%s, opset %lld): %zu inputs and %zu outputs (at most %d and %d)", node_name(n), op,
                   (long long)g->opset, n->n_input, n->n_output, OX_MAX_IN, OX_MAX_OUT);
        s->rule = ox_rule_for(op);
        if (!s->rule && !ox_foldable(op)) {
            ox_supported_list(sup, sizeof sup);
            NB_FAIL(ctx, L, "node '%s' (%s, opset %lld): nibble has no %s op (it imports %s; and folds constant "
                    "Shape, Gather, Unsqueeze, Squeeze, Concat, Cast, Slice, Reshape, Range and arithmetic chains)",
                    node_name(n), op, (long long)g->opset, op, sup);
            return -1;
        }
        s->n_in = (int)n->n_input;
        for (int k = 0; k < s->n_in; k++) {
            const char *nm = n->input[k];
            if (!nm || !nm[0]) {
                s->in[k] = -1;
                continue;
            }
            s->in[k] = ox_value_index(g, nm);
            NB_REQUIRE(ctx, s->in[k] >= 0, -1, L,
                       "node '%s' (%s, opset %lld) reads '%s', which no earlier node, initializer or input defines "
                       "(nodes must be in topological order)", node_name(n), op, (long long)g->opset, nm);
            g->v[s->in[k]].uses++;
        }
        s->n_out = (int)n->n_output;
        for (int k = 0; k < s->n_out; k++) {
            const char *nm = n->output[k];
            if (!nm || !nm[0]) {
                s->out[k] = -1;
                continue;
            }
            int at = ox_value_index(g, nm);
            if (at >= 0) {
                char by[256];
                definer(g, at, by, sizeof by);
                NB_FAIL(ctx, L, "name collision: node '%s' (%s) writes '%s', which %s already defines", node_name(n), op,
                        nm, by);
                return -1;
            }
            s->out[k] = add_value(g, nm, i);
        }
        /* every rule and fold writes the first output; only later ones may be left unnamed (Dropout's mask) */
        NB_REQUIRE(ctx, s->n_out >= 1 && s->out[0] >= 0, -1, L, "node '%s' (%s, opset %lld) has no (named) first output",
                   node_name(n), op, (long long)g->opset);
        bool all_const = (s->n_in > 0 || !strcmp(op, "Constant")) && inputs_const(g, s);
        if (all_const && ox_foldable(op)) {
            if (ox_fold(ctx, g, s)) return -1;
            s->folded = true;
            g->folded++;
            snprintf(s->note, sizeof s->note, "folded at import");
        } else if (all_const && s->rule) {
            NB_FAIL(ctx, L, "node '%s' (%s, opset %lld): every input is a constant; nibble does not evaluate %s at "
                    "import", node_name(n), op, (long long)g->opset, op);
            return -1;
        } else if (!all_const) {
            for (int k = 0; k < s->n_out; k++)
                if (s->out[k] >= 0) g->v[s->out[k]].kind = OXV_RUNTIME;
        }
        /* the layer name its ops record: its weight's name less ".weight", else the node's */
        const char *wname = s->n_in > 1 && s->in[1] >= 0 && s->rule && s->rule->roles[1] != OX_OPERAND
                                ? g->v[s->in[1]].name
                                : NULL;
        size_t wl = wname ? strlen(wname) : 0;
        if (wl > 7 && !strcmp(wname + wl - 7, ".weight")) snprintf(s->scope, sizeof s->scope, "%.*s", (int)(wl - 7), wname);
        else snprintf(s->scope, sizeof s->scope, "%s", n->name && n->name[0] ? n->name : op);
    }
    const char *oname = gp->output[0]->name;
    g->output = ox_value_index(g, oname ? oname : "");
    NB_REQUIRE(ctx, g->output >= 0, -1, L, "the graph's output '%s' is not computed by any node", oname ? oname : "");
    NB_REQUIRE(ctx, g->v[g->output].kind == OXV_RUNTIME, -1, L, "the graph's output '%s' does not depend on its input",
               oname);
    /* a zero Pad of the height and width, alike on both sides, that alone feeds a convolution: the convolution's
     * own padding (PyTorch exports F.pad before a convolution so) */
    for (int i = 0; i < g->n_steps; i++) {
        ox_step *p = &g->steps[i];
        if (strcmp(p->node->op_type, "Pad") || p->n_in < 2 || p->in[0] < 0 || p->in[1] < 0 || p->out[0] < 0) continue;
        const ox_value *pads = &g->v[p->in[1]], *y = &g->v[p->out[0]];
        const Onnx__AttributeProto *mode = ox_get_attr(p->node, "mode");
        bool zero = !ox_has_in(p, 2) || (g->v[p->in[2]].kind == OXV_CONST && g->v[p->in[2]].n == 1 &&
                                          (g->v[p->in[2]].is_int ? g->v[p->in[2]].i[0] == 0 : g->v[p->in[2]].f[0] == 0.0f));
        bool constant = !mode || !mode->s.len || (mode->s.len == 8 && !memcmp(mode->s.data, "constant", 8));
        if (pads->kind != OXV_CONST || !pads->is_int || pads->n != 8 || !zero || !constant || y->uses != 1) continue;
        const int64_t *q = pads->i;
        if (q[0] || q[1] || q[4] || q[5] || q[2] != q[6] || q[3] != q[7] || q[2] < 0 || q[3] < 0) continue;
        ox_step *c = NULL;
        for (int j = i + 1; j < g->n_steps && !c; j++)
            if (g->steps[j].n_in > 0 && g->steps[j].in[0] == p->out[0]) c = &g->steps[j];
        if (!c || strcmp(c->node->op_type, "Conv")) continue;
        c->in[0] = p->in[0];
        c->extra_pad[0] = (int)q[2];
        c->extra_pad[1] = (int)q[3];
        p->absorbed = true;
        snprintf(p->note, sizeof p->note, "the padding of node '%s'", node_name(c->node));
    }
    /* a Relu that alone reads a batch norm or an Add of two computed tensors runs inside it, as nibble's own
     * models run them (BN + ReLU, and a residual join, in one pass each) */
    for (int i = 0; i < g->n_steps; i++) {
        ox_step *s = &g->steps[i];
        if (strcmp(s->node->op_type, "Relu") || s->n_in < 1 || s->in[0] < 0 || s->n_out < 1) continue;
        int x = s->in[0];
        ox_step *p = g->v[x].producer >= 0 ? &g->steps[g->v[x].producer] : NULL;
        bool join = p && !strcmp(p->node->op_type, "Add") && p->n_in == 2 && p->in[0] >= 0 && p->in[1] >= 0 &&
                    g->v[p->in[0]].kind == OXV_RUNTIME && g->v[p->in[1]].kind == OXV_RUNTIME;
        bool bn = p && !strcmp(p->node->op_type, "BatchNormalization");
        if ((!join && !bn) || g->v[x].uses != 1 || p->out[0] != x || x == g->output) continue;
        p->relu_out = s->out[0];
        s->absorbed = true;
        snprintf(s->note, sizeof s->note, "fused into node '%s'", node_name(p->node));
    }
    /* x * Sigmoid(x), PyTorch's export of SiLU: one op, the Sigmoid no step of its own */
    for (int i = 0; i < g->n_steps; i++) {
        ox_step *s = &g->steps[i];
        if (strcmp(s->node->op_type, "Mul") || s->n_in != 2 || s->in[0] < 0 || s->in[1] < 0) continue;
        for (int k = 0; k < 2; k++) {
            int x = s->in[k], sg = s->in[1 - k];
            ox_step *p = g->v[sg].producer >= 0 ? &g->steps[g->v[sg].producer] : NULL;
            if (!p || strcmp(p->node->op_type, "Sigmoid") || p->in[0] != x || g->v[sg].uses != 1 ||
                g->v[x].kind != OXV_RUNTIME || sg == g->output)
                continue;
            p->absorbed = true;
            snprintf(p->note, sizeof p->note, "part of the SiLU of node '%s'", node_name(s->node));
            s->rule = ox_silu_rule();
            s->silu_in = k;
            break;
        }
    }
    return 0;
}

/* ---- the layers import makes anew ---- */

static const ox_step *producer_step(const ox_graph *g, int v) {
    return v >= 0 && g->v[v].producer >= 0 ? &g->steps[g->v[v].producer] : NULL;
}

/* the Gemm, MatMul or convolution whose result the graph's output is, through ops that keep the classes */
static int find_classifier(const ox_graph *g) {
    static const char *const through[] = {"Identity", "Flatten", "Reshape", "Softmax", "LogSoftmax", "Dropout", "Relu",
                                          "GlobalAveragePool", "ReduceMean", "AveragePool", NULL};
    int v = g->output;
    for (int hops = 0; hops < 16; hops++) {
        const ox_step *s = producer_step(g, v);
        if (!s || s->folded) return -1;
        const char *op = s->node->op_type;
        if (!strcmp(op, "Gemm") || !strcmp(op, "MatMul") || !strcmp(op, "Conv")) return (int)(s - g->steps);
        bool pass = false;
        for (int k = 0; through[k]; k++) pass = pass || !strcmp(op, through[k]);
        if (!pass) return -1;
        v = s->in[0];
    }
    return -1;
}

static int find_first_conv(const ox_graph *g) {
    int found = -1;
    for (int i = 0; i < g->n_steps; i++)
        for (int k = 0; k < g->steps[i].n_in; k++)
            if (g->steps[i].in[k] == g->input) {
                if (found >= 0 || k != 0 || strcmp(g->steps[i].node->op_type, "Conv")) return -2; /* read elsewhere */
                found = i;
            }
    return found;
}

/* how many outputs a classifier step has (its weight's) */
static int64_t outputs_of(const ox_graph *g, const ox_step *s) {
    const ox_value *w = &g->v[s->in[1]];
    if (!strcmp(s->node->op_type, "MatMul") || (!strcmp(s->node->op_type, "Gemm") && !ox_get_int(s->node, "transB", 0)))
        return w->ndim == 2 ? w->dims[1] : -1;
    return w->ndim >= 1 ? w->dims[0] : -1;
}

/* ---- binding initializers to parameters ---- */

/* The parameter name of initializer `name`: its own, but for a weight nibble's export wrote in another channel
 * order under its parameter's name plus ".permuted_<k>" (deploy/onnx_emit.c, ShuffleNet's interleaved channels),
 * which takes that name back where nothing else has it */
static void param_name(const ox_graph *g, const nb_params *ps, const char *name, char out[NB_NAME_MAX]) {
    snprintf(out, NB_NAME_MAX, "%s", name);
    const char *p = strstr(name, ".permuted_");
    if (!p || !p[10]) return;
    for (const char *q = p + 10; *q; q++)
        if (*q < '0' || *q > '9') return;
    char base[NB_NAME_MAX];
    snprintf(base, sizeof base, "%.*s", (int)(p - name), name);
    if (ox_value_index(g, base) < 0 && !nb_params_find(ps, base)) snprintf(out, NB_NAME_MAX, "%s", base);
}

/* Make value v, read by step s as input k in role `role`, the model's parameter or buffer: its values (or new
 * ones, for a replaced layer) on the backend under its name. */
static int bind(nb_model *m, ox_step *s, int k, int role_) {
    ox_role role = (ox_role)role_;
    onnx_impl *im = m->impl;
    ox_graph *g = &im->g;
    nb_ctx *ctx = m->ctx;
    ox_value *v = &g->v[s->in[k]];
    bool transposed = role == OX_PARAM_T || role == OX_PARAM_CONVT, deconv = role == OX_PARAM_CONVT;
    if (v->tensor) {
        NB_REQUIRE(ctx, v->trained && v->transposed == transposed, -1, "onnx",
                   "initializer '%s' is read as a weight in two layouts, or as a weight and as a constant", v->name);
        return 0;
    }
    NB_REQUIRE(ctx, !v->is_int, -1, "onnx", "initializer '%s' holds integers where a float weight is expected", v->name);
    NB_REQUIRE(ctx, !transposed || v->ndim == (deconv ? 4 : 2), -1, "onnx", "initializer '%s' is %s, not a %s",
               v->name, ox_dims_fmt((char[128]){0}, 128, v), deconv ? "4-d weight" : "matrix");
    int64_t groups = deconv ? ox_get_int(s->node, "group", 1) : 1;
    NB_REQUIRE(ctx, groups >= 1 && v->dims[0] % groups == 0, -1, "onnx", "initializer '%s' is %s, for %lld groups",
               v->name, ox_dims_fmt((char[128]){0}, 128, v), (long long)groups);
    NB_REQUIRE(ctx, !nb_params_find(&m->params, v->name), -1, "onnx",
               "name collision: initializer '%s' has the name of a tensor import made", v->name);
    int si = (int)(s - g->steps);
    bool conv = !strcmp(s->node->op_type, "Conv");
    /* a replaced layer: the classifier with model.num_classes outputs, the first convolution with
     * model.in_channels inputs, in the initializer's own layout (its shape as the rules then check it) */
    bool replace_out = si == im->classifier && im->num_classes_was != m->spec.num_classes && k >= 1;
    bool replace_in = si == im->first_conv && k == 1 && im->in_channels_was != m->spec.in_channels;
    if (replace_out) {
        if (k == 2) v->dims[v->ndim - 1] = m->spec.num_classes;
        else if (transposed) v->dims[1] = m->spec.num_classes;
        else v->dims[0] = m->spec.num_classes;
    }
    if (replace_in) v->dims[1] = m->spec.in_channels;
    if (replace_out || replace_in) {
        v->n = 1;
        for (int d = 0; d < v->ndim; d++) v->n *= v->dims[d];
    }
    /* as the model holds it: [out, in] for a linear weight, a vector for a bias given as [1, out] */
    int64_t dims[NB_MAX_DIMS];
    int ndim = v->ndim;
    memcpy(dims, v->dims, sizeof dims);
    if (transposed) {
        dims[0] = deconv ? v->dims[1] * groups : v->dims[1];
        dims[1] = deconv ? v->dims[0] / groups : v->dims[0];
    }
    if (k == 2 && ndim == 2 && dims[0] == 1) {
        ndim = 1;
        dims[0] = dims[1];
    }
    nb_param_kind kind = role == OX_BUFFER ? NB_BUFFER : NB_PARAM;
    char pname[NB_NAME_MAX];
    param_name(g, &m->params, v->name, pname);
    nb_tensor *t = nb_params_add(&m->params, "", pname, kind, NB_F32, ndim, dims);
    if (!t) return -1;
    int rc = 0;
    if (replace_out || replace_in) {
        /* new values drawn as nibble draws its own layers': Kaiming (fan out) for convolutions, zero biases;
         * PyTorch's Linear default U(-1/sqrt(in), 1/sqrt(in)) for linear layers */
        s->replaced = true;
        if (conv && k == 1) {
            rc = nb_init_kaiming_normal_fan_out(&m->params, t);
        } else if (!conv) {
            const nb_tensor *w = k == 2 ? g->v[s->in[1]].tensor : t;
            NB_ASSERT(w && w->ndim == 2);
            rc = nb_init_uniform(&m->params, t, 1.0f / sqrtf((float)w->shape[1]));
        }
    } else if (deconv) {
        /* y = ConvTranspose(x, W) is the convolution of x spread out by the stride with W flipped in space and its
         * two channel axes swapped (per group) */
        float *tr = nb_xmalloc(sizeof(float) * (size_t)v->n);
        ox_convt_layout(v->dims, groups, v->f, tr, true);
        rc = nb_tensor_copy_from_host(t, tr, sizeof(float) * (size_t)v->n);
        free(tr);
    } else if (transposed) {
        float *tr = nb_xmalloc(sizeof(float) * (size_t)v->n);
        for (int64_t i = 0; i < v->dims[0]; i++)
            for (int64_t j = 0; j < v->dims[1]; j++) tr[j * v->dims[0] + i] = v->f[i * v->dims[1] + j];
        rc = nb_tensor_copy_from_host(t, tr, sizeof(float) * (size_t)v->n);
        free(tr);
    } else {
        rc = nb_tensor_copy_from_host(t, v->f, sizeof(float) * (size_t)v->n);
    }
    v->tensor = t;
    v->trained = true;
    v->transposed = transposed;
    /* the host copy is no longer read (shapes stay): a large model is not held twice */
    free(v->f);
    v->f = NULL;
    if (rc) return -1;
    /* torchvision's batch norms count the batches they saw; their state_dict has it, so the model does too */
    if (!strcmp(s->node->op_type, "BatchNormalization") && k == 1 && !s->nbt) {
        size_t l = strlen(v->name);
        if (l > 7 && !strcmp(v->name + l - 7, ".weight")) {
            char nm[NB_NAME_MAX];
            snprintf(nm, sizeof nm, "%.*s.num_batches_tracked", (int)(l - 7), v->name);
            NB_REQUIRE(ctx, ox_value_index(g, nm) < 0, -1, "onnx",
                       "name collision: '%s' names a value of the graph and the batch-norm counter import adds", nm);
            s->nbt = nb_params_find(&m->params, nm);
            if (!s->nbt) s->nbt = nb_params_add(&m->params, "", nm, NB_BUFFER, NB_I64, 0, NULL);
            if (!s->nbt) return -1;
        }
    }
    return 0;
}

/* ---- the forward pass ---- */

static void capture(void *user, const char *message) {
    (void)message;
    *(int *)user = 1;
}

static nb_tensor *onnx_forward(nb_model *m, nb_tensor *x, bool training) {
    onnx_impl *im = m->impl;
    ox_graph *g = &im->g;
    nb_ctx *ctx = m->ctx;
    if (!x) return NULL;
    NB_REQUIRE(ctx, x->ndim == 4 && x->shape[1] == m->spec.in_channels, NULL, g->label,
               "the model reads [N, %d, H, W] images, given %s", m->spec.in_channels, NB_SHAPE(x));
    ox_run r = {.m = m, .g = g, .t = nb_xcalloc((size_t)g->n_values, sizeof(nb_tensor *)), .training = training};
    r.t[g->input] = x;
    /* errors of the ops are caught to say which node raised them */
    nb_error_fn prev_fn = ctx->on_error;
    void *prev_user = ctx->on_error_user;
    int failed = 0;
    ctx->on_error = capture;
    ctx->on_error_user = &failed;
    int bad = -1;
    for (int i = 0; i < g->n_steps && bad < 0; i++) {
        ox_step *s = &g->steps[i];
        if (s->folded || s->absorbed) continue;
        int rc;
        const char *op = s->node->op_type;
        bool shape_of_computed = !strcmp(op, "Shape") && ox_has_in(s, 0) && g->v[s->in[0]].kind == OXV_RUNTIME;
        if (g->tracing && ox_foldable(op) && (shape_of_computed || inputs_const(g, s))) {
            /* the first pass folds what the shapes it meets make constant: a Shape of a computed tensor, then the
             * nodes that read constants only */
            nb_tensor *in = shape_of_computed ? ox_in(&r, s, 0) : NULL;
            rc = !shape_of_computed ? ox_fold(ctx, g, s) : in ? ox_fold_shape(g, s, in) : -1;
            if (!rc) {
                s->folded = true;
                g->folded++;
                snprintf(s->note, sizeof s->note, "folded at import%s",
                         shape_of_computed ? " (the batch element follows each pass)" : "");
            }
        } else if (!s->rule) {
            NB_FAIL(ctx, "onnx", "%s of a tensor computed from the image: nibble evaluates it on constants only",
                    s->node->op_type);
            rc = -1;
        } else {
            /* a layer's ops record its name; an op of its own (a pooling, a join) the node's; an activation
             * stays with the layer before it, as in nibble's own models */
            if (!s->rule->keeps_scope) nb_set_scope_name(ctx, s->scope);
            rc = s->rule->run(&r, s);
        }
        if (rc || failed) {
            if (bad < 0) bad = i;
        } else if (g->tracing && s->out[0] >= 0 && r.t[s->out[0]]) {
            snprintf(s->note, sizeof s->note, "%s -> %s", s->rule->summary, NB_SHAPE(r.t[s->out[0]]));
        }
    }
    ctx->on_error = prev_fn;
    ctx->on_error_user = prev_user;
    nb_tensor *y = bad < 0 ? r.t[g->output] : NULL;
    free(r.t);
    if (bad >= 0) {
        char msg[sizeof ctx->last_error];
        snprintf(msg, sizeof msg, "%s", failed ? ctx->last_error : "failed");
        const Onnx__NodeProto *n = g->steps[bad].node;
        size_t ll = strlen(g->label);
        if (!strncmp(msg, g->label, ll) && msg[ll] == ':') { /* a fold's error names the node already */
            NB_FAIL(ctx, g->label, "%s", msg + ll + 2);
            return NULL;
        }
        const char *what = strncmp(msg, "onnx: ", 6) ? msg : msg + 6; /* a rule's: the node is named here */
        NB_FAIL(ctx, g->label, "node '%s' (%s, opset %lld): %s", node_name(n), n->op_type, (long long)g->opset, what);
        return NULL;
    }
    NB_REQUIRE(ctx, y, NULL, g->label, "the graph's output was not computed");
    return y;
}

static void graph_free(ox_graph *g) {
    for (int k = 0; k < g->n_values; k++) ox_value_clear(&g->v[k]);
    for (int i = 0; i < g->n_steps; i++) {
        nb_release(g->steps[i].select);
        nb_release(g->steps[i].operand);
    }
    free(g->v);
    free(g->hash);
    free(g->steps);
    if (g->proto) onnx__model_proto__free_unpacked(g->proto, NULL);
}

static void onnx_destroy(nb_model *m) { graph_free(&((onnx_impl *)m->impl)->g); }

int nb_onnx_is_imported(const nb_model *m) { return m && m->destroy == onnx_destroy; }

/* ---- import ---- */

nb_model *nb_onnx_import_bytes(nb_ctx *ctx, const nb_model_spec *spec, const uint8_t *bytes, size_t len,
                               const char *label) {
    NB_REQUIRE(ctx, spec->num_classes > 0 && spec->in_channels > 0 && spec->input_size > 0, NULL, label,
               "num_classes %d, in_channels %d and input_size %d must be positive", spec->num_classes,
               spec->in_channels, spec->input_size);
    Onnx__ModelProto *p = nb_onnx_unpack(bytes, len);
    NB_REQUIRE(ctx, p, NULL, label, "not an ONNX model: its %zu bytes do not parse as one (truncated, or another "
               "format)", len);
    nb_model_spec sp = *spec;
    sp.arch = "onnx";
    nb_model *m = nb_model_alloc(ctx, &sp, sizeof(onnx_impl), onnx_forward, onnx_destroy);
    onnx_impl *im = m->impl;
    ox_graph *g = &im->g;
    g->proto = p;
    g->bind = bind;
    snprintf(g->label, sizeof g->label, "%s", label);
    if (read_graph(ctx, g)) {
        nb_model_free(m);
        return NULL;
    }
    im->classifier = find_classifier(g);
    im->first_conv = find_first_conv(g);
    im->num_classes_was = im->classifier >= 0 ? outputs_of(g, &g->steps[im->classifier]) : spec->num_classes;
    im->in_channels_was = g->input_channels > 0 ? g->input_channels : spec->in_channels;
    if (im->first_conv >= 0 && g->input_channels <= 0) { /* undeclared: the first convolution's */
        const ox_step *s = &g->steps[im->first_conv];
        const ox_value *w = s->in[1] >= 0 ? &g->v[s->in[1]] : NULL;
        if (w && w->ndim == 4 && ox_get_int(s->node, "group", 1) == 1) im->in_channels_was = w->dims[1];
    }
    if (im->in_channels_was != spec->in_channels && (im->first_conv < 0 || ox_get_int(g->steps[im->first_conv].node, "group", 1) != 1)) {
        NB_FAIL(ctx, label, "model.in_channels = %d, but the graph reads %lld channels and its input does not go to "
                "one ungrouped convolution that could be made anew", spec->in_channels, (long long)im->in_channels_was);
        nb_model_free(m);
        return NULL;
    }
    /* the first pass: binds the parameters, folds what depends on shapes only, checks every step */
    g->tracing = true;
    size_t mark = nb_scope_begin(ctx);
    bool prev = nb_set_grad_enabled(ctx, false);
    nb_tensor *x = nb_tensor_new(ctx, NB_F32, 4, (int64_t[]){TRACE_BATCH, spec->in_channels, spec->input_size, spec->input_size});
    nb_tensor *y = x ? onnx_forward(m, x, false) : NULL;
    int64_t classes = y && y->ndim == 2 ? y->shape[1] : -1;
    nb_set_grad_enabled(ctx, prev);
    nb_scope_end(ctx, mark);
    nb_release(x);
    g->tracing = false;
    if (!y) {
        nb_model_free(m);
        return NULL;
    }
    if (classes >= 0 && classes != spec->num_classes) {
        NB_FAIL(ctx, label, "model.num_classes = %d, but the graph gives %lld classes and has no final Gemm, MatMul or "
                "convolution to make anew", spec->num_classes, (long long)classes);
        nb_model_free(m);
        return NULL;
    }
    return m;
}

/* the file's bytes, malloc'd; NULL after reporting */
static uint8_t *read_file(nb_ctx *ctx, const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    NB_REQUIRE(ctx, f, NULL, path, "cannot open the ONNX model: %s", strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 1 << 20;
            buf = nb_xrealloc(buf, cap);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        NB_FAIL(ctx, path, "cannot read the ONNX model");
        return NULL;
    }
    *n = len;
    return buf;
}

nb_model *nb_onnx_import(nb_ctx *ctx, const nb_model_spec *spec, const char *path) {
    NB_REQUIRE(ctx, path && path[0], NULL, "model", "model.arch = onnx needs model.onnx, the file to import");
    size_t len;
    uint8_t *buf = read_file(ctx, path, &len);
    if (!buf) return NULL;
    nb_model *m = nb_onnx_import_bytes(ctx, spec, buf, len, path);
    free(buf);
    return m;
}

int nb_onnx_probe(nb_ctx *ctx, const char *path, nb_model_spec *spec) {
    size_t len;
    uint8_t *buf = read_file(ctx, path, &len);
    if (!buf) return -1;
    Onnx__ModelProto *p = nb_onnx_unpack(buf, len);
    free(buf);
    NB_REQUIRE(ctx, p, -1, path, "not an ONNX model: its %zu bytes do not parse as one", len);
    const Onnx__GraphProto *g = p->graph;
    for (size_t k = 0; k < g->n_input; k++) {
        bool init = false;
        for (size_t j = 0; j < g->n_initializer && !init; j++) init = !strcmp(g->initializer[j]->name, g->input[k]->name);
        if (init) continue;
        int64_t c = fixed_dim(g->input[k], 1, 4), h = fixed_dim(g->input[k], 2, 4);
        if (c > 0) spec->in_channels = (int)c;
        if (h > 0) spec->input_size = (int)h;
        break;
    }
    int64_t classes = g->n_output == 1 ? fixed_dim(g->output[0], 1, 2) : 0;
    if (classes > 0) spec->num_classes = (int)classes;
    onnx__model_proto__free_unpacked(p, NULL);
    return 0;
}

int nb_onnx_file_layout(const nb_model *m, const nb_tensor *t, float *dst) {
    if (!nb_onnx_is_imported(m) || t->dtype != NB_F32) return -1;
    const ox_graph *g = &((const onnx_impl *)m->impl)->g;
    const ox_value *v = NULL;
    const ox_step *s = NULL;
    for (int k = 0; k < g->n_values && !v; k++)
        if (g->v[k].tensor == t) v = &g->v[k];
    for (int i = 0; i < g->n_steps && v && !s; i++)
        for (int k = 0; k < g->steps[i].n_in; k++)
            if (g->steps[i].in[k] >= 0 && &g->v[g->steps[i].in[k]] == v) s = &g->steps[i];
    int64_t n = nb_numel(t);
    float *held = nb_xmalloc(sizeof(float) * (size_t)(n ? n : 1));
    if (nb_tensor_to_host(t, held, sizeof(float) * (size_t)n)) {
        free(held);
        return -1;
    }
    if (!v || !v->transposed) {
        memcpy(dst, held, sizeof(float) * (size_t)n);
    } else if (v->ndim == 2) { /* held [out, in], the file's [in, out] */
        for (int64_t i = 0; i < v->dims[0]; i++)
            for (int64_t j = 0; j < v->dims[1]; j++) dst[i * v->dims[1] + j] = held[j * v->dims[0] + i];
    } else { /* a ConvTranspose weight: the inverse of bind's flip and swap */
        ox_convt_layout(v->dims, s ? ox_get_int(s->node, "group", 1) : 1, held, dst, false);
    }
    free(held);
    return 0;
}

/* ---- the listing ---- */

int nb_onnx_describe(const nb_model *m, FILE *out) {
    if (!nb_onnx_is_imported(m)) return -1;
    const onnx_impl *im = m->impl;
    const ox_graph *g = &im->g;
    fprintf(out, "%s: opset %lld, %d nodes, input '%s', output '%s'\n", g->label, (long long)g->opset, g->n_steps,
            g->v[g->input].name, g->v[g->output].name);
    int run = 0;
    for (int i = 0; i < g->n_steps; i++) {
        const ox_step *s = &g->steps[i];
        run += !s->folded && !s->absorbed;
        fprintf(out, "  %4d %-28.28s %-18.18s %s%s\n", i, node_name(s->node), s->node->op_type,
                s->note[0] ? s->note : "(not reached)", s->replaced ? "  [made anew]" : "");
        for (int k = 0; k < s->n_in; k++) {
            if (s->in[k] < 0) continue;
            const ox_value *v = &g->v[s->in[k]];
            if (!v->trained || !v->tensor) continue;
            fprintf(out, "         %s %s%s\n", v->name, NB_SHAPE(v->tensor), v->transposed ? " (held in nibble's layout)" : "");
        }
    }
    int64_t params = 0;
    for (int k = 0; k < m->params.n; k++)
        if (m->params.items[k].kind == NB_PARAM) params += nb_numel(m->params.items[k].t);
    fprintf(out, "%d nodes: %d run as nibble ops, %d folded at import; %d tensors (%lld trained values)\n", g->n_steps,
            run, g->folded, m->params.n, (long long)params);
    if (im->classifier >= 0 && g->steps[im->classifier].replaced)
        fprintf(out, "classifier '%s' made anew: %lld -> %d classes\n", g->steps[im->classifier].scope,
                (long long)im->num_classes_was, m->spec.num_classes);
    if (im->first_conv >= 0 && g->steps[im->first_conv].replaced)
        fprintf(out, "first convolution '%s' made anew: %lld -> %d input channels\n", g->steps[im->first_conv].scope,
                (long long)im->in_channels_was, m->spec.in_channels);
    return 0;
}
