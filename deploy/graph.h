/* The deploy graph: a model lowered for inference, independent of any file format. Lowering (deploy/lower.c)
 * takes the forward pass recorded on the tape (the same record that drives backward and FLOP counting) and
 *   - keeps the nodes the output depends on, in tape order (which is topological);
 *   - drops what is the identity at inference (dropout, layout copies) by aliasing its output to its input;
 *   - folds each evaluation-mode batch norm into the convolution before it, when asked;
 *   - removes the channels that channel pruning zeroed (compress/channel_deps.h: a convolution whose channels
 *     only dense convolutions read, whose batch-norm scale and shift are both zero), from the convolution, its
 *     batch norm and its readers' input channels;
 *   - turns every weight into a constant: float values, or a quantized layer's integer codes and scales (the
 *     checkpoint's compression records, deploy/qweights.h), after checking that they reproduce the weights.
 * Emitters write it out: ONNX today (deploy/onnx_emit.c); a converter's parameter file or nibble's own integer
 * inference would read the same graph. Nodes keep their op (core/op_table.h), attributes and scope from the
 * recorded node. */
#ifndef NB_DEPLOY_GRAPH_H
#define NB_DEPLOY_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "compress/qsim.h"
#include "deploy/qweights.h"
#include "models/model.h"

/* A constant: a weight, a bias, batch-norm statistics, or a tensor the model made (adaptive pooling's
 * averaging matrix). */
typedef struct {
    const nb_tensor *source; /* the tensor it holds (NULL: made by lowering, a folded bias) */
    bool is_param;           /* source is a parameter of the model, whose name it keeps */
    bool changed;            /* its values differ from the source's (a folded batch norm, removed channels) */
    int ndim;
    int64_t dims[NB_MAX_DIMS];
    float *values;          /* float values; NULL when quantized */
    /* quantized: values = scale[c] * codes, c the output channel (axis 0) when per_channel */
    int8_t *codes;
    float *scale;
    bool per_channel;
    bool fits_int4;         /* every code within [-8, 7] */
    char method[32];        /* the compression record the codes come from ("admm", "ptq", ...) */
    int qmin, qmax;         /* the codes' grid */
} nb_dconst;

/* An input of a node: a value the graph computes (or the graph's input), or a constant. */
typedef struct {
    const nb_tensor *value; /* the recorded tensor, identities resolved; NULL for a constant */
    int konst;              /* index into consts, or -1 */
} nb_dinput;

#define NB_DEPLOY_MAX_IN 8

typedef struct {
    const nb_node *node; /* the recorded op: its op, attributes, scope and shapes */
    const nb_node *bn;   /* conv2d: the evaluation-mode batch norm folded into it (its output is out), or NULL */
    int n_in;
    nb_dinput in[NB_DEPLOY_MAX_IN]; /* conv2d, linear: x, weight, bias (bias konst -1 when absent);
                                       batchnorm2d: x, scale, bias, mean, var; others: the recorded inputs */
    const nb_tensor *out;           /* the recorded tensor the node's result stands for */
    const uint8_t *keep;            /* channels (dim 1) of out present in the deployed network; NULL: all */
    int64_t kept;
    bool shared_weight;             /* conv2d: other convolutions use its weight constant too */
} nb_dnode;

typedef struct {
    int quantized_layers;
    int64_t quantized_weights, float_weights; /* elements of conv and linear weights */
    int64_t zero_weights;                     /* of all conv and linear weights: unstructured sparsity */
    int64_t channels_removed, prunable_channels;
    int folded_bn;
    char methods[64]; /* the compression records used: "admm", "ptq", ... */
} nb_deploy_stats;

typedef struct {
    nb_model *model;
    const nb_tensor *input, *output; /* as recorded */
    const nb_tensor *output_value;   /* the recorded tensor that computes output (identities resolved) */
    nb_dnode *nodes;
    int n_nodes;
    nb_dconst *consts;
    int n_consts, cap_consts;
    nb_deploy_stats stats;
    void *impl; /* what lowering keeps for the graph's lifetime (channel keep masks) */
} nb_deploy_graph;

typedef struct {
    bool fold_bn;       /* fold batch norms into the convolution before them */
    bool float_weights; /* ignore the checkpoint's codes: every weight as float */
    bool keep_channels; /* do not remove pruned channels */
    /* a full-integer network: the weights its simulation quantizes become their codes on its grids (the
     * activations' quantizers are on the tape, recorded while it exported) */
    const nb_qsim *qsim;
} nb_lower_opts;

/* Lower the forward pass recorded on m's context (nb_record_forward: input x, output y) into g. q: the
 * checkpoint's compression records (NULL: float weights). 0, or -1 after reporting. */
int nb_deploy_lower(nb_model *m, const nb_tensor *x, const nb_tensor *y, const nb_qweights *q, const nb_lower_opts *o,
                    nb_deploy_graph *g);
void nb_deploy_free(nb_deploy_graph *g);

/* The nodes of g that read value t (indices into g->nodes; a node once however many of its inputs t is), at
 * most max of them into out; returns how many there are */
int nb_deploy_readers(const nb_deploy_graph *g, const nb_tensor *t, int *out, int max);
/* Whether float constant c ([rows, cols]) selects: every row a single 1 among zeros, as the pixel map of nearest
 * upsampling (core/ops_nn.c) is; the 1's column of each row into idx (rows of them) when idx is not NULL */
bool nb_dconst_selects(const nb_dconst *c, int32_t *idx);

#endif
