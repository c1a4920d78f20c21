/* The tape: one record per executed op with its kind, attributes, inputs, outputs and saved tensors.
 * The same record drives the backend's forward, autograd's backward, FLOP counting and export, so it is a
 * plain structure that any code may walk (nb_tape_nodes). */
#ifndef NB_TAPE_H
#define NB_TAPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/op_table.h"
#include "core/tensor.h"

#define NB_OP_ENUM(E, name, attr, cost, impl, deploy, quant) NB_OP_##E,
typedef enum { NB_OP_TABLE(NB_OP_ENUM) NB_OP_COUNT } nb_op; /* rows of core/op_table.h */
#undef NB_OP_ENUM

/* How an op runs and differentiates: the column impl of core/op_table.h. */
typedef enum { NB_IMPL_KERNEL, NB_IMPL_VIEW, NB_IMPL_UNARY } nb_op_impl;
/* What an op is at inference: the column deploy of core/op_table.h. */
typedef enum { NB_DEPLOY_EXPORT, NB_DEPLOY_IDENTITY, NB_DEPLOY_TRAINING } nb_op_deploy;
/* Where integer inference quantizes around an op: the column quant of core/op_table.h. */
typedef enum { NB_QUANT_FLOAT, NB_QUANT_WEIGHTED, NB_QUANT_REQUANT, NB_QUANT_SHARED, NB_QUANT_KEEP } nb_op_quant;

const char *nb_op_name(nb_op op);
nb_op_impl nb_op_impl_of(nb_op op);
nb_op_deploy nb_op_deploy_of(nb_op op);
nb_op_quant nb_op_quant_of(nb_op op);
const char *nb_op_attr_member(nb_op op); /* "conv", "eltwise", ... or "none" */
/* The op of that name, or -1. */
int nb_op_from_name(const char *name);

/* Zero means "default" for every integer field below (stride 1, dilation 1, groups 1), so that
 * (nb_conv_attr){.pad = {1, 1}} reads naturally. */
typedef struct {
    int stride[2], pad[2], dilation[2], groups;
} nb_conv_attr;

typedef struct {
    int kernel[2], stride[2], pad[2], dilation[2];
    int ceil_mode;         /* max pooling only */
    int exclude_pad;       /* average pooling: divide by the in-bounds count (PyTorch count_include_pad=False) */
} nb_pool_attr;

typedef struct {
    float momentum, eps;
    int training; /* batch statistics + running-stat update; else running statistics */
    int relu;     /* ReLU fused into the same pass (export writes BatchNormalization + Relu) */
    int sync;     /* training over a data-parallel group: statistics of the whole group's batch (ctx->comm) */
} nb_bn_attr;

typedef struct {
    float alpha; /* leaky relu slope */
} nb_eltwise_attr;

typedef struct {
    float p;
    uint64_t seed, stream, offset; /* counter-based mask: the same for any thread count */
} nb_dropout_attr;

typedef struct {
    int axis;
    int64_t start, len;
} nb_slice_attr;

typedef struct {
    int axis;
    int interleave; /* concat only: parts' channels interleaved (channel_shuffle(concat(parts), n) in one copy) */
} nb_axis_attr;

typedef struct {
    int groups;
} nb_shuffle_attr;

typedef struct {
    float alpha, beta; /* y = alpha*a + beta*b, or y = alpha*x for SCALE */
    int relu;          /* ADD only: y = relu(alpha*a + beta*b) in one pass (a residual join) */
} nb_add_attr;

typedef struct {
    float label_smoothing;
} nb_ce_attr;

typedef struct {
    float temperature;
} nb_kl_attr;

typedef struct {
    float beta;
} nb_smooth_l1_attr;

typedef struct {
    float neg_pos_ratio, beta; /* hard negatives per positive; smooth-L1's beta */
} nb_multibox_attr;

typedef struct {
    int layout; /* target layout of a RELAYOUT node */
} nb_relayout_attr;

typedef struct {
    int dtype; /* the nb_dtype a CAST node converts to (f32 <-> bf16: mixed precision, core/autocast.c) */
} nb_cast_attr;

typedef struct {
    int qmin, qmax;    /* the integer grid: [0, 255] for uint8 activations, [-128, 127] for int8, [-8, 7] ... */
    int axis;          /* -1: one step size and zero point for the tensor; else one per index along this axis */
    float grad_factor; /* the step size's and zero point's gradients are scaled by it (LSQ: 1/sqrt(N qmax)) */
} nb_fake_quant_attr;

typedef struct {
    char unused; /* ops without attributes (the column attr = none) */
} nb_no_attr;

typedef union {
    nb_no_attr none;
    nb_conv_attr conv;
    nb_pool_attr pool;
    nb_bn_attr bn;
    nb_eltwise_attr eltwise;
    nb_dropout_attr dropout;
    nb_slice_attr slice;
    nb_axis_attr axis;
    nb_shuffle_attr shuffle;
    nb_add_attr add;
    nb_ce_attr ce;
    nb_kl_attr kl;
    nb_smooth_l1_attr smooth_l1;
    nb_multibox_attr multibox;
    nb_relayout_attr relayout;
    nb_cast_attr cast;
    nb_fake_quant_attr fake_quant;
} nb_attr;

typedef struct nb_node {
    nb_op op;
    nb_attr attr;
    int n_in, n_out, n_saved;
    nb_tensor **in;       /* NULL entries allowed for absent optional inputs (conv bias) */
    nb_tensor **out;
    nb_tensor **saved;    /* backend-made tensors that backward needs: BN batch stats, pooling workspace */
    uint32_t *in_version; /* versions of the inputs when recorded */
    const char *scope;    /* name of the layer that ran the op ("layer1.0.conv1"), or "" */
    int64_t seq;          /* position in the tape */
    bool failed;          /* an op hook failed on its inputs: finishing it reports the failure */
    bool lowp;            /* runs on bf16 activations (core/autocast.c) */
} nb_node;

/* Chunked bump allocator: node records and their arrays live here until the tape is cleared. */
typedef struct nb_arena_chunk {
    struct nb_arena_chunk *next;
    size_t used, cap;
    unsigned char data[];
} nb_arena_chunk;

typedef struct {
    nb_arena_chunk *head; /* chunk being filled */
    nb_arena_chunk *full; /* filled chunks, reused after reset */
} nb_arena;

typedef struct {
    nb_node **nodes;
    size_t n, cap;
    nb_arena arena;
} nb_tape;

void *nb_arena_alloc(nb_arena *a, size_t bytes);
void nb_arena_reset(nb_arena *a);
void nb_arena_free(nb_arena *a);

/* Walk what has been recorded since the last backward or clear. */
size_t nb_tape_size(const nb_ctx *ctx);
const nb_node *nb_tape_node(const nb_ctx *ctx, size_t i);
void nb_tape_clear(nb_ctx *ctx);

/* Multiply-accumulate count of a node (convolution and linear; the convention of the papers' "FLOPs"). */
int64_t nb_node_macs(const nb_node *n);

#endif
