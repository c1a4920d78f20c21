/* The unary element-wise ops (impl UNARY in core/op_table.h): one front-end, forward and backward for all of
 * them. A backend gives each its value f(x) and derivative f'(x) in one kernel entry (nb_backend.unary), and
 * the backward is written here once: gx = gy * f'(x). */
#include "core/op_impl.h"

nb_tensor *nb_unary(nb_op op, nb_tensor *x, float alpha) {
    if (!x) return NULL;
    nb_ctx *ctx = x->ctx;
    NB_REQUIRE(ctx, (unsigned)op < NB_OP_COUNT && nb_op_impl_of(op) == NB_IMPL_UNARY, NULL, "unary",
               "%s is not a unary element-wise op (impl UNARY in core/op_table.h)", nb_op_name(op));
    return nb_eltwise_node(op, x, alpha);
}

#define NB_UNARY_DEFINE(E, name, attr, cost, impl, deploy, quant) NB_UNARY_DEFINE_##impl(E, name)
#define NB_UNARY_DEFINE_UNARY(E, name) \
    nb_tensor *nb_##name(nb_tensor *x) { return nb_unary(NB_OP_##E, x, 0.0f); }
#define NB_UNARY_DEFINE_KERNEL(E, name)
#define NB_UNARY_DEFINE_VIEW(E, name)
NB_OP_TABLE(NB_UNARY_DEFINE)

int nb_unary_forward(nb_ctx *ctx, nb_node *n) {
    nb_tensor *x = n->in[0], *y = n->out[0];
    if (nb_out_alloc(y, x->layout) != 0) return -1;
    return ctx->backend->unary(ctx->backend, n->op, n->attr.eltwise.alpha, y, x, NULL);
}

int nb_unary_backward(nb_ctx *ctx, nb_node *n, nb_tensor *const *gout, nb_tensor **gin) {
    nb_tensor *x = n->in[0], *gy = gout[0];
    if (!gin[0]) return 0;
    /* the output's gradient in the input's layout, which the kernel runs over */
    nb_tensor *g = gy;
    if (gy->layout != x->layout || (gy->layout == NB_LAYOUT_PLAIN && !nb_is_contiguous(gy))) {
        g = nb_tensor_header(ctx, NB_F32, gy->ndim, gy->shape);
        if (!g || nb_tensor_alloc(g, x->layout) || ctx->backend->relayout(ctx->backend, g, gy)) {
            nb_release(g);
            return -1;
        }
    }
    int rc = nb_tensor_alloc(gin[0], x->layout);
    if (rc == 0) rc = ctx->backend->unary(ctx->backend, n->op, n->attr.eltwise.alpha, gin[0], x, g);
    if (g != gy) nb_release(g);
    return rc;
}
