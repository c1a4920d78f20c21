/* The op table behind the parity and gradient-check tests. */
#include "tests/support/op_harness.h"

#include <string.h>

#include "core/ops.h"
#include "tests/support/testutil.h"

/* The input datasets of each op's fixture groups, in call order; NULL for an op the harness cannot call (one
 * tested elsewhere). Unary ops (impl UNARY in core/op_table.h) take "x" and need no case here. */
static int input_names(nb_op op, const char **names) {
#define OH_UNARY_CASE(E, name, attr, cost, impl, deploy, quant) OH_UNARY_CASE_##impl(E)
#define OH_UNARY_CASE_UNARY(E) case NB_OP_##E:
#define OH_UNARY_CASE_KERNEL(E)
#define OH_UNARY_CASE_VIEW(E)
    static const char *const conv[] = {"x", "w", "b"}, *const bn[] = {"x", "weight", "bias", "running_mean", "running_var"},
                             *const x[] = {"x"}, *const ab[] = {"a", "b"}, *const xs[] = {"x", "s"},
                             *const ce[] = {"logits", "labels"}, *const kl[] = {"student", "teacher"},
                             *const reg[] = {"x", "target"}, *const fq[] = {"x", "scale", "zero_point"};
    const char *const *list = NULL;
    int n = 0;
    switch (op) {
    case NB_OP_CONV2D:
    case NB_OP_LINEAR: list = conv, n = 3; break;
    case NB_OP_BATCHNORM2D: list = bn, n = 5; break;
    NB_OP_TABLE(OH_UNARY_CASE)
    case NB_OP_RELU:
    case NB_OP_RELU6:
    case NB_OP_LEAKY_RELU:
    case NB_OP_SIGMOID:
    case NB_OP_HARDSWISH:
    case NB_OP_SILU:
    case NB_OP_MAXPOOL2D:
    case NB_OP_AVGPOOL2D:
    case NB_OP_GLOBAL_AVGPOOL:
    case NB_OP_SCALE:
    case NB_OP_SLICE:
    case NB_OP_CHANNEL_SHUFFLE:
    case NB_OP_RESHAPE:
    case NB_OP_SOFTMAX:
    case NB_OP_LOG_SOFTMAX:
    case NB_OP_DROPOUT:
    case NB_OP_CAST: list = x, n = 1; break;
    case NB_OP_ADD: list = ab, n = 2; break;
    case NB_OP_MUL_CHANNEL: list = xs, n = 2; break;
    case NB_OP_CONCAT: n = 0; break; /* x0 .. x<n-1>, from the case's attribute n */
    case NB_OP_CROSS_ENTROPY: list = ce, n = 2; break;
    case NB_OP_KL_DIV: list = kl, n = 2; break;
    case NB_OP_SMOOTH_L1:
    case NB_OP_MSE: list = reg, n = 2; break;
    case NB_OP_FAKE_QUANT: list = fq, n = 3; break;
    case NB_OP_MULTIBOX: /* its own fixture, tests/fixtures/multibox.h5 (test_detect.c) */
    case NB_OP_RELAYOUT: /* the layout copy every blocked-layout case runs */
    case NB_OP_COUNT: return -1;
    }
#undef OH_UNARY_CASE
#undef OH_UNARY_CASE_UNARY
#undef OH_UNARY_CASE_KERNEL
#undef OH_UNARY_CASE_VIEW
    if (nb_op_impl_of(op) == NB_IMPL_UNARY) list = x, n = 1;
    for (int k = 0; k < n; k++) names[k] = list[k];
    return n;
}

static const char *const concat_names[OH_MAX_IN] = {"x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"};

int oh_spec_for(const char *op, oh_spec *s) {
    memset(s, 0, sizeof *s);
    int id = nb_op_from_name(op);
    if (id < 0) return -1;
    s->id = (nb_op)id;
    s->op = nb_op_name(s->id);
    s->n_in = input_names(s->id, s->names);
    if (s->n_in < 0) return -1;
    s->momentum = 0.1f;
    s->eps = 1e-5f;
    s->alpha = 1.0f;
    s->beta = 1.0f;
    return 0;
}

void oh_read_attrs(hid_t g, oh_spec *s) {
    tu_attr_ints(g, "stride", s->stride, 2);
    tu_attr_ints(g, "pad", s->pad, 2);
    tu_attr_ints(g, "dilation", s->dilation, 2);
    tu_attr_ints(g, "groups", &s->groups, 1);
    tu_attr_ints(g, "kernel", s->kernel, 2);
    tu_attr_ints(g, "ceil_mode", &s->ceil_mode, 1);
    tu_attr_ints(g, "exclude_pad", &s->exclude_pad, 1);
    tu_attr_ints(g, "axis", &s->axis, 1);
    tu_attr_ints(g, "training", &s->training, 1);
    tu_attr_ints(g, "relu", &s->relu, 1);
    tu_attr_ints(g, "qmin", &s->qmin, 1);
    tu_attr_ints(g, "qmax", &s->qmax, 1);
    if (tu_attr_ints(g, "n", &s->n, 1) && s->id == NB_OP_CONCAT) {
        s->n_in = s->n;
        for (int k = 0; k < s->n; k++) s->names[k] = concat_names[k];
    }
    int v[6];
    if (tu_attr_ints(g, "start", v, 1)) s->start = v[0];
    if (tu_attr_ints(g, "len", v, 1)) s->len = v[0];
    s->shape_nd = tu_attr_ints(g, "shape", v, 6);
    for (int k = 0; k < s->shape_nd; k++) s->shape[k] = v[k];
    s->momentum = (float)tu_attr_double(g, "momentum", s->momentum);
    s->eps = (float)tu_attr_double(g, "eps", s->eps);
    s->alpha = (float)tu_attr_double(g, "alpha", s->alpha);
    s->beta = (float)tu_attr_double(g, "beta", s->beta);
    s->label_smoothing = (float)tu_attr_double(g, "label_smoothing", 0.0);
    s->temperature = (float)tu_attr_double(g, "temperature", 1.0);
    s->grad_factor = (float)tu_attr_double(g, "grad_factor", 1.0);
}

nb_tensor *oh_run(const oh_spec *s, nb_tensor **in) {
    nb_pool_attr pa = {.kernel = {s->kernel[0], s->kernel[1]},
                       .stride = {s->stride[0], s->stride[1]},
                       .pad = {s->pad[0], s->pad[1]},
                       .dilation = {s->dilation[0], s->dilation[1]},
                       .ceil_mode = s->ceil_mode,
                       .exclude_pad = s->exclude_pad};
    if (nb_op_impl_of(s->id) == NB_IMPL_UNARY) return nb_unary(s->id, in[0], s->alpha);
    switch (s->id) {
    case NB_OP_CONV2D:
        return nb_conv2d(in[0], in[1], in[2],
                         (nb_conv_attr){.stride = {s->stride[0], s->stride[1]},
                                        .pad = {s->pad[0], s->pad[1]},
                                        .dilation = {s->dilation[0], s->dilation[1]},
                                        .groups = s->groups});
    case NB_OP_LINEAR: return nb_linear(in[0], in[1], in[2]);
    case NB_OP_BATCHNORM2D:
        return nb_batchnorm2d(in[0], in[1], in[2], in[3], in[4],
                              (nb_bn_attr){.momentum = s->momentum, .eps = s->eps, .training = s->training, .relu = s->relu});
    case NB_OP_RELU: return nb_relu(in[0]);
    case NB_OP_RELU6: return nb_relu6(in[0]);
    case NB_OP_LEAKY_RELU: return nb_leaky_relu(in[0], s->alpha);
    case NB_OP_SIGMOID: return nb_sigmoid(in[0]);
    case NB_OP_HARDSWISH: return nb_hardswish(in[0]);
    case NB_OP_SILU: return nb_silu(in[0]);
    case NB_OP_MAXPOOL2D: return nb_maxpool2d(in[0], pa);
    case NB_OP_AVGPOOL2D: return nb_avgpool2d(in[0], pa);
    case NB_OP_GLOBAL_AVGPOOL: return nb_global_avgpool(in[0]);
    case NB_OP_ADD: return s->relu ? nb_add_relu(in[0], in[1]) : nb_add_scaled(in[0], s->alpha, in[1], s->beta);
    case NB_OP_SCALE: return nb_scale(in[0], s->alpha);
    case NB_OP_MUL_CHANNEL: return nb_mul_channel(in[0], in[1]);
    case NB_OP_CONCAT: return nb_concat(in, s->n_in, s->axis);
    case NB_OP_SLICE: return nb_slice(in[0], s->axis, s->start, s->len);
    case NB_OP_CHANNEL_SHUFFLE: return nb_channel_shuffle(in[0], s->groups);
    case NB_OP_RESHAPE: return nb_reshape(in[0], s->shape_nd, s->shape);
    case NB_OP_SOFTMAX: return nb_softmax(in[0], s->axis);
    case NB_OP_LOG_SOFTMAX: return nb_log_softmax(in[0], s->axis);
    case NB_OP_CROSS_ENTROPY: return nb_cross_entropy(in[0], in[1], s->label_smoothing);
    case NB_OP_KL_DIV: return nb_kl_div(in[0], in[1], s->temperature);
    case NB_OP_SMOOTH_L1: return nb_smooth_l1(in[0], in[1], s->beta);
    case NB_OP_MSE: return nb_mse(in[0], in[1]);
    case NB_OP_DROPOUT: return nb_dropout(in[0], s->alpha, 1);
    case NB_OP_CAST: return nb_cast(in[0], NB_BF16); /* f32 -> bf16 (tests/fixtures/bf16.h5) */
    case NB_OP_FAKE_QUANT:
        return nb_fake_quant(in[0], in[1], in[2],
                             (nb_fake_quant_attr){.qmin = s->qmin, .qmax = s->qmax, .axis = s->axis, .grad_factor = s->grad_factor});
    default: return NULL; /* unary ops above; multibox and relayout have tests of their own */
    }
}
