/* Front-end of fake quantization (see ops.h): the checks, and the layout: one step size for the tensor works
 * element by element in any layout (a blocked layout's zero padding quantizes to zero), one per channel needs
 * the plain layout that tells the channel of each element. */
#include "core/op_impl.h"

nb_tensor *nb_fake_quant(nb_tensor *x, nb_tensor *scale, nb_tensor *zero_point, nb_fake_quant_attr a) {
    if (!x || !scale || !zero_point) return NULL;
    nb_ctx *ctx = x->ctx;
    if (nb_check_float(ctx, "fake_quant", "input", x, -1) || nb_check_float(ctx, "fake_quant", "scale", scale, 1) ||
        nb_check_float(ctx, "fake_quant", "zero_point", zero_point, 1))
        return NULL;
    NB_REQUIRE(ctx, a.qmin < a.qmax && a.qmin >= -32768 && a.qmax <= 65535, NULL, "fake_quant",
               "the integer range [%d, %d] must hold at least two values and fit 16 bits", a.qmin, a.qmax);
    int64_t groups = 1;
    if (a.axis != -1) {
        int axis = nb_norm_axis(ctx, "fake_quant", x, a.axis);
        if (axis < 0) return NULL;
        a.axis = axis;
        groups = x->shape[axis];
    }
    NB_REQUIRE(ctx, nb_numel(scale) == groups && nb_numel(zero_point) == groups, NULL, "fake_quant",
               "scale %s and zero_point %s must have %lld element%s for input %s (%s)", NB_SHAPE(scale),
               NB_SHAPE(zero_point), (long long)groups, groups == 1 ? "" : "s", NB_SHAPE(x),
               a.axis == -1 ? "one for the tensor" : "one per channel along the axis");
    if (a.grad_factor == 0.0f) a.grad_factor = 1.0f;
    if (a.axis != -1 || (x->layout == NB_LAYOUT_PLAIN && !nb_is_contiguous(x))) x = nb_to_plain(x);
    scale = nb_to_plain(scale);
    zero_point = nb_to_plain(zero_point);
    if (!x || !scale || !zero_point) return NULL;
    nb_tensor *in[3] = {x, scale, zero_point};
    nb_node *n = nb_op_begin(ctx, NB_OP_FAKE_QUANT, in, 3, 1);
    n->attr.fake_quant = a;
    nb_op_out(n, 0, NB_F32, x->ndim, x->shape);
    return nb_op_finish1(ctx, n);
}

void nb_fake_quant_groups(const nb_node *n, int64_t *groups, int64_t *inner) {
    const nb_tensor *x = n->in[0];
    int axis = n->attr.fake_quant.axis;
    *groups = axis < 0 ? 1 : x->shape[axis];
    *inner = axis < 0 ? nb_numel(x) : 1;
    for (int d = axis + 1; axis >= 0 && d < x->ndim; d++) *inner *= x->shape[d];
}
