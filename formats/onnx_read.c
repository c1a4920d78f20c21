/* ONNX parsing with every optional string set (onnx_read.h). */
#include "formats/onnx_read.h"

#include <stdlib.h>
#include <string.h>

/* protobuf-c frees an unpacked string unless it is the field's default (NULL here), so an empty string
 * put in its place must be malloc'd like the ones it parsed */
static void fill(char **s) {
    if (!*s) *s = strdup("");
}

static void fill_tensor(Onnx__TensorProto *t) {
    if (!t) return;
    fill(&t->name);
    fill(&t->doc_string);
    for (size_t i = 0; i < t->n_external_data; i++) {
        fill(&t->external_data[i]->key);
        fill(&t->external_data[i]->value);
    }
}

static void fill_value(Onnx__ValueInfoProto *v) {
    fill(&v->name);
    fill(&v->doc_string);
}

Onnx__ModelProto *nb_onnx_unpack(const uint8_t *bytes, size_t len) {
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, bytes);
    if (!m) return NULL;
    /* the model's own strings first, so that the graph's absence below frees a whole message */
    fill(&m->producer_name);
    fill(&m->producer_version);
    fill(&m->domain);
    fill(&m->doc_string);
    for (size_t i = 0; i < m->n_opset_import; i++) fill(&m->opset_import[i]->domain);
    for (size_t i = 0; i < m->n_metadata_props; i++) {
        fill(&m->metadata_props[i]->key);
        fill(&m->metadata_props[i]->value);
    }
    Onnx__GraphProto *g = m->graph;
    if (!g) { /* a model is its graph: every reader refuses one without */
        onnx__model_proto__free_unpacked(m, NULL);
        return NULL;
    }
    fill(&g->name);
    fill(&g->doc_string);
    for (size_t i = 0; i < g->n_node; i++) {
        Onnx__NodeProto *n = g->node[i];
        fill(&n->name);
        fill(&n->op_type);
        fill(&n->domain);
        for (size_t k = 0; k < n->n_attribute; k++) {
            fill(&n->attribute[k]->name);
            fill_tensor(n->attribute[k]->t);
        }
    }
    for (size_t i = 0; i < g->n_initializer; i++) fill_tensor(g->initializer[i]);
    for (size_t i = 0; i < g->n_input; i++) fill_value(g->input[i]);
    for (size_t i = 0; i < g->n_output; i++) fill_value(g->output[i]);
    for (size_t i = 0; i < g->n_value_info; i++) fill_value(g->value_info[i]);
    return m;
}
