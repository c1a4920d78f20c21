/* Where a recorded node runs: the column impl of its row in core/op_table.h. Kernels go to the backend, which
 * may decline an op; views to core/ops_view.c; unary element-wise ops to core/ops_unary.c, which asks the
 * backend for f and f' alone and writes the backward once for every backend. */
#include "core/op_impl.h"

static int declined(nb_ctx *ctx, const nb_node *n) {
    NB_FAIL(ctx, nb_op_name(n->op),
            "the %s backend does not run this op\n  hint: train on a backend that has it (train.device), or give "
            "backend/%s/ a kernel for it",
            ctx->backend->name, ctx->backend->name);
    return -1;
}

int nb_core_forward(nb_ctx *ctx, nb_node *n) {
    nb_backend *be = ctx->backend;
    switch (nb_op_impl_of(n->op)) {
    case NB_IMPL_VIEW: return nb_view_forward(ctx, n);
    case NB_IMPL_UNARY: return be->supports(be, n->op) ? nb_unary_forward(ctx, n) : declined(ctx, n);
    case NB_IMPL_KERNEL: break;
    }
    return be->supports(be, n->op) ? be->forward(be, n) : declined(ctx, n);
}

int nb_core_backward(nb_ctx *ctx, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_backend *be = ctx->backend;
    switch (nb_op_impl_of(n->op)) {
    case NB_IMPL_VIEW: return nb_view_backward(ctx, n, gout, gin);
    case NB_IMPL_UNARY: return nb_unary_backward(ctx, n, gout, gin);
    case NB_IMPL_KERNEL: break;
    }
    return be->backward(be, n, gout, gin);
}
