/* MNN's compression-parameter file (see mnn_params.h). MNN's converter (tools/converter, FullQuantAndCoding)
 * matches a layer by the output tensor name of its Convolution op, after it fused a following ReLU or ReLU6
 * into it, so a layer is written under each name its output may carry. MNN's activations are int8: nibble's
 * uint8 grids move down by 128 (zero point and range alike), which is the same set of values. */
#include "deploy/mnn_params.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"

typedef struct {
    float s;
    int z, qmin, qmax; /* on MNN's int8 */
} grid;

typedef struct {
    char *s;
    size_t len, cap;
} text;

static void appendf(text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)k + 1 > t->cap) {
        t->cap = 2 * (t->len + (size_t)k + 1);
        t->s = nb_xrealloc(t->s, t->cap);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, (size_t)k + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)k;
}

static const nb_dnode *producer(const nb_deploy_graph *g, const nb_tensor *v) {
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].out == v) return &g->nodes[i];
    return NULL;
}

/* the grid of a fake quantization node (per tensor only: MNN's activation grids are) */
static bool fake_quant_grid(const nb_deploy_graph *g, const nb_dnode *d, grid *q) {
    const nb_fake_quant_attr *a = &d->node->attr.fake_quant;
    if (a->axis >= 0 || d->in[1].konst < 0 || d->in[2].konst < 0) return false;
    int shift = a->qmin >= 0 ? 128 : 0; /* uint8 -> int8 */
    float z = fminf(fmaxf(nearbyintf(g->consts[d->in[2].konst].values[0]), (float)a->qmin), (float)a->qmax);
    *q = (grid){.s = g->consts[d->in[1].konst].values[0], .z = (int)z - shift, .qmin = a->qmin - shift,
                .qmax = a->qmax - shift};
    return true;
}

/* the grid value v lies on: its fake quantization's, through ops that keep their input's grid */
static bool grid_of(const nb_deploy_graph *g, const nb_tensor *v, grid *q) {
    const nb_dnode *p = producer(g, v);
    if (!p) return false;
    if (p->node->op == NB_OP_FAKE_QUANT) return fake_quant_grid(g, p, q);
    nb_op_quant role = nb_op_quant_of(p->node->op);
    if ((role == NB_QUANT_KEEP || role == NB_QUANT_SHARED) && p->n_in && p->in[0].value) return grid_of(g, p->in[0].value, q);
    return false;
}

/* how many nodes read v; *only: the first of them */
static int readers(const nb_deploy_graph *g, const nb_tensor *v, const nb_dnode **only) {
    int first = -1, n = nb_deploy_readers(g, v, &first, 1);
    if (n) *only = &g->nodes[first];
    return n;
}

static void activation(text *t, const char *name, const grid *q) {
    int range = q->qmax - q->qmin + 1, bits = 1;
    while ((1 << bits) < range) bits++;
    appendf(t, "{\"name\": \"%s\", \"bits\": %d, \"scales\": [%.9g], \"zero_point\": %d, \"clamp_min\": %d, "
               "\"clamp_max\": %d}",
            name, bits, (double)q->s, q->z, q->qmin, q->qmax);
}

/* one layer entry: d's weight codes, input grid xq, output (named out) on grid yq */
static void layer(text *t, const nb_deploy_graph *g, const nb_dnode *d, const char *in_name, const grid *xq,
                  const char *out_name, const grid *yq, int *count) {
    const nb_dconst *w = &g->consts[d->in[1].konst];
    int qmin = w->qmin || w->qmax ? w->qmin : -128, qmax = w->qmin || w->qmax ? w->qmax : 127, bits = 1;
    while ((1 << bits) < qmax - qmin + 1) bits++;
    appendf(t, "%s\n    {\"input\": [", *count ? "," : "");
    activation(t, in_name, xq);
    appendf(t, "], \"weight\": [{\"name\": \"%s\", \"bits\": %d, \"scales\": [",
            w->source ? w->source->name : d->node->scope, bits);
    for (int64_t o = 0; o < w->dims[0]; o++)
        appendf(t, "%s%.9g", o ? ", " : "", (double)w->scale[w->per_channel ? o : 0]);
    appendf(t, "], \"clamp_min\": %d, \"clamp_max\": %d}], \"output\": [", qmin, qmax);
    activation(t, out_name, yq);
    appendf(t, "], \"method\": 0}");
    (*count)++;
}

char *nb_mnn_params(const nb_deploy_graph *g, nb_value_name_fn name_of, void *ctx, int *layers) {
    text t = {0};
    appendf(&t, "{\"version\": \"0.0.0\", \"algo\": [{\"type\": 0, \"quant_params\": {\"round_mode\": 2, \"layer\": [");
    int count = 0;
    *layers = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const nb_dnode *d = &g->nodes[i];
        if (nb_op_quant_of(d->node->op) != NB_QUANT_WEIGHTED || d->in[1].konst < 0) continue;
        if (!g->consts[d->in[1].konst].codes || !d->in[0].value) continue;
        grid xq, yq;
        const char *in_name = name_of(ctx, d->in[0].value);
        if (!in_name || !grid_of(g, d->in[0].value, &xq)) continue; /* a float input: MNN keeps the layer float */
        /* the output, through the ReLU or ReLU6 that MNN fuses into the convolution, to its quantizer */
        const nb_tensor *chain[4] = {d->out};
        int n_chain = 1;
        const nb_dnode *next = NULL;
        while (n_chain < 4 && readers(g, chain[n_chain - 1], &next) == 1 &&
               (next->node->op == NB_OP_RELU || next->node->op == NB_OP_RELU6))
            chain[n_chain++] = next->out;
        bool on_grid = false;
        for (int k = 0; k < g->n_nodes && !on_grid; k++)
            if (g->nodes[k].node->op == NB_OP_FAKE_QUANT && g->nodes[k].in[0].value == chain[n_chain - 1])
                on_grid = fake_quant_grid(g, &g->nodes[k], &yq);
        if (!on_grid) continue; /* a float output (the logits): MNN keeps the layer float */
        int before = count;
        for (int c = 0; c < n_chain; c++) {
            const char *out_name = name_of(ctx, chain[c]);
            if (out_name) layer(&t, g, d, in_name, &xq, out_name, &yq, &count);
        }
        if (count > before) (*layers)++;
    }
    appendf(&t, "\n  ]}}]}\n");
    if (*layers) return t.s;
    free(t.s);
    return NULL;
}
