/* bin/export --check: an ONNX file parsed back and described (see onnx_inspect.h). */
#include "deploy/onnx_inspect.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "deploy/onnx_builder.h"
#include "formats/onnx_read.h"

static const char *type_name(int t) {
    switch (t) {
    case OX_FLOAT: return "float32";
    case OX_UINT8: return "uint8";
    case OX_INT8: return "int8";
    case OX_INT32: return "int32";
    case OX_INT64: return "int64";
    case OX_UINT4: return "uint4";
    case OX_INT4: return "int4";
    default: return "other";
    }
}

static const Onnx__TensorProto *init_named(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_initializer; i++)
        if (!strcmp(g->initializer[i]->name, name)) return g->initializer[i];
    return NULL;
}

static const Onnx__NodeProto *producer(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_output; k++)
            if (!strcmp(g->node[i]->output[k], name)) return g->node[i];
    return NULL;
}

/* the element count its dims declare; 0 for dims no tensor can have (negative, or a product past 2^40) */
static int64_t elements(const Onnx__TensorProto *t) {
    int64_t n = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || (t->dims[i] && n > ((int64_t)1 << 40) / t->dims[i])) return 0;
        n *= t->dims[i];
    }
    return n;
}

static void print_dims(FILE *out, const Onnx__TensorProto *t) {
    fputc('[', out);
    for (size_t i = 0; i < t->n_dims; i++) fprintf(out, "%s%lld", i ? "," : "", (long long)t->dims[i]);
    fputc(']', out);
}

static void print_io(FILE *out, const char *what, const Onnx__ValueInfoProto *v) {
    fprintf(out, "  %-6s %s", what, v->name);
    if (!v->type || v->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
        fputc('\n', out);
        return;
    }
    const Onnx__TypeProto__Tensor *t = v->type->tensor_type;
    fprintf(out, " %s [", type_name(t->elem_type));
    for (size_t i = 0; t->shape && i < t->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = t->shape->dim[i];
        if (i) fputc(',', out);
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
            fprintf(out, "%s", d->dim_param);
        else
            fprintf(out, "%lld", (long long)d->dim_value);
    }
    fprintf(out, "]\n");
}

/* element i of an integer initializer held in raw_data */
static int code_at(const Onnx__TensorProto *t, int64_t i) {
    const uint8_t *p = t->raw_data.data;
    if (t->data_type == OX_INT8) return (int8_t)p[i];
    if (t->data_type == OX_INT4) {
        int v = (p[i / 2] >> (i % 2 ? 4 : 0)) & 0xF;
        return v >= 8 ? v - 16 : v;
    }
    return 0;
}

/* Whether two inputs name the same constant value (the same initializer, or two holding equal data) */
static bool same_constant(const Onnx__GraphProto *g, const char *a, const char *b) {
    if (!strcmp(a, b)) return true;
    const Onnx__TensorProto *x = init_named(g, a), *y = init_named(g, b);
    if (!x || !y || x->data_type != y->data_type || x->raw_data.len != y->raw_data.len ||
        x->n_float_data != y->n_float_data || x->n_int32_data != y->n_int32_data)
        return false;
    return (!x->raw_data.len || !memcmp(x->raw_data.data, y->raw_data.data, x->raw_data.len)) &&
           (!x->n_float_data || !memcmp(x->float_data, y->float_data, x->n_float_data * sizeof *x->float_data)) &&
           (!x->n_int32_data || !memcmp(x->int32_data, y->int32_data, x->n_int32_data * sizeof *x->int32_data));
}

/* ONNX Runtime's QLinearConcat (inputs: Y's scale and zero point, then X, scale, zero point for each input)
 * copies an input whose grid is the output's and requantizes any other through a table: how many do */
static void count_requantizing_concats(const Onnx__GraphProto *g, nb_onnx_summary *s) {
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (strcmp(n->op_type, "QLinearConcat") || n->n_input < 5) continue;
        s->qconcats++;
        bool requant = false;
        for (size_t k = 2; k + 2 < n->n_input && !requant; k += 3)
            requant = !same_constant(g, n->input[k + 1], n->input[0]) || !same_constant(g, n->input[k + 2], n->input[1]);
        s->requantizing_qconcats += requant;
    }
}

/* A conv or linear weight: how it is stored */
static void describe_weight(FILE *out, const Onnx__GraphProto *g, const Onnx__NodeProto *n, nb_onnx_summary *s) {
    if (n->n_input < 2) return;
    const char *w = n->input[1];
    const Onnx__TensorProto *t = init_named(g, w);
    const Onnx__NodeProto *dq = t ? NULL : producer(g, w);
    if (dq && !strcmp(dq->op_type, "DequantizeLinear") && dq->n_input >= 2) {
        const Onnx__TensorProto *codes = init_named(g, dq->input[0]), *scale = init_named(g, dq->input[1]);
        if (!codes || !codes->has_raw_data) return;
        int64_t n_el = elements(codes), zeros = 0;
        /* the codes must all be there before they are counted */
        bool int4_codes = codes->data_type == OX_INT4;
        if (n_el == 0 || codes->raw_data.len < (size_t)(int4_codes ? (n_el + 1) / 2 : n_el)) {
            fprintf(out, "  weight %s: %lld codes declared, %zu bytes stored (malformed)\n", w, (long long)n_el,
                    codes->raw_data.len);
            return;
        }
        bool seen[16] = {0};
        int levels = 0;
        for (int64_t i = 0; i < n_el; i++) {
            int c = code_at(codes, i);
            zeros += c == 0;
            if (c >= -8 && c <= 7 && !seen[c + 8]) seen[c + 8] = true, levels++;
        }
        bool int4 = codes->data_type == OX_INT4;
        fprintf(out, "  %-4s %-40s %-5s ", !strcmp(n->op_type, "Conv") ? "conv" : "gemm", w, type_name(codes->data_type));
        print_dims(out, codes);
        fprintf(out, "  %d levels, %s scale, %.1f%% zero\n", levels,
                scale && elements(scale) > 1 ? "per-channel" : "per-tensor", 100.0 * (double)zeros / (double)n_el);
        if (int4)
            s->int4_layers++;
        else
            s->int8_layers++;
        s->weight_values += n_el;
        s->zero_weight_values += zeros;
        return;
    }
    if (!t) return;
    int64_t n_el = elements(t), zeros = 0;
    const float *v = (const float *)t->raw_data.data;
    if (t->has_raw_data && t->raw_data.len == sizeof(float) * (size_t)n_el)
        for (int64_t i = 0; i < n_el; i++) zeros += v[i] == 0.0f;
    fprintf(out, "  %-4s %-40s %-5s ", !strcmp(n->op_type, "Conv") ? "conv" : "gemm", w, "float");
    print_dims(out, t);
    fprintf(out, "  %.1f%% zero\n", 100.0 * (double)zeros / (double)n_el);
    s->float_layers++;
    s->weight_values += n_el;
    s->zero_weight_values += zeros;
}

int nb_onnx_inspect(nb_ctx *ctx, const char *path, FILE *out, nb_onnx_summary *s) {
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "rb");
    NB_REQUIRE(ctx, f, -1, path, "cannot open the model");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = nb_xmalloc((size_t)(len > 0 ? len : 1));
    size_t got = len > 0 ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    Onnx__ModelProto *m = got == (size_t)len && len > 0 ? nb_onnx_unpack(buf, got) : NULL;
    free(buf);
    NB_REQUIRE(ctx, m, -1, path, "is not an ONNX model (%ld bytes that do not parse as a ModelProto with a graph)",
               len);
    const Onnx__GraphProto *g = m->graph;
    s->bytes = len;
    s->nodes = (int64_t)g->n_node;
    s->initializers = (int64_t)g->n_initializer;
    int64_t opset = 0;
    for (size_t i = 0; i < m->n_opset_import; i++)
        if (!m->opset_import[i]->domain || !m->opset_import[i]->domain[0]) opset = m->opset_import[i]->version;
    fprintf(out, "%s: %ld bytes, ONNX IR %lld, opset %lld, from %s %s\n", path, len, (long long)m->ir_version,
            (long long)opset, m->producer_name ? m->producer_name : "?", m->producer_version ? m->producer_version : "");
    for (size_t i = 0; i < g->n_input; i++)
        if (!init_named(g, g->input[i]->name)) print_io(out, "input", g->input[i]);
    for (size_t i = 0; i < g->n_output; i++) print_io(out, "output", g->output[i]);
    /* node counts by type, in order of first appearance */
    const char *types[64];
    int counts[64], nt = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        int k = 0;
        while (k < nt && strcmp(types[k], g->node[i]->op_type)) k++;
        if (k == nt && nt < 64) types[nt] = g->node[i]->op_type, counts[nt++] = 0;
        if (k < nt) counts[k]++;
    }
    fprintf(out, "  nodes  %lld:", (long long)g->n_node);
    for (int k = 0; k < nt; k++) fprintf(out, "%s %s %d", k ? "," : "", types[k], counts[k]);
    fputc('\n', out);
    int64_t bytes_by[3] = {0};
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        int64_t n = elements(t);
        if (t->data_type == OX_FLOAT) s->float_values += n, bytes_by[0] += 4 * n;
        if (t->data_type == OX_INT8) s->int8_values += n, bytes_by[1] += n;
        if (t->data_type == OX_INT4) s->int4_values += n, bytes_by[2] += (n + 1) / 2;
    }
    fprintf(out, "  initializers %lld: float32 %lld values (%lld bytes), int8 %lld (%lld bytes), int4 %lld (%lld bytes)\n",
            (long long)g->n_initializer, (long long)s->float_values, (long long)bytes_by[0], (long long)s->int8_values,
            (long long)bytes_by[1], (long long)s->int4_values, (long long)bytes_by[2]);
    fprintf(out, "  weights (conv and linear):\n");
    for (size_t i = 0; i < g->n_node; i++)
        if (!strcmp(g->node[i]->op_type, "Conv") || !strcmp(g->node[i]->op_type, "Gemm"))
            describe_weight(out, g, g->node[i], s);
    fprintf(out, "  %d layers float, %d int8, %d int4; %.2f%% of %lld weights are zero\n", s->float_layers,
            s->int8_layers, s->int4_layers,
            s->weight_values ? 100.0 * (double)s->zero_weight_values / (double)s->weight_values : 0.0,
            (long long)s->weight_values);
    count_requantizing_concats(g, s);
    if (s->qconcats) /* an engine's optimized graph: ONNX Runtime's optimizedModelFilePath */
        fprintf(out, "  QLinearConcat %lld, requantizing an input %lld (the others copy bytes)\n", (long long)s->qconcats,
                (long long)s->requantizing_qconcats);
    for (size_t i = 0; i < m->n_metadata_props; i++)
        fprintf(out, "  %s: %s\n", m->metadata_props[i]->key, m->metadata_props[i]->value);
    onnx__model_proto__free_unpacked(m, NULL);
    return 0;
}
