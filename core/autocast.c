/* Mixed precision (train.precision = bf16), decided op by op where each node is made, as torch.autocast does:
 * convolutions and linear layers take their activation input in bf16 (their f32 parameters are cast by the
 * backend, once per step: nb_tensor.lowp); every other op runs in bf16 when its activation inputs are bf16
 * and the backend has a bf16 kernel for it (batch norm, activations, pooling, adds, views), and otherwise gets
 * them cast to f32 (losses, softmax, quantizers, and whatever a backend lacks), so that any network trains
 * and only the speed depends on the backend's coverage. Parameters, optimizer state, batch-norm statistics and
 * the loss stay f32; gradients have their tensor's type, and a parameter's gradient is f32. */
#include "core/op_impl.h"

nb_dtype nb_set_autocast(nb_ctx *ctx, nb_dtype dtype) {
    nb_dtype old = ctx->autocast;
    ctx->autocast = dtype;
    return old;
}

bool nb_autocast_supported(nb_ctx *ctx, nb_dtype dtype) {
    nb_backend *be = ctx->backend;
    return dtype == NB_F32 || (be->lowp_supports && be->lowp_supports(be, NB_OP_CONV2D, dtype) &&
                               be->lowp_supports(be, NB_OP_LINEAR, dtype));
}

bool nb_autocast_native(nb_ctx *ctx, nb_dtype dtype) {
    nb_backend *be = ctx->backend;
    return dtype == NB_F32 || (nb_autocast_supported(ctx, dtype) && be->lowp_native && be->lowp_native(be, dtype));
}

/* The ops that compute in bf16 under autocast: those whose input and weight integer inference quantizes (the
 * column quant of core/op_table.h: convolutions and linear layers) */
static bool compute_op(nb_op op) { return nb_op_quant_of(op) == NB_QUANT_WEIGHTED; }

/* The leading inputs that are activations (the rest are f32 parameters and statistics): one for the ops with
 * parameters, all of them for the others. */
static int activation_inputs(nb_op op, int n_in) { return compute_op(op) || op == NB_OP_BATCHNORM2D ? 1 : n_in; }

int nb_autocast_inputs(nb_ctx *ctx, nb_op op, nb_tensor **in, int n_in, bool *lowp) {
    *lowp = false;
    if (op == NB_OP_CAST) return 0;
    int n_act = activation_inputs(op, n_in);
    bool compute = compute_op(op);
    bool any_lowp = false;
    for (int i = 0; i < n_act; i++) any_lowp = any_lowp || (in[i] && in[i]->dtype == NB_BF16);
    if (!any_lowp && !(compute && ctx->autocast == NB_BF16)) return 0;
    nb_backend *be = ctx->backend;
    bool runs = be->lowp_supports && be->lowp_supports(be, op, NB_BF16);
    /* an op that is not a convolution or linear layer runs in bf16 only when all its activations are bf16 (an
     * add of a bf16 and an f32 tensor is computed in f32, as torch promotes) */
    for (int i = 0; runs && !compute && i < n_act; i++)
        runs = !in[i] || !nb_dtype_is_float(in[i]->dtype) || in[i]->dtype == NB_BF16;
    nb_dtype target = runs ? NB_BF16 : NB_F32;
    /* the casts are invisible to the op hooks: the quantization simulation has already seen this op's inputs
     * (hooks run first) and must not place quantizers on copies that exist only for the arithmetic */
    bool hidden = ctx->in_op_hook;
    ctx->in_op_hook = true;
    int rc = 0;
    for (int i = 0; i < n_act && rc == 0; i++) {
        if (!in[i] || !nb_dtype_is_float(in[i]->dtype) || in[i]->dtype == target) continue;
        in[i] = nb_cast(in[i], target);
        if (!in[i]) rc = -1;
    }
    ctx->in_op_hook = hidden;
    *lowp = runs;
    return rc;
}

nb_dtype nb_autocast_out_dtype(const nb_node *n, nb_dtype dtype) {
    if (n->op == NB_OP_CAST || !nb_dtype_is_float(dtype)) return dtype;
    /* a linear layer writes f32: logits go to the loss in f32, and a classifier's hidden layers are small */
    return n->lowp && n->op != NB_OP_LINEAR ? NB_BF16 : NB_F32;
}
