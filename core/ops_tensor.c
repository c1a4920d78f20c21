/* Front-ends of the tensor-arithmetic ops: add, scale, channel-broadcast multiply, concat, channel shuffle. */
#include <stdlib.h>
#include <string.h>

#include "core/op_impl.h"

static nb_tensor *add(nb_tensor *a, float alpha, nb_tensor *b, float beta, int relu) {
    if (!a || !b) return NULL;
    nb_ctx *ctx = a->ctx;
    if (nb_check_float(ctx, "add", "first operand", a, -1) || nb_check_float(ctx, "add", "second operand", b, -1))
        return NULL;
    NB_REQUIRE(ctx, nb_same_shape(a, b), NULL, "add", "operands %s and %s differ in shape", NB_SHAPE(a),
               NB_SHAPE(b));
    /* element-wise over the physical buffer: both operands in one dense layout */
    if (a->layout == NB_LAYOUT_PLAIN && !nb_is_contiguous(a)) a = nb_to_plain(a);
    if (a) b = nb_to_layout(b, a->layout);
    if (!a || !b) return NULL;
    nb_tensor *in[2] = {a, b};
    nb_node *n = nb_op_begin(ctx, NB_OP_ADD, in, 2, 1);
    n->attr.add = (nb_add_attr){.alpha = alpha, .beta = beta, .relu = relu};
    nb_op_out(n, 0, NB_F32, a->ndim, a->shape);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_add_scaled(nb_tensor *a, float alpha, nb_tensor *b, float beta) { return add(a, alpha, b, beta, 0); }
nb_tensor *nb_add(nb_tensor *a, nb_tensor *b) { return add(a, 1.0f, b, 1.0f, 0); }
nb_tensor *nb_add_relu(nb_tensor *a, nb_tensor *b) { return add(a, 1.0f, b, 1.0f, 1); }

nb_tensor *nb_scale(nb_tensor *x, float s) {
    if (!x) return NULL;
    nb_ctx *ctx = x->ctx;
    if (nb_check_float(ctx, "scale", "input", x, -1)) return NULL;
    if (x->layout == NB_LAYOUT_PLAIN && !nb_is_contiguous(x)) x = nb_to_plain(x);
    if (!x) return NULL;
    nb_node *n = nb_op_begin(ctx, NB_OP_SCALE, &x, 1, 1);
    n->attr.add = (nb_add_attr){.alpha = s};
    nb_op_out(n, 0, NB_F32, x->ndim, x->shape);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_mul_channel(nb_tensor *x, nb_tensor *s) {
    if (!x || !s) return NULL;
    nb_ctx *ctx = x->ctx;
    if (nb_check_float(ctx, "mul_channel", "input", x, 4) || nb_check_float(ctx, "mul_channel", "scale", s, 4))
        return NULL;
    NB_REQUIRE(ctx,
               (s->shape[0] == x->shape[0] || s->shape[0] == 1) && s->shape[1] == x->shape[1] && s->shape[2] == 1 &&
                   s->shape[3] == 1,
               NULL, "mul_channel", "scale %s must be [N,C,1,1] or [1,C,1,1] for input %s", NB_SHAPE(s),
               NB_SHAPE(x));
    x = nb_to_plain(x);
    s = nb_to_plain(s);
    if (!x || !s) return NULL;
    nb_tensor *in[2] = {x, s};
    nb_node *n = nb_op_begin(ctx, NB_OP_MUL_CHANNEL, in, 2, 1);
    nb_op_out(n, 0, NB_F32, 4, x->shape);
    return nb_op_finish1(ctx, n);
}

/* Inputs keep whatever layout they are in (a blocked activation, a strided channel slice): the core copies
 * each straight into its place in the output (ops_view.c), so no plain copy of a part is ever made. */
static nb_tensor *concat(nb_tensor *const *xs, int count, int axis, bool interleave) {
    const char *op = interleave ? "concat_shuffle" : "concat";
    if (count <= 0 || !xs[0]) return NULL;
    for (int i = 0; i < count; i++)
        if (!xs[i]) return NULL;
    nb_ctx *ctx = xs[0]->ctx;
    int a = nb_norm_axis(ctx, op, xs[0], axis);
    if (a < 0) return NULL;
    int64_t s[NB_MAX_DIMS];
    memcpy(s, xs[0]->shape, sizeof s);
    s[a] = 0;
    for (int i = 0; i < count; i++) {
        nb_tensor *t = xs[i];
        if (nb_check_float(ctx, op, "input", t, xs[0]->ndim)) return NULL;
        for (int d = 0; d < t->ndim; d++) {
            NB_REQUIRE(ctx, d == a || t->shape[d] == xs[0]->shape[d], NULL, op,
                       "input %d %s differs from input 0 %s outside axis %d", i, NB_SHAPE(t), NB_SHAPE(xs[0]), a);
        }
        NB_REQUIRE(ctx, !interleave || t->shape[a] == xs[0]->shape[a], NULL, op,
                   "input %d %s and input 0 %s must have equal channels to be interleaved", i, NB_SHAPE(t),
                   NB_SHAPE(xs[0]));
        s[a] += t->shape[a];
    }
    nb_node *n = nb_op_begin(ctx, NB_OP_CONCAT, xs, count, 1);
    n->attr.axis.axis = a;
    n->attr.axis.interleave = interleave;
    nb_op_out(n, 0, NB_F32, xs[0]->ndim, s);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_concat(nb_tensor *const *xs, int count, int axis) { return concat(xs, count, axis, false); }

nb_tensor *nb_concat_shuffle(nb_tensor *const *xs, int count) { return concat(xs, count, 1, true); }

nb_tensor *nb_channel_shuffle(nb_tensor *x, int groups) {
    if (!x) return NULL;
    nb_ctx *ctx = x->ctx;
    if (nb_check_float(ctx, "channel_shuffle", "input", x, 4)) return NULL;
    NB_REQUIRE(ctx, groups > 0 && x->shape[1] % groups == 0, NULL, "channel_shuffle",
               "groups=%d must divide the %lld channels of %s", groups, (long long)x->shape[1], NB_SHAPE(x));
    x = nb_to_plain(x);
    if (!x) return NULL;
    nb_node *n = nb_op_begin(ctx, NB_OP_CHANNEL_SHUFFLE, &x, 1, 1);
    n->attr.shuffle.groups = groups;
    nb_op_out(n, 0, NB_F32, 4, x->shape);
    return nb_op_finish1(ctx, n);
}
