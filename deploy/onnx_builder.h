/* Building an ONNX ModelProto in memory (protoc-c's structures for formats/onnx.proto) and writing it: nodes
 * with their attributes, initializers of every element type nibble exports, graph inputs and outputs. Every
 * string and array is malloc'd, so onnx__model_proto__free_unpacked frees a built model whole. */
#ifndef NB_ONNX_BUILDER_H
#define NB_ONNX_BUILDER_H

#include <stdint.h>

#include "formats/onnx.pb-c.h"

/* ONNX TensorProto.DataType values */
enum { OX_FLOAT = 1, OX_UINT8 = 2, OX_INT8 = 3, OX_INT32 = 6, OX_INT64 = 7, OX_UINT4 = 21, OX_INT4 = 22 };

/* An empty model (IR version and opset as given, producer nibble) with an empty graph. */
Onnx__ModelProto *ox_model_new(const char *graph_name, int64_t ir_version, int64_t opset);
void ox_model_free(Onnx__ModelProto *m);
void ox_metadata(Onnx__ModelProto *m, const char *key, const char *value);

/* A node; inputs may be "" for an absent optional input. The strings are copied. */
Onnx__NodeProto *ox_node(Onnx__GraphProto *g, const char *op_type, const char *name, int n_in, const char *const *in,
                         int n_out, const char *const *out);
/* Every node input and output named from is named to instead (a value renamed after its producer was written) */
void ox_rename(Onnx__GraphProto *g, const char *from, const char *to);
void ox_attr_int(Onnx__NodeProto *n, const char *name, int64_t v);
void ox_attr_ints(Onnx__NodeProto *n, const char *name, const int64_t *v, int count);
void ox_attr_float(Onnx__NodeProto *n, const char *name, float v);

/* Initializers with row-major data (ndim 0: a scalar). int4 values (-8..7) are packed two to a byte, the
 * first in the low nibble, as ONNX stores them. */
void ox_init_f32(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const float *v);
void ox_init_i64(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const int64_t *v);
void ox_init_i8(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const int8_t *v);
void ox_init_i32(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const int32_t *v);
void ox_init_u8(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const uint8_t *v);
void ox_init_i4(Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims, const int8_t *v);
int ox_has_init(const Onnx__GraphProto *g, const char *name);

/* A graph input or output: a tensor of elem_type whose first dimension is named by batch_param when it is
 * not NULL (a symbolic batch), the others fixed. */
void ox_graph_io(Onnx__GraphProto *g, int output, const char *name, int elem_type, int ndim, const int64_t *dims,
                 const char *batch_param);

/* The serialized model in a malloc'd buffer. */
uint8_t *ox_pack(const Onnx__ModelProto *m, size_t *bytes);

#endif
