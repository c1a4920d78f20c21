/* Bad input to the public API: each case must fail with a message that names the op and the shapes, return
 * NULL or -1, and leave the context usable; with the default handler the process exits 1 with the message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/select.h"
#include "tests/support/testutil.h"

static nb_tensor *T(nb_ctx *ctx, nb_dtype dt, int nd, const int64_t *shape) {
    nb_tensor *t = nb_tensor_new(ctx, dt, nd, shape);
    assert_non_null(t);
    return t;
}
#define S(...) ((const int64_t[]){__VA_ARGS__})

static void test_conv_errors(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    nb_tensor *x = T(ctx, NB_F32, 4, S(2, 3, 8, 8)), *w = T(ctx, NB_F32, 4, S(4, 2, 3, 3));
    assert_null(nb_conv2d(x, w, NULL, (nb_conv_attr){0}));
    tu_expect_error(ctx, "conv2d: input [2,3,8,8] has 3 channels, but weight [4,2,3,3] with groups=1 expects 2");
    nb_tensor *xi = T(ctx, NB_I64, 4, S(2, 3, 8, 8)), *w3 = T(ctx, NB_F32, 4, S(4, 3, 3, 3));
    assert_null(nb_conv2d(xi, w3, NULL, (nb_conv_attr){0}));
    tu_expect_error(ctx, "conv2d: input [2,3,8,8] i64 must be f32 (or bf16)");
    assert_null(nb_conv2d(x, w3, NULL, (nb_conv_attr){.groups = 2}));
    tu_expect_error(ctx, "groups=2 must divide");
    nb_tensor *big = T(ctx, NB_F32, 4, S(4, 3, 11, 11));
    assert_null(nb_conv2d(x, big, NULL, (nb_conv_attr){0}));
    tu_expect_error(ctx, "larger than the padded input [2,3,8,8]");
    nb_tensor *b = T(ctx, NB_F32, 1, S(5));
    assert_null(nb_conv2d(x, w3, b, (nb_conv_attr){0}));
    tu_expect_error(ctx, "bias [5] must have 4 elements");
    nb_tensor *x3 = T(ctx, NB_F32, 3, S(3, 8, 8));
    assert_null(nb_conv2d(x3, w3, NULL, (nb_conv_attr){0}));
    tu_expect_error(ctx, "input must have 4 dimensions, got [3,8,8]");
    assert_null(nb_conv2d(x, w3, NULL, (nb_conv_attr){.stride = {-1, 1}}));
    tu_expect_error(ctx, "must be positive");
    nb_release(x), nb_release(w), nb_release(xi), nb_release(w3), nb_release(big), nb_release(b), nb_release(x3);
    nb_ctx_free(ctx);
}

static void test_layer_errors(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *x = T(ctx, NB_F32, 2, S(4, 10)), *w = T(ctx, NB_F32, 2, S(3, 12));
    assert_null(nb_linear(x, w, NULL));
    tu_expect_error(ctx, "linear: input [4,10] has 10 features, but weight [3,12] expects 12");
    nb_tensor *img = T(ctx, NB_F32, 4, S(2, 6, 4, 4)), *v5 = T(ctx, NB_F32, 1, S(5));
    assert_null(nb_batchnorm2d(img, v5, v5, v5, v5, (nb_bn_attr){.training = 1}));
    tu_expect_error(ctx, "batchnorm2d: weight [5] must be a contiguous vector of 6 elements for input [2,6,4,4]");
    nb_tensor *one = T(ctx, NB_F32, 4, S(1, 6, 1, 1));
    assert_null(nb_batchnorm2d(one, NULL, NULL, NULL, NULL, (nb_bn_attr){.training = 1}));
    tu_expect_error(ctx, "more than one value per channel");
    assert_null(nb_maxpool2d(img, (nb_pool_attr){.kernel = {5, 5}}));
    tu_expect_error(ctx, "maxpool2d: window 5 is larger than the padded input [2,6,4,4]");
    assert_null(nb_avgpool2d(img, (nb_pool_attr){.kernel = {2, 2}, .pad = {2, 2}}));
    tu_expect_error(ctx, "padding 2 must be at most half the kernel 2");
    assert_null(nb_dropout(img, 1.0f, 1));
    tu_expect_error(ctx, "dropout: probability 1 must be in [0, 1)");
    nb_tensor *s = T(ctx, NB_F32, 4, S(2, 5, 1, 1));
    assert_null(nb_mul_channel(img, s));
    tu_expect_error(ctx, "mul_channel: scale [2,5,1,1] must be [N,C,1,1] or [1,C,1,1] for input [2,6,4,4]");
    nb_tensor *s1 = T(ctx, NB_F32, 1, S(1));
    assert_null(nb_fake_quant(img, v5, v5, (nb_fake_quant_attr){.qmin = 0, .qmax = 255, .axis = 1}));
    tu_expect_error(ctx, "fake_quant: scale [5] and zero_point [5] must have 6 elements for input [2,6,4,4] (one per "
                         "channel along the axis)");
    assert_null(nb_fake_quant(img, s1, s1, (nb_fake_quant_attr){.qmin = 3, .qmax = 3, .axis = -1}));
    tu_expect_error(ctx, "fake_quant: the integer range [3, 3] must hold at least two values");
    assert_null(nb_fake_quant(img, s1, s1, (nb_fake_quant_attr){.qmin = 0, .qmax = 255, .axis = 4}));
    tu_expect_error(ctx, "fake_quant: axis 4 is out of range for [2,6,4,4]");
    nb_release(x), nb_release(w), nb_release(img), nb_release(v5), nb_release(one), nb_release(s), nb_release(s1);
    nb_scope_end(ctx, mark);
    nb_ctx_free(ctx);
}

static void test_shape_errors(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *a = T(ctx, NB_F32, 3, S(2, 3, 4)), *b = T(ctx, NB_F32, 3, S(2, 3, 5));
    assert_null(nb_add(a, b));
    tu_expect_error(ctx, "add: operands [2,3,4] and [2,3,5] differ in shape");
    nb_tensor *xs[2] = {a, b};
    assert_null(nb_concat(xs, 2, 1));
    tu_expect_error(ctx, "concat: input 1 [2,3,5] differs from input 0 [2,3,4] outside axis 1");
    assert_null(nb_concat(xs, 2, 5));
    tu_expect_error(ctx, "concat: axis 5 is out of range for [2,3,4] (valid: -3 to 2)");
    assert_null(nb_softmax(a, -4));
    tu_expect_error(ctx, "softmax: axis -4 is out of range for [2,3,4]");
    assert_null(nb_slice(a, 2, 3, 2));
    tu_expect_error(ctx, "slice: range [3, 5) is outside dimension 2 of [2,3,4]");
    assert_null(nb_reshape(a, 2, S(5, -1)));
    tu_expect_error(ctx, "reshape: cannot infer dimension 1: 24 elements of [2,3,4] do not divide by 5");
    assert_null(nb_reshape(a, 2, S(5, 5)));
    tu_expect_error(ctx, "reshape: [2,3,4] has 24 elements; the new shape has 25");
    nb_tensor *img = T(ctx, NB_F32, 4, S(1, 6, 2, 2));
    assert_null(nb_channel_shuffle(img, 4));
    tu_expect_error(ctx, "channel_shuffle: groups=4 must divide the 6 channels of [1,6,2,2]");
    nb_tensor *outs[2];
    assert_int_not_equal(nb_split(img, 1, S(2, 3), 2, outs), 0);
    tu_expect_error(ctx, "split: sizes add up to 5 but dimension 1 of [1,6,2,2] is 6");
    assert_null(nb_tensor_new(ctx, NB_F32, 2, S(3, -1)));
    tu_expect_error(ctx, "dimension 1 is -1");
    assert_null(nb_tensor_new(ctx, NB_F32, 7, S(1, 1, 1, 1, 1, 1, 1)));
    tu_expect_error(ctx, "7 dimensions requested");
    float buf[3];
    assert_int_not_equal(nb_tensor_to_host(a, buf, sizeof buf), 0);
    tu_expect_error(ctx, "holds 96 bytes but the destination has 12");
    /* NULL from an earlier failure flows through without a second report */
    assert_null(nb_relu(nb_add(a, b)));
    assert_int_equal(ctx->n_errors, 1);
    tu_clear_error(ctx);
    nb_release(a), nb_release(b), nb_release(img);
    nb_scope_end(ctx, mark);
    nb_ctx_free(ctx);
}

static void test_loss_and_backward_errors(void **st) {
    (void)st;
    nb_ctx *ctx = tu_ctx();
    size_t mark = nb_scope_begin(ctx);
    nb_tensor *logits = T(ctx, NB_F32, 2, S(3, 4)), *flabels = T(ctx, NB_F32, 1, S(3));
    assert_null(nb_cross_entropy(logits, flabels, 0.0f));
    tu_expect_error(ctx, "cross_entropy: labels [3] must be i64 [3] for logits [3,4]");
    int64_t bad[3] = {0, 7, 1};
    nb_tensor *labels = nb_tensor_from_host(ctx, NB_I64, 1, S(3), bad);
    assert_null(nb_cross_entropy(logits, labels, 0.0f));
    tu_expect_error(ctx, "label 7 of sample 1 is outside [0, 4) for logits [3,4]");
    nb_tensor *t5 = T(ctx, NB_F32, 2, S(3, 5));
    assert_null(nb_mse(logits, t5));
    tu_expect_error(ctx, "mse: input [3,4] and target [3,5] differ in shape");
    assert_null(nb_kl_div(logits, logits, 0.0f));
    tu_expect_error(ctx, "temperature 0 must be > 0");
    /* backward needs something to differentiate */
    nb_tensor *y = nb_relu(logits);
    assert_int_not_equal(nb_backward(y, NULL), 0);
    tu_expect_error(ctx, "does not require a gradient");
    nb_set_requires_grad(logits, true);
    y = nb_relu(logits);
    assert_int_not_equal(nb_backward(y, NULL), 0);
    tu_expect_error(ctx, "an implicit gradient needs a one-element tensor, got [3,4]");
    nb_set_requires_grad(labels, true);
    tu_expect_error(ctx, "is not f32 or bf16; only those carry gradients");
    nb_tape_clear(ctx);
    nb_release(logits), nb_release(flabels), nb_release(labels), nb_release(t5);
    nb_scope_end(ctx, mark);
    nb_ctx_free(ctx);
}

/* Without a handler, an error ends the process with status 1 and the message on stderr. */
static void test_default_handler_exits(void **st) {
    (void)st;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        nb_ctx *ctx = nb_ctx_new(NB_DEVICE_CPU);
        nb_tensor *x = nb_tensor_new(ctx, NB_F32, 2, S(2, 3)), *w = nb_tensor_new(ctx, NB_F32, 2, S(4, 5));
        nb_linear(x, w, NULL);
        _exit(0); /* not reached */
    }
    close(fds[1]);
    char msg[1024] = {0};
    ssize_t got = 0, r;
    while ((r = read(fds[0], msg + got, sizeof msg - 1 - (size_t)got)) > 0) got += r;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_non_null(strstr(msg, "nibble: error: linear: input [2,3] has 3 features, but weight [4,5] expects 5"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_errors),
        cmocka_unit_test(test_layer_errors),
        cmocka_unit_test(test_shape_errors),
        cmocka_unit_test(test_loss_and_backward_errors),
        cmocka_unit_test(test_default_handler_exits),
    };
    return cmocka_run_group_tests_name("bad input", tests, NULL, NULL);
}
