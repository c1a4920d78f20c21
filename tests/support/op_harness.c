/* The op table behind the parity and gradient-check tests. */
#include "tests/support/op_harness.h"

#include <string.h>

#include "core/ops.h"
#include "tests/support/testutil.h"

typedef struct {
    const char *op;
    int n_in;
    const char *names[4];
} entry;

static const entry table[] = {
    {"conv2d", 3, {"x", "w", "b"}},
    {"linear", 3, {"x", "w", "b"}},
    {"batchnorm2d", 5, {"x", "weight", "bias", "running_mean"}}, /* running_var appended below */
    {"relu", 1, {"x"}},
    {"relu6", 1, {"x"}},
    {"leaky_relu", 1, {"x"}},
    {"sigmoid", 1, {"x"}},
    {"hardswish", 1, {"x"}},
    {"maxpool2d", 1, {"x"}},
    {"avgpool2d", 1, {"x"}},
    {"global_avgpool", 1, {"x"}},
    {"add", 2, {"a", "b"}},
    {"scale", 1, {"x"}},
    {"mul_channel", 2, {"x", "s"}},
    {"concat", 0, {0}},
    {"slice", 1, {"x"}},
    {"channel_shuffle", 1, {"x"}},
    {"reshape", 1, {"x"}},
    {"softmax", 1, {"x"}},
    {"log_softmax", 1, {"x"}},
    {"cross_entropy", 2, {"logits", "labels"}},
    {"kl_div", 2, {"student", "teacher"}},
    {"smooth_l1", 2, {"x", "target"}},
    {"mse", 2, {"x", "target"}},
    {"dropout", 1, {"x"}},
};

static const char *const concat_names[OH_MAX_IN] = {"x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"};

int oh_spec_for(const char *op, oh_spec *s) {
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        if (strcmp(table[i].op, op)) continue;
        s->op = table[i].op;
        s->n_in = table[i].n_in;
        for (int k = 0; k < 4; k++) s->names[k] = table[i].names[k];
        if (!strcmp(op, "batchnorm2d")) s->names[4] = "running_var";
        s->momentum = 0.1f;
        s->eps = 1e-5f;
        s->alpha = 1.0f;
        s->beta = 1.0f;
        return 0;
    }
    return -1;
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
    if (tu_attr_ints(g, "n", &s->n, 1) && !strcmp(s->op, "concat")) {
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
}

nb_tensor *oh_run(const oh_spec *s, nb_tensor **in) {
    const char *op = s->op;
    nb_pool_attr pa = {.kernel = {s->kernel[0], s->kernel[1]},
                       .stride = {s->stride[0], s->stride[1]},
                       .pad = {s->pad[0], s->pad[1]},
                       .dilation = {s->dilation[0], s->dilation[1]},
                       .ceil_mode = s->ceil_mode,
                       .exclude_pad = s->exclude_pad};
    if (!strcmp(op, "conv2d"))
        return nb_conv2d(in[0], in[1], in[2],
                         (nb_conv_attr){.stride = {s->stride[0], s->stride[1]},
                                        .pad = {s->pad[0], s->pad[1]},
                                        .dilation = {s->dilation[0], s->dilation[1]},
                                        .groups = s->groups});
    if (!strcmp(op, "linear")) return nb_linear(in[0], in[1], in[2]);
    if (!strcmp(op, "batchnorm2d"))
        return nb_batchnorm2d(in[0], in[1], in[2], in[3], in[4],
                              (nb_bn_attr){.momentum = s->momentum, .eps = s->eps, .training = s->training, .relu = s->relu});
    if (!strcmp(op, "relu")) return nb_relu(in[0]);
    if (!strcmp(op, "relu6")) return nb_relu6(in[0]);
    if (!strcmp(op, "leaky_relu")) return nb_leaky_relu(in[0], s->alpha);
    if (!strcmp(op, "sigmoid")) return nb_sigmoid(in[0]);
    if (!strcmp(op, "hardswish")) return nb_hardswish(in[0]);
    if (!strcmp(op, "maxpool2d")) return nb_maxpool2d(in[0], pa);
    if (!strcmp(op, "avgpool2d")) return nb_avgpool2d(in[0], pa);
    if (!strcmp(op, "global_avgpool")) return nb_global_avgpool(in[0]);
    if (!strcmp(op, "add")) return s->relu ? nb_add_relu(in[0], in[1]) : nb_add_scaled(in[0], s->alpha, in[1], s->beta);
    if (!strcmp(op, "scale")) return nb_scale(in[0], s->alpha);
    if (!strcmp(op, "mul_channel")) return nb_mul_channel(in[0], in[1]);
    if (!strcmp(op, "concat")) return nb_concat(in, s->n_in, s->axis);
    if (!strcmp(op, "slice")) return nb_slice(in[0], s->axis, s->start, s->len);
    if (!strcmp(op, "channel_shuffle")) return nb_channel_shuffle(in[0], s->groups);
    if (!strcmp(op, "reshape")) return nb_reshape(in[0], s->shape_nd, s->shape);
    if (!strcmp(op, "softmax")) return nb_softmax(in[0], s->axis);
    if (!strcmp(op, "log_softmax")) return nb_log_softmax(in[0], s->axis);
    if (!strcmp(op, "cross_entropy")) return nb_cross_entropy(in[0], in[1], s->label_smoothing);
    if (!strcmp(op, "kl_div")) return nb_kl_div(in[0], in[1], s->temperature);
    if (!strcmp(op, "smooth_l1")) return nb_smooth_l1(in[0], in[1], s->beta);
    if (!strcmp(op, "mse")) return nb_mse(in[0], in[1]);
    if (!strcmp(op, "dropout")) return nb_dropout(in[0], s->alpha, 1);
    return NULL;
}
