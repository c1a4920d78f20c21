/* What op front-ends share: building a node, running it on the backend, recording it on the tape.
 * Internal to nibble (ops, backends); model code uses core/ops.h. */
#ifndef NB_OP_IMPL_H
#define NB_OP_IMPL_H

#include "core/backend.h"
#include "core/check.h"
#include "core/context.h"
#include "core/ops.h"
#include "core/tape.h"

#define NB_MAX_SAVED 4

/* A node with its inputs set and room for n_out outputs and NB_MAX_SAVED saved tensors. */
nb_node *nb_op_begin(nb_ctx *ctx, nb_op op, nb_tensor *const *in, int n_in, int n_out);
/* Create output header i (storage is allocated by the backend in the layout it chooses). */
nb_tensor *nb_op_out(nb_node *n, int i, nb_dtype dtype, int ndim, const int64_t *shape);
/* Run forward; record the node if gradients or recording are on. Returns 0 or -1 (outputs released). */
int nb_op_finish(nb_ctx *ctx, nb_node *n);
/* Convenience: nb_op_finish and return out[0], or NULL. */
nb_tensor *nb_op_finish1(nb_ctx *ctx, nb_node *n);

/* A saved tensor made by the backend during forward, owned by the node. */
nb_tensor *nb_node_save(nb_node *n, nb_dtype dtype, int ndim, const int64_t *shape, int layout);

/* Whether this node will be recorded for backward (so forward must keep what backward needs). */
bool nb_node_wants_grad(const nb_ctx *ctx, const nb_node *n);

/* Put a backend-made tensor into saved slot i (slots may stay NULL); the node owns it. */
void nb_node_set_saved(nb_node *n, int i, nb_tensor *t);

/* Register an op output in the innermost scope. */
void nb_scope_add(nb_ctx *ctx, nb_tensor *t);

/* Make gradient header `dst` share `src`'s storage (both inputs of a plain sum get the same gradient; backward
 * copies it on write if either is accumulated into). */
void nb_share_storage(nb_tensor *dst, const nb_tensor *src);

/* Give the backend's choice of output layout to an output: allocate its storage. */
static inline int nb_out_alloc(nb_tensor *t, int layout) { return nb_tensor_alloc(t, layout); }

/* The n-th input must be a float tensor (f32, or bf16 under mixed precision: core/autocast.c casts it to what
 * the op runs in) of ndim dims; reports with op name and shape. */
int nb_check_float(nb_ctx *ctx, const char *op, const char *what, const nb_tensor *t, int ndim);

/* Normalise a possibly negative axis against ndim; -1 with an error when out of range. */
int nb_norm_axis(nb_ctx *ctx, const char *op, const nb_tensor *t, int axis);



/* An element-wise op (attributes nb_eltwise_attr) on x: its node checked, recorded and run. */
nb_tensor *nb_eltwise_node(nb_op op, nb_tensor *x, float alpha);

/* How a fake_quant node groups its input: element i (of the plain tensor) belongs to group (i / *inner) %
 * *groups, the channel along the axis, or the one group of a per-tensor quantizer (*groups 1, *inner the
 * element count, which a backend may replace by its physical one). */
void nb_fake_quant_groups(const nb_node *n, int64_t *groups, int64_t *inner);

/* Mixed precision (core/autocast.c): the inputs of a new op cast to what it runs in (in[] rewritten; *lowp set
 * when it runs on bf16 activations), and the type of a float output it writes. */
int nb_autocast_inputs(nb_ctx *ctx, nb_op op, nb_tensor **in, int n_in, bool *lowp);
nb_dtype nb_autocast_out_dtype(const nb_node *n, nb_dtype dtype);

/* Running a recorded node where its row of core/op_table.h says (core/dispatch.c). */
int nb_core_forward(nb_ctx *ctx, nb_node *n);
int nb_core_backward(nb_ctx *ctx, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
/* impl VIEW (core/ops_view.c) and impl UNARY (core/ops_unary.c) */
int nb_view_forward(nb_ctx *ctx, nb_node *n);
int nb_view_backward(nb_ctx *ctx, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
int nb_unary_forward(nb_ctx *ctx, nb_node *n);
int nb_unary_backward(nb_ctx *ctx, nb_node *n, nb_tensor *const *gout, nb_tensor **gin);
#endif
