/* What the ONNX importer's parts read (see onnx_graph.h): a node's attributes, the inputs and outputs of a step
 * as a pass sees them, the role of a step's constant inputs, and the host constants' small helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "import/onnx_graph.h"

/* ---- attributes ---- */

const Onnx__AttributeProto *ox_get_attr(const Onnx__NodeProto *n, const char *name) {
    for (size_t k = 0; k < n->n_attribute; k++)
        if (n->attribute[k]->name && !strcmp(n->attribute[k]->name, name)) return n->attribute[k];
    return NULL;
}

int64_t ox_get_int(const Onnx__NodeProto *n, const char *name, int64_t dflt) {
    const Onnx__AttributeProto *a = ox_get_attr(n, name);
    return a ? a->i : dflt;
}

float ox_get_float(const Onnx__NodeProto *n, const char *name, float dflt) {
    const Onnx__AttributeProto *a = ox_get_attr(n, name);
    return a ? a->f : dflt;
}

const int64_t *ox_get_ints(const Onnx__NodeProto *n, const char *name, int *count) {
    const Onnx__AttributeProto *a = ox_get_attr(n, name);
    *count = a ? (int)a->n_ints : 0;
    return a && a->n_ints ? a->ints : NULL;
}

void ox_value_clear(ox_value *v) {
    free(v->f);
    free(v->i);
    free(v->batch);
    v->f = NULL;
    v->i = NULL;
    v->batch = NULL;
}

const char *ox_dims_fmt(char *buf, size_t n, const ox_value *v) {
    size_t at = 0;
    at += (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < v->ndim && at < n; k++) at += (size_t)snprintf(buf + at, n - at, "%s%lld", k ? "," : "", (long long)v->dims[k]);
    if (at < n) snprintf(buf + at, n - at, "]");
    return buf;
}

ox_role ox_role_of(const ox_step *s, int k) {
    if (!s->rule || k >= 5) return OX_OPERAND;
    ox_role r = s->rule->roles[k];
    if (r == OX_PARAM && k == 1 && !strcmp(s->node->op_type, "Gemm") && !ox_get_int(s->node, "transB", 0))
        r = OX_PARAM_T;
    return r;
}

void ox_convt_layout(const int64_t *dims, int64_t groups, const float *from, float *to, bool to_held) {
    int64_t cin_g = dims[0] / groups, cout_g = dims[1], kh = dims[2], kw = dims[3];
    for (int64_t gi = 0; gi < groups; gi++)
        for (int64_t o = 0; o < cout_g; o++)
            for (int64_t i = 0; i < cin_g; i++)
                for (int64_t a = 0; a < kh; a++)
                    for (int64_t b = 0; b < kw; b++) {
                        int64_t held = (((gi * cout_g + o) * cin_g + i) * kh + a) * kw + b;
                        int64_t file = (((gi * cin_g + i) * cout_g + o) * kh + (kh - 1 - a)) * kw + (kw - 1 - b);
                        if (to_held) to[held] = from[file];
                        else to[file] = from[held];
                    }
}

/* ---- what rules call ---- */

bool ox_has_in(const ox_step *s, int k) { return k < s->n_in && s->in[k] >= 0; }

/* the value of the step's input k, which must be of that kind; NULL after reporting */
static ox_value *input_of_kind(ox_run *r, const ox_step *s, int k, ox_kind kind) {
    nb_ctx *ctx = r->m->ctx;
    NB_REQUIRE(ctx, ox_has_in(s, k), NULL, "onnx", "input %d is missing", k);
    ox_value *v = &r->g->v[s->in[k]];
    NB_REQUIRE(ctx, v->kind == kind, NULL, "onnx", "input %d ('%s') %s", k, v->name,
               kind == OXV_CONST ? "is computed from the image; nibble needs a constant there (an initializer)"
                                 : "is a constant where nibble's op takes a computed tensor");
    return v;
}

nb_tensor *ox_in(ox_run *r, const ox_step *s, int k) {
    ox_value *v = input_of_kind(r, s, k, OXV_RUNTIME);
    if (!v) return NULL;
    NB_REQUIRE(r->m->ctx, r->t[s->in[k]], NULL, "onnx", "input %d ('%s') was not computed", k, v->name);
    return r->t[s->in[k]];
}

ox_value *ox_const_in(ox_run *r, const ox_step *s, int k) {
    nb_ctx *ctx = r->m->ctx;
    ox_value *v = input_of_kind(r, s, k, OXV_CONST);
    if (!v) return NULL;
    ox_role role = ox_role_of(s, k);
    if (role != OX_OPERAND && !v->tensor) {
        NB_REQUIRE(ctx, r->g->tracing, NULL, "onnx", "initializer '%s' was not bound at import", v->name);
        if (r->g->bind(r->m, (ox_step *)s, k, role)) return NULL;
    }
    return v;
}

int ox_out(ox_run *r, ox_step *s, int k, nb_tensor *t) {
    if (!t) return -1;
    if (k < s->n_out && s->out[k] >= 0) r->t[s->out[k]] = t;
    if (k == 0 && s->relu_out >= 0) r->t[s->relu_out] = t; /* the fused Relu's value is this one */
    return 0;
}

