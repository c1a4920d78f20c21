/* In-memory ONNX model construction over protoc-c's generated structures (see onnx_builder.h). */
#include "deploy/onnx_builder.h"

#include <stdlib.h>
#include <string.h>

#include "core/check.h"

static char *dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = nb_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

/* append item to the array *arr of *n pointers: a realloc per item keeps the generated layout (no capacity
 * field) and is cheap at the few thousand entries a network has */
static void push(void ***arr, size_t *n, void *item) {
    void **a = nb_xrealloc(*arr, (*n + 1) * sizeof *a);
    a[(*n)++] = item;
    *arr = a;
}
#define PUSH(arr, n, item) push((void ***)&(arr), &(n), (item))

Onnx__ModelProto *ox_model_new(const char *graph_name, int64_t ir_version, int64_t opset) {
    Onnx__ModelProto *m = nb_xmalloc(sizeof *m);
    onnx__model_proto__init(m);
    m->has_ir_version = 1;
    m->ir_version = ir_version;
    m->producer_name = dup("nibble");
    m->producer_version = dup("0.1");
    Onnx__OperatorSetIdProto *os = nb_xmalloc(sizeof *os);
    onnx__operator_set_id_proto__init(os);
    os->domain = dup("");
    os->has_version = 1;
    os->version = opset;
    PUSH(m->opset_import, m->n_opset_import, os);
    m->graph = nb_xmalloc(sizeof *m->graph);
    onnx__graph_proto__init(m->graph);
    m->graph->name = dup(graph_name);
    return m;
}

void ox_model_free(Onnx__ModelProto *m) {
    if (m) onnx__model_proto__free_unpacked(m, NULL);
}

void ox_metadata(Onnx__ModelProto *m, const char *key, const char *value) {
    Onnx__StringStringEntryProto *e = nb_xmalloc(sizeof *e);
    onnx__string_string_entry_proto__init(e);
    e->key = dup(key);
    e->value = dup(value);
    PUSH(m->metadata_props, m->n_metadata_props, e);
}

Onnx__NodeProto *ox_node(Onnx__GraphProto *g, const char *op_type, const char *name, int n_in, const char *const *in,
                         int n_out, const char *const *out) {
    Onnx__NodeProto *n = nb_xmalloc(sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = dup(op_type);
    n->name = dup(name);
    for (int i = 0; i < n_in; i++) PUSH(n->input, n->n_input, dup(in[i]));
    for (int i = 0; i < n_out; i++) PUSH(n->output, n->n_output, dup(out[i]));
    PUSH(g->node, g->n_node, n);
    return n;
}

void ox_rename(Onnx__GraphProto *g, const char *from, const char *to) {
    for (size_t i = 0; i < g->n_node; i++) {
        Onnx__NodeProto *n = g->node[i];
        for (size_t k = 0; k < n->n_input; k++)
            if (!strcmp(n->input[k], from)) {
                free(n->input[k]);
                n->input[k] = dup(to);
            }
        for (size_t k = 0; k < n->n_output; k++)
            if (!strcmp(n->output[k], from)) {
                free(n->output[k]);
                n->output[k] = dup(to);
            }
    }
}

static Onnx__AttributeProto *attr(Onnx__NodeProto *n, const char *name, Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *a = nb_xmalloc(sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = dup(name);
    a->has_type = 1;
    a->type = type;
    PUSH(n->attribute, n->n_attribute, a);
    return a;
}

void ox_attr_int(Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

void ox_attr_ints(Onnx__NodeProto *n, const char *name, const int64_t *v, int count) {
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->ints = nb_xmalloc(sizeof(int64_t) * (size_t)(count ? count : 1));
    if (count) memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
    a->n_ints = (size_t)count;
}

void ox_attr_float(Onnx__NodeProto *n, const char *name, float v) {
    Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
}

static int64_t count(int ndim, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    return n;
}

/* raw_data is little-endian, as x86 and ARM store it */
static void init_raw(Onnx__GraphProto *g, const char *name, int type, int ndim, const int64_t *dims, const void *raw,
                     size_t bytes) {
    Onnx__TensorProto *t = nb_xmalloc(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = dup(name);
    t->has_data_type = 1;
    t->data_type = type;
    t->dims = nb_xmalloc(sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
    if (ndim) memcpy(t->dims, dims, sizeof(int64_t) * (size_t)ndim);
    t->n_dims = (size_t)ndim;
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = nb_xmalloc(bytes ? bytes : 1);
    memcpy(t->raw_data.data, raw, bytes);
    PUSH(g->initializer, g->n_initializer, t);
}

void ox_init_f32(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const float *v) {
    init_raw(g, name, OX_FLOAT, ndim, dims, v, sizeof(float) * (size_t)count(ndim, dims));
}

void ox_init_i64(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const int64_t *v) {
    init_raw(g, name, OX_INT64, ndim, dims, v, sizeof(int64_t) * (size_t)count(ndim, dims));
}

void ox_init_i32(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const int32_t *v) {
    init_raw(g, name, OX_INT32, ndim, dims, v, sizeof(int32_t) * (size_t)count(ndim, dims));
}

void ox_init_i8(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const int8_t *v) {
    init_raw(g, name, OX_INT8, ndim, dims, v, (size_t)count(ndim, dims));
}

void ox_init_u8(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const uint8_t *v) {
    init_raw(g, name, OX_UINT8, ndim, dims, v, (size_t)count(ndim, dims));
}

void ox_init_i4(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const int8_t *v) {
    int64_t n = count(ndim, dims);
    size_t bytes = (size_t)(n + 1) / 2;
    uint8_t *p = nb_xcalloc(bytes ? bytes : 1, 1);
    for (int64_t i = 0; i < n; i++) p[i / 2] |= (uint8_t)((v[i] & 0xF) << (i % 2 ? 4 : 0));
    init_raw(g, name, OX_INT4, ndim, dims, p, bytes);
    free(p);
}

int ox_has_init(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_initializer; i++)
        if (!strcmp(g->initializer[i]->name, name)) return 1;
    return 0;
}

void ox_graph_io(Onnx__GraphProto *g, int output, const char *name, int elem_type, int ndim, const int64_t *dims,
                 const char *batch_param) {
    Onnx__ValueInfoProto *v = nb_xmalloc(sizeof *v);
    onnx__value_info_proto__init(v);
    v->name = dup(name);
    v->type = nb_xmalloc(sizeof *v->type);
    onnx__type_proto__init(v->type);
    v->type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    Onnx__TypeProto__Tensor *tt = nb_xmalloc(sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = elem_type;
    tt->shape = nb_xmalloc(sizeof *tt->shape);
    onnx__tensor_shape_proto__init(tt->shape);
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = nb_xmalloc(sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0 && batch_param) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = dup(batch_param);
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        PUSH(tt->shape->dim, tt->shape->n_dim, d);
    }
    v->type->tensor_type = tt;
    if (output)
        PUSH(g->output, g->n_output, v);
    else
        PUSH(g->input, g->n_input, v);
}

uint8_t *ox_pack(const Onnx__ModelProto *m, size_t *bytes) {
    *bytes = onnx__model_proto__get_packed_size(m);
    uint8_t *buf = nb_xmalloc(*bytes ? *bytes : 1);
    onnx__model_proto__pack(m, buf);
    return buf;
}
