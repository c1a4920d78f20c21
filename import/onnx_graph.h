/* What the ONNX importer's parts share (internal to import/): the graph as read, its values and its steps.
 *
 * Every ONNX value (a graph input, an initializer, a node output) is one ox_value. A value is either computed
 * when the model runs (RUNTIME: an nb_tensor made by nibble's ops at each forward pass) or known at import
 * (CONST: a small host tensor, float or int64). Initializers are constants; so is every node whose inputs are
 * all constants, which import evaluates once (onnx_fold.c) and never runs again: the Shape, Gather, Unsqueeze
 * and Concat chains that exporters emit for flatten and reshape. A Shape of a runtime value is a constant too,
 * with its batch element marked: a Reshape to it takes the batch of the tensor it reshapes at each pass, so a
 * model imported with a symbolic batch runs at any batch size.
 *
 * Every other node is a step (onnx_ops.c): its rule maps it onto nibble's ops. Initializers that a step trains
 * (convolution and linear weights and biases, batch-norm scales and shifts) become the model's parameters under
 * their ONNX names, batch-norm statistics its buffers; any other constant a step reads is an operand, a tensor
 * the model holds but does not train. */
#ifndef NB_ONNX_GRAPH_H
#define NB_ONNX_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/ops.h"
#include "formats/onnx_read.h"
#include "layers/params.h"
#include "models/model.h"

#define OX_MAX_IN 64  /* inputs of one node (a concatenation of many branches) */
#define OX_MAX_OUT 16 /* outputs of one node (Split) */

typedef enum { OXV_UNSET = 0, OXV_RUNTIME, OXV_CONST } ox_kind;

typedef struct {
    const char *name; /* points into the model proto */
    ox_kind kind;
    int producer;     /* the node that makes it, -1 for graph inputs and initializers */
    const Onnx__TensorProto *init; /* its initializer, or NULL */
    /* a constant: row-major host values, float (f) or int64 (i) */
    bool is_int;
    int ndim;
    int64_t dims[NB_MAX_DIMS];
    int64_t n;
    float *f;
    int64_t *i;
    uint8_t *batch; /* int64 constants: which elements are the batch size (from a Shape of a runtime value) */
    /* the constant on the model's backend: a parameter or buffer (registered under its name) or an operand */
    nb_tensor *tensor;
    bool trained;   /* tensor is a parameter or buffer of the model (else an operand the model owns) */
    bool transposed; /* tensor holds the initializer in another layout (a MatMul's or Gemm's [in, out] weight
                      * transposed, a ConvTranspose weight as its convolution's) */
    int64_t uses;   /* steps that read it */
} ox_value;

struct ox_rule;

typedef struct {
    const Onnx__NodeProto *node;
    const struct ox_rule *rule; /* NULL for a folded node */
    int n_in, n_out;
    int in[OX_MAX_IN];   /* value indices; -1 for an absent optional input ("") */
    int out[OX_MAX_OUT];
    bool folded;         /* evaluated at import: its outputs are constants */
    char scope[NB_NAME_MAX]; /* the layer name its nibble ops record (its weight's name less ".weight") */
    char note[160];      /* what import made of it, for the listing */
    nb_tensor *nbt;      /* batch norm: num_batches_tracked, when its scale is named <layer>.weight */
    nb_tensor *select;   /* Gather of constant indices, Resize: the matrix it multiplies by, made at the first pass */
    nb_tensor *operand;  /* Mul or Div by a per-channel constant: its [1,C,1,1] scale, made at the first pass */
    bool replaced;       /* a layer import made anew (model.num_classes, model.in_channels) */
    bool absorbed;       /* run as part of a later step (a Sigmoid of x whose product with x is a SiLU) */
    int silu_in;         /* the SiLU's Mul: which input is x */
    int extra_pad[2];    /* a convolution: the zero padding of a Pad before it that alone fed it (height, width) */
    int relu_out;        /* a batch norm or Add that runs the Relu after it fused (nibble's residual joins and
                          * BN + ReLU, one pass each): the Relu's output value, else -1 */
} ox_step;

typedef struct {
    Onnx__ModelProto *proto;
    char label[512];   /* the file, for messages */
    int64_t opset;     /* of the default domain */
    ox_value *v;
    int n_values, cap_values;
    int *hash;         /* open addressing over value names: index + 1, 0 empty */
    int hash_cap;
    ox_step *steps;
    int n_steps;
    int input, output; /* value indices */
    int64_t input_batch; /* the graph input's first dimension when fixed, else 0 */
    int64_t input_channels; /* as the graph declares it (0: not declared) */
    int folded;        /* nodes evaluated at import */
    bool tracing;      /* the first pass, at import: folds constants and checks every step */
    /* makes input k of step s (a constant the rule trains, in that role) the model's parameter or buffer, at the
     * first pass (onnx_model.c) */
    int (*bind)(nb_model *m, ox_step *s, int k, int role);
} ox_graph;

/* A pass of the model: the value tensors of this forward */
typedef struct {
    nb_model *m;
    ox_graph *g;
    nb_tensor **t;  /* per value */
    bool training;
} ox_run;

typedef int (*ox_rule_fn)(ox_run *r, ox_step *s);
/* How a node's initializer inputs are used: the roles that make them parameters (onnx_ops.c) */
/* OX_PARAM_T: held transposed ([in, out] -> [out, in]); OX_PARAM_CONVT: a ConvTranspose weight [Cin, Cout/g, kh,
 * kw], held as the weight of the convolution that computes it ([Cout, Cin/g, kh, kw], flipped in space) */
typedef enum { OX_OPERAND = 0, OX_PARAM, OX_PARAM_T, OX_BUFFER, OX_PARAM_CONVT } ox_role;

typedef struct ox_rule {
    const char *op_type;
    ox_rule_fn run;
    ox_role roles[5];    /* role of initializer input k (operands: anything not listed) */
    const char *summary; /* what it becomes in nibble, for bin/import's listing */
    bool keeps_scope;    /* an activation: its op records the layer name before it */
} ox_rule;

/* ---- the graph (onnx_model.c) ---- */
int ox_value_index(const ox_graph *g, const char *name); /* -1 when unknown */

/* ---- what steps read (onnx_values.c) ---- */
/* The step's k-th input as a runtime tensor / a constant; NULL (after reporting) when it is not one */
nb_tensor *ox_in(ox_run *r, const ox_step *s, int k);
ox_value *ox_const_in(ox_run *r, const ox_step *s, int k);
bool ox_has_in(const ox_step *s, int k);
/* Set output k of the step to a runtime tensor (NULL: the op failed; it reported) */
int ox_out(ox_run *r, ox_step *s, int k, nb_tensor *t);

/* attributes */
const Onnx__AttributeProto *ox_get_attr(const Onnx__NodeProto *n, const char *name);
int64_t ox_get_int(const Onnx__NodeProto *n, const char *name, int64_t dflt);
float ox_get_float(const Onnx__NodeProto *n, const char *name, float dflt);
/* the ints of an attribute; count 0 when absent */
const int64_t *ox_get_ints(const Onnx__NodeProto *n, const char *name, int *count);

/* the role of input k of step s: whether the rule trains it (a Gemm's weight stored [in, out] is transposed) */
ox_role ox_role_of(const ox_step *s, int k);
void ox_value_clear(ox_value *v);
/* A ConvTranspose weight [Cin, Cout/g, kh, kw] (dims) between the file's layout and the one the model holds, the
 * weight of the convolution that computes it ([Cout, Cin/g, kh, kw], flipped in space): file -> held, or back */
void ox_convt_layout(const int64_t *dims, int64_t groups, const float *from, float *to, bool to_held);
const char *ox_dims_fmt(char *buf, size_t n, const ox_value *v); /* "[2,3,224,224]" of a constant */

/* ---- the rules (onnx_ops.c) ---- */
const ox_rule *ox_rule_for(const char *op_type); /* NULL when nibble has none */
const ox_rule *ox_silu_rule(void); /* x * Sigmoid(x), two ONNX nodes, as one op */
void ox_supported_list(char *buf, size_t n); /* "Conv, BatchNormalization, ..." */

/* ---- constants (onnx_fold.c) ---- */
/* An initializer's values into v (float32, int64, int32, and float64 initializers). 0, or -1 after reporting. */
int ox_read_initializer(nb_ctx *ctx, const ox_graph *g, ox_value *v);
/* Evaluate node s, whose inputs are all constants, into constant outputs. 0, or -1 after reporting
 * (an op it cannot evaluate, a batch size that enters arithmetic). */
int ox_fold(nb_ctx *ctx, ox_graph *g, ox_step *s);
/* A Shape of the runtime value x: an int64 constant with its first element the batch */
int ox_fold_shape(ox_graph *g, ox_step *s, const nb_tensor *x);
/* Whether fold can evaluate this op type */
bool ox_foldable(const char *op_type);

#endif
