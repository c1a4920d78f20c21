/* Front-ends of softmax, log-softmax and the losses. All work on plain tensors and return scalars
 * averaged over the batch (losses) or tensors of the input's shape (softmax). */
#include "core/op_impl.h"

static nb_tensor *softmax_like(nb_op op, nb_tensor *x, int axis) {
    if (!x) return NULL;
    nb_ctx *ctx = x->ctx;
    const char *name = nb_op_name(op);
    if (nb_check_float(ctx, name, "input", x, -1)) return NULL;
    int a = nb_norm_axis(ctx, name, x, axis);
    if (a < 0) return NULL;
    x = nb_to_plain(x);
    if (!x) return NULL;
    nb_node *n = nb_op_begin(ctx, op, &x, 1, 1);
    n->attr.axis.axis = a;
    nb_op_out(n, 0, NB_F32, x->ndim, x->shape);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_softmax(nb_tensor *x, int axis) { return softmax_like(NB_OP_SOFTMAX, x, axis); }
nb_tensor *nb_log_softmax(nb_tensor *x, int axis) { return softmax_like(NB_OP_LOG_SOFTMAX, x, axis); }

static nb_tensor *loss_node(nb_ctx *ctx, nb_op op, nb_tensor *a, nb_tensor *b, nb_attr attr) {
    a = nb_to_plain(a);
    b = nb_to_plain(b);
    if (!a || !b) return NULL;
    nb_tensor *in[2] = {a, b};
    nb_node *n = nb_op_begin(ctx, op, in, 2, 1);
    n->attr = attr;
    nb_op_out(n, 0, NB_F32, 0, NULL);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_cross_entropy(nb_tensor *logits, nb_tensor *labels, float label_smoothing) {
    if (!logits || !labels) return NULL;
    nb_ctx *ctx = logits->ctx;
    if (nb_check_float(ctx, "cross_entropy", "logits", logits, 2)) return NULL;
    NB_REQUIRE(ctx, labels->dtype == NB_I64 && labels->ndim == 1 && labels->shape[0] == logits->shape[0], NULL,
               "cross_entropy", "labels %s must be i64 [%lld] for logits %s", NB_SHAPE(labels),
               (long long)logits->shape[0], NB_SHAPE(logits));
    NB_REQUIRE(ctx, logits->shape[0] > 0 && logits->shape[1] > 0, NULL, "cross_entropy",
               "logits %s must have at least one sample and one class", NB_SHAPE(logits));
    NB_REQUIRE(ctx, label_smoothing >= 0.0f && label_smoothing <= 1.0f, NULL, "cross_entropy",
               "label smoothing %g must be within [0, 1]", (double)label_smoothing);
    nb_attr attr = {.ce = {.label_smoothing = label_smoothing}};
    return loss_node(ctx, NB_OP_CROSS_ENTROPY, logits, labels, attr);
}

nb_tensor *nb_kl_div(nb_tensor *student, nb_tensor *teacher, float temperature) {
    if (!student || !teacher) return NULL;
    nb_ctx *ctx = student->ctx;
    if (nb_check_float(ctx, "kl_div", "student logits", student, 2) ||
        nb_check_float(ctx, "kl_div", "teacher logits", teacher, 2))
        return NULL;
    NB_REQUIRE(ctx, nb_same_shape(student, teacher), NULL, "kl_div", "student %s and teacher %s logits differ",
               NB_SHAPE(student), NB_SHAPE(teacher));
    NB_REQUIRE(ctx, temperature > 0.0f, NULL, "kl_div", "temperature %g must be > 0", (double)temperature);
    nb_attr attr = {.kl = {.temperature = temperature}};
    return loss_node(ctx, NB_OP_KL_DIV, student, teacher, attr);
}

static nb_tensor *regression(nb_op op, nb_tensor *x, nb_tensor *t, nb_attr attr) {
    if (!x || !t) return NULL;
    nb_ctx *ctx = x->ctx;
    const char *name = nb_op_name(op);
    if (nb_check_float(ctx, name, "input", x, -1) || nb_check_float(ctx, name, "target", t, -1)) return NULL;
    NB_REQUIRE(ctx, nb_same_shape(x, t), NULL, name, "input %s and target %s differ in shape", NB_SHAPE(x),
               NB_SHAPE(t));
    NB_REQUIRE(ctx, nb_numel(x) > 0, NULL, name, "input %s is empty", NB_SHAPE(x));
    return loss_node(ctx, op, x, t, attr);
}

nb_tensor *nb_smooth_l1(nb_tensor *x, nb_tensor *target, float beta) {
    if (x) NB_REQUIRE(x->ctx, beta >= 0.0f, NULL, "smooth_l1", "beta %g must be >= 0", (double)beta);
    nb_attr attr = {.smooth_l1 = {.beta = beta}};
    return regression(NB_OP_SMOOTH_L1, x, target, attr);
}

nb_tensor *nb_multibox_loss(nb_tensor *pred, nb_tensor *target, float neg_pos_ratio, float beta) {
    if (!pred || !target) return NULL;
    nb_ctx *ctx = pred->ctx;
    const char *op = "multibox_loss";
    if (nb_check_float(ctx, op, "predictions", pred, 3) || nb_check_float(ctx, op, "targets", target, 3)) return NULL;
    int64_t N = pred->shape[0], P = pred->shape[2];
    NB_REQUIRE(ctx, pred->shape[1] >= 6, NULL, op,
               "predictions %s must be [N, 4 + C, P] with C >= 2 (background and a class)", NB_SHAPE(pred));
    NB_REQUIRE(ctx, target->shape[0] == N && target->shape[1] == P && target->shape[2] == 5, NULL, op,
               "targets %s must be [%lld, %lld, 5] (class, then 4 offsets) for predictions %s", NB_SHAPE(target),
               (long long)N, (long long)P, NB_SHAPE(pred));
    NB_REQUIRE(ctx, N > 0 && P > 0, NULL, op, "predictions %s are empty", NB_SHAPE(pred));
    NB_REQUIRE(ctx, neg_pos_ratio >= 0.0f && beta >= 0.0f, NULL, op, "neg_pos_ratio %g and beta %g must be >= 0",
               (double)neg_pos_ratio, (double)beta);
    nb_tensor *in[2] = {nb_to_plain(pred), nb_to_plain(target)};
    if (!in[0] || !in[1]) return NULL;
    nb_node *n = nb_op_begin(ctx, NB_OP_MULTIBOX, in, 2, 1);
    n->attr.multibox = (nb_multibox_attr){neg_pos_ratio, beta};
    nb_op_out(n, 0, NB_F32, 0, NULL);
    return nb_op_finish1(ctx, n);
}

nb_tensor *nb_mse(nb_tensor *x, nb_tensor *target) {
    nb_attr attr = {0};
    return regression(NB_OP_MSE, x, target, attr);
}
